"""Every notebook run top to bottom by papermill with tiny parameters on synthetic photos, on the
CPU, then re-executed and validated by nbval (`pytest --nbval-lax`) with tests/nbval_sanitize.cfg."""

import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("train", "colorize", "evaluate")  # train first: the other two use its run
CPU_LIMIT_S = 180
REPO_SLUG = "colorful-world/colorful-world"


def tiny_parameters(photos: Path, run: Path, cache: Path) -> dict[str, dict]:
    return {
        "train": {"data": str(photos), "out": str(run), "image_size": 32, "epochs": 2, "batch_size": 8,
                  "options": {"arch": "unet", "l1_epochs": 1, "base_channels": 8, "depth": 3, "disc_channels": 8,
                              "max_images": 40, "val_fraction": 0.2, "min_colourfulness": 1.0,
                              "log_every": 1, "cache_dir": str(cache)}},
        "colorize": {"checkpoint": str(run)},
        "evaluate": {"checkpoint": str(run), "cache_dir": str(cache), "samples": 4},
    }


@pytest.fixture(scope="module")
def executed(tmp_path_factory, synthetic_folder) -> tuple[Path, dict[str, float]]:
    """(folder of the executed notebooks, seconds each took)."""
    work = tmp_path_factory.mktemp("notebooks")
    folder = work / "executed"
    folder.mkdir()
    seconds = {}
    for name, parameters in tiny_parameters(synthetic_folder, work / "run", work / "cache").items():
        start = time.perf_counter()
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(folder / f"{name}.ipynb"),
                                   parameters=parameters, progress_bar=False, cwd=str(work))
        seconds[name] = time.perf_counter() - start
    print("papermill seconds:", {name: round(s, 1) for name, s in seconds.items()})
    return folder, seconds


def outputs(notebook: Path) -> list[dict]:
    return [out for cell in nbformat.read(notebook, as_version=4).cells if cell.cell_type == "code"
            for out in cell.outputs]


def text_of(notebook: Path) -> str:
    return "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "") for out in outputs(notebook))


@pytest.mark.slow
def test_each_notebook_runs_on_cpu_within_the_limit(executed):
    folder, seconds = executed
    assert set(seconds) == set(NAMES)
    assert max(seconds.values()) < CPU_LIMIT_S, seconds
    for name in NAMES:
        assert not [out for out in outputs(folder / f"{name}.ipynb") if out.output_type == "error"]


@pytest.mark.slow
def test_train_shows_the_plot_and_each_epochs_samples(executed):
    folder, _ = executed
    images = [out for out in outputs(folder / "train.ipynb") if "image/png" in out.get("data", {})]
    assert len(images) == 1 + 2  # the live plot, then one sample grid per epoch
    assert "'generator.safetensors'" in text_of(folder / "train.ipynb")


@pytest.mark.slow
def test_evaluate_compares_with_both_baselines(executed):
    folder, _ = executed
    table = text_of(folder / "evaluate.ipynb")
    assert all(re.search(rf"^{name}\s+\d", table, re.MULTILINE) for name in ("model", "grey", "mean_colour"))
    images = [out for out in outputs(folder / "evaluate.ipynb") if "image/png" in out.get("data", {})]
    assert len(images) == 3  # the bar chart, then the model's and the mean colour's sample grids


@pytest.mark.slow
def test_colorize_shows_the_widget_for_the_runs_model(executed):
    folder, _ = executed
    widgets = [out for out in outputs(folder / "colorize.ipynb")
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert len(widgets) == 1
    assert "model:" in text_of(folder / "colorize.ipynb")


@pytest.mark.slow
def test_nbval_validates_the_executed_notebooks(executed):
    folder, _ = executed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "--rootdir", str(folder), *(str(folder / f"{name}.ipynb") for name in NAMES)],
        cwd=folder.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_notebooks_are_clean_with_a_badge_a_shared_setup_and_parameters():
    setups = set()
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        badge = f"https://colab.research.google.com/github/{REPO_SLUG}/blob/main/notebooks/{name}.ipynb"
        assert badge in notebook.cells[0].source and badge in (NOTEBOOKS.parent / "README.md").read_text()
        assert [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in notebook.cells if c.cell_type == "code")
        setups.add(notebook.cells[1].source)
    assert len(setups) == 1 and REPO_SLUG in setups.pop()
    assert f'COLORFUL_WORLD_REPO:-https://github.com/{REPO_SLUG}}}' in (ROOT / "colab" / "setup.sh").read_text()


