"""Figures for a trained model on held-out photos, next to the grey and mean-colour baselines."""

from pathlib import Path

import torch

from colorful_world.core import runtime as rt
from colorful_world.nets.model_file import load_generator
from colorful_world.core.color import rgb_to_model
from colorful_world.core.hints import MAX_HINTS
from colorful_world.io.errors import ConfigError
from colorful_world.core.data import TIGHT_CROP, centre_crop, load_splits, resize_u8
from colorful_world.io.paths import decoded_cache_dir
from colorful_world.core.metrics import mean_ab, score
from colorful_world.nets.predict import hints_for_gain, predict_ab
from colorful_world.core.report import save_samples


# old: the whole photos as old prints, colour scored alone; scenes: the held-out photos of every
# --data source after the first (with one source, its own)
FRAMINGS = ("whole", "crop", "old", "scenes")


def _model_and_splits(checkpoint, data: str | list[str], cache_dir, progress: bool, size: int | None,
                      with_train: bool | None = None):
    """(generator on the device, its config, the splits it was trained with, the runtime). The
    training photos are decoded when asked, or (None) when the config lacks their mean colour."""
    generator, config, _ = load_generator(checkpoint)
    with_train = "mean_ab" not in config if with_train is None else with_train
    runtime = rt.local()
    generator.to(runtime.device)
    splits = load_splits(data, size or config["image_size"], config["val_fraction"], config["seed"],
                         config["min_colourfulness"], Path(cache_dir) if cache_dir else decoded_cache_dir(),
                         config.get("max_images") or None, progress, with_train=with_train)
    return generator, config, splits, runtime


def _predictors(checkpoint, data: str | list[str], cache_dir, progress: bool, size: int | None, chroma_gain: float | None = None):
    """(the model and both baselines as L -> ab predictors, the validation splits, the device).
    The model's colour is scaled by `chroma_gain`, default its own (as `Colorizer` does)."""
    generator, config, splits, runtime = _model_and_splits(checkpoint, data, cache_dir, progress, size)
    own = config["image_size"]
    gain = config.get("chroma_gain", 1.0) if chroma_gain is None else chroma_gain
    mean = torch.tensor(config.get("mean_ab") or mean_ab(splits.train), device=runtime.device).view(1, 2, 1, 1)
    predictors = {
        "model": lambda l_norm, hints=None: predict_ab(generator, l_norm, own, runtime,
                                                       hints_for_gain(hints, gain)) * gain,
        "grey": lambda l_norm, hints=None: torch.zeros_like(l_norm).repeat(1, 2, 1, 1),
        "mean_colour": lambda l_norm, hints=None: mean.expand(len(l_norm), 2, *l_norm.shape[-2:]),
    }
    return predictors, splits, runtime.device


@torch.no_grad()
def calibrate_chroma(checkpoint, data: str, cache_dir=None, photos: int = 2000, progress: bool = True) -> float:
    """The chroma gain that makes the model's colour as strong as the truth's on average:
    sum |ab true| / sum |ab predicted| over up to `photos` training photos, whole and tightly
    cropped (never the validation photos it is then scored on). L1 pulls the colour it is unsure
    of towards grey; this undoes that pull on average, not photo by photo."""
    generator, config, splits, runtime = _model_and_splits(checkpoint, data, cache_dir, progress, None, True)
    size = config["image_size"]
    chosen = splits.train[::max(1, len(splits.train) // photos)][:photos]
    truth = predicted = 0.0
    for framing in (chosen, centre_crop(chosen, TIGHT_CROP)):
        images = resize_u8(framing, size)
        for start in range(0, len(images), 32):
            l_norm, ab_true = rgb_to_model(images[start:start + 32].to(runtime.device).float() / 255)
            truth += ab_true.norm(dim=1).sum().item()
            predicted += predict_ab(generator, l_norm, size, runtime).float().norm(dim=1).sum().item()
    return truth / predicted


def evaluate(checkpoint: str | Path | None, data: str | list[str], cache_dir: str | Path | None = None,
             progress: bool = True, size: int | None = None, framing: str = "whole",
             chroma_gain: float | None = None, hints: int = 0) -> dict[str, dict[str, float]]:
    """Score on the validation split the model was trained with (same seed, same people held out),
    at `size` px (default: the model's own; otherwise it colorizes at its own size and its colour
    is resized, as `colorize` does for any photo). `framing`: the whole photos, or their tight
    central crops ("crop", the central half of the side: on LFW, the face), or the whole photos
    made to look like old prints ("old": a fixed draw; the colour is scored on the clean L), or
    ("scenes") the held-out photos of the sources after the first, when `data` names several.
    `hints`: that many clicks per photo, sampled from the truth (the same for every model).

    Baselines: 'grey' predicts no colour at all; 'mean_colour' paints every pixel with the
    training set's mean colour. A useful colorizer beats both on ab L1 and PSNR.
    `chroma_gain` overrides the model's own (see `calibrate_chroma`).
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    if not isinstance(hints, int) or not 0 <= hints <= MAX_HINTS:
        raise ConfigError(f"hints must be a whole number from 0 to {MAX_HINTS}, got {hints!r}")
    predictors, splits, device = _predictors(checkpoint, data, cache_dir, progress, size, chroma_gain)
    photos = {"crop": splits.val_crop, "scenes": splits.val_scenes}.get(framing)
    photos = splits.val if photos is None else photos
    results = {name: score(predict, photos, device, old_print=framing == "old", hints=hints,
                           progress=f"scoring {name.replace('_', ' ')}" if progress else "")
               for name, predict in predictors.items()}
    results["model"] |= {"photos": len(photos), "size": photos.shape[-1]}
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
