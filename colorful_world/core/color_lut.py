"""CIELAB for 8-bit photos through lookup tables, in numpy: what colorizing a photo needs, fast,
and without torch (a server on ONNX Runtime uses it as it is).

Colorizing reads only L from the photo and writes 8-bit sRGB back. Both ends go through the
sRGB curve, a power per pixel and channel; here those powers are taken once per code value
(256 in, 65,536 out) and each pixel is a table lookup. The constants are those of `color`'s
float conversions (kornia's, the same as scikit-image's), and tests hold both paths to within
one 8-bit level.
"""

import functools
from collections.abc import Callable

import numpy as np

_LAB_EPSILON = 0.008856  # CIE's (6/29)**3, below which L is linear in Y
_OUT_LEVELS = 65536  # linear light is quantised to 16 bits before the sRGB curve: < 0.06 of an 8-bit level
_BAND_PIXELS = 32768  # measured on a 1 MP photo: bands of 8 to 128 rows of 1024 are all within 20% of this
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.array([[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
                        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
                        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]])
_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb > 0.04045, ((srgb + 0.055) / 1.055) ** 2.4, srgb / 12.92)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear > 0.0031308, 1.055 * np.power(linear, 1 / 2.4) - 0.055, 12.92 * linear)


def _lab_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _LAB_EPSILON, np.cbrt(t), 7.787 * t + 4 / 29)


@functools.cache
def _tables() -> dict[str, np.ndarray]:
    linear = _to_linear(np.arange(256) / 255)
    encode = _to_srgb(np.arange(_OUT_LEVELS) / (_OUT_LEVELS - 1))
    return {
        "l_of_grey": (116 * _lab_f(linear) - 16).astype(np.float32),  # grey: Y is the linear level
        "y_of_channel": (_RGB_TO_XYZ[1][:, None] * linear[None, :]).astype(np.float32),  # (3, 256)
        # Lab's XYZ relative to the white point -> linear sRGB; the white folded into the matrix.
        "lab_xyz_to_linear": (_XYZ_TO_RGB * _WHITE).T.astype(np.float32),
        "srgb_u8": np.clip(np.floor(encode * 255 + 0.5), 0, 255).astype(np.uint8),
    }


def lightness_u8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB, or an (H, W) grey one -> (H, W) float32 CIELAB L in [0, 100], as
    `color.rgb_to_lab` has it."""
    tables = _tables()
    if rgb.ndim == 2:
        return np.take(tables["l_of_grey"], rgb)  # take: twice as fast as indexing
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        # Black-and-white photos, the usual case: L is one lookup, indexed by the bytes themselves.
        return np.take(tables["l_of_grey"], rgb[..., 0])
    shares = tables["y_of_channel"]
    y = shares[0][rgb[..., 0]] + shares[1][rgb[..., 1]] + shares[2][rgb[..., 2]]
    return 116 * _lab_f(y).astype(np.float32) - 16


def lab_to_srgb_u8(light: np.ndarray, ab: np.ndarray | Callable[..., np.ndarray],
                   on_band: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """(H, W) L and (2, H, W) ab -> (H, W, 3) uint8 sRGB, a photo's pixels as PIL takes them;
    out-of-gamut colours clipped as `color.lab_to_rgb` clips them. `ab` may also be a function
    (top, bottom) -> those rows of it, (2, bottom - top, W), so that it need never exist whole.
    `on_band`, when given, is handed each band of finished rows, top to bottom, as it is done.

    Bands of rows at a time, each channel a plane of its own, written in place: the float
    temporaries of a band stay in the cache (twice as fast as the whole photo at once), and
    memory grows by 3 bytes a pixel, not 60.
    """
    height, width = light.shape
    ab_rows = ab if callable(ab) else lambda top, bottom: ab[:, top:bottom]
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // width)
    tables = _tables()
    to_linear = tables["lab_xyz_to_linear"]
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        f = np.empty((3, bottom - top, width), np.float32)  # Lab's f(X/Xn), f(Y/Yn), f(Z/Zn)
        fy = np.multiply(light[top:bottom], np.float32(1 / 116), out=f[1])
        fy += np.float32(16 / 116)
        a, b = ab_rows(top, bottom)
        np.multiply(a, np.float32(1 / 500), out=f[0])
        np.multiply(b, np.float32(-1 / 200), out=f[2])
        f[0] += fy
        f[2] += fy
        np.maximum(f[2], 0, out=f[2])
        xyz = f * f
        xyz *= f
        dark = f <= np.float32(0.2068966)  # below CIE's (6/29): the linear part of the curve
        f -= np.float32(4 / 29)
        f *= np.float32(1 / 7.787)
        np.copyto(xyz, f, where=dark)
        linear = f[0]  # free again: each output channel in turn
        for channel in range(3):
            np.multiply(xyz[0], to_linear[0, channel], out=linear)
            linear += xyz[1] * to_linear[1, channel]
            linear += xyz[2] * to_linear[2, channel]
            np.clip(linear, 0, 1, out=linear)
            linear *= np.float32(_OUT_LEVELS - 1)
            linear += np.float32(0.5)
            out[top:bottom, :, channel] = np.take(tables["srgb_u8"], linear.astype(np.int32))
        if on_band:
            on_band(out[top:bottom])
    return out


def srgb_to_ab(rgb: tuple[int, int, int]) -> tuple[float, float]:
    """One 8-bit sRGB colour -> its CIELAB (a, b), as `color.rgb_to_lab` has them: a hint's chroma."""
    linear = _to_linear(np.asarray(rgb, dtype=np.float64) / 255)
    fx, fy, fz = _lab_f(_RGB_TO_XYZ @ linear / _WHITE)
    return float(500 * (fx - fy)), float(200 * (fy - fz))
