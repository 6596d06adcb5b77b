"""A faded print's tones back to the full range, on request (`restore_contrast`): numpy only."""

import numpy as np

CLIP_SHARE = 0.005  # at most this share of the pixels is clipped at each end: dust and specular spots
FULL_RANGE = 90.0  # L units between the two percentiles at or above which a photo is left as it is


def stretch_contrast(light: np.ndarray) -> np.ndarray:
    """CIELAB L (H, W) in [0, 100] stretched so that its 0.5th and 99.5th percentiles become 0
    and 100 (linear: the print's own tone curve is kept). A photo already at full range, or a
    flat one, comes back unchanged."""
    levels = np.clip(light * 10, 0, 1000).astype(np.int32)  # 0.1 L steps: percentiles without a sort
    counts = np.cumsum(np.bincount(levels.ravel(), minlength=1001))
    total = counts[-1]
    low = np.searchsorted(counts, CLIP_SHARE * total, side="right") / 10
    high = np.searchsorted(counts, (1 - CLIP_SHARE) * total, side="left") / 10
    if high - low >= FULL_RANGE or high - low < 1:
        return light
    out = light - np.float32(low)
    out *= np.float32(100 / (high - low))
    return np.clip(out, 0, 100, out=out)


STRENGTH_MAX = 2.0  # colour strength: 0 is the grey photo, 1 the model's own colour, 2 twice as strong


def check_strength(value) -> float:
    """A colour strength as any door gives it (a number or its text) -> float in [0, STRENGTH_MAX]."""
    try:
        strength = float(value)
    except (TypeError, ValueError):
        strength = float("nan")
    if not 0 <= strength <= STRENGTH_MAX:  # NaN fails too
        raise ValueError(f"colour strength must be a number from 0 to {STRENGTH_MAX:g}, got {value!r}")
    return strength
