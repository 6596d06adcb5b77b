"""Training data: find photos, split by person, decode once into a uint8 cache, serve batches.

Decoding JPEGs is the slow part of every epoch, so each photo is decoded once, resized to twice
the training size (room for tight crops that still hold real detail), and kept in one uint8
array on disk that later epochs and later runs memory-map.

Two framings of the same held-out photos are scored: the whole photo, as `colorize` sees it,
and its tight central crop, the framing of face data sets that crop to the face. A model
trained on one framing alone has been seen to lose on the other; random-scale crops in
training (`min_crop`) cover both.

--data may name several sources (faces first, then scenes): each is split on its own, and
with --data-weights each batch draws its photos from them in fixed shares. The first source's
held-out photos give the face framings; the others' give the "scenes" framing.
"""

import errno
import functools
import hashlib
import json
import math
import os
import random
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from colorful_world.io.archive import is_archive, safe_extract
from colorful_world.core.recolour import recolour
from colorful_world.core.simulated_clicks import simulate_clicks
from colorful_world.core.color import colourfulness, rgb_to_model
from colorful_world.core.config import TrainConfig
from colorful_world.core.old_print import damage_batch
from colorful_world.io import atomic
from colorful_world.io.errors import UserError
from colorful_world.io.images import BadImageError, find_images, load_rgb

TIGHT_CROP = 0.5  # the validation's tight framing: the central half of the side (LFW: the face)


def cache_side(image_size: int) -> int:
    """Decoded photos are kept at twice the training size, so a tight crop keeps real detail,
    but at most 256 px (LFW's photos are 250) and at least pix2pix's 9/8 margin."""
    return max(round(image_size * 1.125), min(2 * image_size, 256))


class DataError(UserError, ValueError):
    """No usable photos where the user pointed."""


def resolve_data(data: str, cache_dir: Path) -> Path:
    """--data as given -> a folder of photos: 'lfw' (downloaded), an archive, or a folder."""
    if data == "lfw":
        from colorful_world.io.download import prepare_lfw  # network code only when asked for
        return prepare_lfw(alternatives="--data PATH, LFW's archive (.tgz/.zip) or its extracted folder, on "
                                        "this machine; or colorful-world download-lfw --url URL first")
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such folder or archive")
    if path.is_file():
        if not is_archive(path):
            raise DataError(f"{path}: not a folder or a .tgz/.tar/.zip archive")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        return safe_extract(path, cache_dir / "extracted" / f"{path.stem}-{digest}")
    return path


def data_sources(data: str | list[str]) -> list[str]:
    """--data as a list of sources: one given as text, or several."""
    sources = [data] if isinstance(data, str) else list(data)
    if not sources or not all(isinstance(source, str) and source for source in sources):
        raise DataError(f"--data must name a folder, an archive or 'lfw', got {data!r}")
    return sources


def train_val_folders(root: Path) -> tuple[Path, Path] | None:
    """A source that ships its own split: train/ and val/ folders at its top, or one folder down
    (an archive's single top folder); None when it has none."""
    children = [c for c in root.iterdir() if c.is_dir() and not c.name.startswith((".", "__"))]
    for top in [root] + (children if len(children) == 1 else []):
        if (top / "train").is_dir() and (top / "val").is_dir():
            return top / "train", top / "val"
    return None


def split_source(root: Path, val_fraction: float, seed: int, max_images: int | None = None,
                 need_train: bool = True) -> tuple[list[Path], list[Path]]:
    """One source's (train, val) photos: its own train/ and val/ folders where it has them,
    otherwise split_by_person. `max_images`: the first N of each side, for a quick try."""
    folders = train_val_folders(root)
    if folders:
        train, val = (find_images(folder)[:max_images or None] for folder in folders)
    else:
        files = find_images(root)[:max_images or None]
        if len(files) < 2:
            raise DataError(f"{root}: found {len(files)} photos; a source needs at least 2 (one to train on, "
                            "one to hold out)")
        train, val = split_by_person(files, val_fraction, seed)
    if need_train and not train:
        raise DataError(f"{root}: no photos to train on")
    return train, val