def test_the_repository_is_named_in_one_place_and_a_fork_moves_every_mention(tmp_path):
    import shutil
    import tomllib

    slug = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert slug == f"https://github.com/{REPO_SLUG}"
    places = [ROOT / "README.md", ROOT / "colab" / "setup.sh", *NOTEBOOKS.glob("*.ipynb")]
    assert all(REPO_SLUG in p.read_text() for p in places)
    copy = tmp_path / "fork"
    copy.mkdir()
    for part in ("pyproject.toml", "README.md", "colab", "notebooks"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, copy / part)
    subprocess.run(["bash", str(copy / "colab" / "use_fork.sh"), "someone/their-fork"], check=True,
                   capture_output=True)
    moved = [copy / p.relative_to(ROOT) for p in places] + [copy / "pyproject.toml"]
    assert all("someone/their-fork" in p.read_text() and REPO_SLUG not in p.read_text() for p in moved)


def lfw_archive(folder: Path, people: list[str]) -> Path:
    """A small LFW-layout archive (lfw_funneled/<Person>/<Person>_000N.jpg) of colour photos
    scikit-image ships, 250 px as LFW's are."""
    import tarfile

    from PIL import Image
    from skimage import data as skdata
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    root = folder / "lfw_funneled"
    for n, person in enumerate(people):
        (root / person).mkdir(parents=True)
        for k in range(2):
            photo = photos[(n + k) % len(photos)]
            side = min(photo.shape[:2])
            Image.fromarray(photo[:side, k * (photo.shape[1] - side):][:, :side]).resize((250, 250)).save(
                root / person / f"{person}_{k + 1:04d}.jpg")
    with tarfile.open(folder / "lfw-funneled.tgz", "w:gz") as archive:
        archive.add(root, arcname="lfw_funneled")
    return folder / "lfw-funneled.tgz"


@pytest.mark.slow
def test_evaluate_with_its_defaults_scores_the_bundled_model_on_its_held_out_people_of_lfw(tmp_path, monkeypatch):
    """A fresh machine, no run of one's own: Run all downloads LFW (from a server on 127.0.0.1
    here) and scores the bundled model on the people it never saw, and on no one else."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    held_out = notebook_held_out()
    people = held_out[:5] + ["Not_Held_Out", "Another_Person"]
    served = tmp_path / "served"
    served.mkdir()
    lfw_archive(served, people)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a fresh machine's empty cache
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    try:
        papermill.execute_notebook(str(NOTEBOOKS / "evaluate.ipynb"), str(tmp_path / "evaluate.ipynb"),
                                   parameters={"lfw_url": f"http://127.0.0.1:{server.server_port}/lfw-funneled.tgz"},
                                   progress_bar=False, cwd=str(work))
    finally:
        server.shutdown()
        server.server_close()
    text = text_of(tmp_path / "evaluate.ipynb")
    assert "model: the bundled model" in text and "10 photos of the 5 people it never saw" in text
    assert re.search(r"^model\s+\d", text, re.MULTILINE) and re.search(r"^mean_colour\s+\d", text, re.MULTILINE)
    images = [out for out in outputs(tmp_path / "evaluate.ipynb") if "image/png" in out.get("data", {})]
    assert len(images) == 3
    assert (tmp_path / "cache" / "colorful_world").is_dir()  # downloaded where a fresh machine keeps it


def notebook_held_out() -> list[str]:
    notebook = nbformat.read(NOTEBOOKS / "evaluate.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if c.source.startswith("#@title The people the bundled model"))
    namespace = {}
    exec(cell, namespace)
    return namespace["HELD_OUT"]


SHARED_LFW = ROOT.parent / "shared" / "data" / "lfw-deepfunneled-part.tgz"


@pytest.mark.skipif(not SHARED_LFW.is_file(), reason=f"the bundled model's training archive is not at {SHARED_LFW}")
@pytest.mark.slow
def test_the_held_out_people_are_the_validation_split_of_the_bundled_models_archive():
    import tarfile

    from colorful_world.core.data import split_by_person
    from colorful_world.nets.model_file import load_model
    config = load_model(None)[1]
    assert Path(config["data"]).name == SHARED_LFW.name
    with tarfile.open(SHARED_LFW) as archive:
        files = [Path(name) for name in archive.getnames() if name.lower().endswith(".jpg")]
    _, validation = split_by_person(files, config["val_fraction"], config["seed"])
    assert notebook_held_out() == sorted({f.parent.name for f in validation})
    assert len(notebook_held_out()) == 261


def test_train_parameters_carry_each_settings_own_help_and_say_how_long_the_defaults_take():
    from dataclasses import fields

    from colorful_world.apps.launch import parameters_cell
    from colorful_world.core.config import TrainConfig
    notebook = nbformat.read(NOTEBOOKS / "train.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert cell == parameters_cell()  # regenerate with it when a help text changes
    comments = " ".join(line[2:] for line in cell.splitlines() if line.startswith("# "))
    for setting in fields(TrainConfig):
        if f"\n{setting.name} = " in cell:
            assert setting.metadata["help"] in comments, setting.name
    intro = notebook.cells[0].source
    assert "How long the defaults take** (computed, not measured on a GPU)" in intro
    assert "benchmarks/training.py" in intro and "minutes" in intro
