import io
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from colorful_world import png
from colorful_world.png import png_bytes


@pytest.mark.parametrize("size", [0, 1, 1000, png._PIECE, png._PIECE + 1, 3 * png._PIECE + 17])
def test_pieces_compressed_apart_make_one_valid_zlib_stream(size):
    data = np.random.default_rng(size).integers(0, 8, size, dtype=np.uint8).tobytes()
    stream = png.zlib_stream(data, threads=3)
    assert zlib.decompress(stream) == data
    assert png.zlib_stream(data, threads=1) == stream  # the same bytes in one thread as in several


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
