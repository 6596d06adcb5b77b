import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from colorful_world.color import lab_to_rgb, rgb_to_lab
from colorful_world.color_lut import lab_to_srgb_u8, lightness_u8
from colorful_world.png import png_bytes


def test_lightness_matches_the_float_conversion_for_colour_and_grey_photos():
    colour = torch.from_numpy(skdata.astronaut()[::2, ::2].copy())
    grey = colour[..., :1].expand(-1, -1, 3).contiguous()
    for rgb in (colour, grey):
        expected = rgb_to_lab(rgb.permute(2, 0, 1)[None].float() / 255)[:, :1]
        assert (lightness_u8(rgb) - expected).abs().max() < 1e-3


def test_lab_to_8_bits_matches_the_float_conversion_within_one_level():
    torch.manual_seed(0)
    light = torch.rand(2, 1, 64, 64) * 100
    ab = torch.randn(2, 2, 64, 64) * 60  # many colours outside sRGB: clipped the same way
    expected = (lab_to_rgb(torch.cat([light, ab], dim=1)) * 255 + 0.5).clamp(0, 255).byte()
    ours = lab_to_srgb_u8(light, ab)
    assert ours.dtype == torch.uint8 and ours.shape == expected.shape
    assert (ours.int() - expected.int()).abs().max() <= 1
    assert (ours != expected).float().mean() < 0.01


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_png_writer_round_trips_every_mode(mode):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA").convert(mode)
    decoded = Image.open(io.BytesIO(png_bytes(image)))
    native = mode in ("L", "LA", "RGB", "RGBA")
    assert decoded.mode == mode if native else decoded.mode in ("RGB", "RGBA")
    assert decoded.size == (53, 37)
    expected = image if native else image.convert(decoded.mode)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


def test_png_writer_compresses_a_photo_about_as_well_as_pil():
    photo = Image.fromarray(skdata.astronaut())
    pil = io.BytesIO()
    photo.save(pil, "PNG", compress_level=1)
    assert len(png_bytes(photo)) < 1.1 * len(pil.getvalue())