def split_by_person(files: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Train/validation split. Photos in the LFW layout (<Person>/<Person>_0001.jpg) are grouped by
    person, so validation faces are never seen in training; any other photo is a group of its own
    (a stray file among the people never turns the split into one by file)."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent.name if f.stem.startswith(f.parent.name + "_") else str(f), []).append(f)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = max(1, round(len(keys) * val_fraction)) if len(keys) > 1 else 0
    val = [f for k in keys[:n_val] for f in groups[k]]
    train = [f for k in keys[n_val:] for f in groups[k]]
    return sorted(train), sorted(val)


def _decode_square(path: Path, size: int) -> np.ndarray:
    """Photo -> (3, size, size) uint8: short side resized to `size`, centre cropped."""
    rgb, _ = load_rgb(path)
    image = Image.fromarray(rgb)
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.BICUBIC, reducing_gap=3.0)
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1)


def _temp_beside(path: Path) -> Path:
    """A temporary name of this build's own (io.atomic's): two runs decoding the same photos at
    once each write a complete copy, and the last rename wins."""
    return atomic.temporary_name(path)


def _reserved_npy(file, shape: tuple[int, ...]) -> np.memmap:
    """A uint8 .npy of `shape` in the open `file`, its blocks reserved on the disk before a byte
    is mapped: a disk too small fails here, with an OSError (ENOSPC), not later as a SIGBUS in
    the middle of a write to the map."""
    np.lib.format.write_array_header_1_0(file, {"descr": "|u1", "fortran_order": False, "shape": shape})
    file.flush()
    offset = file.tell()
    try:
        os.posix_fallocate(file.fileno(), 0, offset + int(np.prod(shape)))
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        file.truncate(offset + int(np.prod(shape)))  # a file system that cannot reserve: as before
    return np.memmap(file, dtype=np.uint8, mode="r+", offset=offset, shape=shape)


@dataclass
class ImageCache:
    images: np.ndarray  # (N, 3, S, S) uint8, memory-mapped
    files: list[str]
    colourfulness: np.ndarray  # (N,) float32, NaN for an unreadable file
    bad: list[str]  # files that could not be decoded, with the reason


def build_cache(files: list[Path], size: int, cache_dir: Path, progress: bool = True) -> ImageCache:
    """Decode every photo once at `size`; reuse the cache when the same files were decoded before."""
    # A photo replaced by another of the same size must not keep its old pixels: mtime too.
    stamps = [f"{f.resolve()}:{info.st_size}:{info.st_mtime_ns}" for f in files for info in [f.stat()]]
    key = hashlib.sha1(json.dumps([size] + stamps).encode()).hexdigest()[:16]
    array_path, index_path = cache_dir / f"images-{key}.npy", cache_dir / f"images-{key}.json"
    if array_path.exists() and index_path.exists():
        index = json.loads(index_path.read_text())
        return ImageCache(np.load(array_path, mmap_mode="r"), index["files"],
                          np.array(index["colourfulness"], dtype=np.float32), index["bad"])

    cache_dir.mkdir(parents=True, exist_ok=True)
    shape = (len(files), 3, size, size)
    scores = np.full(len(files), np.nan, dtype=np.float32)  # NaN marks an unreadable file
    bad = []

    def decode(i: int) -> None:
        try:
            images[i] = _decode_square(files[i], size)
            scores[i] = colourfulness(torch.from_numpy(images[i][None]).float() / 255).item()
        except (BadImageError, OSError, ValueError) as err:
            bad.append(f"{files[i]}: {err}")

    index = {"files": [str(f) for f in files], "colourfulness": [], "bad": []}
    try:
        # Written under a temporary name (io.atomic) and renamed: only a complete cache is published.
        with atomic.atomic_write(array_path, sync=False, readable=True) as file:
            images = _reserved_npy(file, shape)
            with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
                for _ in tqdm(pool.map(decode, range(len(files))), total=len(files),
                              desc="decoding photos", disable=not progress):
                    pass
            images.flush()
            del images
        index |= {"colourfulness": scores.tolist(), "bad": sorted(bad)}
        atomic.write_text(index_path, json.dumps(index))
    except OSError as err:
        free = shutil.disk_usage(cache_dir).free / 1e6
        raise DataError(f"cannot write the decoded photos into {cache_dir} ({err.strerror or err}): they take "
                        f"{np.prod(shape) / 1e6:,.0f} MB and {free:,.0f} MB is free there; make room, or give "
                        "another --cache-dir") from None
    return ImageCache(np.load(array_path, mmap_mode="r"), index["files"], scores, index["bad"])


