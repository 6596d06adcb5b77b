"""The benchmarks are scripts, not tests; these only keep them running and their figures sane."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # each benchmark in a subprocess: left out of the quick subset

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_benchmark(name: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def test_inference_benchmark_compares_torch_onnx_and_the_reference(tiny_model):
    figures = run_benchmark("inference.py", "--checkpoint", str(tiny_model), "--photo-size", "96", "--runs", "1")
    assert figures["reference_parameters"] == 54_409_858
    assert figures["onnx_vs_torch_max_difference"] <= 1
    for key in ("torch_end_to_end_ms", "onnx_end_to_end_ms", "model_forward_32_ms", "reference_forward_256_ms"):
        assert figures[key] > 0
    assert figures["reference_forward_over_model_forward"] > 1  # a 0.1M-parameter U-Net at 32 px


def test_training_benchmark_reports_throughput_data_wait_and_the_ratio_to_the_reference():
    figures = run_benchmark("training.py", "--steps", "1", "--batch-size", "2")
    for name in ("default", "pix2pix"):
        for size in ("128px", "256px"):
            for phase in ("l1", "gan"):
                assert figures[f"{name} {size}"][phase]["images_per_second"] > 0
                assert 0 <= figures[f"{name} {size}"][phase]["data_wait_share"] < 1
    assert figures["default over pix2pix, images/s"]["256px gan"] > 1  # 4x fewer weights, 4x fewer pixels


def test_memory_benchmark_counts_saved_activations_and_fp16_halves_them():
    figures = run_benchmark("memory.py", "--sizes", "32")
    for name in ("default (encoder_unet)", "unet", "pix2pix"):
        fp32, fp16 = figures[f"{name} 32px fp32"], figures[f"{name} 32px fp16"]
        assert 0.4 < fp16["activations_per_image_mb"] / fp32["activations_per_image_mb"] < 0.75
        assert fp16["largest_batch"] > fp32["largest_batch"] > 0
    assert figures["pix2pix 32px fp32"]["weights_grads_adam_mb"] > 4 * figures["default (encoder_unet) 32px fp32"][
        "weights_grads_adam_mb"]


def test_photo_memory_benchmark_measures_every_shape(tiny_model):
    figures = run_benchmark("photo_memory.py", "--megapixels", "0.2", "--checkpoint", str(tiny_model))
    assert {value["shape"] for value in figures.values() if isinstance(value, dict)} == \
        {"square", "4:1", "1:N", "N:1", "square 16-bit", "square float"}
    assert figures["process_with_a_64px_photo_mb"] > 0


def test_folder_benchmark_compares_one_at_a_time_pipelined_and_the_io_floor(tiny_model):
    figures = run_benchmark("folder.py", "--photos", "4", "--side", "128", "--checkpoint", str(tiny_model))
    for mode in ("one_at_a_time", "pipelined", "floor", "floor_threaded"):
        assert figures[mode]["photos_per_second"] > 0 and figures[mode]["peak_rss_mb"] > 0
    assert figures["pipelined_over_floor"] > 0 and figures["workers"] >= 1


def test_startup_benchmark_times_each_step_in_a_fresh_process(tiny_model):
    figures = run_benchmark("startup.py", "--runs", "1", "--checkpoint", str(tiny_model))
    steps = ("start_and_exit", "import_cli", "import_torch", "load_model", "first_photo", "second_photo")
    assert all(figures[step] >= 0 for step in steps) and figures["import_torch"] > 0
    assert abs(sum(figures[step] for step in steps) - figures["total"]) < 0.01


def test_hints_benchmark_times_a_click_on_both_backends(hinted_model):
    figures = run_benchmark("hints.py", "--checkpoint", str(hinted_model), "--photo-size", "96", "--runs", "1")
    assert figures["hints"] == 5
    for backend in ("torch", "onnx"):
        assert 0 < figures[f"{backend}_click_to_png_ms"] < figures[f"{backend}_first_photo_ms"] * 10


def test_hint_locality_benchmark_measures_inside_outside_and_skips_photos_without_a_region(hinted_model, tmp_path):
    from PIL import Image
    from synthetic import write_synthetic_photos
    photos, maps = tmp_path / "photos", tmp_path / "maps"
    maps.mkdir()
    for i, photo in enumerate(write_synthetic_photos(photos, 3, size=96, seed=7)):
        regions = np.zeros((96, 96), np.uint8)
        if i < 2:  # a 40 x 40 square: 17% of the photo; the third photo is one region, too big to hint
            regions[20:60, 30:70] = 1
        Image.fromarray(regions).save(maps / photo.name)
    figures = run_benchmark("hint_locality.py", "--checkpoint", str(hinted_model), "--photos", str(photos),
                            "--segments", str(maps), "--no-progress")
    assert (figures["photos"], figures["skipped"]) == (2, 1)
    assert figures["inside_change"] > 0 and figures["outside_change"] >= 0
    assert figures["leak"] == pytest.approx(figures["outside_change"] / figures["inside_change"], abs=1e-2)
    assert 0 < figures["distance_after_over_before"] < 1  # the hinted pixels at least take the hint
