import numpy as np
import torch
from skimage import data as skdata

from colorful_world.core.color import lab_to_rgb, rgb_to_lab
from colorful_world.core.color_lut import lab_to_srgb_u8, lightness_u8


def test_lightness_matches_the_float_conversion_for_colour_and_grey_photos():
    colour = torch.from_numpy(skdata.astronaut()[::2, ::2].copy())
    grey = colour[..., :1].expand(-1, -1, 3).contiguous()
    for rgb in (colour, grey):
        expected = rgb_to_lab(rgb.permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()
        assert np.abs(lightness_u8(rgb.numpy()) - expected).max() < 1e-3
    assert np.array_equal(lightness_u8(grey[..., 0].numpy()), lightness_u8(grey.numpy()))  # one plane: the same L


def test_lab_to_8_bits_matches_the_float_conversion_within_one_level():
    torch.manual_seed(0)
    light = torch.rand(1, 1, 1030, 80) * 100  # 1030 rows: bands of 409, the last one shorter
    ab = torch.randn(1, 2, 1030, 80) * 60  # many colours outside sRGB: clipped the same way
    expected = (lab_to_rgb(torch.cat([light, ab], dim=1))[0].permute(1, 2, 0) * 255 + 0.5).clamp(0, 255).byte()
    ours = torch.from_numpy(lab_to_srgb_u8(light[0, 0].numpy(), ab[0].numpy()))
    assert ours.dtype == torch.uint8 and ours.shape == expected.shape
    assert (ours.int() - expected.int()).abs().max() <= 1
    assert (ours != expected).float().mean() < 0.01
