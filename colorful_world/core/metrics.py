"""Colour quality figures, and scoring a predictor on a set of photos."""

from collections.abc import Callable

import kornia.metrics
import torch
from tqdm.auto import tqdm

from colorful_world.core.simulated_clicks import scoring_clicks
from colorful_world.core.color import colourfulness, delta_e2000, model_to_rgb, rgb_to_lab, rgb_to_model
from colorful_world.core.old_print import old_print_framing
from colorful_world.core.units import AB_SCALE


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) images in [0, 1] (kornia's averages over the batch)."""
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def image_figures(out: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image figures of a colorized RGB batch against the true one, both in [0, 1]."""
    return {
        "psnr": psnr(out, truth),
        "ssim": kornia.metrics.ssim(out, truth, window_size=11).mean(dim=(1, 2, 3)),
        "delta_e2000": delta_e2000(rgb_to_lab(out), rgb_to_lab(truth)).mean(dim=(1, 2)),
        "colourfulness": colourfulness(out),
        "colourfulness_truth": colourfulness(truth),
    }


@torch.no_grad()
def score(predict_ab: Callable[..., torch.Tensor], images: torch.Tensor, device: torch.device,
          batch_size: int = 32, old_print: bool = False, hints: int = 0, progress: str = "") -> dict[str, float]:
    """Score a predictor (L, hints) -> ab on uint8 photos (N, 3, H, W) against their true colours.

    old_print: the predictor sees each photo's L as an old print (a fixed draw, the same for
    every model); its colour is still scored on the clean L: colour alone, not the damage.
    hints: that many clicks sampled from the truth (the same points for every model).

    ab_l1: mean |ab error| in CIELAB units. psnr (dB), ssim and delta_e2000 (CIEDE2000) of the
    recombined RGB photo. colourfulness_ratio: how colourful the results are next to the truth
    (1.0 = as colourful; a model that paints one safe skin tone scores 0.3 to 0.55).
    `progress`: a progress bar's label (none without one).
    """
    sums: dict[str, float] = {}
    for start in tqdm(range(0, len(images), batch_size), desc=progress, unit="batch", leave=False,
                      disable=not progress):
        rgb = images[start:start + batch_size].to(device).float() / 255
        l_norm, ab_true = rgb_to_model(rgb)
        l_input = old_print_framing(l_norm, first_index=start) if old_print else l_norm
        clicks = scoring_clicks(ab_true, hints, seed=start) if hints else None
        ab_pred = predict_ab(l_input, clicks).float()
        figures = image_figures(model_to_rgb(l_norm, ab_pred), rgb)
        figures["ab_l1"] = (ab_pred - ab_true).abs().mean(dim=(1, 2, 3)) * AB_SCALE
        for key, values in figures.items():
            sums[key] = sums.get(key, 0.0) + values.sum().item()
    means = {key: total / len(images) for key, total in sums.items()}
    means["colourfulness_ratio"] = means["colourfulness"] / max(means["colourfulness_truth"], 1e-8)
    return means


def mean_ab(images: torch.Tensor, sample: int = 1024) -> list[float]:
    """Mean (a, b) / AB_SCALE of a set of uint8 photos: the mean-colour baseline's one colour."""
    step = max(1, len(images) // sample)
    _, ab = rgb_to_model(images[::step].float() / 255)
    return ab.mean(dim=(0, 2, 3)).tolist()
