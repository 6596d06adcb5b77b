"""The shape the design promises, checked so that it stays true: dependencies run one way
(apps -> inference and training -> core -> helpers), and every training setting reaches every door."""

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from colorful_world.cli import build_parser
from colorful_world.config import GAN_MODES, TrainConfig
from colorful_world.launch import notebook_parameters
from colorful_world.train import GAN_LOSSES

PACKAGE = Path(__file__).resolve().parents[1] / "colorful_world"
NOTEBOOK = PACKAGE.parent / "notebooks" / "train.ipynb"

# Every module in one layer; a layer imports only from itself and the layers it lists.
LAYERS = {
    "helpers": ({"errors", "paths", "images", "png", "archive", "download"}, set()),
    "core": ({"color", "color_lut", "units", "resize", "config", "encoders", "mobilenet", "models", "data", "metrics", "runtime", "predict",
              "report", "checkpoint", "model_file"}, {"helpers"}),
    "training": ({"train", "run_folder"}, {"core", "helpers"}),
    "inference": ({"colorize", "folder", "onnx_backend", "evaluate"}, {"core", "helpers"}),
    "apps": ({"cli", "server", "http_limits", "widget", "launch", "notebook", "__main__", "__init__"},
             {"training", "inference", "core", "helpers"}),
}


def layer_of(module: str) -> str:
    return next(name for name, (modules, _) in LAYERS.items() if module in modules)


def imported_modules(path: Path) -> set[str]:
    """Modules of the package that a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorful_world"):
            if node.module == "colorful_world":
                found |= {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("colorful_world.")}
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    placed = set().union(*(m for m, _ in LAYERS.values()))
    assert modules == placed, f"unplaced: {modules - placed}; gone: {placed - modules}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_imports_run_one_way(path):
    own = layer_of(path.stem)
    allowed = {own} | LAYERS[own][1]
    wrong = {m: layer_of(m) for m in imported_modules(path) if layer_of(m) not in allowed}
    assert not wrong, f"{path.name} ({own}) imports {wrong}"


def test_every_training_setting_reaches_the_cli_the_notebook_and_the_launcher():
    parser = build_parser()
    notebook_names = {"data", "image_size", "epochs", "batch_size", "out"}  # its own parameters; the rest: options
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        value = f.default if f.type is not bool and not isinstance(f.default, bool) else None
        argv = [flag] if value is None else [flag, str(value if value != "" else "x")]
        args = parser.parse_args(["train", *argv])
        assert getattr(args, f.name) is not None, f"the CLI drops {f.name}"
        params = notebook_parameters(str(NOTEBOOK), argv)
        reached = params if f.name in notebook_names else params["options"]
        assert f.name in reached, f"the launcher drops {f.name}"
        TrainConfig(**{f.name: getattr(args, f.name)})  # the notebook's options take any field by name


def test_gan_losses_and_modes_are_the_same_names():
    assert set(GAN_LOSSES) == set(GAN_MODES)
