"""Colorize photos of any size: the model sees L at its training size, the photo keeps its own L.

Only chroma (ab) comes from the network; it is upsampled bilinearly and recombined with the
full-resolution L, so every pixel of detail of the input survives at any resolution.
"""

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from colorful_world import runtime as rt
from colorful_world.checkpoint import CheckpointError
from colorful_world.model_file import load_generator
from colorful_world.color import AB_SCALE, normalize_l
from colorful_world.color_lut import lab_to_srgb_u8, lightness_u8
from colorful_world.errors import UserError
from colorful_world.images import IMAGE_SUFFIXES, BadImageError, find_images, load_rgb
from colorful_world.png import made_here, save_png
from colorful_world.predict import predict_ab


class OutputError(UserError, OSError):
    """An output folder that cannot be written into."""


class Colorizer:
    """Load once, colorize many: `Colorizer.from_checkpoint(path).colorize(pil_image)`."""

    def __init__(self, generator, image_size: int, device: torch.device | None = None):
        """`generator`: the torch U-Net, or an `OnnxGenerator` (which runs on the CPU)."""
        if isinstance(generator, torch.nn.Module):
            self.runtime = rt.local(device)
            generator = generator.to(self.runtime.device).eval().requires_grad_(False)
        else:
            self.runtime = rt.local(torch.device("cpu"))
        self.generator = generator
        self.image_size = image_size

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: torch.device | None = None,
                        backend: str = "torch") -> "Colorizer":
        """From an exported generator (.safetensors), a training checkpoint (.pt, its EMA
        weights), an .onnx export, or with no path, the face model that ships with the package.

        backend "onnx" runs the network on ONNX Runtime (the `onnx` extra), faster on a CPU.
        """
        if backend == "onnx":
            from colorful_world.onnx_backend import load_onnx_generator
            generator, config = load_onnx_generator(path)
        elif backend == "torch":
            generator, config, _ = load_generator(path)
        else:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        return cls(generator, config["image_size"], device)

    @torch.no_grad()
    def colorize(self, image: Image.Image | str | Path, size: int | None = None) -> Image.Image:
        """A photo (any mode, any size) -> its colour version, same size; alpha is kept.

        `size` is the side the network works at (default: its training size); a multiple of
        2**depth. Larger sizes see finer detail but were not what the model was trained on.
        """
        size = size or self.image_size
        step = 2 ** self.generator.depth
        if size % step:
            raise ValueError(f"working size {size} must be a multiple of {step}")
        rgb, alpha = load_rgb(image)
        light = lightness_u8(rgb).to(self.runtime.device)
        ab = predict_ab(self.generator, normalize_l(light), size, self.runtime) * AB_SCALE
        if not torch.isfinite(ab).all():  # a diverged model: no colour to give, for any photo
            raise CheckpointError("the model gives inf or NaN colours (its weights are not finite: "
                                  "a diverged training run?); use another checkpoint")
        pixels = lab_to_srgb_u8(light, ab).cpu().numpy()
        if alpha is not None:
            return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
        return Image.fromarray(pixels, "RGB")


def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(photos to colorize, skipped): files as given, folders searched recursively for photos,
    where the PNGs this tool wrote are skipped (colorizing into the input folder, then again,
    must not colorize its own results). A folder without photos is an error."""
    paths, skipped = [], []
    for item in inputs:
        item = Path(item)
        if not item.is_dir():
            paths.append(item)
            continue
        found = find_images(item)
        if not found:
            raise BadImageError(f"{item}: a folder with no photos in it "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in found:
            (skipped if made_here(path) else paths).append(path)
    return paths, skipped


def check_output_folder(out_dir: Path) -> None:
    """Make `out_dir` and prove it takes a file, before any photo is worked on."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file; --output names a folder to write into")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into {out_dir}: {err.strerror or err}") from None


def output_paths(files: list[Path], out_dir: Path) -> list[Path]:
    """OUT/<stem>.png, with -2, -3... where two inputs share a stem; never an input file itself."""
    taken = {f.resolve() for f in files}
    result, used = [], set()
    for f in files:
        candidate, n = out_dir / f"{f.stem}.png", 1
        while candidate.resolve() in taken or candidate.resolve() in used:
            n += 1
            candidate = out_dir / f"{f.stem}-{n}.png"
        used.add(candidate.resolve())
        result.append(candidate)
    return result


def colorize_files(colorizer: Colorizer, inputs: Iterable[str | Path], out_dir: Path,
                   progress: bool = True) -> tuple[list[Path], list[str]]:
    """Colorize every photo; a bad one is reported and skipped. Returns (written, errors).

    Raises BadImageError when a folder holds no photos, and OutputError when `out_dir` cannot
    be written into; both before any photo is worked on."""
    files, skipped = expand_inputs(inputs)
    if skipped:
        print(f"skipped {len(skipped)} PNG(s) this tool wrote, such as {skipped[0]}", file=sys.stderr)
    if not files:
        raise BadImageError("no photos to colorize: every one found is an earlier result of this tool")
    check_output_folder(out_dir)
    written, errors = [], []
    for src, dst in tqdm(list(zip(files, output_paths(files, out_dir))), desc="colorizing",
                         disable=not progress or len(files) < 2):
        try:
            if not src.is_file():
                raise BadImageError(f"{src}: no such file")
            result = colorizer.colorize(src)
            tmp = dst.with_name(dst.name + ".tmp")
            save_png(result, tmp)
            tmp.replace(dst)
            written.append(dst)
        except (BadImageError, OSError, ValueError) as err:
            errors.append(str(err) if str(src) in str(err) else f"{src}: {err}")
            tqdm.write(f"error: {errors[-1]}", file=sys.stderr)
    return written, errors
