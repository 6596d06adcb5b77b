"""prepare_lfw against real http.server instances on 127.0.0.1: download, resume, retry,
verify, extract, idempotence, Google Drive via gdown, and the message when all sources fail."""

import argparse
import functools
import hashlib
import io
import re
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gdown
import pytest
from PIL import Image

from colorful_world.io import download
from colorful_world.io.download import DownloadError, add_arguments, main_from_args, prepare_lfw

PEOPLE = ("Grace_Hopper", "Katherine_Johnson", "Margaret_Hamilton")
ARCHIVE_NAME = "lfw-test.tgz"


@pytest.fixture(scope="module")
def lfw_tgz() -> bytes:
    """A gzipped tar in the LFW layout, `lfw/<Person>/<Person>_000N.jpg`, of small noisy photos
    (noise does not compress: about 60 KB, so a cut halfway has written many 1 KB chunks)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for person in PEOPLE:
            for n in (1, 2):
                photo = io.BytesIO()
                Image.effect_noise((96, 96), 60 + 20 * n).convert("RGB").save(
                    photo, format="JPEG", quality=95
                )
                info = tarfile.TarInfo(f"lfw/{person}/{person}_{n:04d}.jpg")
                info.size = photo.tell()
                photo.seek(0)
                tar.addfile(info, photo)
    return buffer.getvalue()


class _Server:
    """Serves one payload at /lfw-test.tgz, honouring Range, with scripted misbehaviour:
    "500" answers an error, "drop" sends a full Content-Length then closes after half the
    bytes, "short-no-length" sends half the bytes with no Content-Length, "ignore-range"
    answers 200 with the whole file even to a Range request."""

    def __init__(self, payload: bytes, script: tuple[str, ...] = ()):
        self.payload, self.script, self.log = payload, list(script), []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/{ARCHIVE_NAME}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                behaviour = server.script.pop(0) if server.script else "ok"
                byte_range = self.headers.get("Range")
                server.respond(self, behaviour, byte_range)

            def log_message(self, *args) -> None:
                pass

        return Handler

    def respond(
        self, handler: BaseHTTPRequestHandler, behaviour: str, byte_range: str | None
    ) -> None:
        """Answer one request; it is logged before the body goes out, so a client that has
        read the whole answer always finds its request in the log."""
        data = self.payload
        if behaviour == "500":
            self.log.append((byte_range, 500))
            handler.send_response(500)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if behaviour == "short-no-length":  # no Content-Length to tell the client it was cut
            handler.send_response(200)
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
            self.log.append((byte_range, 200))
            return
        start = 0
        if byte_range and behaviour != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", byte_range).group(1))
        status = 206 if start else 200
        self.log.append((byte_range, status))
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if behaviour == "drop":
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
        else:
            handler.wfile.write(data[start:])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(payload: bytes, script: tuple[str, ...] = ()) -> _Server:
        servers.append(_Server(payload, script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _photos(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*/*.jpg"))


def _prepare(tmp_path: Path, **kwargs) -> Path:
    """prepare_lfw into tmp_path, quietly and without waiting between tries."""
    return prepare_lfw(dest=tmp_path / "data", cache_dir=tmp_path / "cache", progress=False,
                       backoff_s=0.0, **kwargs)


def test_full_download_verifies_and_extracts(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz)

    folder = _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz))

    assert folder == tmp_path / "data" / "lfw-test" / "lfw"
    assert len(_photos(folder)) == 2 * len(PEOPLE)
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == lfw_tgz
    assert server.log == [(None, 200)]


def test_dropped_connection_resumes_with_range(tmp_path, serve, lfw_tgz, monkeypatch):
    # Small chunks, so that the bytes before the cut reach the disk in this small archive.
    monkeypatch.setattr(download, "CHUNK_BYTES", 1024)
    server = serve(lfw_tgz, script=("drop",))

    folder = _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz))

    assert len(_photos(folder)) == 2 * len(PEOPLE)
    (first_range, first_status), (second_range, second_status) = server.log
    assert (first_range, first_status) == (None, 200)
    assert second_range.startswith("bytes=") and second_range != "bytes=0-"
    assert second_status == 206


def test_server_ignoring_range_restarts_from_zero(tmp_path, serve, lfw_tgz, monkeypatch):
    monkeypatch.setattr(download, "CHUNK_BYTES", 1024)
    server = serve(lfw_tgz, script=("drop", "ignore-range"))

    _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz))

    assert [status for _, status in server.log] == [200, 200]
    assert server.log[1][0] is not None  # it was asked to resume
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == lfw_tgz


def test_checksum_mismatch_keeps_no_download_and_deletes_nothing_of_the_users(
    tmp_path, serve, lfw_tgz
):
    server = serve(lfw_tgz)
    users_file = tmp_path / "data" / "notes.txt"
    users_file.parent.mkdir()
    users_file.write_text("mine")
    wrong = _sha256(b"something else")

    with pytest.raises(DownloadError, match="sha256"):
        _prepare(tmp_path, url=server.url, sha256=wrong)
    assert list((tmp_path / "cache").iterdir()) == []  # neither lfw-test.tgz nor a .part

    users_archive = tmp_path / "mine.tgz"
    users_archive.write_bytes(lfw_tgz)
    with pytest.raises(DownloadError, match="left untouched"):
        _prepare(tmp_path, archive=users_archive, sha256=wrong)
    assert users_archive.read_bytes() == lfw_tgz
    assert users_file.read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["notes.txt"]


def test_a_given_checksum_is_checked_even_when_already_extracted(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz)
    archive = tmp_path / "lfw-test.tgz"
    archive.write_bytes(lfw_tgz)
    wrong = _sha256(b"something else")
    for source in ({"url": server.url}, {"archive": archive}):
        _prepare(tmp_path, **source)  # extracted once, no checksum given

        with pytest.raises(DownloadError, match="sha256"):
            _prepare(tmp_path, **source, sha256=wrong)
        assert _prepare(tmp_path, **source, sha256=_sha256(lfw_tgz)).is_dir()


def test_body_cut_short_without_length_is_fetched_again(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz, script=("short-no-length",))

    folder = _prepare(tmp_path, url=server.url)  # no checksum: the archive check catches it

    assert len(_photos(folder)) == 2 * len(PEOPLE)
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == lfw_tgz
    assert server.log == [(None, 200), (None, 200)]


def test_stale_part_resumed_into_garbage_is_discarded(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz)
    stale = tmp_path / "cache" / f"{ARCHIVE_NAME}.part"
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 5000)  # the start of another file

    folder = _prepare(tmp_path, url=server.url)

    assert len(_photos(folder)) == 2 * len(PEOPLE)
    assert (tmp_path / "cache" / ARCHIVE_NAME).read_bytes() == lfw_tgz
    assert server.log == [("bytes=5000-", 206), (None, 200)]


def test_corrupt_cached_archive_names_the_file_to_delete(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz)
    cached = tmp_path / "cache" / ARCHIVE_NAME
    cached.parent.mkdir()
    cached.write_bytes(lfw_tgz[: len(lfw_tgz) // 2])

    with pytest.raises(DownloadError, match=f"delete {re.escape(str(cached))} to download it again"):
        _prepare(tmp_path, url=server.url)
    assert cached.exists()  # it may be the user's: named, never deleted


def test_server_error_then_success_retries(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz, script=("500",))

    folder = _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz))

    assert len(_photos(folder)) == 2 * len(PEOPLE)
    assert [status for _, status in server.log] == [500, 200]


def test_second_call_makes_no_request(tmp_path, serve, lfw_tgz):
    server = serve(lfw_tgz)
    first = _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz))
    requests_seen = len(server.log)

    assert _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz)) == first
    (tmp_path / "cache" / ARCHIVE_NAME).unlink()  # the completed extraction is enough
    assert _prepare(tmp_path, url=server.url, sha256=_sha256(lfw_tgz)) == first
    assert len(server.log) == requests_seen == 1


def test_google_drive_link_goes_through_gdown(tmp_path, lfw_tgz, monkeypatch):
    calls = []

    def fake_download(*, id, output, **kwargs):
        calls.append(id)
        Path(output).write_bytes(lfw_tgz)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    link = "https://drive.google.com/file/d/1AbC-dEf_GhIjKlMnOp/view?usp=sharing"

    folder = _prepare(tmp_path, gdrive_id=link, sha256=_sha256(lfw_tgz))

    assert calls == ["1AbC-dEf_GhIjKlMnOp"]
    assert len(_photos(folder)) == 2 * len(PEOPLE)


def test_extracted_folder_is_used_where_it_is(tmp_path, lfw_tgz):
    with tarfile.open(fileobj=io.BytesIO(lfw_tgz)) as tar:
        tar.extractall(tmp_path / "mine", filter="data")

    assert _prepare(tmp_path, archive=tmp_path / "mine") == tmp_path / "mine" / "lfw"
    assert not (tmp_path / "data").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_sources_failing_lists_each_and_the_alternatives(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "prepare_lfw", functools.partial(prepare_lfw, backoff_s=0.0))
    url = f"http://127.0.0.1:{_closed_port()}/lfw.tgz"
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--dest", str(tmp_path / "data"), "--url", url, "--archive", str(tmp_path / "no.tgz")]
    )

    assert main_from_args(args) == 1

    out, err = capsys.readouterr()
    assert out == ""
    assert f"--url {url}: gave up after 4 tries" in err
    assert f"--archive {tmp_path / 'no.tgz'}: " in err and "does not exist" in err
    assert "--archive PATH" in err and "--gdrive-id" in err


def test_cli_prints_the_ready_folder_last(tmp_path, lfw_tgz, capsys):
    archive = tmp_path / "lfw.tgz"
    archive.write_bytes(lfw_tgz)
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--archive", str(archive), "--dest", str(tmp_path / "data")]
    )

    assert main_from_args(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "data" / "lfw" / "lfw")


def test_colab_defaults_cache_in_drive_and_extract_locally(tmp_path, monkeypatch):
    from colorful_world.io import paths
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    monkeypatch.setattr(paths, "COLAB_ROOT", tmp_path)  # Colab's /content
    monkeypatch.setattr(download, "COLAB_DRIVE", tmp_path / "MyDrive")
    monkeypatch.setattr(download, "COLAB_ARCHIVE_CACHE", tmp_path / "MyDrive" / "cw")
    monkeypatch.setattr(download, "COLAB_DATA", tmp_path / "content-data")

    assert download.default_dirs() == (tmp_path / "content-data", tmp_path / "content-data")
    (tmp_path / "MyDrive").mkdir()  # Drive mounted
    assert download.default_dirs() == (tmp_path / "content-data", tmp_path / "MyDrive" / "cw")

    monkeypatch.delenv("COLAB_RELEASE_TAG")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.default_dirs() == (tmp_path / "xdg" / "colorful_world",) * 2
