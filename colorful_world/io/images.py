"""Opening photos of any mode, size and orientation as sRGB, with a clear error when one is bad."""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

from colorful_world.io.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MAX_PIXELS = 80_000_000  # the ceiling of every door: a 9000x9000 scan passes, a decompression bomb does not

_SRGB = ImageCms.createProfile("sRGB")


class BadImageError(UserError, ValueError):
    """A file that is not a photo we can read: corrupt, truncated, too large, odd mode."""


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """Open a photo (path or PIL image), apply its EXIF orientation, and decode it fully."""
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            image = Image.open(source)
            if image.width * image.height > MAX_PIXELS:
                raise BadImageError(f"{source}: {image.width}x{image.height} pixels is more than "
                                    f"the {MAX_PIXELS:,} we accept")
            image.load()
        except BadImageError:
            raise
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
        # High-bit-depth grey: scale to 8 bits by the container's range, not by clipping.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
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
