"""Colour hints, live: a 1 MP photo colorized again after a click, from the hints' arrival to
the PNG's bytes (the photo is decoded and prepared once, as the widget and the page keep it),
on torch and on ONNX Runtime, side by side in one run; and the first colorization, decode
included, for scale.

    python benchmarks/hints.py [--checkpoint MODEL] [--photo-size 1024] [--hints 5] [--runs 10]
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from common import median_seconds
from colorful_world import Colorizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a model that takes hints (default: the bundled one)")
    parser.add_argument("--photo-size", type=int, default=1024)
    parser.add_argument("--hints", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    side = args.photo_size
    rng = np.random.default_rng(0)
    hints = [(float(x), float(y), "#%02x%02x%02x" % tuple(rng.integers(0, 256, 3)))
             for x, y in rng.integers(0, side, (args.hints, 2))]
    figures = {"threads": torch.get_num_threads(), "photo": f"{side}x{side} grey JPEG", "hints": args.hints}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        Image.fromarray(skdata.astronaut()).convert("L").resize((side, side)).save(photo, quality=90)
        for backend in ("torch", "onnx"):
            colorizer = Colorizer.from_checkpoint(args.checkpoint, backend=backend)
            prepared = colorizer.prepare(photo, colorizer.image_size)

            def click() -> bytes:
                return colorizer.finish_png(prepared, colorizer.predict(prepared, hints))

            figures[f"{backend}_click_to_png_ms"] = 1000 * median_seconds(click, args.runs)
            figures[f"{backend}_first_photo_ms"] = 1000 * median_seconds(
                lambda: colorizer.colorize_png(photo, hints=hints), args.runs)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
