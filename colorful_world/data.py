"""Training data: find photos, split by person, decode once into a uint8 cache, serve batches.

Decoding JPEGs is the slow part of every epoch, so each photo is decoded once, resized to a
little more than the training size (room for random crops), and kept in one uint8 array on
disk that later epochs and later runs memory-map.
"""

import hashlib
import json
import os
import random
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from colorful_world.archive import is_archive, safe_extract
from colorful_world.color import colourfulness
from colorful_world.images import BadImageError, find_images, load_rgb

CROP_MARGIN = 1.125  # cache at 9/8 of the training size, as pix2pix loads 286 px to crop 256


class DataError(ValueError):
    """No usable photos where the user pointed."""


def resolve_data(data: str, cache_dir: Path) -> Path:
    """--data as given -> a folder of photos: 'lfw' (downloaded), an archive, or a folder."""
    if data == "lfw":
        from colorful_world.download import prepare_lfw  # network code only when asked for
        return prepare_lfw()
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such folder or archive")
    if path.is_file():
        if not is_archive(path):
            raise DataError(f"{path}: not a folder or a .tgz/.tar/.zip archive")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        return safe_extract(path, cache_dir / "extracted" / f"{path.stem}-{digest}")
    return path


def split_by_person(files: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Train/validation split. In the LFW layout (<Person>/<Person>_0001.jpg) a person's photos
    all land on one side, so validation faces are never seen in training; otherwise by file."""
    lfw_layout = all(f.stem.startswith(f.parent.name + "_") for f in files)
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent.name if lfw_layout else str(f), []).append(f)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(len(keys) * val_fraction)) if len(keys) > 1 else 0
    val = [f for k in keys[:n_val] for f in groups[k]]
    train = [f for k in keys[n_val:] for f in groups[k]]
    return sorted(train), sorted(val)


def _decode(path: Path, size: int) -> np.ndarray:
    """Photo -> (3, size, size) uint8: short side resized to `size`, centre cropped."""
    rgb, _ = load_rgb(path)
    image = Image.fromarray(rgb)
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.BICUBIC, reducing_gap=3.0)
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1)


def _temp_beside(path: Path) -> Path:
    """A temporary name of this build's own: two runs decoding the same photos at once each
    write a complete copy, and the last rename wins."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    return Path(name)


@dataclass
class ImageCache:
    images: np.ndarray  # (N, 3, S, S) uint8, memory-mapped
    files: list[str]
    colourfulness: np.ndarray  # (N,) float32, NaN for an unreadable file
    bad: list[str]  # files that could not be decoded, with the reason


def build_cache(files: list[Path], size: int, cache_dir: Path, progress: bool = True) -> ImageCache:
    """Decode every photo once at `size`; reuse the cache when the same files were decoded before."""
    key = hashlib.sha1(json.dumps([size] + [f"{f.resolve()}:{f.stat().st_size}" for f in files])
                       .encode()).hexdigest()[:16]
    array_path, index_path = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if array_path.exists() and index_path.exists():
        index = json.loads(index_path.read_text())
        return ImageCache(np.load(array_path, mmap_mode="r"), index["files"],
                          np.array(index["colourfulness"], dtype=np.float32), index["bad"])

    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(array_path)
    images = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8,
                                       shape=(len(files), 3, size, size))
    scores = np.full(len(files), np.nan, dtype=np.float32)  # NaN marks an unreadable file
    bad = []

    def decode(i: int) -> None:
        try:
            images[i] = _decode(files[i], size)
            scores[i] = colourfulness(torch.from_numpy(images[i][None]).float() / 255).item()
        except (BadImageError, OSError, ValueError) as err:
            bad.append(f"{files[i]}: {err}")

    with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
        for _ in tqdm(pool.map(decode, range(len(files))), total=len(files),
                      desc="decoding photos", disable=not progress):
            pass
    images.flush()
    del images
    os.replace(tmp_path, array_path)  # publish only a complete cache
    index = {"files": [str(f) for f in files], "colourfulness": scores.tolist(), "bad": sorted(bad)}
    tmp_index = _temp_beside(index_path)
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, index_path)
    return ImageCache(np.load(array_path, mmap_mode="r"), index["files"], scores, index["bad"])


@dataclass
class Splits:
    train: torch.Tensor  # (N, 3, S', S') uint8, S' = cache size (crops are taken from it)
    val: torch.Tensor  # (M, 3, S, S) uint8, centre crops at training size
    dropped_grey: int
    bad: list[str]


def load_splits(data: str, image_size: int, val_fraction: float, seed: int, min_colourfulness: float,
                cache_dir: Path, max_images: int | None = None, progress: bool = True,
                with_train: bool = True) -> Splits:
    """Everything training needs from --data, in memory as uint8 tensors (with_train=False:
    only the validation photos are decoded; the training split comes back empty)."""
    root = resolve_data(data, cache_dir)
    files = find_images(root)
    if max_images:
        files = files[:max_images]
    if len(files) < 2:
        raise DataError(f"{root}: found {len(files)} photos; training needs at least 2")
    train_files, val_files = split_by_person(files, val_fraction, seed)
    cache_size = round(image_size * CROP_MARGIN)

    def decode(split: list[Path]) -> tuple[torch.Tensor, int, list[str]]:
        if not split:
            return torch.empty(0, 3, cache_size, cache_size, dtype=torch.uint8), 0, []
        cache = build_cache(split, cache_size, cache_dir / "decoded", progress)
        keep = cache.colourfulness >= min_colourfulness  # False for unreadable (NaN) too
        grey = int((cache.colourfulness < min_colourfulness).sum())
        return torch.from_numpy(np.ascontiguousarray(cache.images[keep])), grey, cache.bad

    train, grey_t, bad_t = decode(train_files if with_train else [])
    val, grey_v, bad_v = decode(val_files)
    if with_train and len(train) == 0:
        raise DataError(f"{root}: no colour photos left for training ({len(files)} found, "
                        f"{len(bad_t)} unreadable, {grey_t} grey)")
    return Splits(train, centre_crop(val, image_size), grey_t + grey_v, bad_t + bad_v)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    top = (images.shape[-1] - size) // 2
    return images[..., top:top + size, top:top + size]


def epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    """The shuffled order of one epoch, a function of (seed, epoch) only, so a resumed run replays it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def augment(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of `size` and random horizontal flip, per image."""
    n, _, h, w = images.shape
    tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    crops = [img[:, t:t + size, l:l + size] for img, t, l in zip(images, tops, lefts)]
    return torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips)])