@dataclass
class Splits:
    train: torch.Tensor  # (N, 3, S', S') uint8, S' = cache_side(S) (crops are taken from it), source by source
    val: torch.Tensor  # (M, 3, S, S) uint8, the first source's whole photos at training size
    val_crop: torch.Tensor  # (M, 3, S, S) uint8, their tight central crops (TIGHT_CROP) at training size
    dropped_grey: int
    bad: list[str]
    train_counts: list[int] | None = None  # training photos of each source, in order; None: one source
    val_scenes: torch.Tensor | None = None  # the other sources' held-out photos at training size; None: one source

    def counts(self) -> list[int]:
        return self.train_counts or [len(self.train)]


def load_splits(data: str | list[str], image_size: int, val_fraction: float, seed: int,
                min_colourfulness: float, cache_dir: Path, max_images: int | None = None,
                progress: bool = True, with_train: bool = True) -> Splits:
    """Everything training needs from --data (one source or several), in memory as uint8 tensors
    (with_train=False: only the validation photos are decoded; the training split comes back empty)."""
    cache_size = cache_side(image_size)
    grey, bad, trains, vals = 0, [], [], []
    for source in data_sources(data):
        root = resolve_data(source, cache_dir)
        train_files, val_files = split_source(root, val_fraction, seed, max_images, with_train)

        def decode(split: list[Path]) -> np.ndarray:
            nonlocal grey
            if not split:
                return np.empty((0, 3, cache_size, cache_size), dtype=np.uint8)
            cache = build_cache(split, cache_size, cache_dir / "decoded", progress)
            keep = cache.colourfulness >= min_colourfulness  # False for unreadable (NaN) too
            grey += int((cache.colourfulness < min_colourfulness).sum())
            bad.extend(cache.bad)
            return cache.images if keep.all() else cache.images[keep]  # the map itself: copied once, below

        unreadable = len(bad)
        train = decode(train_files if with_train else [])
        if with_train and len(train) == 0:
            raise DataError(f"{root}: no colour photos left for training ({len(train_files)} found, "
                            f"{len(bad) - unreadable} unreadable, the rest grey)")
        trains.append(train)
        vals.append(torch.from_numpy(np.array(decode(val_files))))  # a writable copy of the map
    several = len(vals) > 1
    scenes = torch.cat([resize_u8(v, image_size) for v in vals[1:]]) if several else None
    return Splits(_stacked(trains), resize_u8(vals[0], image_size),
                  resize_u8(centre_crop(vals[0], TIGHT_CROP), image_size), grey, bad,
                  [len(t) for t in trains] if several else None, scenes)


def _stacked(arrays: list[np.ndarray]) -> torch.Tensor:
    """The sources' training photos in one tensor, copied straight into it (no second full copy)."""
    out = torch.empty((sum(len(a) for a in arrays), *arrays[0].shape[1:]), dtype=torch.uint8)
    start = 0
    for array in arrays:
        out[start:start + len(array)].numpy()[:] = array
        start += len(array)
    return out


