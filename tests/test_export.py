"""export_model, the library function behind `colorful-world export`: chroma gain, the figures of
every framing, the hints table, provenance carried from a run or from an export, and the formats."""

import json
import os
from dataclasses import asdict

import pytest
import torch
from safetensors import safe_open

from colorful_world.core.config import ModelConfig, TrainConfig
from colorful_world.inference.evaluate import calibrate_chroma
from colorful_world.inference.export import HINT_COUNTS, HINTS_KEY, VALIDATION_KEYS, export_model
from colorful_world.io.errors import ConfigError
from colorful_world.nets import checkpoint as ckpt
from colorful_world.nets.model_file import load_model
from colorful_world.nets.models import build_generator

BASELINES = {"model", "grey", "mean_colour"}


def _run_checkpoint(folder, data, config: ModelConfig, step: int = 7, hint_weights: bool = False):
    """A training checkpoint at `step` of a run in `folder` (its metrics log included), with a
    TrainConfig that holds the split of `data`, as a real run's does."""
    torch.manual_seed(0)
    net = build_generator(config)
    if hint_weights:  # a fresh hinted network ignores hints until trained: make it heed them
        net.refine.out.weight.data.normal_(0, 0.2)
    settings = asdict(TrainConfig(data=str(data), val_fraction=0.2, min_colourfulness=1.0, epochs=2)) | {
        k: v for k, v in config.__dict__.items() if k != "format"}
    path = ckpt.checkpoint_path(folder, step)
    ckpt.save_checkpoint({"ema": net.state_dict(), "config": settings, "step": step, "epoch": 1}, path)
    (folder / "metrics.jsonl").write_text(json.dumps({"kind": "val", "step": step, "epoch": 1, "psnr": 20.5}) + "\n")
    os.utime(path, (1.6e9, 1.6e9))  # September 2020: the export is dated by the checkpoint, not today
    return path


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory, synthetic_folder):
    run = tmp_path_factory.mktemp("run")
    return _run_checkpoint(run, synthetic_folder, ModelConfig("unet", 32, 3, 8, 64))


def test_export_calibrates_scores_every_framing_and_keeps_where_it_comes_from(tmp_path, unet_run, synthetic_folder):
    cache = tmp_path / "cache"
    out = export_model(unet_run, tmp_path / "model.safetensors", chroma_gain="auto", data=str(synthetic_folder),
                       cache_dir=cache, fp16=True, note="made by export_model", hints_table=True, progress=False)
    assert out == tmp_path / "model.safetensors"
    state, config, provenance = load_model(out)
    gain = round(calibrate_chroma(unet_run, str(synthetic_folder), cache, progress=False), 3)
    assert config["chroma_gain"] == gain != 1.0
    assert (provenance["steps"], provenance["epochs"], provenance["note"]) == (7, 2, "made by export_model")
    assert provenance["date"].startswith("2020-09-13") and provenance["data"] == str(synthetic_folder)
    figures = {key: provenance[key] for key in VALIDATION_KEYS.values() if key in provenance}
    assert list(figures) == ["validation", "validation_tight_crops", "validation_old_prints"]  # one source: no scenes
    for key, results in figures.items():  # measured here, each against both baselines: not the run's 20.5
        assert set(results) == BASELINES and results["model"]["photos"] == 40, key
    assert len({results["model"]["psnr"] for results in figures.values()}) == 3  # three framings, three scores
    assert HINTS_KEY not in provenance  # the model takes no hints: no table, even when asked
    with safe_open(str(out), framework="pt") as stored:
        assert {stored.get_tensor(name).dtype for name in stored.keys()} <= {torch.float16, torch.int64}


@pytest.mark.slow
def test_a_hinted_model_gets_a_table_of_figures_by_hints_per_photo(tmp_path, synthetic_folder):
    run = tmp_path / "run"
    checkpoint = _run_checkpoint(run, synthetic_folder, ModelConfig("encoder_unet", 32, 5, 8, 64,
                                                                    encoder="mobilenet_v2", hints=True),
                                 hint_weights=True)
    plain = export_model(checkpoint, tmp_path / "plain.safetensors", data=str(synthetic_folder),
                         cache_dir=tmp_path / "cache", progress=False)
    assert HINTS_KEY not in load_model(plain)[2]  # slow, so only when asked
    out = export_model(checkpoint, tmp_path / "hinted.safetensors", data=str(synthetic_folder),
                       cache_dir=tmp_path / "cache", hints_table=True, progress=False)
    table = load_model(out)[2][HINTS_KEY]
    assert list(table) == [str(n) for n in HINT_COUNTS]  # JSON's keys: {"1": ..., "5": ..., "10": ...}
    assert all(set(results) == BASELINES for results in table.values())
    assert len({table[n]["model"]["ab_l1"] for n in table}) == 3  # the hints reach the model
    assert len({table[n]["grey"]["ab_l1"] for n in table}) == 1  # and only the model


def test_an_export_of_an_export_keeps_its_record_and_a_new_gain_drops_figures_of_the_old(tmp_path, unet_run,
                                                                                        synthetic_folder):
    onnx = pytest.importorskip("onnx")
    first = export_model(unet_run, tmp_path / "first.safetensors", data=str(synthetic_folder),
                         cache_dir=tmp_path / "cache", note="the first", progress=False)
    record = load_model(first)[2]
    as_onnx = export_model(first, tmp_path / "first.onnx", onnx=True)
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(as_onnx)).metadata_props}
    assert metadata["provenance"] == record  # note, date, steps and every framing's figures, as they were

    stronger = export_model(first, tmp_path / "stronger.safetensors", chroma_gain=2.0)
    _, config, provenance = load_model(stronger)
    assert config["chroma_gain"] == 2.0 and provenance["note"] == "the first" and provenance["steps"] == 7
    assert not set(VALIDATION_KEYS.values()) & set(provenance)  # measured at gain 1: other colours


@pytest.mark.parametrize("gain", ["loud", 11, -0.5, float("nan"), "inf", True])
def test_a_chroma_gain_outside_config_rule_is_refused_before_anything_is_written(tmp_path, tiny_model, gain):
    with pytest.raises(ConfigError, match="from 0 to 10"):
        export_model(tiny_model, tmp_path / "m.safetensors", chroma_gain=gain)
    assert not (tmp_path / "m.safetensors").exists()


def test_what_needs_photos_says_so_and_zero_is_the_grey_model(tmp_path, tiny_model):
    for asked in ({"chroma_gain": "auto"}, {"hints_table": True}):
        with pytest.raises(ConfigError, match="give the photos the model was trained on"):
            export_model(tiny_model, tmp_path / "m.safetensors", **asked)
    grey = export_model(tiny_model, tmp_path / "grey.safetensors", chroma_gain="0")
    assert load_model(grey)[1]["chroma_gain"] == 0.0
