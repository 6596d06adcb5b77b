"""Make LFW ready on disk: pick a source, download (resumable, retried), verify, extract.

`prepare_lfw` is the engine; `add_arguments` and `main_from_args` are the door the
`colorful-world download-lfw` subcommand goes through.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm.auto import tqdm

from colorful_world.io.archive import (ARCHIVE_SUFFIXES, ArchiveError, CorruptArchiveError, check_readable,
                                    is_extracted, safe_extract)
from colorful_world.io.errors import ConfigError, UserError
from colorful_world.io.images import IMAGE_SUFFIXES
from colorful_world.io.paths import COLAB_ARCHIVE_CACHE, COLAB_DATA, COLAB_DRIVE, on_colab, user_cache_dir

log = logging.getLogger(__name__)

# variant -> (archive name, figshare URL, sha256)
MIRRORS = {
    "lfw": (
        "lfw.tgz",
        "https://ndownloader.figshare.com/files/5976018",
        "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
    ),
    "funneled": (
        "lfw-funneled.tgz",
        "https://ndownloader.figshare.com/files/5976015",
        "b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
    ),
}

HTTP_TIMEOUT_S = (10, 60)  # connect, then between bytes
CHUNK_BYTES = 1 << 16  # a broken connection loses the chunk being read: keep it small


class DownloadError(UserError, RuntimeError):
    """No source could make LFW ready; the message lists each one tried and why it failed."""


class _SourceFailed(Exception):
    """One source failed; the next one is tried."""


class _Transient(Exception):
    """A failure worth retrying: a 5xx answer, a short body, a refused resume."""


# What makes one source fail. requests' errors are OSErrors too; listed for the reader.
_SOURCE_FAILURES = (_SourceFailed, ArchiveError, requests.RequestException, OSError)
_RETRYABLE = (
    _Transient,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class _Source:
    kind: str  # "url", "gdrive" or "local"
    where: str  # the URL, the Drive file id, or the local path
    filename: str  # the archive's name in the cache (or on the user's disk)
    sha256: str | None
    label: str  # how the failure message names it


def prepare_lfw(
    dest: str | os.PathLike | None = None,
    variant: str = "lfw",
    url: str | None = None,
    sha256: str | None = None,
    gdrive_id: str | None = None,
    archive: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    tries: int = 4,
    backoff_s: float = 1.0,
    alternatives: str = "--archive PATH (a local .tgz/.zip, or an extracted folder), --url URL [--sha256 HEX], "
                        "--gdrive-id ID_OR_LINK (the same keywords of prepare_lfw in Python)",
) -> Path:
    """Make LFW ready and return its image folder (the one holding `<Person>/<Person>_0001.jpg`).

    Sources: when the user names any of `archive`, `url`, `gdrive_id`, only those are tried,
    in that order (cheapest first: a local file or folder, a URL, Google Drive); the figshare
    mirror of `variant` ("lfw" or "funneled") is tried only when none is named, because a user
    who names a source wants that data (say a repacked archive) and not a silent substitute.
    `sha256` is the expected checksum of the file the user names, however it is fetched; the
    mirror's checksum is built in. `archive` may also be an extracted folder, used where it is.

    Downloads go to `cache_dir` as `<name>.part`, resumed with HTTP Range and retried `tries`
    times with a backoff of `backoff_s` * 2**n seconds on 5xx answers and broken connections;
    a file gets its final name only once its checksum matches. Archives are extracted to
    `dest/<archive name without suffix>`. Defaults (see `default_dirs`): on Colab the archive is
    cached in Drive and extracted to /content/data; elsewhere both go to ~/.cache/colorful_world,
    or to `dest` when given.

    Idempotent: once a source's extraction is complete, it is returned without any network.
    Nothing the user had is ever deleted: a mismatching local archive or cached file is refused
    and left in place. Raises DownloadError when every source fails, and ValueError for
    arguments that cannot work (unknown variant, malformed sha256 or Drive link, tries < 1).
    """
    if variant not in MIRRORS:
        raise ConfigError(f"unknown LFW variant {variant!r}; choose one of {sorted(MIRRORS)}")
    if tries < 1:
        raise ConfigError(f"tries must be at least 1, not {tries}")
    sources = _sources(variant, url, _normalise_sha256(sha256), gdrive_id, archive)
    dest, cache_dir = default_dirs(dest, cache_dir)
    failures = []
    for source in sources:
        try:
            return _prepare(source, dest, cache_dir, progress, tries, backoff_s)
        except _SOURCE_FAILURES as e:
            failures.append(f"{source.label}: {e}")
    raise DownloadError(_failure_message(dest, failures, alternatives))


def default_dirs(
    dest: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """(extraction folder, archive cache), filling in what the caller left out.

    On Colab: /content/data and the Drive folder colorful_world/data (local disk when Drive is
    not mounted: writing under an unmounted /content/drive would break a later mount).
    Elsewhere: ~/.cache/colorful_world (or $XDG_CACHE_HOME/colorful_world) for both, and an
    explicit `dest` keeps the archives too.
    """
    if on_colab():
        dest = Path(dest) if dest else COLAB_DATA
        if cache_dir is None:
            if COLAB_DRIVE.is_dir():
                cache_dir = COLAB_ARCHIVE_CACHE
            else:
                log.warning("Google Drive is not mounted: the archive is kept on local disk, "
                            "and a new session will fetch it again")
                cache_dir = dest
    else:
        dest = Path(dest) if dest else user_cache_dir()
        cache_dir = cache_dir or dest
    return dest.expanduser(), Path(cache_dir).expanduser()


def find_lfw_root(folder: str | os.PathLike, max_depth: int = 3) -> Path | None:
    """The folder at or below `folder` whose subfolders are people (`<P>/<P>_0001.jpg`).

    Breadth first, so the shallowest such folder wins, whatever it is named.
    """
    level = [Path(folder)]
    for _ in range(max_depth + 1):
        for candidate in level:
            if any(_is_person_dir(sub) for sub in _subdirs(candidate)):
                return candidate
        level = [sub for candidate in level for sub in _subdirs(candidate)]
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the download-lfw options to `parser` (see `main_from_args`)."""
    parser.add_argument("--dest", type=Path, help="folder to extract into "
                        "(default: /content/data on Colab, else ~/.cache/colorful_world)")
    parser.add_argument("--variant", choices=sorted(MIRRORS), default="lfw",
                        help="which figshare archive to fetch when no source is given")
    parser.add_argument("--url", help="download the archive from this URL instead")
    parser.add_argument("--sha256", help="expected sha256 of the archive given by "
                        "--url, --gdrive-id or --archive")
    parser.add_argument("--gdrive-id", metavar="ID_OR_LINK",
                        help="Google Drive file id or share link of the archive")
    parser.add_argument("--archive", type=Path, metavar="PATH",
                        help="a local .tgz/.tar/.zip archive, or an already extracted folder")
    parser.add_argument("--cache-dir", type=Path, help="where downloaded archives are kept "
                        "(default: Drive on Colab, else the --dest folder)")
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Run prepare_lfw from parsed arguments; print the ready folder as the last stdout line.

    Returns 0 on success, 1 when every source failed, 2 for arguments that cannot work;
    the reason goes to stderr.
    """
    try:
        folder = prepare_lfw(
            dest=args.dest, variant=args.variant, url=args.url, sha256=args.sha256,
            gdrive_id=args.gdrive_id, archive=args.archive, cache_dir=args.cache_dir,
        )
    except DownloadError as e:
        print(e, file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(folder)
    return 0


def _sources(
    variant: str,
    url: str | None,
    sha256: str | None,
    gdrive_id: str | None,
    archive: str | os.PathLike | None,
) -> list[_Source]:
    sources = []
    if archive is not None:
        path = Path(archive).expanduser()
        sources.append(_Source("local", str(path), path.name, sha256, f"--archive {path}"))
    if url:
        sources.append(_Source("url", url, _url_filename(url), sha256, f"--url {url}"))
    if gdrive_id:
        file_id = _drive_file_id(gdrive_id)
        sources.append(
            _Source("gdrive", file_id, f"gdrive-{file_id}", sha256, f"--gdrive-id {file_id}")
        )
    if sources:
        return sources
    if sha256:
        raise ConfigError("--sha256 checks the file given by --url, --gdrive-id or --archive, "
                         "and none was given")
    name, mirror_url, mirror_sha256 = MIRRORS[variant]
    return [_Source("url", mirror_url, name, mirror_sha256, f"figshare mirror {mirror_url}")]


def _prepare(
    source: _Source, dest: Path, cache_dir: Path, progress: bool, tries: int, backoff_s: float
) -> Path:
    """Make one source ready and return its image folder, or raise one of _SOURCE_FAILURES."""
    target = dest / _extraction_name(source.filename)
    if source.kind == "local":
        archive = Path(source.where)
        if not archive.exists():
            raise _SourceFailed(f"{archive} does not exist")
        if archive.is_dir():
            return _lfw_root(archive)  # the user's folder is used where it is, never written to
        if not is_extracted(target, archive, source.sha256):
            _check_sha256(archive, source.sha256, "the file was left untouched")
    elif is_extracted(target, sha256=source.sha256):
        # A checksum given now must be the one verified when it was extracted.
        return _lfw_root(target)
    else:
        archive = _cached_archive(source, cache_dir, progress, tries, backoff_s)
    try:
        return _lfw_root(safe_extract(archive, target, progress=progress, sha256=source.sha256))
    except CorruptArchiveError as e:
        if source.kind == "local":
            raise
        # Downloads are read through before they get their final name, so this is a file the
        # user put in the cache, or a damaged disk: say which file stands in the way.
        raise _SourceFailed(f"{e}; delete {archive} to download it again") from None


def _cached_archive(
    source: _Source, cache_dir: Path, progress: bool, tries: int, backoff_s: float
) -> Path:
    """The verified archive in the cache, downloading it first when it is not there."""
    final = cache_dir / source.filename
    if final.exists():
        # It may be a copy the user put there: refuse it on a mismatch, never delete it.
        _check_sha256(final, source.sha256, "it was left in place; remove it to download again")
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    # A download that fails its checks (a stale .part resumed, a body cut short without a
    # Content-Length) is discarded and fetched once more from byte 0.
    for last_try in (False, True):
        if source.kind == "gdrive":
            _gdown(source.where, part, progress)
        else:
            _download(source.where, part, progress, tries, backoff_s)
        try:
            _check_sha256(part, source.sha256, "the download was discarded")
            check_readable(part)  # without a checksum, the archive must at least read through
            break
        except (_SourceFailed, CorruptArchiveError) as e:
            part.unlink()  # resuming a corrupt file would only reproduce it
            if last_try:
                raise _SourceFailed(f"{e}; the download was discarded") from None
    os.replace(part, final)
    return final


def _download(url: str, part: Path, progress: bool, tries: int, backoff_s: float) -> None:
    for attempt in range(tries):
        try:
            _fetch(url, part, progress)
            return
        except _RETRYABLE as e:
            if attempt == tries - 1:
                raise _SourceFailed(f"gave up after {tries} tries: {e}") from e
            time.sleep(backoff_s * 2**attempt)


def _fetch(url: str, part: Path, progress: bool) -> None:
    """One request, appending to `part` from where it ends when the server honours Range."""
    offset = part.stat().st_size if part.exists() else 0
    # Byte offsets must count the bytes on disk, so no transparent decompression.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with requests.get(url, headers=headers, stream=True, timeout=HTTP_TIMEOUT_S) as response:
        if response.status_code == 416 or (
            response.status_code == 206
            and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        ):
            part.unlink(missing_ok=True)
            raise _Transient(f"{url} would not resume at byte {offset}; starting over")
        if response.status_code >= 500:
            raise _Transient(f"{url} answered HTTP {response.status_code}")
        response.raise_for_status()  # any other error answer: trying again will not help
        if response.status_code != 206:
            offset = 0  # Range not sent, or ignored: the body is the whole file
        total = _expected_size(response, offset)
        with part.open("ab" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            for chunk in response.iter_content(CHUNK_BYTES):
                f.write(chunk)
                bar.update(len(chunk))
    # Older urllib3 ends a cut-off body quietly instead of raising.
    if total is not None and part.stat().st_size < total:
        raise _Transient(f"{url} closed the connection early")
    if total is not None and part.stat().st_size > total:
        part.unlink()
        raise _Transient(f"{url} sent more bytes than it announced; starting over")


def _expected_size(response: requests.Response, offset: int) -> int | None:
    """The whole file's size: Content-Range's total for a resumed answer, else the offset plus
    Content-Length; None when the server says neither (the archive check catches a cut body)."""
    whole = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", "").strip())
    if response.status_code == 206 and whole:
        return int(whole.group(1))
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _gdown(file_id: str, part: Path, progress: bool) -> None:
    import gdown  # only this source needs it, and it takes a while to import

    try:
        result = gdown.download(id=file_id, output=str(part), quiet=not progress, resume=True)
    except Exception as e:  # gdown's error types differ between versions; any one fails the source
        raise _SourceFailed(f"gdown could not fetch it: {e}") from e
    if result is None or not part.is_file():
        raise _SourceFailed("gdown fetched nothing: is it shared with 'Anyone with the link'?")


def _check_sha256(path: Path, expected: str | None, aftermath: str) -> None:
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise _SourceFailed(f"sha256 of {path} is {actual}, expected {expected}; {aftermath}")


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    sha256 = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ConfigError(f"--sha256 must be 64 hexadecimal digits, not {sha256!r}")
    return sha256


def _drive_file_id(id_or_link: str) -> str:
    """The file id in a Drive id, a `.../file/d/ID/view` link or an `...?id=ID` link."""
    match = re.search(r"/d/([\w-]+)|[?&]id=([\w-]+)|^([\w-]{10,})$", id_or_link.strip())
    if not match:
        raise ConfigError(f"not a Google Drive file id or share link: {id_or_link!r}")
    return next(group for group in match.groups() if group)


def _url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return re.sub(r"[^\w.-]", "_", name) or "download"


def _extraction_name(filename: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return filename + ".extracted"  # never the archive's own name: both may share a folder


def _lfw_root(folder: Path) -> Path:
    root = find_lfw_root(folder)
    if root is None:
        raise _SourceFailed(f"no LFW layout (<Person>/<Person>_0001.jpg) found in {folder}")
    return root


def _subdirs(folder: Path) -> list[Path]:
    """Subfolders, in a stable order, without hidden ones (staging, markers) or macOS debris."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"
    )


def _is_person_dir(folder: Path) -> bool:
    return any((folder / f"{folder.name}_0001{suffix}").is_file() for suffix in IMAGE_SUFFIXES)


def _failure_message(dest: Path, failures: list[str], alternatives: str) -> str:
    tried = "\n".join(f"  - {failure}" for failure in failures)
    return f"Could not make LFW ready in {dest}. Tried:\n{tried}\nAlternatives: {alternatives}."
