"""Inference speed, side by side in one run: a photo colorized end to end (decode, Lab, model,
upsample, PNG encode) with torch eager and with ONNX Runtime; the bare forward pass of the model
at its own size, and of the pix2pix reference generator (`unet_256`: 8 levels, width 64, 54.4M
parameters) at 256 px; and the colour photo's PNG, in one thread: the package's writer, its
deflate (ISA-L's) against zlib's fastest level on the same filtered rows, and PIL's encoder.

    python benchmarks/inference.py [--checkpoint CKPT] [--photo-size 1024] [--runs 10]
"""

import argparse
import io
import json
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from isal import isal_zlib
from PIL import Image
from skimage import data as skdata

from common import median_seconds
from colorful_world import Colorizer
from colorful_world.nets.model_file import load_generator
from colorful_world.nets.models import UNet, count_parameters
from colorful_world.io.png import DEFLATE_LEVEL, png_bytes, sub_filter


def end_to_end_ms(colorizer: Colorizer, photo: Path, out: Path, runs: int) -> float:
    return 1000 * median_seconds(lambda: out.write_bytes(colorizer.colorize_png(photo)), runs)  # as the CLI does


def png_figures(colour: Image.Image, runs: int) -> dict:
    """Writing the colour photo as PNG, one thread each: milliseconds and bytes."""
    rows = np.asarray(colour).reshape(colour.height, -1)
    filtered = np.empty((len(rows), 1 + rows.shape[1]), np.uint8)
    sub_filter(rows, 3, filtered)

    def pil_png() -> bytes:
        buffer = io.BytesIO()
        colour.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    figures = {}
    for name, write in (("png_writer", lambda: png_bytes(colour, threads=1)), ("pil_png_level_1", pil_png),
                        ("isal_level_2", lambda: isal_zlib.compress(filtered, DEFLATE_LEVEL)),
                        ("zlib_level_1", lambda: zlib.compress(filtered, 1))):
        figures[f"{name}_ms"] = 1000 * median_seconds(write, runs)
        figures[f"{name}_bytes"] = len(write())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the bundled face model")
    parser.add_argument("--photo-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    torch_colorizer = Colorizer.from_checkpoint(args.checkpoint)
    onnx_colorizer = Colorizer.from_checkpoint(args.checkpoint, backend="onnx")
    reference = UNet(base_channels=64, depth=8).eval()
    figures = {"threads": torch.get_num_threads(), "photo": f"{args.photo_size}x{args.photo_size} JPEG -> PNG",
               "model_parameters": count_parameters(load_generator(args.checkpoint)[0]),  # before folding
               "reference_parameters": count_parameters(reference)}
    with tempfile.TemporaryDirectory() as tmp:
        photo, out = Path(tmp) / "photo.jpg", Path(tmp) / "photo.png"
        grey = Image.fromarray(skdata.astronaut()).convert("L").resize((args.photo_size, args.photo_size))
        grey.save(photo, quality=90)
        figures["torch_end_to_end_ms"] = end_to_end_ms(torch_colorizer, photo, out, args.runs)
        figures["onnx_end_to_end_ms"] = end_to_end_ms(onnx_colorizer, photo, out, args.runs)
        a, b = (np.asarray(c.colorize(photo), dtype=int) for c in (torch_colorizer, onnx_colorizer))
        figures["onnx_vs_torch_max_difference"] = int(np.abs(a - b).max())
    figures.update(png_figures(Image.fromarray(a.astype(np.uint8)), args.runs))
    with torch.no_grad():
        size = torch_colorizer.image_size
        own, sample = torch.randn(1, 1, size, size), torch.randn(1, 1, 256, 256)
        figures[f"model_forward_{size}_ms"] = 1000 * median_seconds(lambda: torch_colorizer.generator(own), args.runs)
        figures["reference_forward_256_ms"] = 1000 * median_seconds(lambda: reference(sample), args.runs)
    fastest = min(figures["torch_end_to_end_ms"], figures["onnx_end_to_end_ms"])
    figures["onnx_speedup_over_torch"] = figures["torch_end_to_end_ms"] / figures["onnx_end_to_end_ms"]
    figures["reference_forward_over_model_forward"] = (figures["reference_forward_256_ms"]
                                                       / figures[f"model_forward_{size}_ms"])
    figures["reference_forward_over_fastest_end_to_end"] = figures["reference_forward_256_ms"] / fastest
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
