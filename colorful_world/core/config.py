"""A training run's settings: every field is a `colorful-world train` flag and travels in checkpoints.

Kept free of torch so the command line starts fast.
"""

import math
from dataclasses import dataclass, field, fields

from colorful_world.io.errors import ConfigError

GAN_MODES = ("vanilla", "lsgan")
PIXEL_LOSSES = ("l1", "mse", "rgb_mse")
ARCHS = ("encoder_unet", "unet")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# The bounds of what a model's config may claim: one rule (ModelConfig.from_dict), checked by
# every door that loads a model (torch, ONNX, info, export, serve, Lambda), so a file that
# claims a 99,968-pixel working side is refused when it loads, not when the first photo is run.
MAX_IMAGE_SIZE = 2048  # the network's working side; a 2048 x 2048 pass on CPU is GBs already
MAX_DEPTH = 8  # pix2pix's unet_256 is the deepest
MAX_CHANNELS = 2048
CHROMA_GAIN_MAX = 10.0  # a model's colour strength, 0 (grey) to 10, as export takes it
MODEL_FORMAT = 4  # 1: the pix2pix U-Net only, no "arch" or "format" keys; 2: no "hints"; 3: hint inputs in the
# decoder, no HintRefine (all still load: see nets.model_file.upgrade_state)
# The keys of nets.encoders.ENCODERS, named here so that checking a config needs no torch (tested equal).
ENCODER_NAMES = ("mobilenet_v2", "resnet18", "resnet34")
ENCODER_DEPTH = 5  # every torchvision encoder here reaches stride 32
# Decoder widths of each architecture when --base-channels is 0 (the one place for them).
BASE_CHANNELS = {"unet": 32, "encoder_unet": 16}

# Known configurations for side-by-side comparisons (`train --preset NAME`); settings given by name win.
PRESETS = {
    "unet": {"arch": "unet", "hints": False},
    "pix2pix": {"arch": "unet", "hints": False, "old_prints": 0.0, "min_crop": 1.0, "chroma_weight": 0.0, "image_size": 256, "base_channels": 64, "max_channels": 512, "disc_channels": 64,
                "disc_layers": 3, "lambda_l1": 100.0, "gan_mode": "vanilla", "l1_epochs": 0, "ema_decay": 0.0},
}
PRESET_HELP = {
    "unet": "the U-Net from scratch at this package's width, the bundled model's architecture before the "
            "pretrained encoder",
    "pix2pix": "the pix2pix reference: unet_256 and a 70 px PatchGAN, lambda 100, 256 px, no warm start, no EMA",
}


def with_preset(settings: dict) -> dict:
    """`settings` over the preset they name (key "preset", a name of PRESETS; none or empty: none):
    the one place presets are merged, for the CLI, the launcher and the train notebook alike."""
    settings = dict(settings)
    name = settings.pop("preset", None) or ""
    if name not in PRESETS and name:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS.get(name, {}) | settings


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
        if not _whole(config["format"]) or config["format"] < 1:
            raise ConfigError(f"model format must be a whole number, got {config['format']!r}")
        if "chroma_gain" in config:
            check_chroma_gain(config["chroma_gain"])
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
        for name, top in (("image_size", MAX_IMAGE_SIZE), ("depth", MAX_DEPTH), ("base_channels", MAX_CHANNELS),
                          ("max_channels", MAX_CHANNELS)):
            value = getattr(self, name)
            if not _whole(value) or not 1 <= value <= top:
                raise ConfigError(f"{name} must be a whole number from 1 to {top}, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.hints, bool) or (self.hints and self.arch != "encoder_unet"):
            raise ConfigError(f"hints must be true or false, and only encoder_unet takes them (arch {self.arch!r})")
        if self.image_size % 2 ** self.depth:
            raise ConfigError(f"image_size {self.image_size} must be a multiple of 2**depth = {2 ** self.depth}")
        if self.arch == "encoder_unet":
            if self.encoder not in ENCODER_NAMES:
                raise ConfigError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODER_NAMES)}")


