"""A training run's settings: every field is a `colorful-world train` flag and travels in checkpoints.

Kept free of torch so the command line starts fast.
"""

import math
from dataclasses import dataclass, fields

from colorful_world.io.errors import ConfigError

GAN_MODES = ("vanilla", "lsgan")
PIXEL_LOSSES = ("l1", "mse", "rgb_mse")
ARCHS = ("encoder_unet", "unet")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MODEL_FORMAT = 3  # 1: the pix2pix U-Net only, no "arch" or "format" keys; 2: no "hints" (both still load)
# The keys of nets.encoders.ENCODERS, named here so that checking a config needs no torch (tested equal).
ENCODER_NAMES = ("mobilenet_v2", "resnet18", "resnet34")
ENCODER_DEPTH = 5  # every torchvision encoder here reaches stride 32
# Decoder widths of each architecture when --base-channels is 0 (the one place for them).
BASE_CHANNELS = {"unet": 32, "encoder_unet": 16}

# "unet": the pix2pix U-Net from scratch, at this project's width (the bundled model's recipe before
# the pretrained encoder), for side-by-side comparisons: `colorful-world train --preset unet`.
# The pix2pix reference (Isola et al.'s unet_256 + 70 px PatchGAN, lambda 100, no warm start, no EMA),
# for side-by-side comparisons: `colorful-world train --preset pix2pix`.
PRESETS = {
    "unet": {"arch": "unet", "hints": False},
    "pix2pix": {"arch": "unet", "hints": False, "old_prints": 0.0, "min_crop": 1.0, "chroma_weight": 0.0, "image_size": 256, "base_channels": 64, "max_channels": 512, "disc_channels": 64,
                "disc_layers": 3, "lambda_l1": 100.0, "gan_mode": "vanilla", "l1_epochs": 0, "ema_decay": 0.0},
}


@dataclass(frozen=True)
class ModelConfig:
    """What builds a generator: travels, as JSON, inside every checkpoint and exported model."""

    arch: str
    image_size: int
    depth: int  # levels; the side must be a multiple of 2**depth
    base_channels: int
    max_channels: int
    dropout: float = 0.0  # unet only
    encoder: str = ""  # encoder_unet only: one of ENCODER_NAMES
    hints: bool = False  # takes colour hints beside L (encoder_unet only)
    format: int = MODEL_FORMAT

    @classmethod
    def from_dict(cls, config: dict) -> "ModelConfig":
        """From a model's config; a format-1 model (today's bundled one before this) is a unet.
        Raises ValueError naming what is missing or wrong."""
        if not isinstance(config, dict):
            raise ConfigError("the model's config is not a JSON object")
        config = {"arch": "unet", "max_channels": 512, "format": 1} | config
        if config["format"] > MODEL_FORMAT:
            raise ConfigError(f"model format {config['format']} is newer than this colorful-world "
                             f"understands ({MODEL_FORMAT}): upgrade the package")
        missing = [f.name for f in fields(cls) if f.name in ("image_size", "depth", "base_channels")
                   and f.name not in config]
        if missing:
            raise ConfigError(f"the model's config lacks {', '.join(missing)}")
        model = cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})
        model.check()
        return model

    def check(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown architecture {self.arch!r}; this version knows {', '.join(ARCHS)}")
        for name in ("image_size", "depth", "base_channels", "max_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if not isinstance(self.hints, bool) or (self.hints and self.arch != "encoder_unet"):
            raise ConfigError(f"hints must be true or false, and only encoder_unet takes them (arch {self.arch!r})")
        if self.image_size % 2 ** self.depth:
            raise ConfigError(f"image_size {self.image_size} must be a multiple of 2**depth = {2 ** self.depth}")
        if self.arch == "encoder_unet":
            if self.encoder not in ENCODER_NAMES:
                raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODER_NAMES)}")


