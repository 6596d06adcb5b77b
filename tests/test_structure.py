"""The shape the design promises, checked so that it stays true: dependencies run one way
(apps -> inference and training -> core -> helpers), and every training setting reaches every door."""

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from colorful_world.apps.cli import build_parser
from colorful_world.core.config import ENCODER_NAMES, GAN_MODES, TrainConfig
from colorful_world.apps.launch import notebook_parameters
from colorful_world.training.train import GAN_LOSSES

PACKAGE = Path(__file__).resolve().parents[1] / "colorful_world"
NOTEBOOK = PACKAGE.parent / "notebooks" / "train.ipynb"

# Every folder of the package is a layer; a layer imports only from itself and the layers it lists.
# The package's own __init__ and __main__ are doors too.
LAYERS = {
    "io": set(),
    "core": {"io"},
    "nets": {"core", "io"},
    "training": {"nets", "core", "io"},
    "inference": {"nets", "core", "io"},
    "apps": {"training", "inference", "nets", "core", "io"},
}
MODULES = sorted(PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    folder = path.relative_to(PACKAGE).parts[0]
    return folder if folder in LAYERS else "apps"


def imported_layers(path: Path) -> set[str]:
    """Layers of the package that a file imports from, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("colorful_world"):
            names = [node.module] if node.module != "colorful_world" else [f"colorful_world.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("colorful_world.")}
    return found


def test_every_module_is_in_a_layer_folder():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside a layer folder: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    own = layer_of(path)
    wrong = imported_layers(path) - {own} - LAYERS[own]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({own}) imports {wrong}"


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


def test_config_names_the_encoders_there_are():
    from colorful_world.nets.encoders import ENCODERS
    assert ENCODER_NAMES == tuple(ENCODERS)


def test_gan_losses_and_modes_are_the_same_names():
    assert set(GAN_LOSSES) == set(GAN_MODES)
