"""Every limit held, round two: wide photos, planted temporary files, long names, killed writes,
model configs that claim too much, numeric settings out of range, a full cache disk,
high-bit-depth photos, formats the server refuses. (HTTP and Lambda: test_limits_http.py.)"""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorful_world.core import config as config_module
from colorful_world.core.config import TrainConfig
from colorful_world.inference import folder
from colorful_world.inference.colorize import Colorizer
from colorful_world.io import atomic
from colorful_world.io.errors import CheckpointError, ConfigError, UserError
from colorful_world.nets import checkpoint as ckpt
from colorful_world.nets import model_file
from colorful_world.nets.models import UNet

from conftest import TINY_MODEL

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _peak_rss_mb(command: list[str]) -> tuple[int, float]:
    """Run `command`; its exit code and peak resident memory in MB (the kernel's own count)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stderr.close()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


# Bug 1: a photo one pixel tall (N x 1) -----------------------------------------------------------

@pytest.mark.slow
def test_a_one_pixel_tall_photo_costs_memory_by_its_pixels(tmp_path, tiny_model):
    """2,000,000 x 1: the colour's columns were resized first into a (2, 32, 2,000,000) float
    intermediate and its row steps beside it (about 500 bytes a pixel; 38 GiB at 40 MP with
    the bundled model); now its rows go first and it costs about what a square photo does."""
    small, wide = tmp_path / "small.png", tmp_path / "wide.png"
    Image.new("L", (64, 64), 90).save(small)
    Image.effect_noise((2_000_000, 1), 40).save(wide)
    command = [sys.executable, "-m", "colorful_world", "colorize", "-c", str(tiny_model), "-o", str(tmp_path / "out")]
    rc_small, base = _peak_rss_mb(command + [str(small)])
    rc_wide, peak = _peak_rss_mb(command + [str(wide)])
    assert rc_small == rc_wide == 0
    assert peak - base < 2_000_000 * 100 / 2**20, f"{peak - base:.0f} MB for 2 MP"
    assert Image.open(tmp_path / "out" / "wide.png").size == (2_000_000, 1)


def test_wide_and_tall_photos_get_the_same_colour_transposed():
    """The rows-first resize a short photo takes is the same bilinear resize as columns-first."""
    from colorful_world.core.resize import photo_size_rows

    ab = np.random.default_rng(0).standard_normal((2, 32, 32)).astype(np.float32)
    wide = photo_size_rows(ab, 5, 3000)(0, 5)
    tall = photo_size_rows(np.ascontiguousarray(ab.transpose(0, 2, 1)), 3000, 5)(0, 3000)
    assert wide.shape == (2, 5, 3000)
    np.testing.assert_allclose(wide, tall.transpose(0, 2, 1), atol=1e-5)


# Bug 3, 12, 14: one atomic write, everywhere --------------------------------------------------

def test_a_planted_symlink_at_the_old_temporary_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.png.tmp").symlink_to(victim)
    folder._write_png(b"\x89PNG result", out / "one.png")
    assert victim.read_bytes() == b"precious"
    assert not (out / "one.png").is_symlink() and (out / "one.png").read_bytes() == b"\x89PNG result"


def test_an_export_never_writes_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "generator.safetensors"
    (tmp_path / "generator.safetensors.tmp").symlink_to(victim)
    model_file.export_generator(UNet(8, 3, dropout=0.0).state_dict(), TINY_MODEL, target)
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink()
    model_file.load_generator(target)


def test_the_atomic_write_is_unpredictable_exclusive_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    names = {atomic.temporary_name(target).name for _ in range(50)}
    assert len(names) == 50  # never the same name twice: nothing to plant in advance

    # a planted file at the drawn name is not opened: another name is drawn
    drawn = iter([tmp_path / "planted", tmp_path / "free.tmp"])
    (tmp_path / "planted").symlink_to(tmp_path / "victim")
    monkeypatch.setattr(atomic, "temporary_name", lambda _: next(drawn))
    atomic.write_bytes(target, b"data")
    assert target.read_bytes() == b"data" and not (tmp_path / "victim").exists()
    monkeypatch.undo()

    with pytest.raises(ZeroDivisionError):
        with atomic.atomic_write(target) as f:
            f.write(b"half")
            1 / 0
    assert target.read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "planted"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file the user writes, not 0600


def test_a_photo_with_the_longest_name_gets_its_result(tmp_path, tiny_model):
    """A 251-character stem + .jpg: the result's name fits, and now its temporary name too."""
    stem = "é" * 125 + "x"  # 251 bytes in UTF-8: long in bytes, shorter in characters
    photos = tmp_path / "in"
    photos.mkdir()
    for suffix in (".jpg", ".png"):  # two inputs of one stem: the second result is '<stem>-2.png'
        Image.new("L", (40, 30), 120).save(photos / f"{stem}{suffix}")
    colorizer = Colorizer.from_checkpoint(tiny_model)
    written, errors = folder.colorize_files(colorizer, [photos], tmp_path / "out", progress=False)
    assert errors == [] and len(written) == 2
    assert all(len(p.name.encode()) <= 255 and Image.open(p).size == (40, 30) for p in written)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def _run_killed_while_writing(code: str, tmp_path: Path) -> int:
    """Run `code` in a child whose writes stop at 4 KB: past it, the kernel kills the child
    (SIGXFSZ) in the middle of a write, as a SIGKILL would."""
    limit = textwrap.dedent("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; the kernel's default kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    """)
    prepare, _, act = code.partition("# --- limit ---\n")
    child = subprocess.run([sys.executable, "-c", prepare + limit + act], env=ENV, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    return child.returncode


EXPORT = """
import torch
from pathlib import Path
from colorful_world.nets.models import UNet
from colorful_world.nets.model_file import export_generator
state = UNet(8, 3, dropout=0.0).state_dict()
# --- limit ---
export_generator(state, {"image_size": 32, "base_channels": 8, "depth": 3}, Path("run/generator.safetensors"))
"""


@pytest.mark.slow
def test_an_export_killed_mid_write_leaves_nothing_after_the_rerun(tmp_path):
    (tmp_path / "run").mkdir()
    assert _run_killed_while_writing(EXPORT, tmp_path) == -signal.SIGXFSZ
    assert not (tmp_path / "run" / "generator.safetensors").exists()
    # the rerun
    model_file.export_generator(UNet(8, 3, dropout=0.0).state_dict(), TINY_MODEL, tmp_path / "run" / "generator.safetensors")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["generator.safetensors"]


@pytest.mark.slow
def test_a_checkpoint_killed_mid_write_is_swept_by_the_next_save(tmp_path):
    code = EXPORT.replace("from colorful_world.nets.model_file import export_generator",
                          "from colorful_world.nets.checkpoint import save_checkpoint")
    code = code.replace('export_generator(state, {"image_size": 32, "base_channels": 8, "depth": 3}, '
                        'Path("run/generator.safetensors"))', 'save_checkpoint({"ema": state}, Path("run/step.pt"))')
    (tmp_path / "run").mkdir()
    assert _run_killed_while_writing(code, tmp_path) == -signal.SIGXFSZ
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]  # what the kill left
    ckpt.save_checkpoint({"step": 1}, tmp_path / "run" / "step.pt")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["step.pt"]


