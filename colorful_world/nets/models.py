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


HINT_PARTS = ("hint_inputs.", "spread.")  # the modules that take hints, by their names in a state_dict


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
        # Hints (a, b, mask) join at every resolution, the bottleneck's to the head's, so a point
        # colours its region from the coarse levels down and its own pixels at the finest. Their
        # weights start at zero and have no bias: with no hints the network is exactly the one
        # without them, and a model fine-tuned from a hint-free one starts where it was.
        self.hints = hints
        if hints:
            widths_by_level = [skips[-1]] + [widths[k] for k in range(self.depth - 2, -1, -1)] + [widths[0]]
            self.hint_inputs = nn.ModuleList(nn.Conv2d(3, c, 3, padding=1, bias=False) for c in widths_by_level)
            for conv in self.hint_inputs:
                nn.init.zeros_(conv.weight)
            self.spread = HintSpread(widths[0])
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
        x = self._add_hints(x, hints, 0)
        for level, (block, skip) in enumerate(zip(self.decoder, reversed(skips[:-1])), start=1):
            x = self._add_hints(block(x, skip), hints, level)
        x = F.interpolate(x, size=l_norm.shape[-2:], mode="nearest")
        x = self._add_hints(x, hints, len(self.decoder) + 1)
        ab = self.head(torch.cat([x, l_norm], dim=1))
        return ab if hints is None or not self.hints else self.spread(ab, l_norm, hints.to(ab.dtype), x)

    def hint_parameters(self) -> list[nn.Parameter]:
        """The weights a hint-free model lacks: new when one is fine-tuned into a hinted one."""
        return [p for name, p in self.named_parameters() if name.startswith(HINT_PARTS)]

    def _add_hints(self, x: torch.Tensor, hints: torch.Tensor | None, level: int) -> torch.Tensor:
        if hints is None or not self.hints:
            return x
        stride = 2 ** (self.depth - level)  # 32 at the bottleneck ... 1 at the head: fixed by the network
        return x + self.hint_inputs[level](pool_hints(hints.to(x.dtype), stride))


class HintSpread(nn.Module):
    """Each hint's colour carried over the pixels near it that are about as light, from the first
    step: weights learned from zero alone were measured to need thousands of steps before a hint
    coloured anything. A bilateral grid (Chen, Paris and Durand, SIGGRAPH 2007) on cells of
    STRIDE px: hints are splatted by position and lightness into LIGHT_BINS layers, each blurred
    by a Gaussian of SIGMA cells, and every pixel reads its own lightness's layers. It gets the
    hints' weighted mean colour and their summed weight, and moves towards that colour by
    1 - exp(-weight / reach), times a learned gate on the decoder's last features (zero weights
    at first). A hinted pixel takes its hint. With no hint every weight is 0 and the output is
    the network's own. Measured at step 0 on 256 held-out faces, 10 hints: +1.7 dB over none
    (a Gaussian without the lightness: +0.6).
    """

    STRIDE = 4
    SIGMA = 4.0  # cells: 16 px at 128 px
    LIGHT_BINS = 10
    LIGHT_SIGMA = 0.06  # of L's range: hints reach across 6 L units, hardly across an edge

    def __init__(self, features: int):
        super().__init__()
        radius = round(3 * self.SIGMA)
        t = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-t ** 2 / (2 * self.SIGMA ** 2))
        kernel = torch.outer(g, g)[None, None].expand(3 * self.LIGHT_BINS, 1, -1, -1)  # 1 at its centre
        self.register_buffer("kernel", kernel.clone(), persistent=False)
        centres = (torch.arange(self.LIGHT_BINS, dtype=torch.float32) + 0.5) / self.LIGHT_BINS
        self.register_buffer("centres", centres.view(1, -1, 1, 1), persistent=False)
        self.log_reach = nn.Parameter(torch.tensor(math.log(0.1)))
        self.gate = nn.Conv2d(features, 1, 3, padding=1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 4.0)  # sigmoid(4) = 0.98: open everywhere at first

    def _layers(self, light: torch.Tensor) -> torch.Tensor:
        """How much lightness (N, 1, H, W) in [0, 1] belongs to each layer: (N, LIGHT_BINS, H, W)."""
        return torch.exp(-(light - self.centres) ** 2 / (2 * self.LIGHT_SIGMA ** 2))

    def forward(self, ab: torch.Tensor, l_norm: torch.Tensor, hints: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor:
        mask, light = hints[:, 2:], (l_norm + 1) / 2
        cover = F.avg_pool2d(mask, self.STRIDE)
        hint_light = F.avg_pool2d(light * mask, self.STRIDE) / cover.clamp_min(1e-6)
        layers = self._layers(hint_light)
        colour = F.avg_pool2d(hints[:, :2] * mask, self.STRIDE)
        grid = torch.cat([cover * layers, colour[:, :1] * layers, colour[:, 1:] * layers], dim=1)
        grid = F.conv2d(grid, self.kernel, padding=self.kernel.shape[-1] // 2, groups=grid.shape[1])
        grid = F.interpolate(grid, size=ab.shape[-2:], mode="bilinear", align_corners=False)
        own = self._layers(light)
        own = own / own.sum(dim=1, keepdim=True)
        weight, a, b = ((part * own).sum(dim=1, keepdim=True) for part in grid.chunk(3, dim=1))
        colour = torch.cat([a, b], dim=1) / weight.clamp_min(1e-6)
        share = (1 - torch.exp(-weight / self.log_reach.exp())) * torch.sigmoid(self.gate(features))
        share = torch.maximum(share, mask)
        colour = torch.where(mask > 0, hints[:, :2], colour)
        return ab + share * (colour - ab)


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
