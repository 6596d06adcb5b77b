"""Speed figures on this machine: `python -m colorful_world.benchmark [--image-size 128 ...]`.

Prints parameter counts, seconds per training step (L1 phase and GAN phase) and milliseconds
to colorize a photo file to a PNG file, as medians. The numbers depend on the machine and its
load; compare them only with figures taken in the same run.
"""

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorful_world import runtime as rt
from colorful_world.colorize import Colorizer
from colorful_world.config import TrainConfig
from colorful_world.models import PatchDiscriminator, build_generator, count_parameters
from colorful_world.train import train_step


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_step_seconds(config: TrainConfig, run: rt.Runtime, repeats: int) -> dict:
    G = build_generator(asdict(config)).to(run.device)
    D = PatchDiscriminator(config.disc_channels, config.disc_layers).to(run.device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16)
    rgb = torch.rand(config.batch_size, 3, config.image_size, config.image_size, device=run.device)
    figures = {"generator_parameters": count_parameters(G), "discriminator_parameters": count_parameters(D)}
    for phase, gan in (("l1", False), ("gan", True)):
        figures[f"sec_per_step_{phase}"] = _median_seconds(
            lambda: train_step(rgb, G, D, opt_g, opt_d, scaler, config, gan, run), repeats)
    return figures


def colorize_ms(config: TrainConfig, size: int, repeats: int) -> float:
    colorizer = Colorizer(build_generator(asdict(config)), config.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        photo, out = Path(tmp) / "photo.jpg", Path(tmp) / "photo.png"
        grey = np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)
        Image.fromarray(grey, "L").save(photo, quality=90)
        return 1000 * _median_seconds(lambda: colorizer.colorize(photo).save(out), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--base-channels", type=int, default=64)
    parser.add_argument("--depth", type=int, default=0, help="0: as deep as the image size allows (max 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per phase")
    parser.add_argument("--photo-size", type=int, default=1024)
    parser.add_argument("--photos", type=int, default=10, help="timed colorizations")
    args = parser.parse_args()
    config = TrainConfig(image_size=args.image_size, batch_size=args.batch_size, base_channels=args.base_channels,
                         depth=args.depth)
    run = rt.setup()
    figures = {"device": str(run.device), "threads": torch.get_num_threads(), "image_size": config.image_size,
               "batch_size": config.batch_size, "depth": config.depth}
    figures |= training_step_seconds(config, run, args.steps)
    figures[f"colorize_{args.photo_size}px_ms"] = colorize_ms(config, args.photo_size, args.photos)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
