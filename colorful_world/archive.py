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

from colorful_world.errors import UserError

COMPLETE_MARKER = ".complete"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

# What a damaged or truncated tar/gzip/zip stream raises while it is read.
_CORRUPT_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


class ArchiveError(UserError, ValueError):
    """An archive that cannot be extracted as it is."""


class UnsafeArchiveError(ArchiveError):
    """A member would land outside the destination, or is a link or device file leading there."""


class CorruptArchiveError(ArchiveError):
    """An archive that is corrupt, truncated, or not a tar or zip archive at all."""


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


def is_extracted(dest: str | os.PathLike, archive: str | os.PathLike | None = None) -> bool:
    """Whether `dest` holds a completed extraction (of `archive`, when given)."""
    marker = Path(dest) / COMPLETE_MARKER
    if not marker.is_file():
        return False
    return archive is None or _read_marker(marker) == _fingerprint(Path(archive))


def safe_extract(
    archive: str | os.PathLike, dest: str | os.PathLike, *, progress: bool = True
) -> Path:
    """Extract `archive` (.tgz/.tar.gz/.tar/.zip) so that it becomes the folder `dest`.

    Returns `dest` at once when it already holds a completed extraction of this archive (same
    name and size). A previous extraction of another archive at `dest` is replaced; any other
    non-empty `dest` is refused with FileExistsError, so a user's files are never overwritten.

    Raises UnsafeArchiveError for a member with an absolute path, a `..` component, a link
    leading outside `dest` or a device file, and CorruptArchiveError for a damaged archive;
    both name the archive, and neither leaves anything behind.
    """
    archive, dest = Path(archive), Path(dest)
    if is_extracted(dest, archive):
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
        (staging / COMPLETE_MARKER).write_text(json.dumps(_fingerprint(archive)))
        _move_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _fingerprint(archive: Path) -> dict:
    """Enough to tell one archive from another without reading it through."""
    return {"archive": archive.name, "size": archive.stat().st_size}


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


def _extract_members(archive: Path, into: Path, progress: bool) -> None:
    with tqdm(desc=f"extract {archive.name}", unit=" files", disable=not progress) as bar:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, into, bar)
            else:
                _extract_tar(archive, into, bar)
        except _CORRUPT_ERRORS as e:
            raise CorruptArchiveError(
                f"{archive} is not a readable .tgz/.tar/.zip archive (corrupt or truncated?): {e}"
            ) from e


def _extract_tar(archive: Path, into: Path, bar: tqdm) -> None:
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
        bar.update()
        return member

    # The filter runs before each member is written, so a refusal stops extraction in time.
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(into, filter=checked)


def _extract_zip(archive: Path, into: Path, bar: tqdm) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        # The member list comes from the central directory: check all before writing any.
        for info in members:
            _check_name(info.filename, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(
                    f"{archive}: refusing member {info.filename!r}: symbolic link"
                )
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
