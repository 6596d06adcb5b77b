"""Peak memory of colorizing one photo, against its pixels and its shape: square, 4:1, one
pixel wide (1:N), one pixel tall (N:1), and square in high bit depths (16-bit and float grey
TIFFs, scaled to 8 bits as they are read). Each photo is colorized by `colorful-world colorize` in a fresh process; the
kernel's peak resident size of that process, less that of the same command on a 64 x 64 photo,
is the photo's own cost.

    python benchmarks/photo_memory.py [--megapixels 4 16] [--checkpoint MODEL] [--backend torch]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def peak_rss_mb(command: list[str]) -> float:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    errors = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{errors}")
    return usage.ru_maxrss / 1024


def shapes(pixels: int) -> dict[str, tuple[int, int]]:
    side = round(pixels ** 0.5)
    return {"square": (side, side), "4:1": (2 * side, side // 2), "1:N": (1, pixels), "N:1": (pixels, 1),
            "square 16-bit": (side, side), "square float": (side, side)}


def write_photo(path: Path, shape: str, width: int, height: int) -> Path:
    """Grey noise (an honest photo to decode): a PNG, or for the high-bit-depth rows a TIFF."""
    noise = Image.effect_noise((width, height), 40)
    if shape.endswith("16-bit"):
        path = path.with_suffix(".tif")
        Image.fromarray(np.asarray(noise).astype(np.uint16) * 257).save(path)
    elif shape.endswith("float"):
        path = path.with_suffix(".tif")
        Image.fromarray(np.asarray(noise).astype(np.float32), "F").save(path)
    else:
        noise.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[4.0, 16.0])
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "colorful_world", "colorize", "--backend", args.backend,
                   "-o", str(Path(tmp) / "out"), "--no-progress"]
        command += ["-c", args.checkpoint] if args.checkpoint else []
        small = Path(tmp) / "small.png"
        Image.new("L", (64, 64), 100).save(small)
        base = peak_rss_mb(command + [str(small)])
        figures = {"process_with_a_64px_photo_mb": round(base)}
        for megapixels in args.megapixels:
            pixels = round(megapixels * 1e6)
            for name, (width, height) in shapes(pixels).items():
                photo = write_photo(Path(tmp) / f"{name.replace(':', 'x').replace(' ', '-')}.png", name, width, height)
                grew = peak_rss_mb(command + [str(photo)]) - base
                figures[f"{width}x{height} {name}"] = {"shape": name, "megapixels": megapixels, "extra_mb": round(grew),
                                                "bytes_per_pixel": round(grew * 2**20 / (width * height), 1)}
                photo.unlink()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
