import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.nets.model_file import load_model


def _photo() -> Image.Image:
    return Image.fromarray(skdata.astronaut()).resize((200, 150)).convert("L")


def test_onnx_backend_matches_torch_within_one_level(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the converted model goes
    torch_out = np.asarray(Colorizer.from_checkpoint(tiny_model).colorize(_photo(), size=64), dtype=int)
    onnx_colorizer = Colorizer.from_checkpoint(tiny_model, backend="onnx")
    onnx_out = np.asarray(onnx_colorizer.colorize(_photo(), size=64), dtype=int)
    assert onnx_out.shape == torch_out.shape == (150, 200, 3)
    assert np.abs(onnx_out - torch_out).max() <= 1  # 1/255 per channel
    assert len(list((tmp_path / "cache").rglob("*.onnx"))) == 1  # converted once, then reused


@pytest.mark.slow
def test_export_onnx_keeps_config_and_provenance(tiny_model, tmp_path):
    out = tmp_path / "model.onnx"
    result = subprocess.run([sys.executable, "-m", "colorful_world", "export", str(tiny_model), "--onnx",
                             "--output", str(out), "--note", "for a small server"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    colorizer = Colorizer.from_checkpoint(out, backend="onnx")
    assert colorizer.image_size == load_model(tiny_model)[1]["image_size"]
    assert colorizer.colorize(_photo()).size == (200, 150)
    import onnx
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert "for a small server" in metadata["provenance"]


def test_server_runs_on_the_onnx_backend(tiny_model, tmp_path, monkeypatch):
    import io

    import requests
    from test_server import encode, serving

    from colorful_world.apps.server import create_app
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(create_app(checkpoint=str(tiny_model), backend="onnx")) as base:
        answer = requests.post(f"{base}/colorize", files={"image": encode(_photo(), "PNG")}, timeout=60)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(answer.content)).size == (200, 150)


def test_auto_is_every_doors_default_and_takes_onnx_runtime_for_an_onnx_model_or_without_torch(monkeypatch):
    import importlib.util

    from colorful_world.apps import server
    from colorful_world.apps.cli import build_parser
    from colorful_world.inference.backends import resolve_backend
    from colorful_world.io.errors import ConfigError
    parser = build_parser()
    assert parser.parse_args(["serve"]).backend == parser.parse_args(["colorize", "old.jpg"]).backend == "auto"
    assert resolve_backend("auto", "model.safetensors") == "torch"  # torch is installed here
    assert resolve_backend("auto", "model.onnx") == resolve_backend("onnx", "model.safetensors") == "onnx"
    with pytest.raises(ConfigError, match="unknown backend 'tensorflow'"):
        resolve_backend("tensorflow")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "torch" else real(name, *rest))
    assert resolve_backend("auto", "model.safetensors") == "onnx"  # the light install
    colorizer = server.BACKENDS["auto"](None)  # what plain `colorful-world serve` loads there: the bundled .onnx
    assert hasattr(colorizer.network, "session") and colorizer.image_size == 128

NO_TORCH = """
import importlib.abc, io, sys
class NoTorch(importlib.abc.MetaPathFinder):  # as in an image where torch is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "kornia"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoTorch())
from PIL import Image
from colorful_world.apps.server import create_app
app = create_app(checkpoint=sys.argv[1], backend="onnx").test_client()
answer = app.post("/colorize", data=open(sys.argv[2], "rb").read())
assert answer.status_code == 200, answer.data
sys.stdout.buffer.write(answer.data)
"""


@pytest.mark.slow
def test_the_onnx_server_runs_without_torch_and_matches_torch_within_one_level(tiny_model, tmp_path):
    model, photo = tmp_path / "model.onnx", tmp_path / "photo.png"
    subprocess.run([sys.executable, "-m", "colorful_world", "export", str(tiny_model), "--onnx", "-o", str(model)],
                   check=True, capture_output=True)
    _photo().save(photo)
    served = subprocess.run([sys.executable, "-c", NO_TORCH, str(model), str(photo)], capture_output=True)
    assert served.returncode == 0, served.stderr.decode()[-2000:]
    import io
    ours = np.asarray(Image.open(io.BytesIO(served.stdout)), dtype=int)
    expected = np.asarray(Colorizer.from_checkpoint(tiny_model).colorize(_photo()), dtype=int)
    assert ours.shape == expected.shape and np.abs(ours - expected).max() <= 1
