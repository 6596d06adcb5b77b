"""Colorize photos of any size: the model sees L at its training size, the photo keeps its own L.

Only chroma (ab) comes from the network; it is upsampled bilinearly and recombined with the
full-resolution L, so every pixel of detail of the input survives at any resolution.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from colorful_world.core.color_lut import lab_to_srgb_u8, lightness_u8
from colorful_world.io.errors import CheckpointError
from colorful_world.io.images import load_rgb
from colorful_world.io.png import PngWriter
from colorful_world.core.hints import HintError, hint_map
from colorful_world.core.resize import photo_size_rows, to_working_size
from colorful_world.core.tone import stretch_contrast
from colorful_world.inference.backends import resolve_backend
from colorful_world.core.units import AB_SCALE, normalize_l


@dataclass
class Prepared:
    """A photo ready for the network: its L at full size, its alpha, its L at the working size."""

    light: np.ndarray  # (H, W) float32 CIELAB L in [0, 100]
    alpha: np.ndarray | None  # (H, W) uint8
    small: np.ndarray  # (1, 1, size, size) float32 L scaled to [-1, 1]


class Colorizer:
    """Load once, colorize many: `Colorizer.from_checkpoint(path).colorize(pil_image)`.

    Everything but the network is numpy and PIL, so with the ONNX backend and an .onnx model
    nothing imports torch: a server image can leave it out.
    """

    def __init__(self, generator, image_size: int, device=None, chroma_gain: float = 1.0):
        """`generator`: the torch U-Net (run on `device`, default the best one here), or an
        `OnnxGenerator` (which runs on the CPU). `chroma_gain` scales the network's colour (a
        model's own is in its config: `colorful-world export --chroma-gain`)."""
        if hasattr(generator, "session"):  # ONNX Runtime's: numpy in, numpy out already
            self.network = generator
        else:
            from colorful_world.nets.predict import TorchNetwork
            self.network = TorchNetwork(generator, device)
        self.generator = generator
        self.image_size = image_size
        self.chroma_gain = chroma_gain
        self.depth = generator.depth
        self.takes_hints = bool(getattr(generator, "hints", False))

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device=None,
                        backend: str = "auto") -> "Colorizer":
        """From an exported generator (.safetensors), a training checkpoint (.pt, its EMA
        weights), an .onnx export, or with no path, the face model that ships with the package.

        backend "onnx" runs the network on ONNX Runtime, faster on a CPU; "torch" on torch;
        "auto" picks one (`resolve_backend`).
        """
        if resolve_backend(backend, path) == "onnx":
            from colorful_world.inference.onnx_backend import load_onnx_generator
            generator, config = load_onnx_generator(path)
        else:
            from colorful_world.nets.model_file import load_generator
            generator, config, _ = load_generator(path)
        return cls(generator, config["image_size"], device, config.get("chroma_gain", 1.0))

    def network_threads(self, count: int):
        """A context in which the network uses `count` threads of its own (where it can say:
        torch can; ONNX Runtime's session keeps its own, which do not spin)."""
        threads = getattr(self.network, "threads", None)
        return threads(count) if threads else contextlib.nullcontext()

    def working_size(self, size: int | None = None) -> int:
        """`size`, checked, or the training size: the side the network works at."""
        size = size or self.image_size
        step = 2 ** self.depth
        if size % step:
            raise ValueError(f"working size {size} must be a multiple of {step}")
        return size

    def colorize(self, image: Image.Image | str | Path, size: int | None = None, chroma_gain: float | None = None,
                 hints=None, restore_contrast: bool = False) -> Image.Image:
        """A photo (any mode, any size) -> its colour version, same size; alpha is kept.

        `size` is the side the network works at (default: its training size); a multiple of
        2**depth. Larger sizes see finer detail but were not what the model was trained on.
        `chroma_gain` scales the colour (default: the model's own; 0 gives the grey photo back).
        `hints`: [(x, y, "#rrggbb"), ...], pixels of the photo as shown and the colours the
        person knows there (core.hints). `restore_contrast`: stretch a faded print's tones to
        the full range first, and keep them in the result (core.tone).
        """
        prepared = self.prepare(image, self.working_size(size), restore_contrast)
        return self.finish(prepared, self.predict(prepared, hints, chroma_gain), chroma_gain)

    def colorize_png(self, image: Image.Image | str | Path, size: int | None = None, chroma_gain: float | None = None,
                     threads: int | None = None, hints=None, restore_contrast: bool = False) -> bytes:
        """`colorize`, as the bytes of a PNG file (see `finish_png`)."""
        prepared = self.prepare(image, self.working_size(size), restore_contrast)
        return self.finish_png(prepared, self.predict(prepared, hints, chroma_gain), chroma_gain, threads)

    # The three stages of `colorize`, for callers that overlap them (a folder, the server):
    # prepare and finish are per-photo work on the photo's own pixels, and may run in threads;
    # predict runs the network.

    def prepare(self, image: Image.Image | str | Path, size: int, restore_contrast: bool = False) -> Prepared:
        """Decode, take L at full size (its tones stretched, if asked), and resize it to the
        network's working size. What a photo keeps between clicks of hints."""
        pixels, alpha = load_rgb(image, keep_grey=True)
        light = lightness_u8(pixels)
        if restore_contrast:
            light = stretch_contrast(light)
        small = normalize_l(to_working_size(light, size))  # the resize is linear: on 1/64 of the pixels
        return Prepared(light, alpha, small[None, None])

    def predict(self, prepared: Prepared, hints=None, chroma_gain: float | None = None) -> np.ndarray:
        """The network's ab for one prepared photo and its hints, at the working size: (2, size, size).
        Pass the `chroma_gain` that `finish` will get: a hint is divided by it here, so that
        where the network follows the hint, the photo has the hint's own colour."""
        gain = self.chroma_gain if chroma_gain is None else chroma_gain
        if not hints or gain == 0:  # no colour at all: nothing for hints to change
            return self.network(prepared.small)[0]
        if not self.takes_hints:
            raise HintError("this model was trained without hints, so it cannot take them: use the bundled "
                            "model, or one trained with --hints")
        height, width = prepared.light.shape
        hint_ab = hint_map(hints, height, width, prepared.small.shape[-1])
        hint_ab[:, :2] /= np.float32(gain)
        return self.network(prepared.small, hint_ab)[0]

    def finish(self, prepared: Prepared, ab_small: np.ndarray, chroma_gain: float | None = None) -> Image.Image:
        """The network's colour at the photo's own size, on its own L, scaled by `chroma_gain`
        (default: the model's own): the colour photo."""
        pixels = self._pixels(prepared, ab_small, chroma_gain)
        if prepared.alpha is not None:
            return Image.fromarray(np.dstack([pixels, prepared.alpha]), "RGBA")
        return Image.fromarray(pixels, "RGB")

    def finish_png(self, prepared: Prepared, ab_small: np.ndarray, chroma_gain: float | None = None,
                   threads: int | None = None) -> bytes:
        """`finish`, as the bytes of its PNG file (those `png.save_png` writes of it): each band
        of rows is compressed in `threads` threads (default: the cores) while the next is made."""
        height, width = prepared.light.shape
        alpha = prepared.alpha
        writer = PngWriter(width, height, "RGB" if alpha is None else "RGBA", threads)

        def compress(band: np.ndarray) -> None:
            if alpha is not None:
                top = writer.rows_added
                band = np.dstack([band, alpha[top:top + len(band)]])
            writer.add(band)

        self._pixels(prepared, ab_small, chroma_gain, compress)
        return writer.finish()

    def _pixels(self, prepared: Prepared, ab_small: np.ndarray, chroma_gain: float | None,
                on_band=None) -> np.ndarray:
        if not np.isfinite(ab_small).all():  # a diverged model: no colour to give, for any photo
            raise CheckpointError("the model gives inf or NaN colours (its weights are not finite: "
                                  "a diverged training run?); use another checkpoint")
        gain = self.chroma_gain if chroma_gain is None else chroma_gain
        ab = photo_size_rows(ab_small * np.float32(AB_SCALE * gain), *prepared.light.shape)
        return lab_to_srgb_u8(prepared.light, ab, on_band)
