"""What colorizing one photo costs around its pixels: each step timed in a fresh process
(importing the package's CLI, importing torch, loading the model, the first photo, a second
photo; what is left of the process's wall time is Python's start and exit), medians over runs.

    python benchmarks/startup.py [--runs 3] [--checkpoint MODEL] [--backend torch|onnx]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

STEPS = ("start_and_exit", "import_cli", "import_torch", "load_model", "first_photo", "second_photo")


def one_run(photo: Path, checkpoint: str | None, backend: str) -> dict:
    """Each step's seconds, in this process (started fresh by `main`)."""
    marks = [time.perf_counter()]
    import colorful_world.apps.cli  # noqa: F401  (what `colorful-world` imports before parsing)
    marks.append(time.perf_counter())
    if backend == "torch":
        import torch  # noqa: F401
    marks.append(time.perf_counter())
    from colorful_world.inference.colorize import Colorizer
    colorizer = Colorizer.from_checkpoint(checkpoint, backend=backend)
    marks.append(time.perf_counter())
    for _ in range(2):
        colorizer.colorize(photo)
        marks.append(time.perf_counter())
    return dict(zip(STEPS[1:], np.diff(marks).round(3).tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--one-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        print(json.dumps(one_run(args.one_run, args.checkpoint, args.backend)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024), np.uint8), "L").save(photo)
        runs = []
        for _ in range(args.runs):
            started = time.perf_counter()
            command = [sys.executable, __file__, "--one-run", str(photo),
                       "--backend", args.backend] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
            steps = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            total = time.perf_counter() - started
            runs.append({"start_and_exit": round(total - sum(steps.values()), 3), **steps, "total": round(total, 3)})
    print(json.dumps({"backend": args.backend, "runs": args.runs,
                      **{key: statistics.median(run[key] for run in runs) for key in (*STEPS, "total")}}, indent=2))


if __name__ == "__main__":
    main()
