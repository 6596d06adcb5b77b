import io
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world.io import png
from colorful_world.io.png import png_bytes


def _idat(png_file: bytes) -> bytes:
    """The data of a PNG's one IDAT chunk."""
    start = png_file.index(b"IDAT")
    length = int.from_bytes(png_file[start - 4:start], "big")
    return png_file[start + 4:start + 4 + length]


@pytest.mark.parametrize("height", [1, 511, 512, 513, 1536, 1553])
def test_pieces_compressed_apart_make_one_valid_zlib_stream(height):
    # 1023 grey pixels and a filter byte a row: pieces of 512 rows
    assert png._PIECE // 1024 == 512
    pixels = np.random.default_rng(height).integers(0, 8, (height, 1023), dtype=np.uint8)
    data = png_bytes(Image.fromarray(pixels), threads=3)
    filtered = np.empty((height, 1024), np.uint8)
    png.sub_filter(pixels, 1, filtered)
    assert zlib.decompress(_idat(data)) == filtered.tobytes()  # zlib checks the adler32 too
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert png_bytes(Image.fromarray(pixels), threads=1) == data  # the same bytes in one thread as in several


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "I;16"])
def test_png_writer_round_trips_every_mode(mode):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA").convert(mode)
    decoded = Image.open(io.BytesIO(png_bytes(image)))
    native = mode in ("L", "LA", "RGB", "RGBA")
    assert decoded.mode == mode if native else decoded.mode in ("RGB", "RGBA")
    assert decoded.size == (53, 37)
    expected = image if native else image.convert(decoded.mode)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))


def test_png_writer_compresses_a_photo_about_as_well_as_pil():
    photo = Image.fromarray(skdata.astronaut())
    pil = io.BytesIO()
    photo.save(pil, "PNG", compress_level=1)
    assert len(png_bytes(photo)) < 1.1 * len(pil.getvalue())


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_png_writer_makes_the_same_bytes_from_any_bands(mode):
    rng = np.random.default_rng(2)
    image = Image.fromarray(rng.integers(0, 256, (700, 400, 4), dtype=np.uint8), "RGBA").convert(mode)
    pixels = np.asarray(image)
    writer = png.PngWriter(image.width, image.height, mode, threads=2)
    cuts = [0, 1, 33, 34, 300, 699, 700]  # a band of one row, an empty one, the rest uneven
    for top, bottom in zip(cuts, cuts[1:] + [700]):
        writer.add(pixels[top:bottom])
    assert writer.rows_added == 700
    assert writer.finish() == png_bytes(image, threads=1)


def test_png_writer_refuses_to_finish_with_rows_missing():
    writer = png.PngWriter(4, 3, "L", threads=1)
    writer.add(np.zeros((2, 4), np.uint8))
    with pytest.raises(ValueError, match="3 rows was given 2"):
        writer.finish()
