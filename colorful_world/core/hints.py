"""Colour hints: what the person knows and the photo cannot say, as points of colour.

A hint is (x, y, "#rrggbb"): a pixel of the photo as shown (EXIF orientation applied, origin top
left) and an sRGB colour, of which only the chroma is used (the photo keeps its own L). The
network sees hints as a map at its working size: ab where a hint is, and a mask of where.
numpy only: every door parses hints here, the torch-free server included.
"""

import json
import math
import re

import numpy as np

from colorful_world.core.color_lut import srgb_to_ab
from colorful_world.core.units import AB_SCALE
from colorful_world.io.errors import UserError

MAX_HINTS = 256
HINT_PATCH = 3  # pixels of the working size a click fills (training draws 1 to 5)
_COLOUR = re.compile(r"#?([0-9a-fA-F]{6})")


class HintError(UserError, ValueError):
    """A hint that cannot be used: malformed, outside the photo, too many, or a model without hints."""


def parse_colour(text) -> tuple[int, int, int]:
    """#rrggbb (or rrggbb) as (r, g, b); an (r, g, b) already parsed is checked and kept, so a
    list that went through `parse_hints` once can go through it again."""
    if isinstance(text, (tuple, list)) and len(text) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in text):
        return tuple(text)
    match = _COLOUR.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise HintError(f"hint colour {text!r} is not #rrggbb")
    value = int(match.group(1), 16)
    return value >> 16, (value >> 8) & 255, value & 255


def parse_hints(hints) -> list[tuple[float, float, tuple[int, int, int]]]:
    """Hints as any door gives them: a list of (x, y, colour), or its JSON text. Checked for
    shape, count and colour; `hint_map` checks that they fall inside the photo."""
    if isinstance(hints, (str, bytes)):
        try:
            hints = json.loads(hints)
        except ValueError:
            raise HintError("hints must be a JSON list of [x, y, \"#rrggbb\"]") from None
    if hints is None:
        return []
    if not isinstance(hints, (list, tuple)):
        raise HintError("hints must be a list of [x, y, \"#rrggbb\"]")
    if len(hints) > MAX_HINTS:
        raise HintError(f"{len(hints)} hints: at most {MAX_HINTS} are taken")
    parsed = []
    for hint in hints:
        if not isinstance(hint, (list, tuple)) or len(hint) != 3:
            raise HintError(f"hint {hint!r} is not [x, y, \"#rrggbb\"]")
        x, y, colour = hint
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
            raise HintError(f"hint {hint!r}: x and y must be numbers")
        parsed.append((float(x), float(y), parse_colour(colour)))
    return parsed


def parse_hint_arg(text: str) -> tuple[float, float, str]:
    """The command line's X,Y,#RRGGBB."""
    parts = text.split(",")
    try:
        return float(parts[0]), float(parts[1]), parts[2]
    except (IndexError, ValueError):
        raise HintError(f"--hint {text!r} is not X,Y,#RRGGBB (for instance 120,80,#3050c0)") from None


def hint_map(hints, height: int, width: int, size: int) -> np.ndarray:
    """(1, 3, size, size) float32: a, b (in the network's units) and the mask, for hints on an
    H x W photo that the network sees at size x size. A hint fills the HINT_PATCH square
    around the cell its pixel falls in; a later hint overwrites an earlier one where they meet."""
    out = np.zeros((1, 3, size, size), np.float32)
    for x, y, rgb in parse_hints(hints):
        if not (0 <= x < width and 0 <= y < height):
            raise HintError(f"hint at ({x:g}, {y:g}) is outside the {width}x{height} photo")
        # The cell under the pixel's centre: pixel (x, y) covers [x, x + 1) of the photo.
        row, col = min(int((y + 0.5) * size / height), size - 1), min(int((x + 0.5) * size / width), size - 1)
        top, left = max(0, row - HINT_PATCH // 2), max(0, col - HINT_PATCH // 2)
        a, b = srgb_to_ab(rgb)
        out[0, :, top:row + HINT_PATCH // 2 + 1, left:col + HINT_PATCH // 2 + 1] = \
            np.array([a / AB_SCALE, b / AB_SCALE, 1.0], np.float32)[:, None, None]
    return out
