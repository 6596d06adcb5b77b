"""The colorize app's callbacks, headless: uploads in both ipywidgets value shapes, a path, a URL,
Colab's own upload dialog as the main button, Drive mounted only when asked for, two panels for a
black-and-white photo and three for a colour one, labels in a user's words, colour strength and
contrast restoration reaching the colorizer, and colour hints: a click on the picture adds one at
the colour the model gives there, the picker sets it, removing it brings the automatic picture back,
and no click decodes or prepares the photo again."""

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import types
from functools import partial
from pathlib import Path
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from colorful_world.apps import notebook, widget
from colorful_world.apps.widget import EAGER_DOWNLOAD_PIXELS, PREVIEW_SIDE, colorize_widget
from colorful_world.core.config import ModelConfig
from colorful_world.inference import onnx_backend
from colorful_world.io import paths
from colorful_world.io.errors import CheckpointError
from colorful_world.nets import model_record
from colorful_world.nets.model_file import export_generator
from colorful_world.nets.models import build_generator
from colorful_world.training.run_folder import find_model

# A small generator that takes hints (tests/test_hints.py's), its hint weights made non-zero so
# that a hint changes the picture from the first click; its own chroma gain is not 1, so that a
# relative colour strength can be told from a raw gain.
HINTED = ModelConfig("encoder_unet", 64, 5, 8, 64, encoder="mobilenet_v2", hints=True)
HINTED_GAIN = 1.5


def export_hinted_model(path: Path) -> Path:
    torch.manual_seed(0)
    net = build_generator(HINTED)
    net.refine.out.weight.data.normal_(0, 0.2)
    export_generator(net.state_dict(), HINTED.__dict__ | {"chroma_gain": HINTED_GAIN}, path)
    return path


@pytest.fixture(scope="module")
def hinted_model(tmp_path_factory) -> Path:
    return export_hinted_model(tmp_path_factory.mktemp("hinted") / "generator.safetensors")


@pytest.fixture
def app(tiny_model):
    return colorize_widget(tiny_model)


