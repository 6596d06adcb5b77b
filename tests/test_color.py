import numpy as np
import torch
from skimage import color as skcolor

from colorful_world.core.color import colourfulness, delta_e2000, lab_to_rgb, model_to_rgb, rgb_to_lab, rgb_to_model


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


def test_ciede2000_agrees_with_scikit_image():
    rng = np.random.default_rng(2)
    lab1 = skcolor.rgb2lab(rng.random((1, 4000, 3)))
    lab2 = skcolor.rgb2lab(np.clip(skcolor.lab2rgb(lab1) + rng.normal(0, 0.1, lab1.shape), 0, 1))
    lab2[0, :200, 1:] = 0  # grey pixels: the hue terms' special cases
    reference = skcolor.deltaE_ciede2000(lab1, lab2)[0]
    as_tensor = lambda lab: torch.tensor(lab.transpose(0, 2, 1)[..., None], dtype=torch.float32)  # noqa: E731
    ours = delta_e2000(as_tensor(lab1), as_tensor(lab2))[0, :, 0].numpy()
    assert np.abs(ours - reference).max() < 1e-3
    assert delta_e2000(as_tensor(lab1), as_tensor(lab1)).max() < 1e-3
