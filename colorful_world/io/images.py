"""Opening photos of any mode, size and orientation as sRGB, with a clear error when one is bad."""

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from colorful_world.io.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MAX_PIXELS = 80_000_000  # the ceiling of every door: a 9000x9000 scan passes, a decompression bomb does not
# The formats every door decodes (colorize, folders, training, the server, Lambda), whatever a
# file's name says: PIL opens many more (EPS through Ghostscript, PSD, ICO...), some through
# decoders or helper programs that a file from elsewhere should not reach. A user who trusts
# their files may widen it, knowingly: COLORFUL_WORLD_EXTRA_FORMATS=EPS,PSD (PIL's names).
FORMATS = ("BMP", "GIF", "JPEG", "PNG", "TIFF", "WEBP")
EXTRA_FORMATS_ENV = "COLORFUL_WORLD_EXTRA_FORMATS"
_HIGH_BIT_BAND = 1 << 20  # pixels of a high-bit-depth photo scaled to 8 bits at a time

_SRGB = ImageCms.createProfile("sRGB")


class BadImageError(UserError, ValueError):
    """A file that is not a photo we can read: corrupt, truncated, too large, odd mode."""


class PhotoTooLargeError(BadImageError):
    """More pixels than a door accepts (the server answers it 413, not 422)."""


def allowed_formats() -> tuple[str, ...]:
    """FORMATS, and those the user added in COLORFUL_WORLD_EXTRA_FORMATS."""
    extra = {name.strip().upper() for name in os.environ.get(EXTRA_FORMATS_ENV, "").split(",") if name.strip()}
    return tuple(sorted(set(FORMATS) | extra))


def check_pixels(width: int, height: int, max_pixels: int = MAX_PIXELS, source: object = "") -> None:
    """The one rule of a photo's size, from its header, before a byte of it is decoded: both sides
    at least 1, and at most `max_pixels` in all, whichever side is the long one (every stage
    after this costs memory by pixels, for a photo N x 1 as for 1 x N)."""
    where = f"{source}: " if source != "" else ""
    if width < 1 or height < 1:
        raise BadImageError(f"{where}a {width}x{height} image has no pixels to colorize")
    if width * height > max_pixels:
        raise PhotoTooLargeError(f"{where}{width}x{height} is {width * height:,} pixels, more than the "
                                 f"{max_pixels:,} accepted")


def metadata_bomb(err: Exception) -> bool:
    """PIL's refusal of text or ICC chunks that would decompress past its limits."""
    text = str(err).lower()
    return isinstance(err, ValueError) and ("too large" in text or "too much memory" in text)


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """Open a photo (path or PIL image), apply its EXIF orientation, and decode it fully."""
    if isinstance(source, Image.Image):
        image = source
    else:
        formats = allowed_formats()
        try:
            image = Image.open(source, formats=formats)
            check_pixels(image.width, image.height, MAX_PIXELS, source)
            image.load()
        except BadImageError:
            raise
        except UnidentifiedImageError:
            raise BadImageError(f"{source}: not a readable image (not one of the formats this reads: "
                                f"{', '.join(formats)}; more with {EXTRA_FORMATS_ENV})") from None
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:
            raise BadImageError(f"{source}: not a readable image ({err})") from None
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the photo; orientation is a nicety
        return image


def split_alpha(image: Image.Image, keep_grey: bool = False) -> tuple[Image.Image, Image.Image | None]:
    """Return (sRGB RGB image, alpha channel or None) for L, LA, RGB, RGBA, P, CMYK, I;16, I, F;
    with `keep_grey`, a grey photo (L, LA, I;16, I, F) comes back as an L image instead of RGB."""
    alpha = None
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        alpha = image.getchannel("A")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High-bit-depth grey: scale to 8 bits by the container's range, not by clipping; a band
        # of rows at a time, so that memory grows by the 8-bit result only (a whole float64 copy
        # and its temporaries cost 16-20 bytes a pixel).
        top = 65535.0 if image.mode.startswith("I;16") or image.getextrema()[1] > 255 else 255.0
        out = np.empty((image.height, image.width), np.uint8)
        rows = max(1, _HIGH_BIT_BAND // max(1, image.width))
        for first in range(0, image.height, rows):
            last = min(first + rows, image.height)
            values = np.asarray(image.crop((0, first, image.width, last)), dtype=np.float64)
            out[first:last] = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        grey = Image.fromarray(out, "L")
        return grey if keep_grey else grey.convert("RGB"), None
    if keep_grey and image.mode in ("L", "LA"):
        return image if image.mode == "L" else image.convert("L"), alpha
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB"), alpha
        except (ImageCms.PyCMSError, OSError):
            pass  # an unusable profile: fall back to treating the pixels as sRGB
    return image.convert("RGB"), alpha


def load_rgb(source: str | Path | Image.Image, keep_grey: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Photo -> (H, W, 3) uint8 sRGB array and (H, W) uint8 alpha or None; with `keep_grey`, a
    grey photo's pixels are (H, W), a third of the bytes to decode into and read."""
    rgb, alpha = split_alpha(open_image(source), keep_grey)
    return np.array(rgb, dtype=np.uint8), None if alpha is None else np.array(alpha)


def find_images(root: Path) -> list[Path]:
    """All photos under a folder, recursively, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not p.name.startswith("._"))
