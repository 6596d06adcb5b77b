"""Training throughput, side by side in one run: images per second and the share of each step
spent waiting for data, per phase, for the default configuration and the pix2pix reference, at
128 and 256 px, with the ratio of their speeds. A batch (fetch from the uint8 cache, crop, flip,
copy to the device, old-print damage, simulated clicks) is made in a thread while the step
before it trains, as in training; "made_in_line_share" is what it would cost a step without.

    python benchmarks/training.py [--device cuda] [--steps 5] [--configurations default pix2pix]
"""

import argparse
import json
import time

import torch

from common import median_seconds
from colorful_world.core.config import PRESETS, TrainConfig
from colorful_world.core.data import BatchStream, cache_side
from colorful_world.core.runtime import Runtime, local
from colorful_world.training.state import build_training
from colorful_world.training.train import train_step


def throughput(config: TrainConfig, runtime: Runtime, steps: int) -> dict:
    G, D, opt_g, opt_d, scaler = build_training(config, runtime, pretrained=False)  # speed needs no weights
    side = cache_side(config.image_size)
    cache = torch.randint(0, 256, (8 * config.batch_size, 3, side, side), dtype=torch.uint8)
    batches = BatchStream(cache, config, 8, 0, 1, runtime.device)
    figures = {}
    for phase, gan in (("l1", False), ("gan", True)):
        waits, totals = [], []
        for step in range(steps + 1):  # the first batch is made in line: not counted
            started = time.perf_counter()
            batch = batches.batch(step)
            fetched = time.perf_counter()
            train_step(batch, G, D, opt_g, opt_d, scaler, config, gan, runtime)
            waits.append(fetched - started)
            totals.append(time.perf_counter() - started)
        step_s = sorted(totals[1:])[steps // 2]
        figures[phase] = {"images_per_second": config.batch_size / step_s,
                          "data_wait_share": sorted(waits[1:])[steps // 2] / step_s,
                          "made_in_line_share": median_seconds(lambda: batches.make(0), steps) / step_s}
    batches.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--configurations", nargs="+", choices=["default", *PRESETS], default=["default", "pix2pix"])
    args = parser.parse_args()
    device = torch.device(args.device)
    runtime = local(device)
    figures = {"device": str(device), "threads": torch.get_num_threads(), "batch_size": args.batch_size}
    started = time.perf_counter()
    for name in args.configurations:
        for size in (128, 256):
            config = TrainConfig(**(PRESETS.get(name, {}) | {"image_size": size, "batch_size": args.batch_size}))
            figures[f"{name} {size}px"] = throughput(config, runtime, args.steps)
    if {"default", "pix2pix"} <= set(args.configurations):
        figures["default over pix2pix, images/s"] = {
            f"{size}px {phase}": figures[f"default {size}px"][phase]["images_per_second"]
            / figures[f"pix2pix {size}px"][phase]["images_per_second"]
            for size in (128, 256) for phase in ("l1", "gan")}
    figures["seconds"] = time.perf_counter() - started
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
