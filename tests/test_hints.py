"""Colour hints: parsing and bounds, where a hint lands on the network's map, the network's hint
inputs, and a model trained with simulated clicks following them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from colorful_world import Colorizer
from colorful_world.core.simulated_clicks import scoring_clicks, simulate_clicks
from colorful_world.core.color_lut import srgb_to_ab
from colorful_world.core.config import ModelConfig
from colorful_world.core.hints import MAX_HINTS, HintError, hint_map, parse_hint_arg, parse_hints
from colorful_world.core.units import AB_SCALE
from colorful_world.nets.models import HINT_PARTS, build_generator

HINTED = ModelConfig("encoder_unet", 64, 5, 8, 64, encoder="mobilenet_v2", hints=True)


@pytest.mark.parametrize("bad", ['[[1, 2]]', '[[1, 2, "#12345"]]', '[["a", 2, "#123456"]]', '{"x": 1}',
                                 "not json", '[[1, NaN, "#123456"]]', '[[true, 2, "#123456"]]'])
def test_malformed_hints_are_refused_with_a_sentence(bad):
    with pytest.raises(HintError, match="hint"):
        parse_hints(bad)


def test_hints_parse_from_json_and_the_command_line_and_are_bounded():
    assert parse_hints('[[3, 4.5, "#FF0000"]]') == [(3.0, 4.5, (255, 0, 0))]
    assert parse_hints([parse_hint_arg("10,20,#00ff00")]) == [(10.0, 20.0, (0, 255, 0))]
    with pytest.raises(HintError, match="X,Y"):
        parse_hint_arg("10;20;#00ff00")
    with pytest.raises(HintError, match=f"at most {MAX_HINTS}"):
        parse_hints([[0, 0, "#000000"]] * (MAX_HINTS + 1))


@pytest.mark.parametrize("height,width,x,y,row,col", [
    (37, 101, 0, 0, 0, 0), (37, 101, 100, 36, 63, 63), (37, 101, 50, 18, 32, 32), (37, 101, 49, 17, 30, 31),
    (37, 101, 100.9, 0, 0, 63), (500, 3, 2, 499, 63, 53), (500, 3, 0, 250, 32, 10)])
def test_a_hint_lands_on_the_cell_its_pixel_falls_in(height, width, x, y, row, col):
    hints = hint_map([(x, y, "#c04040")], height, width, 64)
    mask = hints[0, 2]
    assert mask[row, col] == 1 and mask.sum() <= 9  # a 3 x 3 patch around it, cut at the border
    a, b = srgb_to_ab((0xc0, 0x40, 0x40))
    assert hints[0, 0, row, col] == pytest.approx(a / AB_SCALE) and hints[0, 1, row, col] == pytest.approx(b / AB_SCALE)


def test_hints_outside_the_photo_are_refused():
    for x, y in ((101, 0), (0, 37), (-1, 5)):
        with pytest.raises(HintError, match="outside the 101x37 photo"):
            hint_map([(x, y, "#000000")], 37, 101, 64)


class Recorder:
    """Stands in for a network: records the hint map it is given, answers no colour."""
    depth, hints = 5, True

    def __call__(self, small, hints=None):
        self.seen = hints
        return np.zeros((1, 2, *small.shape[-2:]), np.float32)

    session = None  # looks like ONNX Runtime's to Colorizer: used as it is


def test_hints_follow_the_photo_as_shown_exif_rotation_and_alpha_included(tmp_path):
    colorizer = Colorizer(Recorder(), 64)
    # Stored 60 wide and 20 high, shown rotated a quarter turn (EXIF 6): 20 wide, 60 high.
    stored = Image.new("L", (60, 20), 128)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", exif=exif)
    colorizer.colorize(tmp_path / "rotated.jpg", hints=[(19, 59, "#2040ff")])
    assert colorizer.network.seen[0, 2, 63, 63] == 1  # bottom right of the photo as shown
    rgba = Image.new("RGBA", (30, 30), (90, 90, 90, 128))
    out = colorizer.colorize(rgba, hints=[(0, 29, "#2040ff")])
    assert colorizer.network.seen[0, 2, 63, 0] == 1 and out.mode == "RGBA"


def test_without_hints_a_hinted_network_is_exactly_the_hint_free_one():
    torch.manual_seed(0)
    net = build_generator(HINTED).eval()
    plain = build_generator(ModelConfig("encoder_unet", 64, 5, 8, 64, encoder="mobilenet_v2")).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith(HINT_PARTS)})
    l_norm = torch.rand(2, 1, 64, 64) * 2 - 1
    clicks = scoring_clicks(torch.rand(2, 2, 64, 64) - 0.5, 5, seed=0)
    with torch.no_grad():
        assert torch.equal(net(l_norm), plain(l_norm))
        assert torch.equal(net(l_norm, torch.zeros_like(clicks)), net(l_norm))
        # From the first step a hinted pixel takes its hint, and the colour near it moves.
        hinted = net(l_norm, clicks)
        mask = clicks[:, 2:].bool().expand(-1, 2, -1, -1)
        assert torch.allclose(hinted[mask], clicks[:, :2][mask])
        assert (hinted - net(l_norm)).abs()[~mask].max() > 0.01


def test_simulated_clicks_reveal_the_true_colour_and_are_seeded():
    ab = torch.zeros(64, 2, 32, 32)
    ab[:, 0] = 0.3
    clicks = simulate_clicks(ab, torch.Generator().manual_seed(0))
    assert torch.equal(clicks, simulate_clicks(ab, torch.Generator().manual_seed(0)))
    hinted = clicks[:, 2].flatten(1).amax(dim=1) > 0
    assert 0.6 < hinted.float().mean() < 0.9  # a quarter of the photos get none
    assert torch.allclose(clicks[:, 0][clicks[:, 2] > 0], torch.tensor(0.3))
    fixed = scoring_clicks(ab, 10, seed=1)
    assert torch.equal(fixed, scoring_clicks(ab, 10, seed=1))
    assert (fixed[:, 2].sum(dim=(1, 2)) <= 90).all() and (fixed[:, 2].sum(dim=(1, 2)) >= 9).all()


def test_a_model_without_hints_refuses_them_with_a_sentence(tiny_model):
    colorizer = Colorizer.from_checkpoint(tiny_model)
    with pytest.raises(HintError, match="trained without hints"):
        colorizer.colorize(Image.new("L", (32, 32)), hints=[(1, 1, "#ff0000")])
    assert colorizer.colorize(Image.new("L", (32, 32)), hints=[]).size == (32, 32)


def test_hints_reach_the_onnx_model_as_they_reach_torch(hinted_model, tmp_path):
    from colorful_world.inference.onnx_backend import export_onnx
    export_onnx(hinted_model, tmp_path / "hinted.onnx")
    photo = Image.fromarray((np.random.default_rng(0).random((90, 70)) * 255).astype(np.uint8), "L")
    hints = [(10, 10, "#ff2020"), (60, 80, "#2020ff")]
    outs = {}
    for backend, path in (("torch", hinted_model), ("onnx", tmp_path / "hinted.onnx")):
        colorizer = Colorizer.from_checkpoint(path, backend=backend)
        outs[backend] = np.asarray(colorizer.colorize(photo, hints=hints)).astype(int)
        outs[backend + "_plain"] = np.asarray(colorizer.colorize(photo)).astype(int)
    assert np.abs(outs["torch"] - outs["onnx"]).max() <= 1
    assert np.abs(outs["torch_plain"] - outs["onnx_plain"]).max() <= 1
    assert np.abs(outs["torch"] - outs["torch_plain"]).max() > 5


@pytest.mark.slow
def test_a_model_trained_with_clicks_follows_a_hint(tmp_path):
    from colorful_world.training.train import train
    from synthetic import write_any_hue_photos
    write_any_hue_photos(tmp_path / "photos", 200, size=32, seed=0)
    model = train(dict(data=str(tmp_path / "photos"), out=str(tmp_path / "run"), image_size=32, batch_size=16,
                       epochs=12, l1_epochs=12, encoder_weights="random", base_channels=8, max_channels=64,
                       lr=1e-3, ema_decay=0.9, val_fraction=0.2, save_every=10_000, old_prints=0.0,
                       min_colourfulness=1.0, cache_dir=str(tmp_path / "cache")), progress=False)
    colorizer = Colorizer.from_checkpoint(model)
    colorizer.chroma_gain = 1.0
    y, x = np.mgrid[0:32, 0:32]
    photo = Image.fromarray(np.where((abs(y - 16) < 10) & (abs(x - 16) < 10), 150 + 25 * ((y // 2) % 2), 120)
                            .astype(np.uint8), "L")  # a shape like the training photos', of unknown hue
    purple = "#a040c0"
    target = np.array(srgb_to_ab((0xa0, 0x40, 0xc0)))

    def error_in_the_shape(hints):
        lab = rgb2lab(np.asarray(colorizer.colorize(photo, hints=hints)))
        return np.linalg.norm(lab[10:22, 10:22, 1:].mean(axis=(0, 1)) - target)

    without, hinted = error_in_the_shape(None), error_in_the_shape([(16, 16, purple)])
    assert hinted < 0.6 * without, (hinted, without)


def test_hints_only_trains_the_hint_weights_alone_under_the_models_own_gain(tmp_path):
    from colorful_world.nets.model_file import export_generator, load_model
    from colorful_world.training.train import train
    from synthetic import write_any_hue_photos
    write_any_hue_photos(tmp_path / "photos", 48, size=32, seed=1)
    config = ModelConfig("encoder_unet", 32, 5, 8, 64, encoder="mobilenet_v2", hints=True)
    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    export_generator(build_generator(config).state_dict(), config.__dict__ | {"chroma_gain": 1.3}, start)
    model = train(dict(data=str(tmp_path / "photos"), out=str(tmp_path / "run"), image_size=32, batch_size=8,
                       epochs=2, l1_epochs=2, encoder_weights="random", base_channels=8, max_channels=64,
                       init_from=str(start), hints_only=True, lr=1e-3, val_fraction=0.2, old_prints=0.0,
                       min_colourfulness=1.0, cache_dir=str(tmp_path / "cache")), progress=False)
    before, _, _ = load_model(start)
    after, saved, _ = load_model(model)
    assert saved["chroma_gain"] == 1.3  # trained under it, so it stays the model's
    network = [key for key in before if not key.startswith(HINT_PARTS)]
    assert network and all(torch.equal(before[key], after[key]) for key in network)  # BatchNorm's statistics too
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith(HINT_PARTS))


def test_hints_only_needs_a_model_to_start_from():
    from colorful_world.core.config import TrainConfig
    from colorful_world.io.errors import ConfigError
    with pytest.raises(ConfigError, match="--init-from"):
        TrainConfig(hints_only=True).validate()
