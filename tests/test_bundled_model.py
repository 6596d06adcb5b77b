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
from colorful_world.nets.model_file import load_model
from colorful_world.nets.model_record import BUNDLED_MODEL
from colorful_world.core.color import colourfulness
from colorful_world.core.config import MODEL_FORMAT
from colorful_world.core.old_print import Damage, damage

# What the bundled model does on photos it never saw (grey is 0 colourfulness; the truths are 73 and 38),
# and where it stands against the model before it (trained without hints or old prints): on the astronaut,
# colourfulness 28.0 (27.4) at ab error 12.47 (12.69); on chelsea, colourfulness 31.5 (32.4) at error 5.88
# (6.56). As an old print (OLD_PRINT below): the astronaut 31.6 at 12.55 (26.1 at 13.23), chelsea 29.2 at
# 5.74 (28.2 at 7.28).
COLOURFULNESS_FLOOR = 27.5  # the model before it: 27.4
ASTRONAUT_AB_ERROR_CEILING = 12.6  # the grey photo's is 14.1; the model before it 12.69
CHELSEA_COLOURFULNESS_FLOOR = 30.5  # the two models before it gave 28
CHELSEA_AB_ERROR_CEILING = 6.2  # the model before it: 6.56
OLD_PRINT = Damage(black=0.2, white=0.85, gamma=1.2, blur=1.0, grain=0.04, specks=10, jpeg=40)
OLD_PRINT_MARGIN = 0.3  # ab error an old print may add to the clean photo's (the model before it: +0.54)


def test_bundled_model_is_small_pickle_free_and_documented():
    assert BUNDLED_MODEL.suffix == ".safetensors"  # plain tensors and JSON: nothing to unpickle
    assert BUNDLED_MODEL.stat().st_size <= 25_000_000  # 5.3 MB
    _, config, provenance = load_model(None)
    assert config["image_size"] == provenance["image_size"]
    for fact in ("data", "steps", "date", "validation", "note"):
        assert provenance[fact], fact


def _old_print(grey: Image.Image) -> Image.Image:
    l_norm = torch.from_numpy(np.asarray(grey, np.float32) / 127.5 - 1)[None]
    worn = damage(l_norm, OLD_PRINT, torch.Generator().manual_seed(0))
    return Image.fromarray(((worn[0].numpy() + 1) * 127.5).round().astype(np.uint8), "L")


def _colorized(truth: np.ndarray, old: bool = False, hints=None) -> tuple[np.ndarray, float, float]:
    """(the bundled model's colours for the greyed photo, their ab error, the grey photo's); the
    colour is judged alone: its ab against the truth's, whatever the print did to L."""
    grey = Image.fromarray(truth).convert("L")
    out = np.asarray(Colorizer.from_checkpoint().colorize(_old_print(grey) if old else grey, hints=hints))
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


def test_bundled_model_colours_an_old_print_nearly_as_well_as_a_clean_photo():
    _, clean_error, _ = _colorized(skdata.astronaut())
    out, old_error, grey_error = _colorized(skdata.astronaut(), old=True)
    assert old_error < clean_error + OLD_PRINT_MARGIN < grey_error
    assert colourfulness(torch.from_numpy(out.copy()).permute(2, 0, 1)[None] / 255).item() > COLOURFULNESS_FLOOR


def test_bundled_model_follows_hints_on_a_photo_it_never_saw():
    truth = skdata.astronaut()
    suit = (slice(280, 460), slice(60, 230))  # the orange suit, which comes out brown without hints
    hints = [(x, y, "#%02x%02x%02x" % tuple(truth[y, x])) for x, y in ((90, 300), (200, 430))]
    plain, _, _ = _colorized(truth)
    hinted, _, _ = _colorized(truth, hints=hints)

    def suit_error(out):
        return np.abs(skcolor.rgb2lab(out[suit] / 255)[..., 1:] - skcolor.rgb2lab(truth[suit] / 255)[..., 1:]).mean()
    assert suit_error(hinted) < 0.7 * suit_error(plain)


def test_bundled_model_is_the_pretrained_encoder_and_says_so():
    _, config, provenance = load_model(None)
    assert (config["arch"], config["encoder"], config["format"], config["hints"]) == \
        ("encoder_unet", "mobilenet_v2", MODEL_FORMAT, True)
    assert "ImageNet" in provenance["note"]
    assert 1 < config["chroma_gain"] < 1.5 and "--chroma-gain auto" in provenance["note"]  # calibrated, and how
    for framing in ("validation", "validation_tight_crops", "validation_old_prints"):  # against both baselines
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
