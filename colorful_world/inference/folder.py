"""Colorize many photos at the speed of the disk: decoding and encoding run in worker threads
(PIL, ISA-L and torch release the GIL) while the network works on the photo before, results come
in order, and the photos in flight are bounded by their pixels.

`colorize_files` is what `colorful-world colorize` runs; `colorize_many` is the pipeline, for
any list of (photo, destination) pairs.
"""

import os
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from colorful_world.inference.colorize import Colorizer
from colorful_world.io.atomic import NAME_MAX, write_bytes
from colorful_world.io.errors import UserError
from colorful_world.io.images import IMAGE_SUFFIXES, BadImageError, find_images
from colorful_world.io.png import made_here

# Pixels being worked on at once, across workers: about 0.9 GB at 14 bytes a pixel. Forty 1 MP
# album pages fit; a 40 MP scan goes through alone, so a huge photo costs one photo's memory.
MAX_PIXELS_IN_FLIGHT = 64_000_000
# What one bad photo raises; it is reported for that photo, and the others go on.
_PHOTO_ERRORS = (BadImageError, OSError, ValueError)


class OutputError(UserError, OSError):
    """An output folder that cannot be written into."""


def expand_inputs(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(photos to colorize, skipped): files as given, folders searched recursively for photos,
    where the PNGs this tool wrote are skipped (colorizing into the input folder, then again,
    must not colorize its own results). A folder without photos is an error."""
    paths, skipped = [], []
    for item in inputs:
        item = Path(item)
        if not item.is_dir():
            paths.append(item)
            continue
        found = find_images(item)
        if not found:
            raise BadImageError(f"{item}: a folder with no photos in it "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in found:
            (skipped if made_here(path) else paths).append(path)
    return paths, skipped


def check_output_folder(out_dir: Path) -> None:
    """Make `out_dir` and prove it takes a file, before any photo is worked on."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file; --output names a folder to write into")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"cannot write into {out_dir}: {err.strerror or err}") from None


def output_paths(files: list[Path], out_dir: Path) -> list[Path]:
    """OUT/<stem>.png, with -2, -3... where two inputs share a stem; never an input file itself."""
    taken = {f.resolve() for f in files}
    result, used = [], set()
    for f in files:
        candidate, n = out_dir / _fitting(f.stem, ".png"), 1
        while candidate.resolve() in taken or candidate.resolve() in used:
            n += 1
            candidate = out_dir / _fitting(f.stem, f"-{n}.png")
        used.add(candidate.resolve())
        result.append(candidate)
    return result


def _fitting(stem: str, ending: str) -> str:
    """stem + ending, the stem cut (in bytes, whole characters) so the name fits NAME_MAX."""
    room = NAME_MAX - len(ending.encode())
    return stem.encode()[:room].decode(errors="ignore") + ending


def colorize_files(colorizer: Colorizer, inputs: Iterable[str | Path], out_dir: Path,
                   progress: bool = True, workers: int | None = None,
                   look: dict | None = None) -> tuple[list[Path], list[str]]:
    """Colorize every photo into `out_dir`; a bad one is reported and skipped. Returns
    (written, errors). `look`: chroma_gain, hints, restore_contrast, as `Colorizer.colorize` takes them.

    Raises BadImageError when a folder holds no photos, and OutputError when `out_dir` cannot
    be written into; both before any photo is worked on."""
    files, skipped = expand_inputs(inputs)
    if skipped:
        print(f"skipped {len(skipped)} PNG(s) this tool wrote, such as {skipped[0]}", file=sys.stderr)
    if not files:
        raise BadImageError("no photos to colorize: every one found is an earlier result of this tool")
    check_output_folder(out_dir)
    written, errors = [], []
    jobs = list(zip(files, output_paths(files, out_dir)))
    with tqdm(total=len(jobs), desc="colorizing", disable=not progress or len(jobs) < 2) as bar:
        for src, dst, error in colorize_many(colorizer, jobs, workers, look=look):
            if error is None:
                written.append(dst)
            else:
                errors.append(error if str(src) in error else f"{src}: {error}")
                tqdm.write(f"error: {errors[-1]}", file=sys.stderr)
            bar.update()
    return written, errors