def test_a_running_writers_temporary_file_is_left_alone(tmp_path):
    """Only a dead writer's leftovers are swept: a live one (this process, a sibling) keeps its file."""
    target = tmp_path / "step.pt"
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = target.with_name(atomic.temporary_name(target).name.replace(f"-{os.getpid()}.", f"-{sibling.pid}."))
        live.write_bytes(b"being written")
        atomic.write_bytes(target, b"x")
        assert live.exists()
    finally:
        sibling.kill()
        sibling.wait()
    atomic.write_bytes(target, b"y")
    assert not live.exists()


# Bug 6, 10, 15: a model config that claims too much --------------------------------------------

@pytest.mark.parametrize("change", [
    {"image_size": 99_968}, {"depth": 40}, {"chroma_gain": "2"}, {"chroma_gain": 1e30},
    {"chroma_gain": -1}, {"base_channels": 10**6}, {"format": "3"},
])
def test_a_model_config_out_of_bounds_is_refused_when_it_loads(tmp_path, change):
    path = tmp_path / "model.safetensors"
    model_file.export_generator(UNet(8, 3, dropout=0.0).state_dict(), TINY_MODEL | change, path)
    with pytest.raises(CheckpointError, match="config"):
        model_file.load_model(path)  # what info and export read
    with pytest.raises(CheckpointError, match="config"):
        Colorizer.from_checkpoint(path)


