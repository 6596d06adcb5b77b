"""safe_extract: LFW-like archives extract completely; hostile or damaged ones leave nothing."""

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from colorful_world.io import archive as archive_module
from colorful_world.io.archive import (
    ArchiveTooLargeError,
    CorruptArchiveError,
    UnsafeArchiveError,
    is_archive,
    is_extracted,
    safe_extract,
)

PEOPLE = ("Ada_Lovelace", "Alan_Turing")


def _jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _lfw_members() -> dict[str, bytes]:
    """`lfw/<Person>/<Person>_000N.jpg`, two tiny photos each."""
    return {
        f"lfw/{person}/{person}_{n:04d}.jpg": _jpeg_bytes((40 * n, 100, 200 - 40 * n))
        for person in PEOPLE
        for n in (1, 2)
    }


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_tgz(path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in _lfw_members().items():
            _add_file(tar, name, data)
        for info in extra:
            tar.addfile(info, io.BytesIO(b"evil" if info.isreg() else b""))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def test_tgz_extracts_completely_and_second_call_returns_at_once(tmp_path):
    archive = _write_tgz(tmp_path / "lfw.tgz")
    dest = tmp_path / "out" / "lfw"

    assert safe_extract(archive, dest, progress=False) == dest
    assert (dest / "lfw" / "Ada_Lovelace" / "Ada_Lovelace_0001.jpg").is_file()
    assert is_extracted(dest, archive)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["lfw"]  # no staging left

    photo = dest / "lfw" / "Alan_Turing" / "Alan_Turing_0002.jpg"
    photo.unlink()  # a re-extraction would bring it back
    safe_extract(archive, dest, progress=False)
    assert not photo.exists()


def test_extraction_of_another_archive_replaces_an_earlier_one(tmp_path):
    dest = tmp_path / "data"
    safe_extract(_write_tgz(tmp_path / "a.tgz"), dest, progress=False)
    other = _write_tgz(tmp_path / "b.tgz", extra=[_member("lfw/readme.txt")])

    safe_extract(other, dest, progress=False)
    assert is_extracted(dest, other)
    assert (dest / "lfw" / "readme.txt").is_file()


def test_a_folder_of_the_users_is_never_overwritten(tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")

    with pytest.raises(FileExistsError, match="mine"):
        safe_extract(_write_tgz(tmp_path / "lfw.tgz"), dest, progress=False)
    assert _files_under(dest) == {"notes.txt"}


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(lambda root: _member("lfw/../../evil.txt"), id="dotdot"),
        pytest.param(lambda root: _member(str(root / "abs_evil.txt")), id="absolute"),
        pytest.param(lambda root: _member("lfw/passwd", tarfile.SYMTYPE, "/etc/passwd"),
                     id="symlink-absolute"),
        pytest.param(lambda root: _member("lfw/up", tarfile.SYMTYPE, "../../../etc/passwd"),
                     id="symlink-relative"),
        pytest.param(lambda root: _member("lfw/hard", tarfile.LNKTYPE, "/etc/passwd"),
                     id="hardlink"),
        pytest.param(lambda root: _member("lfw/tty", tarfile.CHRTYPE), id="device"),
    ],
)
def test_hostile_tar_member_is_refused_and_nothing_is_written(tmp_path, hostile):
    member = hostile(tmp_path)
    archive = _write_tgz(tmp_path / "evil.tgz", extra=[member])
    dest = tmp_path / "out" / "lfw"

    with pytest.raises(UnsafeArchiveError) as refused:
        safe_extract(archive, dest, progress=False)
    assert str(archive) in str(refused.value)
    assert member.name.lstrip("/").split("/")[-1] in str(refused.value)
    assert _files_under(tmp_path) == {"evil.tgz", "out"}  # no evil.txt, no staging, no dest


def test_zip_extracts_and_a_zip_with_dotdot_is_refused(tmp_path):
    good, bad = tmp_path / "lfw.zip", tmp_path / "evil.zip"
    for path, extra in ((good, {}), (bad, {"lfw/../../evil.txt": b"evil"})):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in {**_lfw_members(), **extra}.items():
                zf.writestr(name, data)

    dest = safe_extract(good, tmp_path / "good", progress=False)
    assert (dest / "lfw" / "Alan_Turing" / "Alan_Turing_0001.jpg").is_file()

    with pytest.raises(UnsafeArchiveError, match=r"evil\.zip.*evil\.txt"):
        safe_extract(bad, tmp_path / "bad", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip", "good", "lfw.zip"]


def test_truncated_archive_is_reported_by_name_and_leaves_nothing(tmp_path):
    whole = _write_tgz(tmp_path / "whole.tgz").read_bytes()
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CorruptArchiveError, match="truncated.tgz"):
        safe_extract(truncated, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.tgz", "whole.tgz"]


def test_is_archive_judges_by_name_or_content(tmp_path):
    tgz = _write_tgz(tmp_path / "lfw.tgz")
    nameless = tmp_path / "download"
    nameless.write_bytes(tgz.read_bytes())
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")

    assert is_archive(tgz) and is_archive(nameless)
    assert not is_archive(text) and not is_archive(tmp_path)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_a_decompression_bomb_is_refused_and_leaves_nothing(tmp_path, kind):
    bomb = tmp_path / f"bomb.{kind}"
    zeros = bytes(120 << 20)  # 120 MB of zeros pack into about 120 KB: over 100x the 1 MB floor
    if kind == "zip":
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("lfw/zeros.bin", zeros)
    else:
        with tarfile.open(bomb, "w:gz") as tar:
            _add_file(tar, "lfw/zeros.bin", zeros)

    with pytest.raises(ArchiveTooLargeError, match="decompression bomb"):
        safe_extract(bomb, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bomb.name]


def test_an_archive_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    archive = _write_tgz(tmp_path / "lfw.tgz")
    free = archive_module.shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(archive_module, "DISK_MARGIN_BYTES", free - 100)  # 100 bytes to spare

    with pytest.raises(ArchiveTooLargeError, match="free disk"):
        safe_extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_an_archive_replaced_by_one_of_the_same_size_is_extracted_again(tmp_path):
    archive = _write_tgz(tmp_path / "lfw.tgz")
    dest = safe_extract(archive, tmp_path / "out", progress=False)
    info = archive.stat()
    archive_module.os.utime(archive, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))

    assert archive.stat().st_size == info.st_size and not is_extracted(dest, archive)
