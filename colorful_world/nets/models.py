"""The generators (L -> ab: the pix2pix U-Net, or a U-Net decoder on a pretrained encoder) and the
conditional PatchGAN discriminator on (L, ab)."""

import torch
import torch.nn.functional as F
from torch import nn

from colorful_world.core.config import ModelConfig


class SkipBlock(nn.Module):
    """One U-Net level: down, the inner levels, up, then concatenate with the input (the skip).

    Built recursively, innermost first, so the whole U-Net is this one block nested `depth` times.
    """

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None,
                 in_channels: int | None = None, out_channels: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        outermost, innermost = out_channels is not None, submodule is None
        down = [nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=False)]
        if not outermost:
            down = [nn.LeakyReLU(0.2, inplace=True)] + down
        if not outermost and not innermost:
            down.append(nn.BatchNorm2d(inner))
        up_in = inner if innermost else inner * 2
        if outermost:
            up = [nn.ReLU(inplace=True), nn.ConvTranspose2d(up_in, out_channels, 4, 2, 1), nn.Tanh()]
        else:
            up = [nn.ReLU(inplace=True), nn.ConvTranspose2d(up_in, outer, 4, 2, 1, bias=False),
                  nn.BatchNorm2d(outer)]
            if dropout:
                up.append(nn.Dropout(dropout))
        self.outermost = outermost
        self.model = nn.Sequential(*down, *([submodule] if submodule else []), *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], dim=1)


class UNet(nn.Module):
    """pix2pix U-Net: L (N,1,H,W) in [-1,1] -> ab (N,2,H,W) in [-1,1]; H, W multiples of 2**depth.

    Channels double per level from `base_channels` up to `max_channels`; dropout sits in the
    up-path of the three levels nearest the bottleneck, as in pix2pix.
    """

    def __init__(self, base_channels: int = 64, depth: int = 8, max_channels: int = 512,
                 dropout: float = 0.5, in_channels: int = 1, out_channels: int = 2):
        super().__init__()
        if depth < 2:
            raise ValueError(f"U-Net depth must be at least 2, got {depth}")
        widths = [min(base_channels * 2 ** i, max_channels) for i in range(depth)]
        block = None
        for level in range(depth - 1, 0, -1):  # innermost first
            near_bottom = level >= depth - 4 and level != depth - 1
            block = SkipBlock(widths[level - 1], widths[level], block,
                              dropout=dropout if near_bottom else 0.0)
        self.model = SkipBlock(widths[0], widths[0], block, in_channels, out_channels)
        self.depth = depth

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        return self.model(l_norm)


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the encoder's features at that resolution, two 3x3 convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.convs(torch.cat([x, skip], dim=1))


def split_by_resolution(features: nn.Sequential) -> tuple[nn.ModuleList, list[int]]:
    """The feature layers grouped into stages that each end at stride 2, 4, 8...: a layer that
    halves the resolution starts a new stage (fastai's DynamicUnet finds its skips the same way).
    Returns the stages and their output channels."""
    was_training = features.training
    features.eval()  # the probe must not move BatchNorm's running statistics
    stages, channels, current = [], [], []
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        for layer in features:
            y = layer(x)
            if y.shape[-1] < x.shape[-1] and current:
                stages.append(nn.Sequential(*current))
                channels.append(x.shape[1])
                current = []
            current.append(layer)
            x = y
    stages.append(nn.Sequential(*current))
    channels.append(x.shape[1])
    features.train(was_training)
    return nn.ModuleList(stages), channels


class EncoderUNet(nn.Module):
    """A U-Net decoder on the feature maps of a torchvision classifier (ImageNet weights), as
    DeOldify (ResNet) and DDColor (ConvNeXt) start: the encoder already knows skies, cloth and
    skin, which a few thousand faces cannot teach. L (N,1,H,W) in [-1,1] -> ab (N,2,H,W) in
    [-1,1]; H, W multiples of 2**depth (32 for every encoder here).
    """

    def __init__(self, encoder: str = "mobilenet_v2", weights: str = "random", base_channels: int = 16,
                 max_channels: int = 256):
        super().__init__()
        from colorful_world.nets.encoders import IMAGENET_MEAN, IMAGENET_STD, feature_stages
        self.stages, skips = split_by_resolution(feature_stages(encoder, weights))
        self.depth = len(self.stages)
        widths = [min(base_channels * 2 ** k, max_channels) for k in range(self.depth)]
        # Deepest first: level k upsamples to stride 2**k and joins the stage that ends there.
        self.decoder = nn.ModuleList(
            DecoderBlock(skips[k + 1] if k + 1 == self.depth - 1 else widths[k + 1], skips[k], widths[k])
            for k in range(self.depth - 2, -1, -1))
        self.head = nn.Sequential(  # full resolution, with the input L itself as the last skip
            nn.Conv2d(widths[0] + 1, widths[0], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(widths[0], 2, 1), nn.Tanh())
        self.register_buffer("mean", IMAGENET_MEAN.clone(), persistent=False)
        self.register_buffer("std", IMAGENET_STD.clone(), persistent=False)

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        # The encoder learned on RGB photos normalised with ImageNet's statistics: grey L, taken
        # as equal R, G and B (L/100 is close to the sRGB value of a grey), normalised the same
        # way, is the input its first layer's filters expect.
        grey = ((l_norm + 1) / 2).expand(-1, 3, -1, -1)
        x = (grey - self.mean.to(grey.dtype)) / self.std.to(grey.dtype)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        for block, skip in zip(self.decoder, reversed(skips[:-1])):
            x = block(x, skip)
        x = F.interpolate(x, size=l_norm.shape[-2:], mode="nearest")
        return self.head(torch.cat([x, l_norm], dim=1))


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: scores each overlapping patch of (L, ab) as real or fake.

    With n_layers=3 each output logit sees a 70x70 px patch. InstanceNorm rather than BatchNorm
    because real and fake go through in one batch, and batch statistics would give them away.
    """

    def __init__(self, base_channels: int = 64, n_layers: int = 3, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        channels = base_channels
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            out = base_channels * min(2 ** i, 8)
            layers += [nn.Conv2d(channels, out, 4, stride, 1, bias=False),
                       nn.InstanceNorm2d(out, affine=True), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([l_norm, ab_norm], dim=1))


def receptive_field(n_layers: int) -> int:
    """Receptive field in pixels of one PatchDiscriminator logit (4x4 kernels)."""
    field = 4  # the final 4x4 stride-1 conv
    for stride in [1] + [2] * n_layers:  # walk back: the stride-1 layer, then n_layers stride-2 convs
        field = (field - 1) * stride + 4
    return field


def build_generator(config: ModelConfig, encoder_weights: str = "random") -> nn.Module:
    """The generator a model config describes (it travels inside every checkpoint and export).

    `encoder_weights` matters to training only: a model being loaded gets its weights next.
    """
    if config.arch == "encoder_unet":
        return EncoderUNet(config.encoder, encoder_weights, config.base_channels, config.max_channels)
    return UNet(base_channels=config.base_channels, depth=config.depth, dropout=config.dropout,
                max_channels=config.max_channels)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
