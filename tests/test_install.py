"""The light install: `pip install colorful-world` colorizes with the bundled model on ONNX
Runtime, with no torch, torchvision, kornia, matplotlib or gdown. Built for real as a fresh,
clean virtual environment holding only what pyproject.toml's dependencies name and what they
need in turn, each distribution's files linked from this environment as `pip install --no-deps`
would have put them (nothing is downloaded), then used."""

import json
import os
import re
import subprocess
import sys
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from PIL import Image
from skimage import data as skdata

pytestmark = pytest.mark.slow  # a fresh virtual environment: left out of the quick subset

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = {"torch", "torchvision", "kornia", "matplotlib", "gdown"}


def name_of(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def lines_of(path: Path) -> set[str]:
    """A requirements file's requirements, comments left out."""
    return {line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()}


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements bring in, theirs included, as this environment has them."""
    seen, todo = set(), list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = name_of(str(requirement))
        if name not in seen:
            seen.add(name)
            todo += metadata.requires(name) or []
    return seen


def test_the_light_install_names_nothing_heavy_and_is_the_lean_images_set():
    light = closure(PROJECT["dependencies"])
    assert not light & HEAVY, light & HEAVY
    extras = PROJECT["optional-dependencies"]
    assert HEAVY <= {name_of(r) for r in extras["train"]}
    # The lean serving image installs the package with --no-deps beside this file.
    assert lines_of(ROOT / "deploy" / "requirements-onnx.txt") == set(PROJECT["dependencies"]) | set(extras["serve"])
    # Colab installs requirements.txt: the light install, training and the notebooks, lower bounds only.
    colab = set(PROJECT["dependencies"]) | set(extras["train"]) | set(extras["notebooks"])
    assert lines_of(ROOT / "requirements.txt") == colab
    assert all(">=" in r and "==" not in r and "<" not in r for r in colab)


@pytest.fixture(scope="module")
def light_env(tmp_path_factory) -> Path:
    """A clean venv with the light install's distributions and the package: its python."""
    folder = tmp_path_factory.mktemp("light")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder / "venv")
    python = folder / "venv" / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in closure(PROJECT["dependencies"]):
        distribution = metadata.distribution(name)
        for file in distribution.files:
            source = Path(distribution.locate_file(file))
            target = site / file
            if ".." in file.parts or "__pycache__" in file.parts or not source.is_file():
                continue  # scripts outside site-packages, bytecode
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(source)
    (site / "colorful_world").symlink_to(ROOT / "colorful_world")  # the package as a wheel lays it out
    return python


def run(python: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["XDG_CACHE_HOME"] = str(cwd / "cache")
    return subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_light_install_colorizes_with_the_bundled_model_and_no_torch(light_env, tmp_path):
    missing = run(light_env, "-c", "import torch", cwd=tmp_path)
    assert missing.returncode != 0 and "No module named 'torch'" in missing.stderr
    for heavy in sorted(HEAVY - {"torch"}):
        assert run(light_env, "-c", f"import {heavy}", cwd=tmp_path).returncode != 0, heavy
    grey = Image.fromarray(skdata.astronaut()).convert("L").resize((160, 120))
    grey.save(tmp_path / "old.jpg")

    for backend in ("onnx", "auto"):  # auto: ONNX Runtime, since torch is not there
        out = tmp_path / f"out-{backend}"
        done = run(light_env, "-m", "colorful_world", "colorize", "old.jpg", "-o", out.name, "--backend", backend,
                   "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        colour = Image.open(out / "old.png")
        assert colour.size == (160, 120) and colour.mode == "RGB"
        rgb = np.asarray(colour).astype(int)
        assert np.abs(rgb[..., 0] - rgb[..., 2]).mean() > 2  # colour, not three equal channels
    looked = run(light_env, "-m", "colorful_world", "colorize", "old.jpg", "-o", "looked", "--strength", "1.2",
                 "--restore-contrast", "--no-progress", cwd=tmp_path)
    assert looked.returncode == 0, looked.stderr[-2000:]
    helped = run(light_env, "-m", "colorful_world", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "colorize" in helped.stdout
    # What plain `colorful-world serve` loads (its default backend, auto), here without torch.
    served = run(light_env, "-c", "from colorful_world.apps.server import BACKENDS; "
                 "print(type(BACKENDS['auto'](None).network).__name__)", cwd=tmp_path)
    assert served.returncode == 0 and served.stdout.split() == ["OnnxGenerator"], served.stderr[-2000:]


def test_info_reads_every_model_file_on_the_light_install(light_env, tmp_path):
    """`colorful-world info`, a light-install command in the README: the bundled model, its
    .onnx and --json, without torch; a training checkpoint says what it needs, in one sentence."""
    from colorful_world.inference.onnx_backend import BUNDLED_ONNX
    for args in ([], [str(BUNDLED_ONNX)]):
        shown = run(light_env, "-m", "colorful_world", "info", *args, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert "works at 128 px" in shown.stdout and "figures on the held-out photos" in shown.stdout
    record = run(light_env, "-m", "colorful_world", "info", "--json", cwd=tmp_path)
    assert record.returncode == 0 and json.loads(record.stdout)["config"]["hints"] is True, record.stderr[-2000:]
    (tmp_path / "step_000000001.pt").write_bytes(b"PK\x03\x04")
    checkpoint = run(light_env, "-m", "colorful_world", "info", "step_000000001.pt", cwd=tmp_path)
    assert checkpoint.returncode == 2 and "needs torch" in checkpoint.stderr and "Traceback" not in checkpoint.stderr