@pytest.fixture
def hinted_app(hinted_model):
    return colorize_widget(hinted_model)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A black-and-white photo, 400 x 300."""
    return jpeg(Image.fromarray(skdata.astronaut()).resize((400, 300)).convert("L"))


@pytest.fixture(scope="module")
def colour_photo() -> bytes:
    return jpeg(Image.fromarray(skdata.astronaut()).resize((400, 300)))


IPYWIDGETS_7 = ipywidgets.__version__.startswith("7.")  # Colab's: the tests run under either


def upload_v8(app, name: str, content: bytes) -> None:
    """What a browser sends to ipywidgets 8: a list of file dicts, deserialized into a tuple."""
    if IPYWIDGETS_7:
        pytest.skip("ipywidgets 7's FileUpload holds a dict")
    app.upload.set_state({"value": [{"name": name, "type": "image/jpeg", "size": len(content),
                                     "content": memoryview(content), "last_modified": 0}]})


def upload_v7(app, name: str, content: bytes) -> None:
    """ipywidgets 7 (Colab) hands the observer a dict keyed by file name."""
    value = {name: {"metadata": {"name": name, "type": "image/jpeg", "size": len(content)}, "content": content}}
    app.on_upload({"name": "value", "old": {}, "new": value, "owner": app.upload, "type": "change"})


def upload(app, name: str, content: bytes) -> None:
    """An upload in the shape of the ipywidgets installed."""
    (upload_v7 if IPYWIDGETS_7 else upload_v8)(app, name, content)


def picture(view) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(view.value)).convert("RGB"), dtype=int)


def panel_titles(app) -> list[str]:
    return [panel.children[0].value for panel in app.panels.children]


def assert_colorized(app, size: tuple[int, int], name: str = "face") -> None:
    assert "color:#b00020" not in app.message.value, app.message.value
    preview = Image.open(io.BytesIO(app.views["colour"].value))
    assert max(preview.size) == min(PREVIEW_SIDE, max(size)) and preview.mode == "RGB"
    assert f'download="{name}-colour.png"' in app.download.value
    href = re.search(r'href="data:image/png;base64,([^"]+)"', app.download.value).group(1)
    assert Image.open(io.BytesIO(base64.b64decode(href))).size == size  # the download keeps every pixel


def assert_error(app, *words: str) -> None:
    assert "color:#b00020" in app.message.value, app.message.value
    for word in words:
        assert word in app.message.value


def spy(app, method: str) -> list[tuple]:
    """Record the arguments of each call of the app's colorizer's `method`, and still make it."""
    calls, original = [], getattr(app.colorizer, method)

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    setattr(app.colorizer, method, recorded)
    return calls


def chroma(image: np.ndarray) -> float:
    return float(np.abs(image - image.mean(axis=2, keepdims=True)).mean())


# Photos in, panels out.

@pytest.mark.parametrize("upload", [upload_v8, upload_v7], ids=["ipywidgets8-tuple", "ipywidgets7-dict"])
def test_a_black_and_white_upload_shows_two_panels_the_photo_and_its_colour(app, photo, upload):
    upload(app, "face.jpg", photo)
    assert_colorized(app, (400, 300))
    assert panel_titles(app) == ["Your photo", "In colour"]
    assert Image.open(io.BytesIO(app.views["photo"].value)).size == (PREVIEW_SIDE, 270)
    assert "face.jpg (400 × 300) in colour." in app.message.value


def test_a_black_and_white_photo_saved_in_rgb_is_still_two_panels(app, photo):
    upload(app, "scan.jpg", jpeg(Image.open(io.BytesIO(photo)).convert("RGB")))
    assert panel_titles(app) == ["Your photo", "In colour"]


def test_a_colour_upload_shows_also_the_black_and_white_the_model_colours(app, colour_photo):
    upload(app, "face.jpg", colour_photo)
    assert_colorized(app, (400, 300))
    assert panel_titles(app) == ["Your photo", "In black and white: what the model colours", "In colour"]
    assert chroma(picture(app.views["photo"])) > 10
    grey = picture(app.views["grey"])
    assert np.abs(grey - grey[:, :, :1]).max() <= 1  # r = g = b, to rounding
    assert "already has colour" in app.message.value
    upload(app, "old.jpg", jpeg(Image.open(io.BytesIO(colour_photo)).convert("L")))
    assert len(app.panels.children) == 2  # the next photo decides again


@pytest.mark.parametrize("upload", [upload_v8, upload_v7], ids=["ipywidgets8-tuple", "ipywidgets7-dict"])
def test_bad_uploads_are_messages_not_tracebacks(app, photo, upload):
    upload(app, "notes.jpg", b"this is not a photo")
    assert_error(app, "notes.jpg", "image")  # the reader's own sentence
    upload(app, "truncated.jpg", photo[: len(photo) // 3])
    assert_error(app, "truncated.jpg")
    upload(app, "big.jpg", b"")
    assert_error(app, "big.jpg", "arrived empty")


def test_labels_speak_a_users_words(hinted_app, photo):
    app = hinted_app
    upload(app, "face.jpg", photo)
    shown = " ".join([app.message.value, app.strength.description, app.strength_label.value,
                      app.restore_contrast.description, app.detail.description,
                      *(label for label, _ in app.detail.options)])
    assert not re.search(r"\bpx\b|colori[sz]ed at|trained at|\d\.\d\d", shown), shown
    assert app.strength.description == "Colour strength" and app.strength.readout is False
    assert app.restore_contrast.description == "Restore faded contrast"
    assert [label for label, _ in app.detail.options] == ["Coarse", "Normal (as the model was trained)",
                                                          "Fine", "Finest"]
    for value, words in ((1.0, "the model's own"), (0.0, "none: the black-and-white photo"),
                         (2.0, "twice the model's"), (1.5, "150% of the model's")):
        app.strength.value = value
        assert app.strength_label.value == words


def test_the_detail_reprepares_the_photo_at_the_side_it_names(app, photo):
    upload(app, "face.jpg", photo)
    prepared = spy(app, "prepare")
    assert app.detail.value == 32 and dict(app.detail.options)["Fine"] == 64
    app.detail.value = 64
    assert [args[1] for args, _ in prepared] == [64]
    assert_colorized(app, (400, 300))


# Colour strength and contrast reach the colorizer.

def test_the_colour_strength_is_relative_to_the_models_own_gain(hinted_app, photo):
    app = hinted_app
    assert app.colorizer.chroma_gain == HINTED_GAIN and app.strength.value == 1.0
    upload(app, "face.jpg", photo)
    finished = spy(app, "finish")
    own = chroma(picture(app.views["colour"]))
    app.strength.value = 2.0
    assert finished[-1][0][2] == pytest.approx(2 * HINTED_GAIN)  # finish(prepared, ab, gain)
    assert chroma(picture(app.views["colour"])) > 1.5 * own > 0
    app.strength.value = 0.0
    assert finished[-1][0][2] == 0
    assert chroma(picture(app.views["colour"])) < 1  # the grey photo back, to rounding


def test_restore_faded_contrast_is_off_by_default_and_reaches_the_colorizer(app):
    faded = (np.asarray(Image.fromarray(skdata.camera()).resize((300, 300)), dtype=np.float32) * 0.4 + 90)
    upload(app, "faded.png", jpeg(Image.fromarray(faded.astype(np.uint8))))
    assert app.restore_contrast.value is False
    prepared = spy(app, "prepare")
    before = np.asarray(app.result().convert("L"), dtype=int)
    app.restore_contrast.value = True
    assert prepared[-1][0][2] is True  # prepare(image, size, restore_contrast)
    after = np.asarray(app.result().convert("L"), dtype=int)
    assert np.ptp(before) < 120 and np.ptp(after) > 200


# Colour hints.

def test_a_click_adds_a_hint_at_the_colour_the_model_gives_there_and_the_picture_changes(hinted_app, photo):
    app = hinted_app
    upload(app, "face.jpg", photo)
    automatic, automatic_view = np.asarray(app.result()), app.views["colour"].value
    # ipyevents' click in the shown picture's own pixels (360 x 270 for a 400 x 300 photo).
    app.on_photo_click({"type": "click", "dataX": 90, "dataY": 135, "relativeX": 90, "relativeY": 135})
    assert [hint[:2] for hint in app.hints] == [(100, 150)]
    assert app.picker.value == app.hints[0][2] == "#{:02x}{:02x}{:02x}".format(*automatic[150, 100])
    assert not app.picker.disabled and len(app.hint_list.children) == 1
    assert "1 colour hint." in app.hint_help.value
    assert app.views["colour"].value != automatic_view
    hinted = np.asarray(app.result())
    assert np.abs(hinted.astype(int) - automatic).max() > 10  # the colour itself, not only the dot

    app.picker.value = "#2050ff"  # the person knows it was blue
    assert app.hints == [(100, 150, "#2050ff")]
    blue = np.asarray(app.result(), dtype=int)
    assert np.abs(blue - hinted).max() > 10


def test_removing_the_hint_brings_back_the_automatic_picture(hinted_app, photo):
    app = hinted_app
    upload(app, "face.jpg", photo)
    automatic, automatic_view, automatic_link = np.asarray(app.result()), app.views["colour"].value, app.download.value
    app.on_photo_click({"dataX": 300, "dataY": 40})
    app.on_photo_click({"dataX": 20, "dataY": 250})
    assert len(app.hints) == 2 and app.selected == 1
    first_row = app.hint_list.children[0]
    first_row.children[2].click()  # its Remove button
    assert [hint[:2] for hint in app.hints] == [(22, 277)] and app.selected == 0
    app.hint_list.children[0].children[2].click()
    assert app.hints == [] and app.picker.disabled
    assert np.array_equal(np.asarray(app.result()), automatic)
    assert app.views["colour"].value == automatic_view and app.download.value == automatic_link


def test_a_hint_in_the_list_can_be_chosen_and_recoloured(hinted_app, photo):
    app = hinted_app
    upload(app, "face.jpg", photo)
    app.on_photo_click({"dataX": 300, "dataY": 40})
    app.on_photo_click({"dataX": 20, "dataY": 250})
    app.hint_list.children[0].children[1].click()  # "at (x, y)": the picker now sets the first
    assert app.selected == 0 and app.picker.value == app.hints[0][2]
    assert app.hint_list.children[0].children[1].description.startswith("▸")
    app.picker.value = "#ff0000"
    assert app.hints[0][2] == "#ff0000" and app.hints[1][2] != "#ff0000"
    app.clear_hints_button.click()
    assert app.hints == [] and app.hint_list.children == ()


def test_no_click_decodes_or_prepares_the_photo_again(hinted_app, photo, monkeypatch):
    app = hinted_app
    upload(app, "face.jpg", photo)
    opened = []
    monkeypatch.setattr(widget, "open_image", lambda *a: opened.append(a))
    prepared, predicted = spy(app, "prepare"), spy(app, "predict")
    app.on_photo_click({"dataX": 100, "dataY": 100})
    app.picker.value = "#30a040"
    app.strength.value = 1.5
    app.hint_list.children[0].children[2].click()
    assert opened == [] and prepared == []
    assert len(predicted) == 3  # the click, the colour, the strength; the removal is remembered


def test_a_model_without_hints_says_so_and_keeps_its_picture(app, photo):
    upload(app, "face.jpg", photo)
    assert "trained without colour hints" in app.hint_help.value
    for strength in (1.0, 0.0):  # at 0 the network is not asked, and the hint would slip in
        app.strength.value = strength
        view = app.views["colour"].value
        app.on_photo_click({"dataX": 100, "dataY": 100})
        assert_error(app, "trained without colour hints")
        assert app.hints == [] and app.views["colour"].value == view


def test_a_big_photos_download_is_made_on_request(app):
    side = int(EAGER_DOWNLOAD_PIXELS ** 0.5) + 8
    upload(app, "scan.jpg", jpeg(Image.fromarray(skdata.camera()).resize((side, side))))
    assert app.download.value == "" and app.download_button.layout.display is None
    app.download_button.click()
    assert 'download="scan-colour.png"' in app.download.value and app.download_button.layout.display == "none"


def test_click_to_picture_time_on_a_1_mp_photo(hinted_app):
    """Printed, not asserted: the time from a click to the new picture (the network with the hints,
    and the colour finished at the size shown), and to the end of the callback (the full-size
    photo and its download link made too)."""
    app = hinted_app
    upload(app, "big.jpg", jpeg(Image.fromarray(skdata.astronaut()).convert("L").resize((1024, 1024))))
    shown = []
    app.views["colour"].observe(lambda _change: shown.append(time.perf_counter()), names="value")
    to_picture, to_end = [], []
    for i in range(5):
        shown.clear()
        start = time.perf_counter()
        app.on_photo_click({"dataX": 50 + 40 * i, "dataY": 200})
        to_end.append(time.perf_counter() - start)
        to_picture.append(shown[0] - start)
    print(f"1 MP photo, {HINTED.image_size} px hinted model: click to picture "
          f"{1e3 * np.median(to_picture):.0f} ms, to the callback's end {1e3 * np.median(to_end):.0f} ms (median of 5)")
    assert len(app.hints) == 5


# Where photos and models come from: paths, URLs, Colab and Drive.

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


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A stand-in for Colab's runtime: COLAB_RELEASE_TAG, /content, and google.colab's files
    (its upload dialog), output (the custom widget manager) and drive (mount), each recording."""
    record = types.SimpleNamespace(uploads=[], mounts=[], widget_managers=0, to_upload={})
    colab_module = types.ModuleType("google.colab")
    colab_module.files = types.SimpleNamespace(upload=lambda: record.uploads.append(1) or dict(record.to_upload))
    colab_module.output = types.SimpleNamespace(
        enable_custom_widget_manager=lambda: setattr(record, "widget_managers", record.widget_managers + 1))
    colab_module.drive = types.SimpleNamespace(mount=lambda where: record.mounts.append(where))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    monkeypatch.setattr(paths, "COLAB_ROOT", tmp_path)  # Colab's /content: any folder
    monkeypatch.chdir(tmp_path)
    return record


