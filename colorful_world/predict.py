"""The network's colour for a photo of any size: what training's validation, evaluate and colorize share."""

import torch
import torch.nn.functional as F

from colorful_world import runtime as rt


def predict_ab(generator, l_norm: torch.Tensor, size: int, runtime: rt.Runtime) -> torch.Tensor:
    """ab in model units for normalised L of any size: the network works at size x size, and
    its colour is resized back (chroma carries little detail, so this costs no sharpness)."""
    own = l_norm.shape[-2:] == (size, size)
    small = l_norm if own else F.interpolate(l_norm, size=(size, size), mode="bilinear",
                                             antialias=True, align_corners=False)
    with runtime.autocast():
        ab = generator(small).float()
    return ab if own else F.interpolate(ab, size=l_norm.shape[-2:], mode="bilinear", align_corners=False)
