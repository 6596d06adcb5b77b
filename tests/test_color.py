import numpy as np
import torch
from skimage import color as skcolor

from colorful_world.color import colourfulness, lab_to_rgb, model_to_rgb, rgb_to_lab, rgb_to_model


def _as_image(rgb: np.ndarray) -> torch.Tensor:
    return torch.tensor(rgb.T.reshape(1, 3, -1, 1), dtype=torch.float32)


def test_lab_agrees_with_scikit_image_within_half_a_delta_e():
    rgb = np.random.default_rng(0).random((5000, 3))
    ours = rgb_to_lab(_as_image(rgb))[0, :, :, 0].T.numpy()
    reference = skcolor.rgb2lab(rgb[None])[0]
    delta_e = np.sqrt(((ours - reference) ** 2).sum(axis=1))
    assert delta_e.max() < 0.5


def test_lab_to_rgb_agrees_with_scikit_image():
    rgb = np.random.default_rng(1).random((5000, 3))
    lab = skcolor.rgb2lab(rgb[None])[0]
    ours = lab_to_rgb(torch.tensor(lab.T.reshape(1, 3, -1, 1), dtype=torch.float32))[0, :, :, 0].T.numpy()
    assert np.abs(ours - rgb).max() < 2e-3


def test_round_trip_through_model_scaling():
    rgb = torch.rand(4, 3, 16, 16)
    l_norm, ab = rgb_to_model(rgb)
    assert l_norm.shape == (4, 1, 16, 16) and ab.shape == (4, 2, 16, 16)
    assert l_norm.min() >= -1 and l_norm.max() <= 1 and ab.abs().max() <= 1
    assert torch.allclose(model_to_rgb(l_norm, ab), rgb, atol=1e-3)


def test_colourfulness_is_zero_for_grey_and_high_for_colour():
    grey = torch.rand(1, 1, 8, 8).repeat(1, 3, 1, 1)
    vivid = torch.zeros(1, 3, 8, 8)
    vivid[:, 0, :, :4] = 1
    vivid[:, 2, :, 4:] = 1
    assert colourfulness(grey).item() < 1e-3
    assert colourfulness(vivid).item() > 60
