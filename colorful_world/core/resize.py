"""A photo's L to the network's working size, and the network's colour back to the photo's size,
in numpy and PIL (no torch: the ONNX Runtime server uses them as they are).
"""

from collections.abc import Callable

import numpy as np
from PIL import Image


def to_working_size(l_norm: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float32 -> (size, size): antialiased bilinear (PIL's, which torch's antialiased
    resize was made to match), each side shrunk first and then grown.

    One resize of a photo with a side below `size` would make an intermediate of the other side
    by `size`: 5 GB for a 1 x 10,000,000 photo. Shrinking first keeps every intermediate no
    larger than the photo; for a photo with both sides at least `size` (nearly every photo) it
    is a single resize.
    """
    height, width = l_norm.shape
    image = Image.fromarray(np.ascontiguousarray(l_norm, dtype=np.float32), "F")
    shrunk = (min(width, size), min(height, size))
    if shrunk != (width, height):
        image = image.resize(shrunk, Image.BILINEAR)
    if shrunk != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.array(image, dtype=np.float32)  # a copy: writable, as torch.from_numpy wants


def _axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a bilinear resize along one axis, half-pixel centres
    (torch's align_corners=False), edges clamped."""
    position = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0)
    low = np.minimum(position.astype(np.intp), size_in - 1)
    weight = (position - low).astype(np.float32)
    del position  # 8 bytes a pixel of a long side: gone before the band work starts
    index = np.int32 if size_in < 2**31 else np.intp  # 4 bytes an index, not 8: a long side's cost halved
    low = low.astype(index)
    return low, np.minimum(low + 1, size_in - 1), weight


def photo_size_rows(ab: np.ndarray, height: int, width: int) -> Callable[[int, int], np.ndarray]:
    """The network's (C, h, w) colour resized to (C, height, width), bilinear as torch's
    (align_corners=False; chroma carries little detail, so this costs no sharpness), as a
    function (top, bottom) -> those rows, (C, bottom - top, width), computed only when asked: a
    caller working in bands of rows never holds the whole resized colour.

    Bilinear resizing is separable; the order is chosen so that nothing held is larger than a few
    bytes a pixel of the photo. A photo at least as tall as the network's side (nearly every one)
    has its columns resized first, (C, h, width) held; one less tall than that (a wide strip, at
    worst N x 1) would make that intermediate many times the photo (38 GiB for 40,000,000 x 1),
    so its rows go first, (C, height, w) held, and each band's columns are made when asked."""
    if height < ab.shape[1]:
        return _rows_first(ab, height, width)
    low, high, weight = _axis(ab.shape[2], width)
    columns = ab[:, :, low] * (1 - weight) + ab[:, :, high] * weight  # (C, h, width): still small
    # Held source row first, (h, C, width), so that a band gathers whole rows of memory: four
    # times faster than picking its rows out of each channel's plane.
    columns = np.ascontiguousarray(columns.transpose(1, 0, 2))
    low, high, weight = _axis(ab.shape[1], height)
    # Each row as its source row plus a share of the step to the next (0 after the last): one
    # gather fewer than a mix of two rows.
    step = np.concatenate([columns[1:] - columns[:-1], np.zeros_like(columns[:1])])

    def rows(top: int, bottom: int) -> np.ndarray:
        source = low[top:bottom]
        band = step[source]
        band *= weight[top:bottom, None, None]
        band += columns[source]
        return band.transpose(1, 0, 2)

    return rows


def _rows_first(ab: np.ndarray, height: int, width: int) -> Callable[[int, int], np.ndarray]:
    """`photo_size_rows` for a photo less tall than the network's side: its rows resized first
    (the result, (C, height, w), is smaller than `ab`), each band's columns when it is asked for."""
    low, high, weight = _axis(ab.shape[1], height)
    resized = ab[:, low] * (1 - weight[:, None]) + ab[:, high] * weight[:, None]  # (C, height, w)
    # Each column as its source column plus a share of the step to the next (0 after the last).
    step = np.concatenate([resized[:, :, 1:] - resized[:, :, :-1], np.zeros_like(resized[:, :, :1])], axis=2)
    low, _, weight = _axis(ab.shape[2], width)

    def rows(top: int, bottom: int) -> np.ndarray:
        band = np.take(step[:, top:bottom], low, axis=2)  # (C, bottom - top, width)
        band *= weight
        band += np.take(resized[:, top:bottom], low, axis=2)
        return band

    return rows
