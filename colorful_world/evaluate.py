"""Figures for a trained model on held-out photos, next to the grey and mean-colour baselines."""

from pathlib import Path

import torch

from colorful_world import runtime as rt
from colorful_world.model_file import load_generator
from colorful_world.data import load_splits
from colorful_world.paths import decoded_cache_dir
from colorful_world.metrics import mean_ab, score
from colorful_world.predict import predict_ab
from colorful_world.report import save_samples


FRAMINGS = ("whole", "crop")


def _predictors(checkpoint, data: str, cache_dir, progress: bool, size: int | None):
    """(the model and both baselines as L -> ab predictors, the validation splits, the device)."""
    generator, config, _ = load_generator(checkpoint)
    runtime = rt.local()
    generator.to(runtime.device)
    own = config["image_size"]
    splits = load_splits(data, size or own, config["val_fraction"], config["seed"],
                         config["min_colourfulness"], Path(cache_dir) if cache_dir else decoded_cache_dir(),
                         config.get("max_images") or None, progress, with_train="mean_ab" not in config)
    mean = torch.tensor(config.get("mean_ab") or mean_ab(splits.train), device=runtime.device).view(1, 2, 1, 1)
    predictors = {
        "model": lambda l_norm: predict_ab(generator, l_norm, own, runtime),
        "grey": lambda l_norm: torch.zeros_like(l_norm).repeat(1, 2, 1, 1),
        "mean_colour": lambda l_norm: mean.expand(len(l_norm), 2, *l_norm.shape[-2:]),
    }
    return predictors, splits, runtime.device


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
    predictors, splits, device = _predictors(checkpoint, data, cache_dir, progress, size)
    photos = splits.val_crop if framing == "crop" else splits.val
    results = {name: score(predict, photos, device) for name, predict in predictors.items()}
    results["model"]["photos"] = len(photos)
    return results


def sample_grids(checkpoint: str | Path | None, data: str, out_dir: Path, cache_dir: str | Path | None = None,
                 samples: int = 8) -> dict[str, Path]:
    """PNG grids (grey | prediction | truth) of `samples` validation photos of different people,
    whole then tightly cropped, for the model and the mean-colour baseline: {name: path}."""
    predictors, splits, device = _predictors(checkpoint, data, cache_dir, False, None)
    spread = torch.linspace(0, len(splits.val) - 1, min(samples, len(splits.val))).long()
    photos = torch.cat([splits.val[spread], splits.val_crop[spread]])
    grids = {}
    for name in ("model", "mean_colour"):
        grids[name] = Path(out_dir) / f"{name}.png"
        save_samples(predictors[name], photos, device, grids[name])
    return grids


COLUMNS = (("ab_l1", "ab L1"), ("psnr", "PSNR dB"), ("ssim", "SSIM"), ("delta_e2000", "dE2000"),
           ("colourfulness", "colourful"), ("colourfulness_ratio", "vs truth"))


def format_table(results: dict[str, dict[str, float]]) -> str:
    lines = [f"{'':<12}" + "".join(f"{label:>11}" for _, label in COLUMNS)]
    for name, r in results.items():
        lines.append(f"{name:<12}" + "".join(f"{r[key]:>11.3f}" for key, _ in COLUMNS))
    return "\n".join(lines)