def test_on_colab_the_main_upload_button_is_colabs_own_dialog_for_photos_of_several_mb(colab, hinted_model):
    noise = np.random.default_rng(0).integers(0, 256, (1500, 2000), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=0)
    colab.to_upload = {"scan.png": buffer.getvalue()}
    assert len(colab.to_upload["scan.png"]) > 2_500_000  # past what Colab's FileUpload delivers
    app = colorize_widget(hinted_model)
    upload = app.children[0].children[0]
    assert upload is app.upload and upload.description == "Upload"
    assert not any(isinstance(w, ipywidgets.FileUpload) for w in app.children[0].children)
    upload.click()
    assert colab.uploads == [1] and "scan.png (2000 × 1500)" in app.message.value
    assert app.colab_output.outputs == ()
    assert colab.widget_managers == 1  # so that Colab draws ipyevents' listener
    # ... and builds it with the app: the app's own state refers to it.
    assert f"IPY_MODEL_{app.click_events.model_id}" in json.dumps(app.get_state())
    assert colab.mounts == []  # a photo from the computer needs no Drive
    colab.to_upload = {}
    upload.click()
    assert "No photo was chosen" in app.message.value


def test_drive_is_mounted_only_for_a_model_or_photo_on_it(colab, tiny_model, photo):
    assert notebook.colorize_model("", "") is None and colab.mounts == []
    assert notebook.colorize_model(str(tiny_model), "") == tiny_model and colab.mounts == []
    on_drive = "/content/drive/MyDrive/models/generator.safetensors"
    assert notebook.colorize_model(on_drive, "") == Path(on_drive)
    assert colab.mounts == ["/content/drive"]
    with pytest.raises(CheckpointError, match="no model in runs/faces yet"):
        notebook.colorize_model("", "faces")  # runs live on Drive: it is mounted to look
    assert len(colab.mounts) == 2

    app = colorize_widget(tiny_model)
    app.path_or_url.value = str(Path.cwd() / "face.jpg")
    Path("face.jpg").write_bytes(photo)
    app.open_button.click()
    assert len(colab.mounts) == 2 and "(400 × 300)" in app.message.value
    app.path_or_url.value = "/content/drive/MyDrive/photos/grandma.jpg"
    app.open_button.click()
    assert len(colab.mounts) == 3
    assert_error(app, "grandma.jpg", "could not read it")



