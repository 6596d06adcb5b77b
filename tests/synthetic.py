"""Synthetic photos whose colours follow from their grey image: the pattern inside a shape sets its hue.

Horizontal stripes are red, vertical stripes blue, a checkerboard green, on a grey textured
background. A colorizer that learned anything beats the mean colour by far; one that did not
cannot, because the mean colour is the best a pattern-blind guess can do.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import color

PATTERN_AB = {"hstripes": (55.0, 40.0), "vstripes": (15.0, -55.0), "checker": (-45.0, 40.0)}


def _pattern(kind: str, h: int, w: int, period: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    if kind == "hstripes":
        return (y // period) % 2
    if kind == "vstripes":
        return (x // period) % 2
    return ((y // period) + (x // period)) % 2


def synthetic_photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """One (size, size, 3) uint8 sRGB photo."""
    lab = np.zeros((size, size, 3))
    lab[..., 0] = 50 + rng.normal(0, 6, (size, size))  # grey, textured background
    for _ in range(rng.integers(1, 3)):
        kind = rng.choice(list(PATTERN_AB))
        half = rng.integers(size // 6, size // 3)
        cy, cx = rng.integers(half, size - half, 2)
        y, x = np.mgrid[0:size, 0:size]
        inside = (np.abs(y - cy) < half) & (np.abs(x - cx) < half)
        if rng.random() < 0.5:
            inside = (y - cy) ** 2 + (x - cx) ** 2 < half ** 2
        stripes = _pattern(kind, size, size, period=int(rng.integers(2, 4)))
        lab[..., 0] = np.where(inside, 45 + 25 * stripes, lab[..., 0])
        lab[..., 1] = np.where(inside, PATTERN_AB[kind][0], lab[..., 1])
        lab[..., 2] = np.where(inside, PATTERN_AB[kind][1], lab[..., 2])
    rgb = np.clip(color.lab2rgb(lab), 0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def write_synthetic_photos(folder: Path, count: int, size: int = 32, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"synthetic_{i:04d}.png"
        Image.fromarray(synthetic_photo(rng, size)).save(path)
        paths.append(path)
    return paths


def write_any_hue_photos(folder: Path, count: int, size: int = 32, seed: int = 0) -> list[Path]:
    """Photos whose shapes take any hue at random: nothing in the grey image tells it, so only a
    hint can (what colour hints are for)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    y, x = np.mgrid[0:size, 0:size]
    for i in range(count):
        lab = np.zeros((size, size, 3))
        lab[..., 0] = 50 + rng.normal(0, 6, (size, size))
        half = rng.integers(size // 4, size // 2 - 2)
        cy, cx = rng.integers(half, size - half, 2)
        inside = (np.abs(y - cy) < half) & (np.abs(x - cx) < half)
        hue = rng.uniform(0, 2 * np.pi)
        lab[..., 0] = np.where(inside, 60 + 10 * ((y // 2) % 2), lab[..., 0])
        lab[..., 1] = np.where(inside, 45 * np.cos(hue), 0)
        lab[..., 2] = np.where(inside, 45 * np.sin(hue), 0)
        path = folder / f"hue_{i:04d}.png"
        Image.fromarray((np.clip(color.lab2rgb(lab), 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
        paths.append(path)
    return paths
