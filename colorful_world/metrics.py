"""Colour quality figures, and scoring a predictor on a set of photos."""

from collections.abc import Callable

import torch

from colorful_world.color import AB_SCALE, colourfulness, model_to_rgb, rgb_to_model


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) images in [0, 1]."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@torch.no_grad()
def score(predict_ab: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
          device: torch.device, batch_size: int = 32) -> dict[str, float]:
    """Score a predictor L -> ab on uint8 photos (N, 3, H, W) against their true colours.

    ab_l1: mean |ab error| in CIELAB units. psnr: dB of the recombined RGB photo.
    colourfulness_ratio: how colourful the result is next to the truth (1.0 = as colourful).
    """
    l1_sum, psnr_sum, c_pred, c_true = 0.0, 0.0, 0.0, 0.0
    for start in range(0, len(images), batch_size):
        rgb = images[start:start + batch_size].to(device).float() / 255
        l_norm, ab_true = rgb_to_model(rgb)
        ab_pred = predict_ab(l_norm).float()
        out = model_to_rgb(l_norm, ab_pred)
        l1_sum += ((ab_pred - ab_true).abs().mean(dim=(1, 2, 3)) * AB_SCALE).sum().item()
        psnr_sum += psnr(out, rgb).sum().item()
        c_pred += colourfulness(out).sum().item()
        c_true += colourfulness(rgb).sum().item()
    n = len(images)
    return {"ab_l1": l1_sum / n, "psnr": psnr_sum / n, "colourfulness_ratio": c_pred / max(c_true, 1e-8)}


def mean_ab(images: torch.Tensor, sample: int = 1024) -> list[float]:
    """Mean (a, b) / AB_SCALE of a set of uint8 photos: the mean-colour baseline's one colour."""
    step = max(1, len(images) // sample)
    _, ab = rgb_to_model(images[::step].float() / 255)
    return ab.mean(dim=(0, 2, 3)).tolist()
