"""Training memory, computed without a GPU: the bytes autograd keeps for the backward pass (every
saved activation, counted as it is saved), per image, for G and D in one GAN step, in float32 and
under fp16/bf16 autocast; plus weights, gradients and Adam's two moments. From these, the largest
batch that fits a GPU of --gpu-gb (default 16: Colab's T4), leaving --reserve-gb for the CUDA
context and the allocator's slack, and counting each image's activations --headroom times (the
backward pass holds gradients of activations beside them for a while).

    python benchmarks/memory.py [--sizes 128 256] [--gpu-gb 16] [--reserve-gb 2.5] [--headroom 1.5]
"""

import argparse
import json

import torch

from colorful_world.core.config import PRESETS, TrainConfig
from colorful_world.core.runtime import Runtime
from colorful_world.core.data import training_batch
from colorful_world.training.state import build_training
from colorful_world.training.train import train_step


def saved_bytes(fn) -> int:
    """Bytes of the tensors autograd saves while `fn` runs (each storage counted once)."""
    seen, total = set(), 0

    def pack(tensor):
        nonlocal total
        key = tensor.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def measure(config: TrainConfig, dtype: torch.dtype | None, batch: int = 4) -> dict:
    runtime = Runtime(torch.device("cpu"), dtype)
    G, D, opt_g, opt_d, scaler = build_training(config, runtime, pretrained=False)
    photos = torch.randint(0, 256, (batch, 3, config.image_size, config.image_size), dtype=torch.uint8)
    inputs = training_batch(photos, torch.arange(batch), config.image_size, 0, 0, 1.0, config.old_prints,
                            config.hints, runtime.device)
    activations = saved_bytes(lambda: train_step(inputs, G, D, opt_g, opt_d, scaler, config, True, runtime))
    weights = sum(p.numel() * 4 for m in (G, D) for p in m.parameters())
    return {"activations_per_image_mb": activations / batch / 2**20,
            "weights_grads_adam_mb": 4 * weights / 2**20}  # weights, gradients, two moments: fp32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--gpu-gb", type=float, default=16.0)
    parser.add_argument("--reserve-gb", type=float, default=2.5)
    parser.add_argument("--headroom", type=float, default=1.5)
    args = parser.parse_args()
    budget = (args.gpu_gb - args.reserve_gb) * 2**10
    figures = {"gpu_gb": args.gpu_gb, "reserve_gb": args.reserve_gb, "headroom": args.headroom}
    for name, preset in (("default (encoder_unet)", {}), ("unet", PRESETS["unet"]), ("pix2pix", PRESETS["pix2pix"])):
        for size in args.sizes:
            config = TrainConfig(**(preset | {"image_size": size, "encoder_weights": "random"}))
            for precision, dtype in (("fp32", None), ("fp16", torch.float16)):
                m = measure(config, dtype)
                fits = int((budget - m["weights_grads_adam_mb"]) // (args.headroom * m["activations_per_image_mb"]))
                figures[f"{name} {size}px {precision}"] = m | {"largest_batch": fits}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
