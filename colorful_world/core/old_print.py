"""Old-print damage on L: what a scanned family photo looks like next to a clean grey digital one.

Training shows the generator damaged L beside the clean colour it must still give, so its colour
does not depend on the print being clean; validation scores a fixed, seeded draw of the same
damage ("old" framing). The steps follow a print's life: the tone curve of a faded print, the
softness of its lens and enlargement, film grain, dust and scratches, and the JPEG of its scan.
"""

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class Damage:
    """One photo's damage. Tones are shares of L's range: 0 is black, 1 white."""

    black: float = 0.0  # the darkest tone the print still holds (faded blacks)
    white: float = 1.0  # the lightest (dull or yellowed paper)
    gamma: float = 1.0  # tone curve of development and scanning: > 1 darkens the mid-tones
    blur: float = 0.0  # Gaussian sigma in pixels of the working size (soft focus)
    motion: int = 0  # length in pixels of a straight motion blur; 0 or 1: none
    angle: float = 0.0  # its direction, radians
    grain: float = 0.0  # grain's standard deviation at mid-grey (less in the shadows and highlights)
    specks: int = 0  # dust: dots of paper white or of black
    scratches: int = 0  # thin light lines across the print
    jpeg: int = 0  # quality of the scan's JPEG; 0: none


def random_damage(generator: torch.Generator) -> Damage:
    """One draw of the damage real prints show. The ranges, from scans of family prints:
    - black 0-0.25, white 0.8-1: faded silver prints rarely hold a black below L 10-25, and paper
      dulls with age;
    - gamma 0.7-1.4: over- and under-developed prints, and scanners' own curves;
    - blur sigma 0-1.5 px at 128 px (a face is about 60 px there): soft lenses and enlargements;
      one photo in six also has 3-7 px of camera shake;
    - grain 0-0.06 at mid-grey: from fine 100 ISO film to fast film enlarged;
    - up to 15 specks and, on one print in three, 1-2 scratches;
    - JPEG quality 20-70 on half of them: scans posted online or saved small.
    """
    u = torch.rand(12, generator=generator).tolist()
    return Damage(
        black=0.25 * u[0], white=1.0 - 0.2 * u[1], gamma=math.exp(math.log(0.7) + u[2] * math.log(2.0)),
        blur=1.5 * u[3], motion=3 + int(5 * u[4]) if u[5] < 1 / 6 else 0, angle=math.pi * u[6],
        grain=0.06 * u[7], specks=int(16 * u[8]), scratches=1 + int(2 * u[9]) if u[10] < 1 / 3 else 0,
        jpeg=20 + int(51 * u[11]) if u[11] < 0.5 else 0)


def damage_batch(l_norm: torch.Tensor, generator: torch.Generator, probability: float) -> torch.Tensor:
    """A batch of L in [-1, 1] (N, 1, H, W), each photo damaged with `probability`, by a draw of
    `generator`; the others as they are. A new tensor: the clean L stays the target's."""
    if probability <= 0:
        return l_norm
    chosen = (torch.rand(len(l_norm), generator=generator) < probability).tolist()
    out = l_norm.clone()
    for i, damaged in enumerate(chosen):
        if damaged:
            out[i] = damage(l_norm[i], random_damage(generator), generator)
    return out


def damage(l_norm: torch.Tensor, d: Damage, generator: torch.Generator) -> torch.Tensor:
    """One photo's L in [-1, 1] (1, H, W) as an old print: `d`, with grain, dust and scratches
    placed by `generator`."""
    x = (l_norm.float() + 1) / 2
    x = d.black + (d.white - d.black) * x.clamp(0, 1) ** d.gamma
    if d.blur > 0.3:
        x = _filter(x, _gaussian(d.blur))
    if d.motion > 1:
        x = _filter(x, _line(d.motion, d.angle))
    if d.grain > 0:
        # Silver grain is strongest in the mid-tones and clumps over a pixel or so.
        noise = torch.randn(x.shape, generator=generator)
        noise = _filter(noise, _gaussian(0.6)) / _gaussian(0.6).pow(2).sum().sqrt()
        x = x + d.grain * 2 * (x * (1 - x)).clamp_min(0).sqrt() * noise
    x = _dust(x, d.specks, d.scratches, generator)
    x = x.clamp(0, 1)
    if d.jpeg:
        x = _jpeg(x, d.jpeg)
    return (x * 2 - 1).to(l_norm.dtype)


def _gaussian(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = torch.outer(k, k)
    return k / k.sum()


def _line(length: int, angle: float) -> torch.Tensor:
    """A straight line of `length` pixels through the centre of a square kernel of odd side."""
    side = length | 1
    k = torch.zeros(side, side)
    centre = (side - 1) / 2
    for t in torch.linspace(-centre, centre, 2 * length).tolist():
        k[round(centre + t * math.sin(angle)), round(centre + t * math.cos(angle))] = 1
    return k / k.sum()


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    pad = kernel.shape[-1] // 2
    padded = F.pad(x[None], (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(padded, kernel[None, None])[0]


def _dust(x: torch.Tensor, specks: int, scratches: int, generator: torch.Generator) -> torch.Tensor:
    _, h, w = x.shape
    if specks:
        spots = torch.rand(specks, 3, generator=generator)
        for y, z, bright in spots.tolist():
            top, left = int(y * (h - 1)), int(z * (w - 1))
            x[:, top:top + 2, left:left + 2] = 1.0 if bright < 0.7 else 0.0  # dust on the negative prints white
    for _ in range(scratches):
        (y0, x0, y1, x1, level) = torch.rand(5, generator=generator).tolist()
        steps = 2 * max(h, w)
        ys = torch.linspace(y0 * (h - 1), y1 * (h - 1), steps).round().long()
        xs = torch.linspace(x0 * (w - 1), x1 * (w - 1), steps).round().long()
        x[0, ys, xs] = torch.maximum(x[0, ys, xs], torch.tensor(0.6 + 0.4 * level))
    return x


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    grey = Image.fromarray((x[0] * 255).round().to(torch.uint8).numpy(), "L")
    buffer = io.BytesIO()
    grey.save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer)).astype(np.float32) / 255
    return torch.from_numpy(decoded)[None]


OLD_FRAMING_SEED = 20_261_207  # the validation's draw: not one training's (seed * 7919 + step) gives


def old_print_framing(l_norm: torch.Tensor, first_index: int = 0) -> torch.Tensor:
    """The "old" validation framing: every photo of a batch damaged by a draw that depends only
    on its index in the validation set, so every model and every epoch sees the same prints."""
    out = torch.empty_like(l_norm)
    for i in range(len(l_norm)):
        rng = torch.Generator().manual_seed(OLD_FRAMING_SEED + first_index + i)
        out[i] = damage(l_norm[i].cpu(), random_damage(rng), rng).to(l_norm.device)
    return out