def test_no_notebook_mounts_drive_at_set_up_and_evaluate_mounts_it_only_to_look_there(colab, tiny_model):
    import nbformat
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for name in ("train", "colorize", "evaluate"):
        setup = nbformat.read(notebooks / f"{name}.ipynb", as_version=4).cells[1].source
        assert "mount_drive" not in setup and "drive.mount" not in setup, name
    assert notebook.evaluation_model_and_data("", "", "photos/", "", []) == (None, "photos/")
    assert notebook.evaluation_model_and_data(str(tiny_model), "faces", "photos/", "", []) == (tiny_model, "photos/")
    assert colab.mounts == []  # the bundled model or a model here, photos here: no Drive
    assert notebook.evaluation_model_and_data("", "faces", "photos/", "", []) == (None, "photos/")
    assert colab.mounts == ["/content/drive"]  # to look for the run "faces", which lives on Drive
    notebook.evaluation_model_and_data(str(tiny_model), "", "/content/drive/MyDrive/photos", "", [])
    assert len(colab.mounts) == 2  # photos on Drive
    with pytest.raises(CheckpointError, match="no such model file"):
        notebook.evaluation_model_and_data("/content/drive/MyDrive/model.safetensors", "", "photos/", "", [])
    assert len(colab.mounts) == 3  # a model on Drive

def test_off_colab_nothing_is_mounted(monkeypatch, tiny_model):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert not notebook.on_drive("/content/drive/MyDrive/x.safetensors")
    assert notebook.colorize_model("/content/drive/MyDrive/x.safetensors", "") == Path("/content/drive/MyDrive/x.safetensors")


def test_the_bundled_model_runs_on_onnx_runtime_and_the_app_imports_no_torch():
    pytest.importorskip("onnxruntime")
    assert type(widget.load_colorizer(None).network).__name__ == "OnnxGenerator"
    code = ("import sys; from colorful_world.apps.widget import colorize_widget; "
            "app = colorize_widget(None); assert 'torch' not in sys.modules, 'torch imported'; print(app.detail.value)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "128", done.stderr[-2000:]


def test_without_a_model_the_app_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(model_record, "BUNDLED_MODEL", tmp_path / "absent.safetensors")
    monkeypatch.setattr(onnx_backend, "BUNDLED_ONNX", tmp_path / "absent.onnx")
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
