"""A training run's settings: every field is a `colorful-world train` flag and travels in checkpoints.

Kept free of torch so the command line starts fast.
"""

import math
from dataclasses import dataclass

GAN_MODES = ("vanilla", "lsgan")

# The pix2pix reference (Isola et al.'s unet_256 + 70 px PatchGAN, lambda 100, no warm start, no EMA),
# for side-by-side comparisons: `colorful-world train --preset pix2pix`.
PRESETS = {
    "pix2pix": {"image_size": 256, "base_channels": 64, "max_channels": 512, "disc_channels": 64,
                "disc_layers": 3, "lambda_l1": 100.0, "gan_mode": "vanilla", "l1_epochs": 0, "ema_decay": 0.0},
}


@dataclass
class TrainConfig:
    data: str = "lfw"
    out: str = ""  # "" -> runs/faces, or Drive's colorful_world/runs/faces on Colab
    epochs: int = 20
    l1_epochs: int = 2  # phase 1: L1 only, before the discriminator joins
    max_minutes: float = 0.0  # stop (checkpoint, validate, export) after this much training; 0: no limit
    image_size: int = 128
    batch_size: int = 16
    lr: float = 2e-4
    lr_decay_epochs: int = 0  # the last N epochs bring the learning rate linearly down to 0 (pix2pix's)
    beta1: float = 0.5
    lambda_l1: float = 100.0
    gan_mode: str = "vanilla"  # or "lsgan"
    base_channels: int = 32
    depth: int = 0  # 0: as deep as the image size allows, at most 8 (pix2pix unet_256)
    max_channels: int = 256  # the U-Net's widest level; pix2pix's 512 quadruples the deepest layers' weights
    dropout: float = 0.5
    disc_channels: int = 32
    disc_layers: int = 3  # 3 -> 70 px receptive field
    ema_decay: float = 0.999
    save_every: int = 500  # steps between checkpoints (and one at each epoch end)
    keep_checkpoints: int = 2
    log_every: int = 20
    val_fraction: float = 0.05
    max_images: int = 0  # 0: all; a small number for a quick try
    min_colourfulness: float = 5.0  # drop near-grey photos from training
    seed: int = 0
    data_on_device: bool = False  # keep the decoded photos on the GPU and crop there
    cache_dir: str = ""  # "" -> ~/.cache/colorful_world (/content/cache on Colab)
    export_fp16: bool = False

    def __post_init__(self) -> None:
        if self.depth == 0:
            self.depth = min(8, int(math.log2(self.image_size)))

    def validate(self) -> None:
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        if self.image_size % 2 ** self.depth:
            raise ValueError(f"image_size {self.image_size} must be a multiple of 2**depth = {2 ** self.depth}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be at least 1")
        if not 0 <= self.lr_decay_epochs <= self.epochs:
            raise ValueError(f"lr_decay_epochs must be between 0 and epochs ({self.epochs}), "
                             f"got {self.lr_decay_epochs}")