@pytest.mark.slow
def test_the_cli_and_the_server_refuse_a_huge_model_in_one_sentence(tmp_path):
    path = tmp_path / "model.safetensors"
    model_file.export_generator(UNet(8, 3, dropout=0.0).state_dict(), TINY_MODEL | {"image_size": 99_968}, path)
    Image.new("L", (40, 30), 100).save(tmp_path / "p.png")
    for command in (["colorize", str(tmp_path / "p.png"), "-c", str(path), "-o", str(tmp_path / "out")],
                    ["info", str(path)], ["serve", "--checkpoint", str(path), "--port", "0"]):
        result = subprocess.run([sys.executable, "-m", "colorful_world", *command], capture_output=True,
                                text=True, env=ENV, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "image_size" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_checkpoint_without_its_step_still_loads(tmp_path, tiny_model):
    state, config, _ = model_file.load_model(tiny_model)
    path = tmp_path / "handmade.pt"
    torch.save({"ema": state, "config": config}, path)
    _, _, provenance = model_file.load_model(path)
    assert provenance == {}
    result = subprocess.run([sys.executable, "-m", "colorful_world", "info", str(path)], capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr


def test_info_on_an_onnx_model_advises_what_info_takes():
    with pytest.raises(CheckpointError) as err:
        model_file.load_model("model.onnx")
    assert "--backend" not in str(err.value).split("(")[0] and "safetensors" in str(err.value)


def _onnx_with_config(tmp_path, config) -> Path:
    onnx = pytest.importorskip("onnx")
    from colorful_world.inference.onnx_backend import export_onnx

    source, path = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    model_file.export_generator(UNet(8, 3, dropout=0.0).state_dict(), TINY_MODEL, source)
    export_onnx(source, path)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "config":
            prop.value = json.dumps(config)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("config", [{"image_size": 32, "base_channels": 8}, [1, 2],
                                    TINY_MODEL | {"depth": 40}, TINY_MODEL | {"image_size": 99_968}])
def test_an_onnx_model_with_a_config_that_cannot_work_is_refused(tmp_path, config):
    path = _onnx_with_config(tmp_path, config)
    with pytest.raises(CheckpointError, match="config"):
        Colorizer.from_checkpoint(path, backend="onnx")


# Bug 10, 15: numeric settings out of their ranges ----------------------------------------------

@pytest.mark.parametrize("setting", [
    {"save_every": 0}, {"log_every": 0}, {"lr": float("nan")}, {"lr": -1}, {"max_images": -5},
    {"keep_checkpoints": 0}, {"max_minutes": -1}, {"max_minutes": float("inf")}, {"epochs": 2.5},
])
def test_a_training_setting_out_of_range_is_one_sentence(setting):
    with pytest.raises(ConfigError, match=next(iter(setting))):
        TrainConfig(**setting).validate()


def test_every_numeric_training_setting_has_a_range():
    numeric = {f.name for f in TrainConfig.__dataclass_fields__.values()
               if type(f.default) in (int, float) and f.name not in ("image_size", "depth", "base_channels",
                                                                    "max_channels", "dropout")}
    assert numeric <= set(config_module.RANGES), numeric - set(config_module.RANGES)
    TrainConfig().validate()
    for preset in config_module.PRESETS.values():
        TrainConfig(**preset).validate()


# Bug 5: a full disk while the decode cache is written ------------------------------------------

FULL_DISK = """
import sys
from pathlib import Path
from colorful_world.core.data import build_cache
from colorful_world.io.errors import UserError
files = sorted(Path(sys.argv[1]).glob("*.png"))
# --- limit ---
try:
    build_cache(files, 64, Path(sys.argv[2]), progress=False)
except UserError as err:
    print(err)
    sys.exit(2)
"""


@pytest.mark.slow
def test_a_full_cache_disk_is_one_sentence_and_leaves_nothing(tmp_path, synthetic_folder):
    """The disk fills (here: a 64 KB file size limit, as a full tmpfs would) while 12 MB of decoded
    photos are written: a sentence and exit 2, no temporary file behind, twice over; before, an
    OSError traceback (or, on a full tmpfs, SIGBUS and no message) and a 0.7-3 MB file each time."""
    cache = tmp_path / "cache"
    code = FULL_DISK.replace("# --- limit ---\n", textwrap.dedent("""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
    """))
    for _ in range(2):  # the rerun too
        child = subprocess.run([sys.executable, "-c", code, str(synthetic_folder), str(cache)], env=ENV,
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == 2, child.stderr
        assert "Traceback" not in child.stderr and "--cache-dir" in child.stdout and "MB" in child.stdout
        assert list(cache.iterdir()) == []
    # with room, the same build works and is reused
    from colorful_world.core.data import build_cache

    files = sorted(synthetic_folder.glob("*.png"))
    first = build_cache(files, 64, cache, progress=False)
    again = build_cache(files, 64, cache, progress=False)
    assert first.images.shape == (len(files), 3, 64, 64) and np.array_equal(first.images, again.images)
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]



# Bug 11: high-bit-depth photos cost what 8-bit ones do -----------------------------------------

@pytest.mark.parametrize("mode", ["F", "I;16"])
@pytest.mark.slow
def test_a_high_bit_depth_photo_costs_what_an_8_bit_one_does(tmp_path, tiny_model, mode):
    """A float or 16-bit grey TIFF was scaled to 8 bits through whole float64 copies: 21-23 bytes
    a pixel against about 14 for the same photo in 8 bits. Now a band at a time."""
    side = 3000
    values = np.random.default_rng(0).random((side, side))
    eight = tmp_path / "eight.png"
    Image.fromarray((values * 255).astype(np.uint8)).save(eight)
    deep = tmp_path / "deep.tif"
    if mode == "F":
        Image.fromarray((values * 255).astype(np.float32), "F").save(deep)
    else:
        Image.fromarray((values * 65535).astype(np.uint16)).save(deep)
    assert Image.open(deep).mode == mode
    command = [sys.executable, "-m", "colorful_world", "colorize", "-c", str(tiny_model), "-o", str(tmp_path / "out")]
    rc_eight, peak_eight = _peak_rss_mb(command + [str(eight)])
    rc_deep, peak_deep = _peak_rss_mb(command + [str(deep)])
    assert rc_eight == rc_deep == 0
    extra = (peak_deep - peak_eight) * 2**20 / side**2
    print(f"{mode}: {extra:.1f} bytes a pixel more than the 8-bit photo")
    assert extra < 2, f"{extra:.1f} bytes a pixel more than the 8-bit photo"
    grey = np.asarray(Image.open(tmp_path / "out" / "deep.png").convert("L"), dtype=np.int16)
    assert np.abs(grey - np.asarray(Image.open(eight), dtype=np.int16)).mean() < 3  # the same photo


@pytest.mark.slow
def test_the_photo_memory_benchmark_has_the_wide_and_high_bit_depth_rows(tiny_model):
    result = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "benchmarks" / "photo_memory.py"),
                             "--megapixels", "0.05", "--checkpoint", str(tiny_model)],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    rows = {value["shape"]: value for value in figures.values() if isinstance(value, dict)}
    assert {"N:1", "square 16-bit", "square float"} <= set(rows)
    assert all(row["extra_mb"] is not None and row["bytes_per_pixel"] is not None for row in rows.values())
