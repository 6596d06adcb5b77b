"""The one way a file is written under a temporary name and renamed into place: PNG results,
checkpoints, exported models, the decode cache and its index, ONNX exports.

The temporary file is created beside the target with an unpredictable name, O_CREAT | O_EXCL
(a name planted in advance, symlink or file, is never opened, let alone followed) and
O_NOFOLLOW; it is written through the descriptor that created it, never reopened by name;
synced, given the permissions any file of the user gets, then renamed over the target. A write
that fails removes its temporary file; one that was killed leaves it, and the next write to the
same target removes it (its writer's process is gone).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

NAME_MAX = 255  # bytes of one file name, on every file system this runs on
_SUFFIX = ".tmp"
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"[:4]  # a killed writer of another machine is not ours to judge


def _prefix(target: Path) -> str:
    """'.<target name>.': cut, in bytes, so that the whole temporary name fits NAME_MAX."""
    room = NAME_MAX - len(f"..{_HOST}-{2**22}.{'x' * 12}{_SUFFIX}")  # pid up to 7 digits, 12 random
    name = target.name.encode()[:room].decode(errors="ignore")
    return f".{name}."


def temporary_name(target: Path) -> Path:
    return target.with_name(f"{_prefix(target)}{_HOST}-{os.getpid()}.{secrets.token_hex(6)}{_SUFFIX}")


def _writer_gone(temp: Path, prefix: str) -> bool:
    """A leftover of a writer on this machine whose process no longer runs."""
    rest = temp.name[len(prefix):]
    host, _, rest = rest.partition("-")
    pid = rest.split(".", 1)[0]
    if host != _HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # another user's process: alive
    return False


def sweep_leftovers(target: Path) -> None:
    """Remove temporary files of `target` left by writers that were killed."""
    prefix = _prefix(target)
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if entry.name.startswith(prefix) and entry.name.endswith(_SUFFIX) and \
                    _writer_gone(Path(entry.path), prefix):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: int | None = None, sync: bool = True,
                 readable: bool = False) -> Iterator[BinaryIO]:
    """Open a new temporary file beside `target` for writing (binary; `readable`: for reading
    too, as a memory map needs); when the block ends without an error, the file is synced, given
    `mode` (default: what the umask gives any new file) and renamed over `target`. On any error,
    or an interrupt, it is removed and `target` is as before.
    """
    target = Path(target)
    sweep_leftovers(target)
    flags = (os.O_RDWR if readable else os.O_WRONLY) | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        temp = temporary_name(target)
        try:
            fd = os.open(temp, flags, 0o600)
            break
        except FileExistsError:
            continue  # a name taken (planted, or a one-in-2**48 draw): draw another
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))
    try:
        with os.fdopen(fd, "w+b" if readable else "wb") as file:
            yield file
            file.flush()
            if sync:
                os.fsync(file.fileno())
            os.fchmod(file.fileno(), _umask_mode() if mode is None else mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_bytes(target: str | Path, data: bytes | memoryview, mode: int | None = None, sync: bool = True) -> None:
    """`data` as the whole of `target`, atomically (see `atomic_write`)."""
    with atomic_write(target, mode, sync) as file:
        file.write(data)


def write_text(target: str | Path, text: str, mode: int | None = None) -> None:
    write_bytes(target, text.encode(), mode)
