"""The network's colour for a photo of any size: what training's validation, evaluate and colorize share."""

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from colorful_world.core import runtime as rt


def predict_ab(generator, l_norm: torch.Tensor, size: int, runtime: rt.Runtime,
               hints: torch.Tensor | None = None) -> torch.Tensor:
    """ab in model units for normalised L of any size: the network works at size x size, and
    its colour is resized back (chroma carries little detail, so this costs no sharpness).
    `hints` (N, 3, H, W) at L's size are taken to the working size cell by cell."""
    if hints is not None and hints.shape[-2:] != (size, size):
        hints = F.interpolate(hints, size=(size, size), mode="nearest")
    ab = network_ab(generator, l_to_working_size(l_norm, size), runtime, hints)
    return to_photo_size(ab, l_norm.shape[-2:])


def hints_for_gain(hints: torch.Tensor | None, gain: float) -> torch.Tensor | None:
    """Hints (N, 3, H, W) as a network whose colour is then scaled by `gain` takes them: their
    colour divided by it, so that a hinted pixel, once scaled, has the hint's own colour."""
    if hints is None or gain in (0, 1):
        return hints
    return torch.cat([hints[:, :2] / gain, hints[:, 2:]], dim=1)


def network_ab(generator, small: torch.Tensor, runtime: rt.Runtime, hints: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's ab (float32) for L (and hints) already at its working size; a generator
    that takes no hints colorizes as if none were given."""
    with runtime.autocast():
        if hints is None or not getattr(generator, "hints", False):
            return generator(small).float()
        return generator(small, hints).float()


def to_photo_size(ab: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The network's ab resized (bilinear) to the photo's own height and width."""
    if ab.shape[-2:] == tuple(shape):
        return ab
    return F.interpolate(ab, size=tuple(shape), mode="bilinear", align_corners=False)


def l_to_working_size(l_norm: torch.Tensor, size: int) -> torch.Tensor:
    """L resized to size x size (the torch twin of `core.resize.to_working_size`): each side shrunk
    (antialiased) first, then grown.

    One antialiased resize of a photo with a side below `size` makes an intermediate of the
    other side by `size`: 5 GB for a 1 x 10,000,000 photo. Shrinking first keeps every
    intermediate no larger than the photo; for a photo with both sides at least `size`
    (nearly every photo) it is the same single resize as before.
    """
    height, width = l_norm.shape[-2:]
    if (height, width) == (size, size):
        return l_norm
    shrunk = (min(height, size), min(width, size))
    if shrunk != (height, width):
        l_norm = F.interpolate(l_norm, size=shrunk, mode="bilinear", antialias=True, align_corners=False)
    if shrunk != (size, size):
        l_norm = F.interpolate(l_norm, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return l_norm


class TorchNetwork:
    """A torch generator as `Colorizer` runs it: numpy L in, numpy ab out, on `device` (default:
    the best one here) at the precision chosen for it."""

    def __init__(self, generator: torch.nn.Module, device: torch.device | None = None):
        """`generator` becomes this network's: its batch norms are folded into the convolutions
        before them, in place (the same function in fewer passes: one CPU thread, 14.1 -> 12.6
        ms at 128 px; a copy would cost start-up 0.15 s)."""
        self.runtime = rt.local(device)
        generator = fold_batch_norms(generator.eval().requires_grad_(False))
        self.generator = generator.to(self.runtime.device)

    @contextlib.contextmanager
    def threads(self, count: int):
        """torch's own threads for the forward pass, `count` of them while inside."""
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @torch.no_grad()
    def __call__(self, small: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        device = self.runtime.device
        hints = None if hints is None else torch.from_numpy(hints).to(device)
        return network_ab(self.generator, torch.from_numpy(small).to(device), self.runtime, hints).cpu().numpy()


def fold_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """`module` (in eval mode) with each BatchNorm that directly follows a convolution in a
    Sequential folded into that convolution's weights and bias, in place."""
    for child in module.modules():
        if not isinstance(child, torch.nn.Sequential):
            continue
        for index in range(len(child) - 1):
            conv, norm = child[index], child[index + 1]
            if isinstance(conv, torch.nn.Conv2d | torch.nn.ConvTranspose2d) and \
                    isinstance(norm, torch.nn.BatchNorm2d) and norm.track_running_stats:
                conv.weight, conv.bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight,
                    norm.bias, transpose=isinstance(conv, torch.nn.ConvTranspose2d))
                child[index + 1] = torch.nn.Identity()
    return module
