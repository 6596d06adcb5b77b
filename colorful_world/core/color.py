"""sRGB <-> CIELAB (D65) on tensors, and the scaling the networks see.

kornia does the conversion (the same formulas as scikit-image), so it runs on the GPU inside
the training step. The networks see L scaled to [-1, 1] and predict ab scaled by AB_SCALE, so
a tanh output covers the whole sRGB gamut.
"""

import kornia.color
import torch

from colorful_world.core.units import AB_SCALE, normalize_l



def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB in [0, 1] -> Lab with L in [0, 100]."""
    return kornia.color.rgb_to_lab(rgb.float())


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) Lab -> sRGB in [0, 1], out-of-gamut colours clipped."""
    return kornia.color.lab_to_rgb(lab.float(), clip=True)


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


def chroma_deficit(ab_pred: torch.Tensor, ab_true: torch.Tensor) -> torch.Tensor:
    """How far each pixel's chroma (|ab|) falls short of the truth's, averaged; a pixel at least
    as saturated as its truth counts 0. (N, 2, H, W), any common unit.

    Per pixel, so it cannot be met by a few loud pixels elsewhere (a per-photo colourfulness
    target was: it painted blue streaks into backgrounds), and it pushes along the hue the
    network chose, never choosing one for it.
    """
    def chroma(ab):
        return torch.sqrt(ab.float().pow(2).sum(dim=1) + 1e-8)
    return torch.relu(chroma(ab_true) - chroma(ab_pred)).mean()


def delta_e2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference of (N, 3, H, W) Lab images, per pixel (N, H, W).

    Sharma, Wu & Dalal (2005). Written here because kornia has no CIEDE2000; scikit-image's,
    the tests' reference, runs on numpy only.
    """
    (l1, a1, b1), (l2, a2, b2) = lab1.float().unbind(1), lab2.float().unbind(1)
    c_mean7 = ((torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - torch.sqrt(c_mean7 / (c_mean7 + 25.0 ** 7)))
    a1, a2 = a1 * (1 + g), a2 * (1 + g)
    c1, c2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    h1 = torch.rad2deg(torch.atan2(b1, a1)) % 360
    h2 = torch.rad2deg(torch.atan2(b2, a2)) % 360
    chroma = c1 * c2 != 0

    dh = h2 - h1
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma, dh, torch.zeros_like(dh))
    d_hue = 2 * torch.sqrt(c1 * c2) * torch.sin(torch.deg2rad(dh / 2))

    h_mean = (h1 + h2) / 2
    h_mean = torch.where((h1 - h2).abs() > 180, torch.where(h1 + h2 < 360, h_mean + 180, h_mean - 180), h_mean)
    h_mean = torch.where(chroma, h_mean, h1 + h2)
    t = (1 - 0.17 * torch.cos(torch.deg2rad(h_mean - 30)) + 0.24 * torch.cos(torch.deg2rad(2 * h_mean))
         + 0.32 * torch.cos(torch.deg2rad(3 * h_mean + 6)) - 0.20 * torch.cos(torch.deg2rad(4 * h_mean - 63)))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / torch.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * c_mean
    s_h = 1 + 0.015 * c_mean * t
    rotation = -torch.sin(torch.deg2rad(60 * torch.exp(-(((h_mean - 275) / 25) ** 2)))) \
        * 2 * torch.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7))
    dl, dc, dhh = (l2 - l1) / s_l, (c2 - c1) / s_c, d_hue / s_h
    return torch.sqrt((dl ** 2 + dc ** 2 + dhh ** 2 + rotation * dc * dhh).clamp_min(0))
