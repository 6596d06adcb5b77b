"""Simulated clicks: hints sampled from the true colour, for training and for scoring a model by
its number of hints (Zhang et al., "Real-Time User-Guided Image Colorization with Learned Deep
Priors", SIGGRAPH 2017).

Zhang's recipe: a geometric number of points (p = 1/8), placed at random, each a square patch of
1 to 9 px (at 256 px) revealing the patch's mean colour. Adapted: the patches are 1 to 5 px at
this model's 128 px; a quarter of the photos get no hint at all (so the automatic colour keeps
being trained); points are uniform over the photo (a person clicks wherever the colour is
wrong, not near the centre).
"""

import torch

from colorful_world.core.hints import HINT_PATCH

NO_HINTS = 0.25  # share of training photos without a hint
POINTS_P = 1 / 8  # geometric: P(k points) = (1 - p)**(k-1) * p, mean 8
MAX_POINTS = 64
MAX_PATCH = 5


def simulate_clicks(ab: torch.Tensor, generator: torch.Generator, count: int | None = None,
                    patch: int | None = None) -> torch.Tensor:
    """Hints for a batch from its true ab (N, 2, H, W): (N, 3, H, W) of a, b and the mask.

    count=None, patch=None: training's random draw. Otherwise exactly `count` points of
    `patch` px each (scoring: the same points for every model, given the same generator)."""
    n, _, h, w = ab.shape
    hints = torch.zeros(n, 3, h, w, dtype=torch.float32, device=ab.device)
    ab = ab.float()
    for i in range(n):
        if count is None:
            if torch.rand(1, generator=generator).item() < NO_HINTS:
                continue
            u = torch.rand(1, generator=generator).clamp_min(1e-7).item()
            points = min(MAX_POINTS, 1 + int(torch.log(torch.tensor(u)) / torch.log(torch.tensor(1 - POINTS_P))))
        else:
            points = count
        if not points:
            continue
        sizes = (torch.randint(1, MAX_PATCH + 1, (points,), generator=generator) if patch is None
                 else torch.full((points,), patch)).tolist()
        places = torch.rand(points, 2, generator=generator).tolist()
        for s, (y, x) in zip(sizes, places):
            top, left = int(y * (h - s + 1)), int(x * (w - s + 1))
            colour = ab[i, :, top:top + s, left:left + s].mean(dim=(1, 2))
            hints[i, :2, top:top + s, left:left + s] = colour[:, None, None]
            hints[i, 2, top:top + s, left:left + s] = 1.0
    return hints


def scoring_clicks(ab: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` points of HINT_PATCH px (a click's) per photo, the same for every model."""
    return simulate_clicks(ab, torch.Generator().manual_seed(seed), count, HINT_PATCH)
