"""The generator (U-Net, L -> ab) and the conditional PatchGAN discriminator on (L, ab)."""

import torch
from torch import nn


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


def build_generator(config: dict) -> UNet:
    """The generator a run's config describes (the config travels inside every checkpoint)."""
    return UNet(base_channels=config["base_channels"], depth=config["depth"], dropout=config["dropout"],
                max_channels=config.get("max_channels", 512))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
