"""Figures for a trained model on held-out photos, next to the grey and mean-colour baselines."""

from pathlib import Path

import torch

from colorful_world import runtime as rt
from colorful_world.checkpoint import load_generator
from colorful_world.colorize import predict_ab
from colorful_world.data import load_splits
from colorful_world.paths import decoded_cache_dir
from colorful_world.metrics import mean_ab, score


FRAMINGS = ("whole", "crop")


def evaluate(checkpoint: str | Path | None, data: str, cache_dir: str | Path | None = None,
             progress: bool = True, size: int | None = None, framing: str = "whole") -> dict[str, dict[str, float]]:
    """Score on the validation split the model was trained with (same seed, same people held out),
    at `size` px (default: the model's own; otherwise it colorizes at its own size and its colour
    is resized, as `colorize` does for any photo). `framing`: the whole photos, or their tight
    central crops ("crop", the central half of the side: on LFW, the face).

    Baselines: 'grey' predicts no colour at all; 'mean_colour' paints every pixel with the
    training set's mean colour. A useful colorizer beats both on ab L1 and PSNR.
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    generator, config, _ = load_generator(checkpoint)
    run = rt.local()
    device = run.device
    generator.to(device)
    own = config["image_size"]
    splits = load_splits(data, size or own, config["val_fraction"], config["seed"],
                         config["min_colourfulness"], Path(cache_dir) if cache_dir else decoded_cache_dir(),
                         config.get("max_images") or None, progress, with_train="mean_ab" not in config)
    mean = torch.tensor(config.get("mean_ab") or mean_ab(splits.train), device=device).view(1, 2, 1, 1)

    predictors = {
        "model": lambda l_norm: predict_ab(generator, l_norm, own, run),
        "grey": lambda l_norm: torch.zeros_like(l_norm).repeat(1, 2, 1, 1),
        "mean_colour": lambda l_norm: mean.expand(len(l_norm), 2, *l_norm.shape[-2:]),
    }
    photos = splits.val_crop if framing == "crop" else splits.val
    results = {name: score(predict, photos, device) for name, predict in predictors.items()}
    results["model"]["photos"] = len(photos)
    return results


COLUMNS = (("ab_l1", "ab L1"), ("psnr", "PSNR dB"), ("ssim", "SSIM"), ("delta_e2000", "dE2000"),
           ("colourfulness", "colourful"), ("colourfulness_ratio", "vs truth"))


def format_table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'':<12}" + "".join(f"{label:>11}" for _, label in COLUMNS)]
    for name, r in results.items():
        lines.append(f"{name:<12}" + "".join(f"{r[key]:>11.3f}" for key, _ in COLUMNS))
    return "\n".join(lines)
