"""sRGB <-> CIELAB (D65) on tensors, and the scaling the networks see.

kornia does the conversion (the same formulas as scikit-image), so it runs on the GPU inside
the training step. The networks see L scaled to [-1, 1] and predict ab scaled by AB_SCALE, so
a tanh output covers the whole sRGB gamut.
"""

import kornia.color
import torch

AB_SCALE = 110.0  # |a|, |b| of sRGB colours stay below ~108


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB in [0, 1] -> Lab with L in [0, 100]."""
    return kornia.color.rgb_to_lab(rgb.float())


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) Lab -> sRGB in [0, 1], out-of-gamut colours clipped."""
    return kornia.color.lab_to_rgb(lab.float(), clip=True)


def normalize_l(light: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> the generator's input range [-1, 1]."""
    return light / 50.0 - 1.0


def rgb_to_model(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB in [0, 1] -> (L in [-1, 1] as (N,1,H,W), ab / AB_SCALE as (N,2,H,W))."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[:, :1]), lab[:, 1:] / AB_SCALE


def model_to_rgb(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_model; L and ab may come from different sources (that is the point)."""
    lab = torch.cat([(l_norm.float() + 1.0) * 50.0, ab_norm.float() * AB_SCALE], dim=1)
    return lab_to_rgb(lab)


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk colourfulness of (N, 3, H, W) sRGB in [0, 1], on the 0-255 scale.

    About 0 for a grey photo, 15-35 for an everyday one, over 60 for a vivid one.
    """
    r, g, b = (rgb.float() * 255.0).unbind(dim=1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return std + 0.3 * mean
