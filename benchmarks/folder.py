"""Colorizing a folder, side by side in one run: photos per second for N generated grey JPEGs of
1 MP, one photo after another (`Colorizer.colorize` then the PNG writer), the pipelined path
(`folder.colorize_many`; again on ONNX Runtime where it is installed), and the I/O floor (decoding each JPEG and writing a same-size RGB PNG
with the same writer, nothing else). Each mode runs in a fresh process, so each has its own
peak resident memory; start-up (imports, model load) is timed apart.

    python benchmarks/folder.py [--photos 60] [--side 1024] [--workers N] [--checkpoint MODEL]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_album(folder: Path, count: int, side: int) -> list[Path]:
    """Grey photo-like JPEGs: smooth gradients and noise, each different."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, side)
    paths = []
    for n in range(count):
        light = 40 + 150 * np.outer(ramp, ramp[::-1] if n % 2 else ramp) + rng.normal(0, 12, (side, side))
        path = folder / f"page_{n:03d}.jpg"
        Image.fromarray(light.clip(0, 255).astype(np.uint8), "L").save(path, quality=90)
        paths.append(path)
    return paths


def run_mode(mode: str, photos: Path, out: Path, checkpoint: str | None, workers: int) -> dict:
    """One mode in a fresh process: its figures, and its peak resident memory."""
    command = [sys.executable, __file__, "--run-mode", mode, "--in", str(photos), "--out", str(out),
               "--workers", str(workers)] + (["--checkpoint", checkpoint] if checkpoint else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"mode {mode} failed")
    return {**json.loads(output), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def one_mode(mode: str, photos: Path, out: Path, checkpoint: str | None, workers: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    from colorful_world.inference.colorize import Colorizer
    from colorful_world.inference.folder import colorize_many, output_paths
    from colorful_world.io.images import find_images, load_rgb
    from colorful_world.io.png import save_png

    files = find_images(photos)
    out.mkdir(parents=True, exist_ok=True)
    jobs = list(zip(files, output_paths(files, out)))
    backend = "onnx" if mode == "pipelined_onnx" else "torch"
    colorizer = None if mode.startswith("floor") else Colorizer.from_checkpoint(checkpoint, backend=backend)
    ready = time.perf_counter()
    if mode == "one_at_a_time":
        for src, dst in jobs:
            save_png(colorizer.colorize(src), dst)
    elif mode in ("pipelined", "pipelined_onnx"):
        failed = [src for src, _, error in colorize_many(colorizer, jobs, workers) if error]
        assert not failed, failed
    elif mode == "floor":
        for src, dst in jobs:
            rgb, _ = load_rgb(src)
            save_png(Image.fromarray(rgb), dst)
    elif mode == "floor_threaded":
        def copy(job):
            rgb, _ = load_rgb(job[0])
            save_png(Image.fromarray(rgb), job[1])
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(copy, jobs))
    seconds = time.perf_counter() - ready
    return {"photos_per_second": round(len(jobs) / seconds, 2), "seconds": round(seconds, 2),
            "start_up_seconds": round(ready - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--run-mode", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--in", dest="photos_dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_mode:
        print(json.dumps(one_mode(args.run_mode, args.photos_dir, args.out, args.checkpoint, args.workers)))
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "album"
        make_album(photos, args.photos, args.side)
        figures = {"photos": args.photos, "side": args.side, "cores": os.cpu_count(), "workers": args.workers,
                   "torch_threads": torch.get_num_threads()}
        modes = ["one_at_a_time", "pipelined", "floor", "floor_threaded"]
        if importlib.util.find_spec("onnxruntime") and not args.checkpoint:  # the bundled model ships as .onnx too
            modes.insert(2, "pipelined_onnx")
        for mode in modes:
            figures[mode] = run_mode(mode, photos, Path(tmp) / mode, args.checkpoint, args.workers)
    floor = figures["floor"]["photos_per_second"]
    figures["pipelined_over_floor"] = round(figures["pipelined"]["photos_per_second"] / floor, 2)
    figures["one_at_a_time_over_floor"] = round(figures["one_at_a_time"]["photos_per_second"] / floor, 2)
    if "pipelined_onnx" in figures:
        figures["pipelined_onnx_over_floor"] = round(figures["pipelined_onnx"]["photos_per_second"] / floor, 2)
    figures["pipelined_over_threaded_floor"] = round(
        figures["pipelined"]["photos_per_second"] / figures["floor_threaded"]["photos_per_second"], 2)
    figures["pipelined_peak_memory_over_one_at_a_time"] = round(
        figures["pipelined"]["peak_rss_mb"] / figures["one_at_a_time"]["peak_rss_mb"], 2)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