def colorize_many(colorizer: Colorizer, jobs: list[tuple[Path, Path]], workers: int | None = None,
                  size: int | None = None, look: dict | None = None) -> Iterator[tuple[Path, Path, str | None]]:
    """Colorize each (photo, destination PNG) pair, yielding (photo, destination, error or None)
    in the order given; a photo that fails costs only itself.

    `workers` threads (default: the cores, at most 4) decode and encode; the network runs in the
    calling thread, one photo at a time (a batch would change its float results in the last
    bit, and the PNGs would no longer match `Colorizer.colorize`'s byte for byte). A PNG is
    written under a temporary name and renamed into place, so an interrupted run leaves no
    half-written file under a final name; stopping the generator lets running writes finish.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    look = look or {}
    size = colorizer.working_size(size)
    # One thread a PNG: the workers are the parallelism already, and more threads per PNG beside
    # them only contend for the cores (measured: 13.1 -> 13.8 photos/s). A lone photo has the
    # cores to itself. The bytes are the same either way.
    png_threads = 1 if len(jobs) > 1 else None

    def prepare(src: Path):
        if not src.is_file():
            raise BadImageError(f"{src}: no such file")
        return colorizer.prepare(src, size, look.get("restore_contrast", False))

    def finish(prepared, ab, dst: Path) -> None:
        _write_png(colorizer.finish_png(prepared, ab, look.get("chroma_gain"), threads=png_threads), dst)

    pool = ThreadPoolExecutor(workers, thread_name_prefix="colorize")
    decoding: deque[tuple[int, Future]] = deque()  # (job index, prepare), in order
    finishing: deque[tuple[int, Future | str]] = deque()  # (job index, finish or its error), in order
    pixels = {}  # of each photo in flight
    next_job = 0
    # The workers are the parallelism: torch's own threads beside them would spin-wait between
    # forward passes and take the cores from them (measured: 8.4 photos/s with them, 14 without).
    with colorizer.network_threads(1):
        try:
            while next_job < len(jobs) or decoding or finishing:
                # Keep the workers fed, within the pixel budget (one photo always goes).
                while next_job < len(jobs) and len(decoding) <= workers:
                    size_of_next = _header_pixels(jobs[next_job][0])
                    if pixels and sum(pixels.values()) + size_of_next > MAX_PIXELS_IN_FLIGHT:
                        break
                    pixels[next_job] = size_of_next
                    decoding.append((next_job, pool.submit(prepare, jobs[next_job][0])))
                    next_job += 1
                if decoding and len(finishing) <= 2 * workers:
                    index, prepared = decoding.popleft()
                    try:
                        prepared = prepared.result()
                        ab = colorizer.predict(prepared, look.get("hints"), look.get("chroma_gain"))
                        finishing.append((index, pool.submit(finish, prepared, ab, jobs[index][1])))
                    except _PHOTO_ERRORS as err:
                        finishing.append((index, str(err)))
                    if not _done(finishing[0][1]):
                        continue  # the network goes on while the oldest photo is still being written
                index, outcome = finishing.popleft()
                error = outcome if isinstance(outcome, str) else _error_of(outcome)
                del pixels[index]
                yield (*jobs[index], error)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _done(outcome: Future | str) -> bool:
    return isinstance(outcome, str) or outcome.done()


def _error_of(future: Future) -> str | None:
    try:
        future.result()
    except _PHOTO_ERRORS as err:
        return str(err)
    return None


def _header_pixels(path: Path) -> int:
    """A photo's pixels from its header alone (0 when it has none: decoding will say why)."""
    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # any failure here is the decoder's to report, with its own message
        return 0


def _write_png(data: bytes, dst: Path) -> None:
    """Under a temporary name of its own (io.atomic: unpredictable, never through a planted
    link, within the file name limit however long the photo's name), then renamed into place.
    Not synced: a lost result is made again by running the same command."""
    write_bytes(dst, data, sync=False)
