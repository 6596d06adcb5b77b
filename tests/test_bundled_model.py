"""The face model that ships with the package: it loads without pickle and colours a photo it never saw."""

import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from skimage import color as skcolor
from skimage import data as skdata

from colorful_world import Colorizer
from colorful_world.model_file import BUNDLED_MODEL, load_model
from colorful_world.color import colourfulness

COLOURFULNESS_FLOOR = 15.0  # grey is 0; the model gives the greyed astronaut about 28 (truth: 73)


def test_bundled_model_is_small_pickle_free_and_documented():
    assert BUNDLED_MODEL.suffix == ".safetensors"  # plain tensors and JSON: nothing to unpickle
    assert BUNDLED_MODEL.stat().st_size <= 25_000_000
    _, config, provenance = load_model(None)
    assert config["image_size"] == provenance["image_size"]
    for fact in ("data", "steps", "date", "validation", "note"):
        assert provenance[fact], fact


def test_bundled_model_colours_a_real_photo_it_never_saw_at_full_size():
    truth = skdata.astronaut()  # not a face from LFW: a portrait it was never trained on
    grey = Image.fromarray(truth).convert("L")
    out = np.asarray(Colorizer.from_checkpoint().colorize(grey))
    assert out.shape == truth.shape
    ab_error = np.abs(skcolor.rgb2lab(out / 255)[..., 1:] - skcolor.rgb2lab(truth / 255)[..., 1:]).mean()
    grey_error = np.abs(skcolor.rgb2lab(truth / 255)[..., 1:]).mean()  # a grey photo's ab is 0
    assert ab_error < grey_error
    assert colourfulness(torch.from_numpy(out.copy()).permute(2, 0, 1)[None] / 255).item() > COLOURFULNESS_FLOOR


def test_colorize_works_out_of_the_box(tmp_path):
    photo = tmp_path / "old.jpg"
    Image.fromarray(skdata.astronaut()).convert("L").resize((300, 200)).save(photo)
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(photo),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "old.png").size == (300, 200)
    info = subprocess.run([sys.executable, "-m", "colorful_world", "info"], capture_output=True, text=True)
    assert info.returncode == 0 and '"validation"' in info.stdout
