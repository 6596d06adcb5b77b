"""Safe extraction of .tgz/.tar.gz/.tar/.zip archives.

Nothing an archive holds may land outside the destination, and a destination that exists is
complete: members are extracted into a staging folder beside it, a `.complete` marker is written
last, and only then is the folder renamed into place.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

from colorful_world.io.errors import UserError

COMPLETE_MARKER = ".complete"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# Photos barely compress (LFW: 1.05x), so an archive that unpacks to 100x its size is a bomb.
MAX_EXPANSION = 100
DISK_MARGIN_BYTES = 256 << 20  # left free after an extraction, for checkpoints and the cache

# What a damaged or truncated tar/gzip/zip stream raises while it is read.
_CORRUPT_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


class ArchiveError(UserError, ValueError):
    """An archive that cannot be extracted as it is."""


class UnsafeArchiveError(ArchiveError):
    """A member would land outside the destination, or is a link or device file leading there."""


class CorruptArchiveError(ArchiveError):
    """An archive that is corrupt, truncated, or not a tar or zip archive at all."""


class ArchiveTooLargeError(ArchiveError):
    """An archive that would unpack to more than the disk holds, or than photos ever expand to."""


def is_archive(path: str | os.PathLike) -> bool:
    """Whether `path` is a tar (plain or compressed) or zip file, judged by its name or content.

    A file named like an archive counts even when damaged, so that extracting it reports the
    damage instead of the caller mistaking it for something else.
    """
    path = Path(path)
    if not path.is_file():
        return False
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except _CORRUPT_ERRORS:
        return False


def is_extracted(dest: str | os.PathLike, archive: str | os.PathLike | None = None,
                 sha256: str | None = None) -> bool:
    """Whether `dest` holds a completed extraction (of `archive`, when given, and of a file
    whose checksum was verified to be `sha256`, when given)."""
    marker = Path(dest) / COMPLETE_MARKER
    if not marker.is_file():
        return False
    recorded = _read_marker(marker) or {}
    if sha256 is not None and recorded.get("sha256") != sha256:
        return False
    if archive is None:
        return True
    fingerprint = _fingerprint(Path(archive))
    return {key: recorded.get(key) for key in fingerprint} == fingerprint


def check_readable(archive: str | os.PathLike) -> None:
    """Read `archive` through (every member's data, zip CRCs included) without writing a byte;
    CorruptArchiveError when it is damaged or cut short. A download is checked this way before
    it gets its final name, so a broken file never settles in a cache."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
        else:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        tar.extractfile(member).read()
    except _CORRUPT_ERRORS as e:
        raise CorruptArchiveError(
            f"{archive} is not a readable .tgz/.tar/.zip archive (corrupt or truncated?): {e}"
        ) from e


def safe_extract(
    archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Extract `archive` (.tgz/.tar.gz/.tar/.zip) so that it becomes the folder `dest`.

    Returns `dest` at once when it already holds a completed extraction of this archive (same
    name, size and modification time; and `sha256`, the checksum the caller verified, when
    given: it is recorded with the extraction). A previous extraction of another archive at
    `dest` is replaced; any other non-empty `dest` is refused with FileExistsError, so a
    user's files are never overwritten.

    Raises UnsafeArchiveError for a member with an absolute path, a `..` component, a link
    leading outside `dest` or a device file, CorruptArchiveError for a damaged archive, and
    ArchiveTooLargeError for one that would unpack to more than MAX_EXPANSION times its size
    or than the free disk; each names the archive, and none leaves anything behind.
    """
    archive, dest = Path(archive), Path(dest)
    if is_extracted(dest, archive, sha256):
        return dest
    if dest.exists() and not _replaceable(dest):
        raise FileExistsError(
            f"{dest} already exists and was not extracted here; move it or pick another folder"
        )
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # left by a run that crashed
    staging.mkdir(parents=True)
    try:
        _extract_members(archive, staging, progress)
        (staging / COMPLETE_MARKER).write_text(json.dumps({**_fingerprint(archive), "sha256": sha256}))
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _fingerprint(archive: Path) -> dict:
    """Enough to tell one archive from another without reading it through."""
    info = archive.stat()
    return {"archive": archive.name, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _read_marker(marker: Path) -> dict | None:
    try:
        return json.loads(marker.read_text())
    except ValueError:
        return None


def _replaceable(dest: Path) -> bool:
    """An earlier extraction of ours, or an empty folder."""
    return (dest / COMPLETE_MARKER).is_file() or (dest.is_dir() and not any(dest.iterdir()))


def _move_into_place(staging: Path, dest: Path) -> None:
    """Rename `staging` to `dest`, first moving aside whatever `_replaceable` let through."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(staging, dest)
    shutil.rmtree(old, ignore_errors=True)


class _SizeBudget:
    """Counts the bytes members declare (tar headers and zip directories are exact: extraction
    writes no more than they say) and refuses the member that would pass the cap."""

    def __init__(self, archive: Path, into: Path):
        self.archive, self.used = archive, 0
        free = shutil.disk_usage(into).free - DISK_MARGIN_BYTES
        ratio_cap = MAX_EXPANSION * max(archive.stat().st_size, 1 << 20)
        self.cap = min(free, ratio_cap)
        self.why = (f"{free / 1e9:.1f} GB of free disk beside it" if free < ratio_cap else
                    f"{MAX_EXPANSION}x its size, far more than photos expand: a decompression bomb?")

    def add(self, size: int) -> None:
        self.used += size
        if self.used > self.cap:
            raise ArchiveTooLargeError(f"{self.archive} unpacks to more than {self.cap / 1e9:.2f} GB, "
                                       f"{self.why}; nothing was kept")


def _extract_members(archive: Path, into: Path, progress: bool) -> None:
    budget = _SizeBudget(archive, into)
    with tqdm(desc=f"extract {archive.name}", unit=" files", disable=not progress) as bar:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, into, bar, budget)
            else:
                _extract_tar(archive, into, bar, budget)
        except _CORRUPT_ERRORS as e:
            raise CorruptArchiveError(
                f"{archive} is not a readable .tgz/.tar/.zip archive (corrupt or truncated?): {e}"
            ) from e


def _extract_tar(archive: Path, into: Path, bar: tqdm, budget: _SizeBudget) -> None:
    if not hasattr(tarfile, "data_filter"):
        raise RuntimeError(
            "safe tar extraction needs Python >= 3.10.12 or >= 3.11.4 (tarfile filters)"
        )

    def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        _check_name(member.name, archive)
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as e:
            raise UnsafeArchiveError(f"{archive}: refusing member {member.name!r}: {e}") from e
        budget.add(member.size)
        bar.update()
        return member

    # The filter runs before each member is written, so a refusal stops extraction in time.
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(into, filter=checked)


def _extract_zip(archive: Path, into: Path, bar: tqdm, budget: _SizeBudget) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        # The member list comes from the central directory: check all before writing any.
        for info in members:
            _check_name(info.filename, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(
                    f"{archive}: refusing member {info.filename!r}: symbolic link"
                )
            budget.add(info.file_size)
        bar.reset(total=len(members))
        for info in members:
            zf.extract(info, into)
            bar.update()


def _check_name(name: str, archive: Path) -> None:
    """Refuse absolute names and `..`: tarfile's data filter would quietly rebase the former,
    and zipfile would quietly rewrite both; an archive that holds them is not to be trusted."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise UnsafeArchiveError(
            f"{archive}: refusing member {name!r}: absolute path or '..' leads outside the folder"
        )
