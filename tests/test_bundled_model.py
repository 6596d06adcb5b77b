"""The face model that ships with the package: it loads without pickle and colours a photo it never saw."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.nets.model_file import BUNDLED_MODEL, load_model
from colorful_world.core.color import colourfulness

# What the bundled model does on photos it never saw (grey is 0 colourfulness; the truths are 73 and 38),
# and where it stands against the two models before it: on the astronaut, colourfulness 27.4 (the first
# MobileNetV2 model 25.8, the U-Net 26.3) at ab error 12.7 (11.7, 11.7); on chelsea, colourfulness 32.4
# (28.0, 27.9) at error 6.6 (5.9, 7.0). Thirteen epochs on faces made the network more accurate on faces and a
# little less on photos that are not; its calibrated chroma gain gives them more colour than before.
COLOURFULNESS_FLOOR = 27.0  # a margin over both earlier models (25.8, 26.3)
ASTRONAUT_AB_ERROR_CEILING = 12.8  # the grey photo's is 14.1
CHELSEA_COLOURFULNESS_FLOOR = 30.0  # both earlier models gave 28
CHELSEA_AB_ERROR_CEILING = 6.7  # the U-Net's was 7.0


def test_bundled_model_is_small_pickle_free_and_documented():
    assert BUNDLED_MODEL.suffix == ".safetensors"  # plain tensors and JSON: nothing to unpickle
    assert BUNDLED_MODEL.stat().st_size <= 25_000_000  # 5.3 MB
    _, config, provenance = load_model(None)
    assert config["image_size"] == provenance["image_size"]
    for fact in ("data", "steps", "date", "validation", "note"):
        assert provenance[fact], fact


def _colorized(truth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(the bundled model's colours for the greyed photo, their ab error, the grey photo's)."""
    out = np.asarray(Colorizer.from_checkpoint().colorize(Image.fromarray(truth).convert("L")))
    assert out.shape == truth.shape
    ab_error = np.abs(skcolor.rgb2lab(out / 255)[..., 1:] - skcolor.rgb2lab(truth / 255)[..., 1:]).mean()
    grey_error = np.abs(skcolor.rgb2lab(truth / 255)[..., 1:]).mean()  # a grey photo's ab is 0
    return out, ab_error, grey_error


def test_bundled_model_colours_real_photos_it_never_saw_at_full_size():
    out, ab_error, grey_error = _colorized(skdata.astronaut())  # not from LFW: a portrait it never saw
    assert ab_error < ASTRONAUT_AB_ERROR_CEILING < grey_error
    assert colourfulness(torch.from_numpy(out.copy()).permute(2, 0, 1)[None] / 255).item() > COLOURFULNESS_FLOOR
    cat, cat_error, cat_grey = _colorized(skdata.chelsea())  # not a face at all: the encoder knows cats
    assert cat_error < CHELSEA_AB_ERROR_CEILING < cat_grey
    assert colourfulness(torch.from_numpy(cat.copy()).permute(2, 0, 1)[None] / 255).item() > CHELSEA_COLOURFULNESS_FLOOR


def test_bundled_model_is_the_pretrained_encoder_and_says_so():
    _, config, provenance = load_model(None)
    assert (config["arch"], config["encoder"], config["format"]) == ("encoder_unet", "mobilenet_v2", 2)
    assert "ImageNet" in provenance["note"]
    assert 1 < config["chroma_gain"] < 1.5 and "--chroma-gain auto" in provenance["note"]  # calibrated, and how
    for framing in ("validation", "validation_tight_crops"):  # both framings, against both baselines
        figures = provenance[framing]
        for baseline in ("grey", "mean_colour"):
            assert figures["model"]["psnr"] > figures[baseline]["psnr"]
            assert figures["model"]["delta_e2000"] < figures[baseline]["delta_e2000"]


@pytest.mark.slow
def test_colorize_works_out_of_the_box(tmp_path):
    photo = tmp_path / "old.jpg"
    Image.fromarray(skdata.astronaut()).convert("L").resize((300, 200)).save(photo)
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(photo),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "old.png").size == (300, 200)
    info = subprocess.run([sys.executable, "-m", "colorful_world", "info", "--json"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    record = json.loads(info.stdout)  # the whole record on asking; without --json, info reads as text
    assert record["model"] == str(BUNDLED_MODEL) and record["provenance"]["validation"]["model"]["photos"] > 0


def test_the_bundled_model_ships_as_onnx_too_with_the_same_colours():
    from colorful_world.inference.onnx_backend import BUNDLED_ONNX
    assert BUNDLED_ONNX.stat().st_size <= 25_000_000  # 10.5 MB: float32
    onnx = Colorizer.from_checkpoint(backend="onnx")  # no path: the shipped .onnx, nothing converted
    _, config, _ = load_model(None)
    assert onnx.image_size == config["image_size"] and onnx.depth == config["depth"]
    photo = Image.fromarray(skdata.astronaut()).convert("L")
    ours = np.asarray(onnx.colorize(photo), dtype=int)
    expected = np.asarray(Colorizer.from_checkpoint().colorize(photo), dtype=int)
    assert np.abs(ours - expected).max() <= 1  # a stale .onnx beside a retrained model fails here