# Every numeric setting's range: the one rule TrainConfig.validate holds them to, written as
# intervals ("[" and "]" take the bound, "(" and ")" leave it out). Whole-number settings take
# whole numbers only; every number must be finite.
RANGES: dict[str, tuple[str, float, float, str]] = {
    "epochs": ("[", 1, math.inf, ")"),
    "l1_epochs": ("[", 0, math.inf, ")"),
    "max_minutes": ("[", 0, math.inf, ")"),  # 0: no limit
    "batch_size": ("[", 1, math.inf, ")"),
    "lr": ("(", 0, 1, "]"),
    "encoder_lr": ("[", 0, 1, "]"),
    "lr_decay_epochs": ("[", 0, math.inf, ")"),  # and at most epochs, below
    "beta1": ("[", 0, 1, ")"),
    "lambda_l1": ("[", 0, math.inf, ")"),
    "chroma_weight": ("[", 0, math.inf, ")"),
    "min_crop": ("(", 0, 1, "]"),
    "disc_channels": ("[", 1, MAX_CHANNELS, "]"),
    "disc_layers": ("[", 1, 8, "]"),
    "ema_decay": ("[", 0, 1, ")"),
    "save_every": ("[", 1, math.inf, ")"),
    "save_every_minutes": ("[", 0, math.inf, ")"),  # 0: off
    "keep_checkpoints": ("[", 1, math.inf, ")"),
    "log_every": ("[", 1, math.inf, ")"),
    "val_fraction": ("(", 0, 1, ")"),
    "max_images": ("[", 0, math.inf, ")"),  # 0: all
    "min_colourfulness": ("[", 0, math.inf, ")"),
    "seed": ("[", 0, 2 ** 31 - 1, "]"),  # the generators' seeds are made from it (seed * 100,003 + epoch)
    "hint_lr": ("(", 0, 100, "]"),
    "old_prints": ("[", 0, 1, "]"),
    "recolour_hints": ("[", 0, 1, "]"),
}


def check_range(name: str, value, bounds: tuple[str, float, float, str]) -> None:
    """`value` inside `bounds` (a RANGES entry), a whole number where the setting is one."""
    opening, low, high, closing = bounds
    whole = isinstance(TrainConfig.__dataclass_fields__[name].default, int) if name in \
        TrainConfig.__dataclass_fields__ else isinstance(low, int) and isinstance(high, int)
    shown = f"{opening}{low:g}, {'inf' if high == math.inf else f'{high:g}'}{closing}"
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (whole and not isinstance(value, int)) or not math.isfinite(value) or \
            value < low or (opening == "(" and value == low) or value > high or (closing == ")" and value == high):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{name} must be {kind} in {shown}, got {value!r}")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_chroma_gain(value) -> float:
    """A model's chroma gain, as its config or export gives it: a number from 0 to CHROMA_GAIN_MAX."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= CHROMA_GAIN_MAX:
        raise ConfigError(f"chroma_gain must be a number from 0 to {CHROMA_GAIN_MAX:g}, got {value!r}")
    return float(value)


def data_shares(weights: str, sources: int) -> list[float] | None:
    """--data-weights as each source's share of a batch (summing to 1); None where not given."""
    if not weights:
        return None
    try:
        values = [float(part) for part in weights.split(",")]
    except ValueError:
        values = []
    if len(values) != sources or not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
        raise ConfigError(f"data_weights takes one share per --data source ({sources}), comma-separated "
                          f"non-negative numbers such as 0.55,0.45; got {weights!r}")
    return [v / sum(values) for v in values]


def setting(default, group: str, help: str, shown: str | None = None, choices: tuple = ()):
    """A TrainConfig field with its help, the one text the CLI, the launcher and the train notebook
    show for it; `shown` is the default as a user reads it, where the value itself says nothing."""
    return field(default=default, metadata={"group": group, "help": help, "shown": shown, "choices": choices})


# What help texts show after each flag that takes a value.
METAVARS = {"data": "PATH", "out": "DIR", "cache_dir": "DIR", "encoder_weights": "WEIGHTS", "init_from": "MODEL"}


def metavar(setting_field) -> str:
    """The placeholder help texts show after a TrainConfig field's flag ("" for a switch)."""
    kind = type(setting_field.default)
    if kind is bool:
        return ""
    choices = setting_field.metadata.get("choices")
    if choices:
        return "{" + ",".join(choices) + "}"
    return METAVARS.get(setting_field.name) or {int: "N", float: "X"}.get(kind, "TEXT")


