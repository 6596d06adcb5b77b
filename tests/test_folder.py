"""The pipelined folder path: the same bytes as one photo at a time, in order, a bad photo
costing only itself, memory bounded by pixels in flight, and nothing half-written on SIGTERM."""

import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.inference import folder
from colorful_world.io.png import png_bytes


@pytest.fixture(scope="module")
def colorizer(tiny_model):
    return Colorizer.from_checkpoint(tiny_model)


def album(root, count=12):
    """Photos of several sizes and modes, a corrupt one in the middle."""
    root.mkdir()
    astronaut = Image.fromarray(skdata.astronaut())
    for n in range(count):
        image = astronaut.resize((40 + 13 * n, 30 + 7 * n)).convert(["L", "RGB", "LA", "RGBA"][n % 4])
        image.save(root / f"{n:02d}.png")
    (root / f"{count // 2:02d}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return sorted(root.iterdir())


def test_the_pipeline_writes_the_bytes_of_one_photo_at_a_time_in_order(tmp_path, colorizer, monkeypatch):
    photos = album(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    jobs = list(zip(photos, folder.output_paths(photos, out)))
    monkeypatch.setattr(folder, "MAX_PIXELS_IN_FLIGHT", 30_000)  # a few photos at a time, not all

    results = list(folder.colorize_many(colorizer, jobs, workers=3))

    assert [(src, dst) for src, dst, _ in results] == jobs
    errors = {src.name: error for src, _, error in results if error}
    assert list(errors) == ["06.png"] and "not a readable image" in errors["06.png"]
    for src, dst, error in results:
        if error is None:
            assert dst.read_bytes() == png_bytes(colorizer.colorize(src)), src.name
    assert sorted(p.name for p in out.iterdir()) == sorted(dst.name for src, dst in jobs if src.name != "06.png")


def test_photos_in_flight_stay_within_the_pixel_budget(tmp_path, colorizer, monkeypatch):
    photos = album(tmp_path / "in", count=8)
    jobs = list(zip(photos, folder.output_paths(photos, tmp_path / "out")))
    (tmp_path / "out").mkdir()
    in_flight, most = [0], [0]  # photos between the start of prepare and the end of finish
    lock = threading.Lock()
    real_prepare, real_finish = colorizer.prepare, colorizer.finish_png

    def count(step: int) -> None:
        with lock:
            in_flight[0] += step
            most[0] = max(most[0], in_flight[0])

    def prepare(image, size, *options):
        count(+1)
        try:
            return real_prepare(image, size, *options)
        except Exception:
            count(-1)  # a bad photo is done with its memory here
            raise

    def finish(prepared, ab, *args, **options):
        try:
            return real_finish(prepared, ab, *args, **options)
        finally:
            count(-1)

    monkeypatch.setattr(colorizer, "prepare", prepare)
    monkeypatch.setattr(colorizer, "finish_png", finish)
    monkeypatch.setattr(folder, "MAX_PIXELS_IN_FLIGHT", 1)  # every photo is over it: one at a time
    results = list(folder.colorize_many(colorizer, jobs, workers=4))
    assert most[0] == 1 and sum(error is None for *_, error in results) == 7


@pytest.mark.slow
def test_sigterm_leaves_only_whole_pngs(tmp_path, tiny_model):
    photos = tmp_path / "in"
    photos.mkdir()
    big = Image.fromarray(skdata.astronaut()).convert("L")
    for n in range(60):
        big.rotate(n).save(photos / f"{n:02d}.jpg")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "colorful_world", "colorize", str(photos), "-o", str(out),
                             "-c", str(tiny_model), "--no-progress"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and len(list(out.glob("*.png"))) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    written = sorted(out.iterdir())
    assert 3 <= len(written) < 60 and all(p.suffix == ".png" for p in written)  # no .tmp left behind
    for path in written:
        with Image.open(path) as image:
            image.load()  # a cut file would fail here
            assert image.size == (512, 512) and np.asarray(image).std() > 0