@dataclass
class TrainConfig:
    data: str = "lfw"
    out: str = ""  # "" -> runs/faces, or Drive's colorful_world/runs/faces on Colab
    epochs: int = 20
    l1_epochs: int = 1  # phase 1: L1 only, before the discriminator joins (a pretrained encoder needs one)
    max_minutes: float = 0.0  # stop (checkpoint, validate, export) after this much training; 0: no limit
    image_size: int = 128
    batch_size: int = 16
    lr: float = 2e-4
    encoder_lr: float = 1.0  # encoder_unet: the pretrained encoder's learning rate, as a share of lr
    lr_decay_epochs: int = 0  # the last N epochs bring the learning rate linearly down to 0 (pix2pix's)
    beta1: float = 0.5
    lambda_l1: float = 100.0
    chroma_weight: float = 0.2  # the chroma term beside the pixel loss: each pixel's saturation held up to the truth's
    pixel_loss: str = "l1"  # or "mse" (squared ab error), "rgb_mse" (squared error of the sRGB photo: what PSNR scores)
    min_crop: float = 0.5  # random square crops of min_crop to all of the side (scale augmentation)
    gan_mode: str = "vanilla"  # or "lsgan"
    arch: str = "encoder_unet"  # a U-Net decoder on a pretrained encoder, or "unet" (pix2pix's, from scratch)
    encoder: str = "mobilenet_v2"  # encoder_unet: which torchvision classifier
    encoder_weights: str = "imagenet"  # torchvision's ImageNet weights, a safetensors file, or "random"
    base_channels: int = 0  # the narrowest level's width; 0: the architecture's default (BASE_CHANNELS)
    depth: int = 0  # unet: 0 = as deep as the image size allows, at most 8 (pix2pix unet_256)
    max_channels: int = 256  # the widest level; pix2pix's 512 quadruples the deepest layers' weights
    dropout: float = 0.5  # unet only
    disc_channels: int = 32
    disc_layers: int = 3  # 3 -> 70 px receptive field
    ema_decay: float = 0.999
    save_every: int = 500  # steps between checkpoints (and one at each epoch end)
    save_every_minutes: float = 10.0  # and at least this often, so a disconnect costs minutes; 0: off
    keep_checkpoints: int = 2
    log_every: int = 20
    val_fraction: float = 0.05
    max_images: int = 0  # 0: all; a small number for a quick try
    min_colourfulness: float = 5.0  # drop near-grey photos from training
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on GPUs with native bf16, fp16 + grad scaler on older ones, fp32 on CPU
    data_on_device: bool = False  # keep the decoded photos on the GPU and crop there
    cache_dir: str = ""  # "" -> ~/.cache/colorful_world (/content/cache on Colab)
    export_fp16: bool = False
    init_from: str = ""  # a model file (or "bundled") whose generator starts a new run: fine-tuning
    hints: bool = True  # encoder_unet: take colour hints beside L, trained with simulated clicks
    hint_lr: float = 10.0  # the hint inputs' learning rate, as a multiple of lr (new weights next to trained ones)
    old_prints: float = 0.5  # share of training photos whose L is made to look like an old print

    def __post_init__(self) -> None:
        self.hints = self.hints and self.arch == "encoder_unet"  # the from-scratch U-Nets take L alone
        if self.arch == "encoder_unet":
            self.depth = ENCODER_DEPTH
        elif self.depth == 0:
            self.depth = min(8, int(math.log2(self.image_size)))
        if self.base_channels == 0:
            self.base_channels = BASE_CHANNELS.get(self.arch, 32)

    def model(self) -> ModelConfig:
        return ModelConfig(self.arch, self.image_size, self.depth, self.base_channels, self.max_channels,
                           self.dropout, self.encoder if self.arch == "encoder_unet" else "", self.hints)

    def validate(self) -> None:
        if self.gan_mode not in GAN_MODES:
            raise ConfigError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        self.model().check()
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("batch_size and epochs must be at least 1")
        if not 0 <= self.lr_decay_epochs <= self.epochs:
            raise ConfigError(f"lr_decay_epochs must be between 0 and epochs ({self.epochs}), "
                             f"got {self.lr_decay_epochs}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 < self.min_crop <= 1:
            raise ConfigError(f"min_crop must be in (0, 1], got {self.min_crop}")
        if not 0 <= self.old_prints <= 1:
            raise ConfigError(f"old_prints must be in [0, 1], got {self.old_prints}")
        if not 0 < self.hint_lr <= 100:
            raise ConfigError(f"hint_lr must be in (0, 100], got {self.hint_lr}")
        if not 0 <= self.encoder_lr <= 1:
            raise ConfigError(f"encoder_lr must be in [0, 1], got {self.encoder_lr}")
