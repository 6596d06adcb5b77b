"""Recoloured regions: training photos in which one object takes a colour far from its own, and a
click says so. True-colour clicks teach a hint path that spreading a hint everywhere pays (the
colour of a photo is of a piece: a warmer hint means a warmer photo); a photo whose dress turned
blue while the rest stayed teaches it to keep a hint in its object.

The object: the pixels connected to a random point whose true colour is within COLOUR_RADIUS of
the point's (the same cloth, wall or sky; connected on a grid of GRID px cells), covering 4-50%
of the photo. Its colour is shifted by
one offset, to the hue opposite its mean at a chroma of at least MIN_CHROMA (as
benchmarks/hint_locality.py picks a far colour), so its shading and texture stay; lightness is
untouched.
"""

import torch
import torch.nn.functional as F

from colorful_world.core.color import model_to_rgb
from colorful_world.core.simulated_clicks import MAX_PATCH
from colorful_world.core.units import AB_SCALE

COLOUR_RADIUS = 6 / AB_SCALE  # CIELAB a*b* units, in the model's
MIN_CHROMA = 40 / AB_SCALE
REGION_SHARE = (0.04, 0.5)  # as the locality benchmark hints regions of 4-40%
TRIES = 3  # random points tried for a region of a fitting size
MAX_CLICKS = 3
GRID = 4  # the region is grown on a grid of 4 x 4 px cells (16 times fewer pixels, 4 times fewer passes)


def connected_region(similar: torch.Tensor, y: int, x: int) -> torch.Tensor:
    """The pixels of the boolean map `similar` (H, W) 4-connected to (y, x), by growing a seed
    one pixel a pass until it stops; a winding region is cut after 2 (H + W) passes."""
    region = torch.zeros_like(similar)
    region[y, x] = True
    allowed = similar[None, None].float()
    grown = region[None, None].float()
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    for _ in range(2 * sum(similar.shape)):
        step = (F.conv2d(grown, cross, padding=1) > 0).float() * allowed
        if torch.equal(step, grown):
            break
        grown = step
    return grown[0, 0] > 0


def recolour(rgb: torch.Tensor, l_norm: torch.Tensor, ab: torch.Tensor, hints: torch.Tensor,
             generator: torch.Generator, share: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rgb, ab, hints) of a training batch with a `share` of its hinted photos recoloured: one
    region in a far colour, the target, and 1-MAX_CLICKS clicks of it inside the region, the
    photo's only hints. Photos without hints, and those without a region of a fitting size,
    stay as they are. A function of `generator` alone, so a resumed run replays it."""
    if not share:
        return rgb, ab, hints
    rgb, ab, hints = rgb.clone(), ab.clone(), hints.clone()
    n, _, h, w = ab.shape
    smooth = F.avg_pool2d(ab.float(), 3, stride=1, padding=1, count_include_pad=False)  # JPEG noise out
    cells = F.avg_pool2d(ab.float(), GRID)
    for i in range(n):
        if torch.rand(1, generator=generator).item() >= share or not hints[i, 2].any():
            continue
        for _ in range(TRIES):
            y, x = (torch.rand(2, generator=generator) * torch.tensor([h, w])).long().tolist()
            colour = smooth[i, :, y:y + 1, x:x + 1]
            coarse = connected_region(((cells[i] - colour).norm(dim=0) < COLOUR_RADIUS).cpu(), y // GRID, x // GRID)
            # At full size: the cells' smooth outline, less the pixels clearly of another colour (an
            # object's texture stays in it; a region of speckles would teach nothing a person means).
            near = F.interpolate(coarse[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)
            region = (near[0, 0].to(ab.device) > 0.5) & ((smooth[i] - colour).norm(dim=0) < 2 * COLOUR_RADIUS)
            if REGION_SHARE[0] <= region.float().mean().item() <= REGION_SHARE[1]:
                break
        else:
            continue
        mean = ab[i][:, region].float().mean(dim=1)
        chroma = mean.norm().item()
        if chroma > 1e-3:
            direction = -mean / chroma
        else:
            angle = torch.rand(1, generator=generator).item() * 2 * torch.pi
            direction = torch.tensor([torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))], device=ab.device)
        offset = direction * max(chroma, MIN_CHROMA) - mean
        shifted = (ab[i] + offset[:, None, None]).clamp(-1, 1)
        ab[i] = torch.where(region, shifted, ab[i])
        rgb[i] = model_to_rgb(l_norm[i:i + 1], ab[i:i + 1])[0]  # the photo as it would have been (clipped to sRGB)
        hints[i] = 0
        places = region.nonzero()
        clicks = int(torch.randint(1, MAX_CLICKS + 1, (1,), generator=generator))
        for k, size in zip(torch.randint(len(places), (clicks,), generator=generator).tolist(),
                           torch.randint(1, MAX_PATCH + 1, (clicks,), generator=generator).tolist()):
            (py, px), half = places[k].tolist(), size // 2
            patch = torch.zeros_like(region)
            patch[max(0, py - half):py + size - half, max(0, px - half):px + size - half] = True
            patch &= region  # a click of the object, not of what borders it
            colour = ab[i][:, patch].mean(dim=1)
            hints[i, :2] = torch.where(patch, colour[:, None, None], hints[i, :2])
            hints[i, 2] = torch.where(patch, 1.0, hints[i, 2])
    return rgb, ab, hints
