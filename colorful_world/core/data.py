"""Training data: find photos, split by person, decode once into a uint8 cache, serve batches.

Decoding JPEGs is the slow part of every epoch, so each photo is decoded once, resized to twice
the training size (room for tight crops that still hold real detail), and kept in one uint8
array on disk that later epochs and later runs memory-map.

Two framings of the same held-out photos are scored: the whole photo, as `colorize` sees it,
and its tight central crop, the framing of face data sets that crop to the face. A model
trained on one framing alone has been seen to lose on the other; random-scale crops in
training (`min_crop`) cover both.
"""

import errno
import hashlib
import json
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
    train: torch.Tensor  # (N, 3, S', S') uint8, S' = cache_side(S) (crops are taken from it)
    val: torch.Tensor  # (M, 3, S, S) uint8, whole photos at training size
    val_crop: torch.Tensor  # (M, 3, S, S) uint8, their tight central crops (TIGHT_CROP) at training size
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
    cache_size = cache_side(image_size)

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
    return Splits(train, resize_u8(val, image_size), resize_u8(centre_crop(val, TIGHT_CROP), image_size),
                  grey_t + grey_v, bad_t + bad_v)


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
                   min_crop: float, old_prints: float, hints: bool, device: torch.device) -> Batch:
    """The batch of `step`: photos `picks` of the uint8 cache `images`, cropped, flipped, and
    damaged and clicked on, all a function of (seed, step) so a resumed run sees the same."""
    rng = torch.Generator().manual_seed(seed * 7919 + step)
    crops = augment(images[picks.to(images.device)], size, rng, min_crop)
    rgb = crops.to(device, non_blocking=True).float() / 255
    l_norm, ab = rgb_to_model(rgb)  # colour conversion on the device, in float32
    l_input = damage_batch(l_norm.cpu(), rng, old_prints).to(device) if old_prints else l_norm
    return Batch(rgb, l_norm, ab, l_input, simulate_clicks(ab, rng) if hints else None)


class BatchStream:
    """The training batches of one process, by step: each is made in a thread of its own while
    the step before it trains (cropping, old prints and clicks cost about 5% of a CPU step)."""

    def __init__(self, images: torch.Tensor, config: TrainConfig, steps_per_epoch: int, rank: int,
                 world_size: int, device: torch.device):
        self.images, self.config, self.device = images, config, device
        self.steps_per_epoch, self.rank, self.world_size = steps_per_epoch, rank, world_size
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.next: tuple[int, Future] | None = None

    def make(self, step: int) -> Batch:
        c, per_rank = self.config, self.config.batch_size
        epoch, index = divmod(step, self.steps_per_epoch)
        first = (index * self.world_size + self.rank) * per_rank
        picks = epoch_order(len(self.images), epoch, c.seed)[first:first + per_rank]
        return training_batch(self.images, picks, c.image_size, c.seed, step, c.min_crop, c.old_prints,
                              c.hints, self.device)

    def batch(self, step: int) -> Batch:
        """The batch of `step`; the next step's starts being made."""
        made = self.next[1].result() if self.next and self.next[0] == step else self.make(step)
        self.next = (step + 1, self.pool.submit(self.make, step + 1))
        return made

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
