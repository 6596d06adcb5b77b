"""The colorize app's callbacks, headless: uploads in both ipywidgets value shapes, a path, a URL,
the working size, Colab's own upload dialog, and every kind of bad input shown as a message."""

import base64
import io
import os
import re
import sys
import threading
import types
from functools import partial
from pathlib import Path
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world.nets import model_file
from colorful_world.io import paths
from colorful_world.training.run_folder import find_model
from colorful_world.apps.widget import PREVIEW_SIDE, colorize_widget


@pytest.fixture
def app(tiny_model):
    return colorize_widget(tiny_model)


@pytest.fixture(scope="module")
def photo() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).resize((400, 300)).convert("L").save(buffer, format="JPEG")
    return buffer.getvalue()


def upload_v8(app, name: str, content: bytes) -> None:
    """What a browser sends to ipywidgets 8: a list of file dicts, deserialized into a tuple."""
    app.upload.set_state({"value": [{"name": name, "type": "image/jpeg", "size": len(content),
                                     "content": memoryview(content), "last_modified": 0}]})


def upload_v7(app, name: str, content: bytes) -> None:
    """ipywidgets 7 (Colab) hands the observer a dict keyed by file name."""
    value = {name: {"metadata": {"name": name, "type": "image/jpeg", "size": len(content)}, "content": content}}
    app.on_upload({"name": "value", "old": {}, "new": value, "owner": app.upload, "type": "change"})


def assert_colorized(app, size: tuple[int, int]) -> None:
    assert "colorized at" in app.message.value and "color:#b00020" not in app.message.value
    preview = Image.open(io.BytesIO(app.views["colorized"].value))
    assert max(preview.size) == min(PREVIEW_SIDE, max(size)) and preview.mode == "RGB"
    href = re.search(r'href="data:image/png;base64,([^"]+)"', app.download.value).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(href))).size == size  # the download keeps every pixel


def assert_error(app, *words: str) -> None:
    assert "color:#b00020" in app.message.value
    for word in words:
        assert word in app.message.value


@pytest.mark.parametrize("upload", [upload_v8, upload_v7], ids=["ipywidgets8-tuple", "ipywidgets7-dict"])
def test_an_upload_shows_original_grey_and_colorized(app, photo, upload):
    upload(app, "face.jpg", photo)
    assert_colorized(app, (400, 300))
    for view in ("original", "grey"):
        assert Image.open(io.BytesIO(app.views[view].value)).size == (PREVIEW_SIDE, 240)
    assert 'download="face_colorized.png"' in app.download.value


@pytest.mark.parametrize("upload", [upload_v8, upload_v7], ids=["ipywidgets8-tuple", "ipywidgets7-dict"])
def test_bad_uploads_are_messages_not_tracebacks(app, photo, upload):
    upload(app, "notes.jpg", b"this is not a photo")
    assert_error(app, "notes.jpg", "not a readable image")
    upload(app, "truncated.jpg", photo[: len(photo) // 3])
    assert_error(app, "truncated.jpg")
    upload(app, "big.jpg", b"")  # what Colab's FileUpload delivers for files of about 1 MB and more
    assert_error(app, "big.jpg", "arrived empty", "Upload with Colab")


def test_the_working_size_recolorizes_the_photo_on_show(app, photo):
    upload_v8(app, "face.jpg", photo)
    assert app.working_size.step == 8 and app.working_size.value == 32
    app.working_size.value = 64
    assert "colorized at 64 px" in app.message.value


def test_the_colour_strength_scales_the_colour_down_to_grey(app, photo):
    import numpy as np

    def chroma() -> float:
        rgb = np.asarray(Image.open(io.BytesIO(app.views["colorized"].value)).convert("RGB"), dtype=int)
        return float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean())

    upload_v8(app, "face.jpg", photo)
    assert app.colour_strength.value == 1.0  # the tiny model's own gain
    own = chroma()
    app.colour_strength.value = 2.0
    assert chroma() > 1.5 * own > 0
    app.colour_strength.value = 0.0
    assert chroma() < 1  # the grey photo back, to rounding


def test_a_path_or_a_url_opens_a_photo(app, photo, tmp_path):
    (tmp_path / "face.jpg").write_bytes(photo)
    app.path_or_url.value = str(tmp_path / "face.jpg")
    app.open_button.click()
    assert_colorized(app, (400, 300))

    app.path_or_url.value = str(tmp_path / "missing.jpg")
    app.open_button.click()
    assert_error(app, "missing.jpg", "No such file")

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app.path_or_url.value = f"http://127.0.0.1:{server.server_port}/face.jpg"
        app.open_button.click()
        assert_colorized(app, (400, 300))
        app.path_or_url.value = f"http://127.0.0.1:{server.server_port}/gone.jpg"
        app.open_button.click()
        assert_error(app, "gone.jpg", "404")
    finally:
        server.shutdown()
        server.server_close()


def test_on_colab_the_app_offers_colab_upload(monkeypatch, tiny_model, photo):
    files = types.SimpleNamespace(upload=lambda: {"large.jpg": photo})
    colab = types.ModuleType("google.colab")
    colab.files = files
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    monkeypatch.setattr(paths, "COLAB_ROOT", Path(__file__).parent)  # Colab's /content: any folder
    app = colorize_widget(tiny_model)
    sources = app.children[0].children
    assert [getattr(w, "description", "") for w in sources][:2] == ["Upload", "Upload with Colab"]
    sources[1].click()
    assert "large.jpg" in app.message.value
    assert_colorized(app, (400, 300))


def test_without_a_model_the_app_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(model_file, "BUNDLED_MODEL", tmp_path / "absent.safetensors")
    app = colorize_widget(None)
    assert_error(app, "no bundled one", "train.ipynb")
    assert app.upload.disabled and app.open_button.disabled
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    assert_error(colorize_widget(empty_run), "no model in this run folder yet")


def test_find_model_prefers_the_newest_of_a_run(tmp_path, tiny_model):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    export, step = run / "generator.safetensors", run / "checkpoints" / "step_000000010.pt"
    export.write_bytes(tiny_model.read_bytes())
    step.write_bytes(b"")
    os.utime(export, (1, 1))
    os.utime(step, (2, 2))
    assert find_model(None, tmp_path / "nothing") is None  # None: the bundled model
    assert find_model(run) == step  # a run still training: its latest checkpoint is newer
    os.utime(export, (3, 3))
    assert find_model("", run) == export
    assert find_model(export) == export
