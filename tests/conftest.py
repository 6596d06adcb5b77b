import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/synthetic.py

from colorful_world.nets.model_file import export_generator  # noqa: E402
from colorful_world.nets.models import UNet  # noqa: E402
from synthetic import write_synthetic_photos  # noqa: E402

TINY_MODEL = {"image_size": 32, "base_channels": 8, "depth": 3, "dropout": 0.0}


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_photos(folder, 200, size=32, seed=0)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained but complete exported generator: enough for contracts on shapes and files."""
    path = tmp_path_factory.mktemp("model") / "generator.safetensors"
    torch.manual_seed(0)
    net = UNet(TINY_MODEL["base_channels"], TINY_MODEL["depth"], dropout=0.0)
    export_generator(net.state_dict(), TINY_MODEL, path)
    return path


@pytest.fixture(scope="session")
def hinted_model(tmp_path_factory) -> Path:
    """A small untrained generator that takes hints, its hint weights made non-zero (a model
    fresh from a hint-free one would ignore hints until trained)."""
    from colorful_world.core.config import ModelConfig
    from colorful_world.nets.models import build_generator
    config = ModelConfig("encoder_unet", 64, 5, 8, 64, encoder="mobilenet_v2", hints=True)
    torch.manual_seed(0)
    net = build_generator(config)
    net.refine.out.weight.data.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("hinted") / "hinted.safetensors"
    export_generator(net.state_dict(), config.__dict__, path)
    return path


@pytest.fixture
def offline_torch_hub(tmp_path, monkeypatch) -> Path:
    """A machine with no network for torch.hub and nothing in its cache (TORCH_HOME under tmp_path),
    and no COLORFUL_WORLD_ENCODER_WEIGHTS: returns torch's home, where its cache would be."""
    import urllib.error

    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("COLORFUL_WORLD_ENCODER_WEIGHTS", raising=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return home