def centre_crop(images: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central square of `fraction` of the side."""
    side = images.shape[-1]
    size = max(1, round(side * fraction))
    top = (side - size) // 2
    return images[..., top:top + size, top:top + size]


def resize_u8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> (N, 3, size, size), antialiased (as colorize resizes a photo)."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    """The shuffled order of one epoch, a function of (seed, epoch) only, so a resumed run replays it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def augment(images: torch.Tensor, size: int, generator: torch.Generator, min_crop: float = 1.0) -> torch.Tensor:
    """Per image: a random square crop of `min_crop` to all of the side, at a random place,
    resized to `size`, and a random horizontal flip (scale augmentation: whole photos and
    tight faces alike)."""
    n, _, h, w = images.shape
    side = min(h, w)
    fractions = min_crop + (1 - min_crop) * torch.rand(n, generator=generator)
    sides = [max(1, round(side * f)) for f in fractions.tolist()]
    picks = torch.rand(n, 2, generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    crops = []
    for img, s, (y, x), flip in zip(images, sides, picks, flips):
        top, left = round(y * (h - s)), round(x * (w - s))
        crop = resize_u8(img[None, :, top:top + s, left:left + s], size)[0]
        crops.append(crop.flip(-1) if flip else crop)
    return torch.stack(crops)


@dataclass
class Batch:
    """One training step's input: the photos, their clean (L, ab), and what the generator sees:
    L, perhaps made to look like an old print, and hints clicked from the true colour."""

    rgb: torch.Tensor  # (N, 3, S, S) sRGB in [0, 1]
    l_norm: torch.Tensor  # (N, 1, S, S) the clean L: the target's, and the discriminator's
    ab: torch.Tensor  # (N, 2, S, S) the true colour
    l_input: torch.Tensor  # the generator's L
    hints: torch.Tensor | None  # (N, 3, S, S) a, b, mask; None for a model without hints

    @classmethod
    def clean(cls, rgb: torch.Tensor) -> "Batch":
        """Photos as they are: no old-print damage, no hints."""
        l_norm, ab = rgb_to_model(rgb)
        return cls(rgb, l_norm, ab, l_norm, None)


def training_batch(images: torch.Tensor, picks: torch.Tensor, size: int, seed: int, step: int,
                   min_crop: float, old_prints: float, hints: bool, device: torch.device,
                   recolour_hints: float = 0.0) -> Batch:
    """The batch of `step`: photos `picks` of the uint8 cache `images`, cropped, flipped, and
    damaged and clicked on (a `recolour_hints` share of the clicked ones with one object
    recoloured: core.recolour), all a function of (seed, step) so a resumed run sees the same."""
    rng = torch.Generator().manual_seed(seed * 7919 + step)
    crops = augment(images[picks.to(images.device)], size, rng, min_crop)
    rgb = crops.to(device, non_blocking=True).float() / 255
    l_norm, ab = rgb_to_model(rgb)  # colour conversion on the device, in float32
    l_input = damage_batch(l_norm.cpu(), rng, old_prints).to(device) if old_prints else l_norm
    if not hints:
        return Batch(rgb, l_norm, ab, l_input, None)
    rgb, ab, clicks = recolour(rgb, l_norm, ab, simulate_clicks(ab, rng), rng, recolour_hints)
    return Batch(rgb, l_norm, ab, l_input, clicks)


@functools.lru_cache(maxsize=8)
def _source_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    return epoch_order(n, epoch, seed)


def mixed_picks(counts: list[int], shares: list[float], step: int, batch: int, seed: int) -> torch.Tensor:
    """The photos of `step`'s batch of `batch` when source s (counts[s] photos, stacked in order)
    gives shares[s] of every batch. Up to step t source s has given exactly
    floor(t B W_s) - floor(t B W_{s-1}) photos (W: the cumulative shares), so its share is exact
    to a photo a step, each source walks its own shuffled epochs, and all of it is a function of
    (seed, step): a resumed run replays it."""
    bounds = [0.0, *(sum(shares[:i + 1]) for i in range(len(shares) - 1)), 1.0]

    def given(t: int, s: int) -> int:  # photos source s has given before step t
        return math.floor(t * batch * bounds[s + 1]) - math.floor(t * batch * bounds[s])

    picks, offset = [], 0
    for s, n in enumerate(counts):
        for p in range(given(step, s), given(step + 1, s)):
            epoch, index = divmod(p, n)
            picks.append(offset + int(_source_order(n, epoch, seed * 31 + s)[index]))
        offset += n
    return torch.tensor(picks, dtype=torch.long)


class BatchStream:
    """The training batches of one process, by step: each is made in a thread of its own while
    the step before it trains (cropping, old prints and clicks cost about 5% of a CPU step).
    `counts` and `shares`: the photos of each source (stacked in order) and each one's share of a
    batch (--data-weights); None: the photos are one pool, shuffled an epoch at a time."""

    def __init__(self, images: torch.Tensor, config: TrainConfig, steps_per_epoch: int, rank: int,
                 world_size: int, device: torch.device, counts: list[int] | None = None,
                 shares: list[float] | None = None):
        self.images, self.config, self.device = images, config, device
        self.steps_per_epoch, self.rank, self.world_size = steps_per_epoch, rank, world_size
        self.counts, self.shares = counts, shares
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.next: tuple[int, Future] | None = None

    def make(self, step: int) -> Batch:
        c, per_rank = self.config, self.config.batch_size
        epoch, index = divmod(step, self.steps_per_epoch)
        first = (index * self.world_size + self.rank) * per_rank
        if self.shares:  # every rank draws the whole step's batch and keeps its part
            picks = mixed_picks(self.counts, self.shares, step, per_rank * self.world_size, c.seed)
            picks = picks[self.rank * per_rank:(self.rank + 1) * per_rank]
        else:
            picks = epoch_order(len(self.images), epoch, c.seed)[first:first + per_rank]
        return training_batch(self.images, picks, c.image_size, c.seed, step, c.min_crop, c.old_prints,
                              c.hints, self.device, c.recolour_hints)

    def batch(self, step: int) -> Batch:
        """The batch of `step`; the next step's starts being made."""
        made = self.next[1].result() if self.next and self.next[0] == step else self.make(step)
        self.next = (step + 1, self.pool.submit(self.make, step + 1))
        return made

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
