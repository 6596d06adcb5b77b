"""The generators (L -> ab: the pix2pix U-Net, or a U-Net decoder on a pretrained encoder) and the
conditional PatchGAN discriminator on (L, ab)."""

import math

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


HINT_PARTS = ("refine.",)  # the modules that take hints, by their names in a state_dict


class EncoderUNet(nn.Module):
    """A U-Net decoder on the feature maps of a torchvision classifier (ImageNet weights), as
    DeOldify (ResNet) and DDColor (ConvNeXt) start: the encoder already knows skies, cloth and
    skin, which a few thousand faces cannot teach. L (N,1,H,W) in [-1,1] -> ab (N,2,H,W) in
    [-1,1]; H, W multiples of 2**depth (32 for every encoder here).
    """

    def __init__(self, encoder: str = "mobilenet_v2", weights: str = "random", base_channels: int = 16,
                 max_channels: int = 256, hints: bool = False):
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
        # Hints (a, b, mask) act after the network: with no hint it is exactly the hint-free one,
        # a model fine-tuned from a hint-free one starts where it was, and a click need not run the
        # encoder again. Learned hint inputs at every decoder level were tried first: after 1,926
        # steps they moved the error by under 0.1% (docs/experiments.md).
        self.hints = hints
        if hints:
            self.spread = HintSpread()
            self.refine = HintRefine(widths[0])
        self.register_buffer("mean", IMAGENET_MEAN.clone(), persistent=False)
        self.register_buffer("std", IMAGENET_STD.clone(), persistent=False)

    def forward(self, l_norm: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """`hints`: (N, 3, H, W) a, b and mask at the input's size (core.hints), or None."""
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
        ab = self.head(torch.cat([F.interpolate(x, size=l_norm.shape[-2:], mode="nearest"), l_norm], dim=1))
        if hints is None or not self.hints:
            return ab
        return self.with_hints(ab, l_norm, hints.to(ab.dtype), x)

    def with_hints(self, ab: torch.Tensor, l_norm: torch.Tensor, hints: torch.Tensor,
                   features: torch.Tensor) -> torch.Tensor:
        """The hint-free colour `ab` moved by the hints: spread by lightness, then refined by the
        learned HintRefine on the decoder's last `features`. Hinted pixels take their hints."""
        spread = self.spread(ab, l_norm, hints)
        out = self.refine(ab, spread, l_norm, hints, features)
        return torch.where(hints[:, 2:] > 0, hints[:, :2], out)

    def hint_parameters(self) -> list[nn.Parameter]:
        """The weights a hint-free model lacks: new when one is fine-tuned into a hinted one."""
        return [p for name, p in self.named_parameters() if name.startswith(HINT_PARTS)]


class HintSpread(nn.Module):
    """Each hint's correction (its colour minus the network's there) carried to the pixels near it
    that are about as light and that the network colours alike: a joint-bilateral weight on
    position, L and the network's own ab (the guide of Petschnigg et al. and Kopf et al.,
    SIGGRAPH 2004 and 2007). Pixels the network paints the same brown, as light as the hinted one,
    are likely the same cloth or wall; skin beside it is not. Hints are gathered in CELLS x CELLS
    cells (their count, mean place, guide and correction); pixels are read on a READS x READS
    grid and the correction resized. A pixel takes 1 - exp(-weight / REACH) of the weighted mean correction.

    No learned weights: it works from the first step, and with no hint every weight is 0 and
    the colour is the network's own. The settings were chosen on training photos (10 hints;
    docs/experiments.md): +3.1 dB over none where a grid by place and lightness alone gave +1.9.
    Computed in float32 under any autocast: the squared distances reach the hundreds.
    """

    CELLS = 16  # hint cells a side (8 px at 128 px)
    READS = 64  # pixels read a side (every 2nd at 128 px): the work is the same at any working size
    SIGMA = 0.35  # of the photo's side: a correction carries across a shoulder, hardly across the photo
    LIGHT_SIGMA = 0.1  # of L's range: 10 L units
    COLOUR_SIGMA = 0.045  # model ab units: 5 CIELAB a*b* units of the network's own colour
    REACH = 0.9  # hinted pixels' weight that moves a pixel 63% of the way: a 3 x 3 click is 9

    def forward(self, ab: torch.Tensor, l_norm: torch.Tensor, hints: torch.Tensor) -> torch.Tensor:
        dtype, ab, l_norm, hints = ab.dtype, ab.float(), l_norm.float(), hints.float()
        side = int(ab.shape[-1])  # a square: the working size (an ONNX export keeps its own size's cells)
        cell, stride = max(1, side // self.CELLS), max(1, side // self.READS)
        mask = hints[:, 2:]
        ones = torch.ones_like(mask)  # places as shares of the side, without the side as a number (ONNX)
        place = torch.cat([ones.cumsum(-1) / ones.sum(-1, keepdim=True),
                           ones.cumsum(-2) / ones.sum(-2, keepdim=True)], dim=1)
        # Where a pixel is and what it looks like, in sigmas: the weight is exp(-distance^2 / 2).
        key = torch.cat([place / self.SIGMA, (l_norm + 1) / (2 * self.LIGHT_SIGMA), ab / self.COLOUR_SIGMA], dim=1)
        cover = F.avg_pool2d(mask, cell)
        count = (cover * cell ** 2).flatten(2)  # hinted pixels a cell: (N, 1, cells)
        hint_key = (F.avg_pool2d(key * mask, cell) / cover.clamp_min(1e-6)).flatten(2)
        correction = (F.avg_pool2d((hints[:, :2] - ab) * mask, cell) / cover.clamp_min(1e-6)).flatten(2)
        pixels = F.avg_pool2d(key, stride)
        pixel_key = pixels.flatten(2)
        distance = (hint_key.pow(2).sum(1)[:, :, None] + pixel_key.pow(2).sum(1)[:, None, :]
                    - 2 * hint_key.transpose(1, 2) @ pixel_key).clamp_min(0)  # (N, cells, pixels)
        weight = count.transpose(1, 2) * torch.exp(-distance / 2)
        total = weight.sum(1, keepdim=True)  # (N, 1, pixels)
        share = (1 - torch.exp(-total / self.REACH)) / total.clamp_min(1e-6)
        moved = (correction @ weight * share).reshape(pixels[:, :2].shape)
        return (ab + F.interpolate(moved, size=ab.shape[-2:], mode="bilinear", align_corners=False)).to(dtype)


class HintRefine(nn.Module):
    """What the spread cannot know: how far a hint's colour reaches (the whole shirt, not the
    skin beside it) and what it says about the rest of the photo. A small context network at the
    decoder's last resolution reads L, the hint-free colour, the spread's colour, the hints and
    the decoder's features, and adds a correction to the spread's colour. Dilations 1-16 see
    the whole photo at 64 px. Its last layer starts at zero (the spread alone), and a photo
    without hints gets no correction, so hint-free colour stays exactly the network's.
    """

    STRIDE = 2  # of the decoder's last features: every encoder's first stage halves the photo
    WIDTH = 32
    DILATIONS = (1, 2, 4, 8, 16)

    def __init__(self, features: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(features + 8, self.WIDTH, 3, padding=1), nn.ReLU(inplace=True)]
        for d in self.DILATIONS:
            layers += [nn.Conv2d(self.WIDTH, self.WIDTH, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(self.WIDTH, 2, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, ab: torch.Tensor, spread: torch.Tensor, l_norm: torch.Tensor, hints: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(torch.cat([l_norm, ab, spread], dim=1), self.STRIDE)
        x = torch.cat([small, pool_hints(hints, self.STRIDE), features], dim=1)
        correction = F.interpolate(self.out(self.body(x)), size=ab.shape[-2:], mode="bilinear", align_corners=False)
        any_hint = hints[:, 2:].amax(dim=(2, 3), keepdim=True)  # 0 for a photo without hints
        return (spread + any_hint * correction).clamp(-1, 1)


def pool_hints(hints: torch.Tensor, factor: int) -> torch.Tensor:
    """Hints (N, 3, H, W) pooled by `factor`: each cell's mean hinted ab, and 1 where any pixel
    of the cell holds a hint (a few hinted pixels must not fade away in a 32 x 32 cell)."""
    if factor == 1:
        return hints
    mask = hints[:, 2:]
    covered = F.avg_pool2d(mask, factor)
    ab = F.avg_pool2d(hints[:, :2] * mask, factor) / covered.clamp_min(1e-6)
    return torch.cat([ab, (covered > 0).to(hints.dtype)], dim=1)


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
        return EncoderUNet(config.encoder, encoder_weights, config.base_channels, config.max_channels, config.hints)
    return UNet(base_channels=config.base_channels, depth=config.depth, dropout=config.dropout,
                max_channels=config.max_channels)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
