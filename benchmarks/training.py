"""Training throughput, side by side in one run: images per second and the share of each step
spent waiting for data (fetch from the uint8 cache, crop, flip, copy to the device), per phase,
for a model configuration at 128 and 256 px: the default one, or the pix2pix reference.

    python benchmarks/training.py [--device cuda] [--steps 5] [--preset pix2pix]
"""

import argparse
import json
import time

import torch

from common import median_seconds
from colorful_world.config import PRESETS, TrainConfig
from colorful_world.data import CROP_MARGIN, augment
from colorful_world.runtime import Runtime, local
from colorful_world.train import build_training, train_step


def throughput(config: TrainConfig, run: Runtime, steps: int) -> dict:
    G, D, opt_g, opt_d, scaler = build_training(config, run)
    side = round(config.image_size * CROP_MARGIN)
    cache = torch.randint(0, 256, (8 * config.batch_size, 3, side, side), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)

    def fetch() -> torch.Tensor:
        index = torch.randint(0, len(cache), (config.batch_size,), generator=generator)
        return augment(cache[index], config.image_size, generator).to(run.device).float() / 255

    figures = {}
    for phase, gan in (("l1", False), ("gan", True)):
        data = median_seconds(fetch, steps)
        compute = median_seconds(lambda: train_step(fetch(), G, D, opt_g, opt_d, scaler, config, gan, run),
                                 steps) - data
        figures[phase] = {"images_per_second": config.batch_size / (data + compute),
                          "data_wait_share": data / (data + compute)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="the pix2pix reference instead of the default configuration")
    args = parser.parse_args()
    device = torch.device(args.device)
    run = local(device)
    figures = {"device": str(device), "threads": torch.get_num_threads(), "batch_size": args.batch_size,
               "configuration": args.preset or "default"}
    started = time.perf_counter()
    for size in (128, 256):
        preset = PRESETS.get(args.preset, {})
        config = TrainConfig(**(preset | {"image_size": size, "batch_size": args.batch_size}))
        figures[f"{size}px"] = throughput(config, run, args.steps)
    figures["seconds"] = time.perf_counter() - started
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