def shown_default(setting_field) -> str:
    """A TrainConfig field's default, as help texts print it (once)."""
    default = setting_field.default
    if setting_field.metadata.get("shown"):
        return setting_field.metadata["shown"]
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


# How `train --help` and the launcher's --help group the settings, in this order.
GROUPS = {
    "photos": "the photos",
    "model": "the networks",
    "schedule": "how long and how fast",
    "loss": "what it learns from",
    "saving": "checkpoints, logs and the exported model",
    "machine": "device and precision",
}


@dataclass
class TrainConfig:
    data: str | list[str] = setting("lfw", "photos", "photos to learn from: 'lfw' (downloaded once), a folder of "
                                    "colour photos (searched recursively), or a .tgz/.tar/.zip of one; repeated, "
                                    "several sources, faces first (a source with train/ and val/ folders keeps "
                                    "that split)")
    data_weights: str = setting("", "photos", "with several --data sources, each one's share of every batch, "
                                "comma-separated in their order (e.g. 0.55,0.45)", shown="in proportion to their photos")
    out: str = setting("", "saving", "the run folder: checkpoints/, metrics.jsonl, metrics.png, samples/, "
                       "generator.safetensors", shown="runs/faces; on Colab, Drive's colorful_world/runs/faces")
    epochs: int = setting(20, "schedule", "passes over the training photos; raised later, the same run goes on to "
                          "the new number")
    l1_epochs: int = setting(1, "schedule", "epochs of the pixel loss alone, a warm start, before the "
                             "discriminator joins")
    max_minutes: float = setting(0.0, "schedule", "stop after this many minutes of training, counted across resumes: "
                                 "checkpoint, validate and export as at the end; 0: no limit")
    image_size: int = setting(128, "model", "the side the network trains at, in pixels; 256 is finer and costs 4x the compute")
    batch_size: int = setting(16, "schedule", "photos per step (per GPU under torchrun)")
    lr: float = setting(2e-4, "schedule", "Adam's learning rate")
    encoder_lr: float = setting(1.0, "schedule", "encoder_unet: the pretrained encoder's learning rate as a share of "
                                "--lr (below 1 keeps more of what ImageNet taught it; 0 freezes it)")
    lr_decay_epochs: int = setting(0, "schedule", "the last N epochs bring the learning rate linearly down to 0, as "
                                   "pix2pix does")
    beta1: float = setting(0.5, "schedule", "Adam's beta1, the momentum of its gradient average")
    lambda_l1: float = setting(100.0, "loss", "weight of the pixel loss and chroma term beside the adversarial "
                               "loss, once the discriminator has joined")
    chroma_weight: float = setting(0.2, "loss", "weight, beside the pixel loss, of a term that holds each pixel's "
                                   "saturation up to the truth's; 0: the pixel loss alone")
    pixel_loss: str = setting("l1", "loss", "l1 or mse on the colour (ab), or rgb_mse: the squared error of the "
                              "sRGB photo, the error PSNR scores", choices=PIXEL_LOSSES)
    min_crop: float = setting(0.5, "photos", "scale augmentation: random square crops from this share of the side "
                              "up to the whole photo")
    gan_mode: str = setting("vanilla", "loss", "the adversarial loss: vanilla (cross-entropy) or lsgan "
                            "(least squares)", choices=GAN_MODES)
    arch: str = setting("encoder_unet", "model", "encoder_unet: a U-Net decoder on a pretrained torchvision "
                        "encoder; unet: pix2pix's U-Net, from scratch", choices=ARCHS)
    encoder: str = setting("mobilenet_v2", "model", "encoder_unet's torchvision classifier",
                           choices=ENCODER_NAMES)
    encoder_weights: str = setting("imagenet", "model", "imagenet (torchvision's weights, downloaded once; "
                                   "$COLORFUL_WORLD_ENCODER_WEIGHTS may name a file instead), a file of the "
                                   "classifier's weights for offline use (.safetensors, or torchvision's own .pth), "
                                   "or random")
    base_channels: int = setting(0, "model", "width of the narrowest level; 0: the architecture's own, unet 32, "
                                 "encoder_unet 16")
    depth: int = setting(0, "model", "unet levels; 0: as deep as the image size allows, at most 8 (encoder_unet "
                         "always has 5)")
    max_channels: int = setting(256, "model", "width of the widest level; pix2pix's 512 has four times the deepest "
                                "layers' weights")
    dropout: float = setting(0.5, "model", "unet only: dropout in the deepest decoder levels, pix2pix's noise")
    disc_channels: int = setting(32, "model", "width of the discriminator's first layer")
    disc_layers: int = setting(3, "model", "the discriminator's strided layers; 3 gives a 70 px receptive field")
    ema_decay: float = setting(0.999, "model", "decay of the generator's moving average, the weights validation "
                               "and export use; 0: the last weights")
    save_every: int = setting(500, "saving", "steps between checkpoints (one is also written at each epoch end)")
    save_every_minutes: float = setting(10.0, "saving", "also write a checkpoint this many minutes after the last "
                                        "one, so a disconnect costs minutes; 0: off")
    keep_checkpoints: int = setting(2, "saving", "how many of the newest checkpoints to keep")
    log_every: int = setting(20, "saving", "steps between lines of metrics.jsonl (losses, seconds a step, the "
                             "share of time spent waiting for data)")
    val_fraction: float = setting(0.05, "photos", "share of the people (or photos) held out for validation, "
                                  "never trained on")
    max_images: int = setting(0, "photos", "use only the first N photos, for a quick try; 0: all")
    min_colourfulness: float = setting(5.0, "photos", "drop photos less colourful than this, on a 0-100 scale where a "
                                       "grey photo is about 0")
    seed: int = setting(0, "photos", "seed of the split, the batches and the augmentation: the same seed "
                        "replays the same run")
    precision: str = setting("auto", "machine", "auto (bf16 on GPUs of compute capability 8.0 and up, fp16 with a "
                             "grad scaler on older ones such as the T4, fp32 on the CPU), or fp32, fp16, bf16",
                             choices=PRECISIONS)
    data_on_device: bool = setting(False, "machine", "keep the decoded photos on the GPU and crop them there")
    cache_dir: str = setting("", "photos", "where decoded photos are cached",
                             shown="~/.cache/colorful_world; /content/cache on Colab")
    export_fp16: bool = setting(False, "saving", "write the exported model in half precision (half the size)")
    init_from: str = setting("", "model", "start the generator from this model file, or 'bundled' (the package's "
                             "face model): fine-tuning", shown="the encoder's weights")
    hints: bool = setting(True, "model", "encoder_unet: take colour hints beside the grey photo, trained with "
                          "simulated clicks")
    hint_lr: float = setting(10.0, "schedule", "the hint weights' learning rate, as a multiple of --lr (new weights "
                             "beside trained ones)")
    hints_only: bool = setting(False, "model", "train the hint weights alone on the frozen --init-from model, with "
                               "its chroma gain: its colour without hints stays exactly its own")
    recolour_hints: float = setting(0.0, "photos", "share of the clicked training photos in which one object "
                                    "takes a colour far from its own and the clicks say so, so that a hint "
                                    "keeps to its object")
    old_prints: float = setting(0.5, "photos", "share of training photos made to look like old prints (blur, "
                                "grain, fading, JPEG, dust); the colour they learn is the clean photo's")

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

    def sources(self) -> int:
        return 1 if isinstance(self.data, str) else len(self.data)

    def validate(self) -> None:
        data_shares(self.data_weights, self.sources())
        if self.gan_mode not in GAN_MODES:
            raise ConfigError(f"gan_mode must be one of {GAN_MODES}, got {self.gan_mode!r}")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        self.model().check()
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("batch_size and epochs must be at least 1")
        for name, bounds in RANGES.items():
            check_range(name, getattr(self, name), bounds)
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
        if self.image_size < 3 * 2 ** self.disc_layers:  # the patch grid must outlast its last two 4 x 4 convs
            raise ConfigError(f"disc_layers {self.disc_layers} needs an image_size of at least "
                              f"{3 * 2 ** self.disc_layers} (the discriminator halves it {self.disc_layers} times); "
                              f"got {self.image_size}")
        if self.hints_only and not (self.init_from and self.hints):
            raise ConfigError("hints_only trains the hints of a trained model: give --init-from MODEL "
                              "(or bundled), and an encoder_unet that takes hints")
