"""The shape the design promises, checked so that it stays true: dependencies run one way
(apps -> inference and training -> core -> helpers), and every training setting reaches every door."""

import ast
from dataclasses import fields
from pathlib import Path

import nbformat
import pytest

from colorful_world.apps.cli import build_parser
from colorful_world.core.config import ENCODER_NAMES, GAN_MODES, PRESETS, TrainConfig, with_preset
from colorful_world.io.errors import ConfigError
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


def notebook_settings(params: dict) -> dict:
    """What train.ipynb trains with, given papermill's parameters: its parameters cell, the
    parameters injected after it, then the cell that merges them (the training call itself left out)."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    parameters = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    namespace = {}
    exec(cells[parameters].source, namespace)
    namespace.update(params)
    exec(cells[parameters + 1].source, namespace)
    return namespace["settings"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_reaches_the_cli_the_launcher_and_the_notebook_alike(preset, monkeypatch):
    import colorful_world.training.train
    from colorful_world.apps.cli import main

    def config(settings: dict) -> TrainConfig:
        return TrainConfig(**(settings | {"out": ""}))  # where the run goes: each door says it its own way

    expected = config(with_preset({"preset": preset, "epochs": 1}))
    assert expected != TrainConfig(epochs=1)  # a preset that changed nothing would prove nothing
    seen = {}
    monkeypatch.setattr(colorful_world.training.train, "train", lambda settings, **kw: seen.update(settings))
    assert main(["train", "--preset", preset, "--epochs", "1"]) == 0
    assert config(seen) == expected, "the CLI"

    params = notebook_parameters(str(NOTEBOOK), ["--preset", preset, "--epochs", "1"])
    assert params["preset"] == preset
    launched = {k: v for k, v in params.items() if k in {f.name for f in fields(TrainConfig)}} | params["options"]
    assert config(launched) == expected, "the launcher"
    assert config(notebook_settings(params)) == expected, "the notebook, as the launcher runs it"
    by_hand = {"preset": preset, "epochs": 1, "image_size": expected.image_size}  # the cell's values win
    assert config(notebook_settings(by_hand)) == expected, "the notebook, as a person edits it"


def test_a_preset_yields_to_settings_given_beside_it_at_every_door():
    argv = ["--preset", "pix2pix", "--image-size", "64", "--gan-mode", "lsgan"]
    params = notebook_parameters(str(NOTEBOOK), argv)
    settings = notebook_settings(params)
    assert (settings["image_size"], settings["gan_mode"], settings["arch"]) == (64, "lsgan", "unet")
    with pytest.raises(ConfigError, match="unknown preset 'pix2pix2'"):
        with_preset({"preset": "pix2pix2"})


def test_config_names_the_encoders_there_are():
    from colorful_world.nets.encoders import ENCODERS
    assert ENCODER_NAMES == tuple(ENCODERS)


def test_gan_losses_and_modes_are_the_same_names():
    assert set(GAN_LOSSES) == set(GAN_MODES)
