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


def test_each_notebook_runs_on_cpu_within_the_limit(executed):
    folder, seconds = executed
    assert set(seconds) == set(NAMES)
    assert max(seconds.values()) < CPU_LIMIT_S, seconds
    for name in NAMES:
        assert not [out for out in outputs(folder / f"{name}.ipynb") if out.output_type == "error"]


def test_train_shows_the_plot_and_each_epochs_samples(executed):
    folder, _ = executed
    images = [out for out in outputs(folder / "train.ipynb") if "image/png" in out.get("data", {})]
    assert len(images) == 1 + 2  # the live plot, then one sample grid per epoch
    assert "'generator.safetensors'" in text_of(folder / "train.ipynb")


def test_evaluate_compares_with_both_baselines(executed):
    folder, _ = executed
    table = text_of(folder / "evaluate.ipynb")
    assert all(re.search(rf"^{name}\s+\d", table, re.MULTILINE) for name in ("model", "grey", "mean_colour"))
    images = [out for out in outputs(folder / "evaluate.ipynb") if "image/png" in out.get("data", {})]
    assert len(images) == 3  # the bar chart, then the model's and the mean colour's sample grids


def test_colorize_shows_the_widget_for_the_runs_model(executed):
    folder, _ = executed
    widgets = [out for out in outputs(folder / "colorize.ipynb")
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert len(widgets) == 1
    assert "model:" in text_of(folder / "colorize.ipynb")


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
