"""The HTTP API against real servers on 127.0.0.1: good photos of every mode, each class of bad
input, an oversized upload refused before it is sent, a bounded concurrent load, the `serve`
command as a process; the result's file name, colour strength, contrast restoration and hints
(the bundled model, which takes hints), and the cache that spares a hint's click a second decode.
The page in a browser is tests/test_page.py."""

import argparse
import concurrent.futures
import contextlib
import copy
import http.client
import io
import json
import os
import signal
import socket
import statistics
import re
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from PIL import Image
from skimage import data as skdata
from skimage.color import rgb2lab

from colorful_world import Colorizer
from colorful_world.apps import server
from colorful_world.apps.server import (PreparedCache, add_arguments, create_app, main_from_args,
                                        make_server)
from colorful_world.core.color_lut import srgb_to_ab


@contextlib.contextmanager
def serving(app, **limits):
    """`app` on the production server in a thread, on a free port of 127.0.0.1; yields its URL."""
    httpd = make_server(app, "127.0.0.1", 0, **limits)
    thread = threading.Thread(target=httpd.serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.bind_addr[1]}"
    finally:
        httpd.stop()
        thread.join(10)


@pytest.fixture(scope="module")
def loads() -> list[Colorizer]:
    """Every model the module's server loads (it must load one, once)."""
    return []


@pytest.fixture(scope="module")
def url(tiny_model, loads):
    """The app as `serve` builds it, default limits, the tiny model counted as it loads."""
    def counted_load(checkpoint):
        loads.append(Colorizer.from_checkpoint(checkpoint))
        return loads[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(server.BACKENDS, "auto", counted_load)  # serve's default
        app = create_app(checkpoint=str(tiny_model))
    with serving(app) as base:
        yield base


@pytest.fixture(scope="module")
def colorizer(url, loads) -> Colorizer:
    """The model the server loaded: expected answers are computed with it, in this process."""
    return loads[0]


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def photo(width: int = 61, height: int = 47) -> Image.Image:
    """A real colour photo, at an odd size no network works at."""
    return Image.fromarray(skdata.astronaut()).resize((width, height))


def with_alpha(image: Image.Image) -> Image.Image:
    ramp = np.linspace(0, 255, image.width * image.height).reshape(image.height, image.width)
    image = image.copy()
    image.putalpha(Image.fromarray(ramp.astype(np.uint8)))
    return image


def grey_array(dtype, scale) -> Image.Image:
    return Image.fromarray((np.asarray(photo().convert("L")).astype(dtype) * scale))


def exif_rotated() -> bytes:
    """A JPEG stored 61x47 whose EXIF says to turn it a quarter: it is a 47x61 photo."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo().convert("L"), "JPEG", exif=exif)


GOOD = {  # name: (file bytes, size as shown, has alpha)
    "1-png": (lambda: encode(photo().convert("1"), "PNG"), (61, 47), False),
    "L-jpeg": (lambda: encode(photo().convert("L"), "JPEG"), (61, 47), False),
    "LA-png": (lambda: encode(with_alpha(photo().convert("L")), "PNG"), (61, 47), True),
    "P-gif": (lambda: encode(photo().convert("P"), "GIF"), (61, 47), False),
    "P-transparent-png": (lambda: encode(photo().convert("P"), "PNG", transparency=0), (61, 47), True),
    "RGB-webp": (lambda: encode(photo(), "WEBP"), (61, 47), False),
    "RGB-bmp": (lambda: encode(photo(), "BMP"), (61, 47), False),
    "RGBA-png": (lambda: encode(with_alpha(photo()), "PNG"), (61, 47), True),
    "CMYK-jpeg": (lambda: encode(photo().convert("CMYK"), "JPEG"), (61, 47), False),
    "I;16-png": (lambda: encode(grey_array(np.uint16, 257), "PNG"), (61, 47), False),
    "I-tiff": (lambda: encode(grey_array(np.int32, 1000), "TIFF"), (61, 47), False),
    "F-tiff": (lambda: encode(grey_array(np.float32, 1.0), "TIFF"), (61, 47), False),
    "exif-rotated-jpeg": (exif_rotated, (47, 61), False),
}


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only a header claiming `width` x `height`: whoever decodes it before
    checking its size fails with 422, so a 413 proves the check came first."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def broken_idat() -> bytes:
    png = bytearray(encode(photo(), "PNG"))
    start = png.index(b"IDAT") + 20
    png[start:start + 40] = bytes(b ^ 0xFF for b in png[start:start + 40])
    return bytes(png)


def png_bytes() -> bytes:
    return encode(photo(), "PNG")


BAD = {  # name: (request keywords for requests.post, query, status)
    "empty body": (lambda: {"data": b""}, "", 400),
    "form without an image field": (lambda: {"files": {"photo": ("a.png", png_bytes())}}, "", 400),
    "empty file in the form": (lambda: {"files": {"image": ("a.png", b"")}}, "", 400),
    "size not a number": (lambda: {"data": png_bytes()}, "?size=big", 400),
    "size not a multiple of 2**depth": (lambda: {"data": png_bytes()}, "?size=33", 400),
    "size far past the training size": (lambda: {"data": png_bytes()}, "?size=4096", 400),
    "not an image": (lambda: {"data": b"Dear server, please colorize me."}, "", 415),
    "a format we do not read (PPM)": (lambda: {"data": encode(photo(), "PPM")}, "", 415),
    "truncated PNG": (lambda: {"data": png_bytes()[:300]}, "", 422),
    "truncated JPEG": (lambda: {"data": encode(photo(), "JPEG")[:900]}, "", 422),
    "corrupt PNG pixel data": (lambda: {"data": broken_idat()}, "", 422),
    "more pixels than the limit (48 MP)": (lambda: {"data": png_header(8000, 6000)}, "", 413),
    "decompression bomb (900 MP)": (lambda: {"data": png_header(30000, 30000)}, "", 413),
}


def assert_json_error(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str) and message


def as_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_healthz_and_the_page(url):
    health = requests.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["hints"] is False  # the tiny model was made without hints
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    # The form a browser without JavaScript posts, with every setting as a field of its own.
    form = re.search(r"<form [^>]*>", page.text).group(0)
    assert 'action="colorize"' in form and 'enctype="multipart/form-data"' in form and 'target="result"' in form
    for field in ('type="file" name="image"', 'type="range" name="strength" min="0" max="2"',
                  'type="checkbox" name="restore_contrast" value="1"', 'type="submit"'):
        assert field in page.text
    assert 'data-hints="false"' in form and 'data-max-bytes="10000000"' in form
    # One self-contained file: nothing fetched from anywhere else.
    assert not re.search(r"(src|href)=\"(?!#|data:)|https?://|@import|url\(", page.text)


@pytest.mark.parametrize("name", GOOD)
def test_good_photo_of_every_mode(url, colorizer, name):
    make, size, has_alpha = GOOD[name]
    upload = make()
    answer = requests.post(f"{url}/colorize", files={"image": ("photo", upload)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "image/png"
    result = Image.open(io.BytesIO(answer.content))
    assert result.size == size
    assert result.mode == ("RGBA" if has_alpha else "RGB")
    expected = np.asarray(colorizer.colorize(Image.open(io.BytesIO(upload))))
    assert np.array_equal(np.asarray(result), expected)


def test_raw_body_and_size_query(url, colorizer):
    upload = encode(photo().convert("L"), "JPEG")
    as_form = requests.post(f"{url}/colorize", files={"image": ("photo.jpg", upload)}, timeout=30)
    as_body = requests.post(f"{url}/colorize", data=upload, timeout=30)  # curl --data-binary's way
    assert as_body.status_code == 200 and as_body.content == as_form.content
    bigger = requests.post(f"{url}/colorize?size=64", data=upload, timeout=30)
    assert bigger.status_code == 200
    assert np.array_equal(as_array(bigger.content),
                          np.asarray(colorizer.colorize(Image.open(io.BytesIO(upload)), size=64)))


@pytest.mark.parametrize("name", BAD)
def test_each_class_of_bad_input_gets_its_json_error(url, name):
    make, query, status = BAD[name]
    assert_json_error(requests.post(f"{url}/colorize{query}", timeout=30, **make()), status)


def test_other_routes_and_methods_answer_json(url):
    assert_json_error(requests.get(f"{url}/colorize", timeout=10), 405)
    assert_json_error(requests.get(f"{url}/nowhere", timeout=10), 404)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF:UserWarning")  # PIL's note on a mangled TIFF
def test_mangled_photos_never_get_a_500(url):
    """Random bytes overwritten in photos of each format: refused or colorized, never a crash."""
    rng = np.random.default_rng(0)
    originals = [encode(photo(), fmt) for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP")]
    statuses = set()
    for n in range(120):
        mangled = np.frombuffer(originals[n % len(originals)], dtype=np.uint8).copy()
        mangled[rng.integers(0, len(mangled), size=8)] = rng.integers(0, 256, size=8)
        answer = requests.post(f"{url}/colorize", data=mangled.tobytes(), timeout=30)
        statuses.add(answer.status_code)
        assert answer.status_code in (200, 413, 415, 422), answer.text
    assert {200, 422} <= statuses  # both paths were taken: some survive, some do not decode
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200


def test_oversized_upload_is_refused_before_it_is_sent(url):
    """Headers that announce 50 MB, then 4 bytes and silence: a server that read the body would
    wait (cheroot gives up on a silent client after 10 s); this one answers 413 at once."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        sock.sendall(b"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 50000000\r\n\r\n\x89PNG")
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        body = answer.read()
        elapsed = time.monotonic() - start
    assert answer.status == 413 and answer.getheader("Content-Type") == "application/json"
    assert "10,000,000 bytes" in json.loads(body)["error"]
    assert elapsed < 2, f"answered after {elapsed:.1f} s: the server waited for the body"


def test_chunked_upload_over_the_limit_is_refused(url):
    """No Content-Length to check: the body is read up to the limit, and no further."""
    def endless_body():
        while True:
            yield b"\0" * 65536

    assert_json_error(requests.post(f"{url}/colorize", data=endless_body(), timeout=30), 413)


def raw_answer(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict, float]:
    """Send `request` bytes as they are; (status, JSON body, seconds until the answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(request)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        body = answer.read()
        assert answer.getheader("Content-Type") == "application/json", body
        return answer.status, json.loads(body), time.monotonic() - start


@pytest.mark.parametrize("chunk_size", ["c800000", "FFFFFFFFFFFFFFFF"])
def test_a_huge_chunk_is_refused_before_it_is_read(url, chunk_size):
    """A chunk that announces 200 MB (or 2**64 bytes), then 4 bytes and silence."""
    port = int(url.rsplit(":", 1)[1])
    status, body, elapsed = raw_answer(port, b"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n"
                                             + chunk_size.encode() + b"\r\n\x89PNG")
    assert status == 413 and "10,000,000 bytes" in body["error"]
    assert elapsed < 2, f"answered after {elapsed:.1f} s: the server waited for the chunk"


def test_a_form_of_many_parts_is_refused_for_its_parts(url):
    fields = {f"field{n}": "x" for n in range(3000)}
    answer = requests.post(f"{url}/colorize", data=fields, files={"image": encode(photo(), "PNG")}, timeout=30)
    assert_json_error(answer, 413)
    assert "parts" in answer.json()["error"] and "bytes" not in answer.json()["error"]


def test_slow_clients_cannot_hold_every_thread(colorizer):
    """Twelve clients (cheroot has ten threads) trickle a byte every 0.2 s, some in their
    headers, some in their body; health still answers, and each slow one is cut at its deadline."""
    stop = threading.Event()

    def trickle(port: int, head: bytes, rest: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head)
            for byte in rest:
                if stop.is_set():
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return  # cut off by the server: what the test wants
                time.sleep(0.2)

    with serving(create_app(colorizer), deadline_s=1.0) as base:
        port = int(base.rsplit(":", 1)[1])
        slow_headers = (b"POST /colorize HTTP/1.1\r\n", b"Host: 127.0.0.1\r\nX-Slow: " + b"y" * 200)
        slow_body = (b"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n", b"z" * 200)
        clients = [threading.Thread(target=trickle, args=(port, *(slow_headers if n % 2 else slow_body)))
                   for n in range(12)]
        for client in clients:
            client.start()
        try:
            time.sleep(0.5)  # every thread of the server is now held by a slow client
            assert requests.get(f"{base}/healthz", timeout=15).status_code == 200
        finally:
            stop.set()
            for client in clients:
                client.join(10)


def test_limits_are_configurable(colorizer):
    small = encode(photo(40, 30).convert("L"), "PNG")
    with serving(create_app(colorizer, max_bytes=len(small) + 1000, max_pixels=1000)) as base:
        assert_json_error(requests.post(f"{base}/colorize", data=small + b"\0" * 2000, timeout=30), 413)
        assert_json_error(requests.post(f"{base}/colorize", data=small, timeout=30), 413)  # 1,200 px
        tiny = encode(photo(30, 30).convert("L"), "PNG")  # 900 px
        assert requests.post(f"{base}/colorize", data=tiny, timeout=30).status_code == 200
    with pytest.raises(ValueError, match="max_pixels"):
        create_app(colorizer, max_pixels=10**9)  # more than the package would ever decode


def test_a_bug_is_answered_as_json_500(caplog):
    """Not the input's fault, so not a 4xx: still JSON, and logged with its traceback."""
    def broken(image, size=None, restore_contrast=False):
        raise RuntimeError("a bug")

    stub = SimpleNamespace(image_size=32, depth=3, working_size=lambda size: 32, chroma_gain=1.0,
                           takes_hints=False, prepare=broken)
    with serving(create_app(stub)) as base:
        assert_json_error(requests.post(f"{base}/colorize", data=encode(photo(), "PNG"), timeout=30), 500)
    assert "a bug" in caplog.text


def two_requests_meeting_in_prepare(colorizer, timeout: float, **limits) -> list[requests.Response]:
    """Two requests at once to an app whose `prepare` waits at a two-party barrier: both pass
    only if both are inside `prepare` together (no timing involved)."""
    meeting = threading.Barrier(2, timeout=timeout)
    instrumented = copy.copy(colorizer)

    def prepare(image, size, restore_contrast=False):
        meeting.wait()
        return Colorizer.prepare(colorizer, image, size, restore_contrast)

    instrumented.prepare = prepare
    upload = encode(photo().convert("L"), "PNG")
    with serving(create_app(instrumented, **limits)) as base:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda _: requests.post(f"{base}/colorize", data=upload, timeout=60), range(2)))


def test_two_requests_prepare_their_photos_at_once(colorizer):
    """Each request decodes and prepares outside the model lock, so the two meet."""
    answers = two_requests_meeting_in_prepare(colorizer, timeout=20)
    assert [answer.status_code for answer in answers] == [200, 200], answers[0].text
    assert as_array(answers[0].content).tobytes() == as_array(answers[1].content).tobytes()


@pytest.mark.slow
def test_in_flight_bounds_the_photos_worked_on_at_once(colorizer):
    """With in_flight=1 the second request waits at the door: the barrier is never passed."""
    answers = two_requests_meeting_in_prepare(colorizer, timeout=3, in_flight=1)
    assert sorted(answer.status_code for answer in answers) == [500, 500]  # each timed out alone at the barrier


@pytest.mark.slow
def test_concurrent_load_200_requests_8_in_flight(url, colorizer, loads, capsys):
    """Every answer is the right photo's colour version, and the model was loaded once."""
    uploads = [encode(photo(40 + 7 * k, 30 + 5 * k).convert(mode), "PNG")
               for k, mode in enumerate(["L", "RGB", "LA", "RGBA", "L", "RGB", "P", "L"])]
    expected = [np.asarray(colorizer.colorize(Image.open(io.BytesIO(u)))) for u in uploads]
    local = threading.local()

    def colorize(n: int) -> tuple[int, float, bytes]:
        local.session = getattr(local, "session", None) or requests.Session()
        start = time.perf_counter()
        answer = local.session.post(f"{url}/colorize", data=uploads[n % len(uploads)], timeout=60)
        return answer.status_code, time.perf_counter() - start, answer.content

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(colorize, range(200)))
    wall = time.perf_counter() - start
    for n, (status, _, content) in enumerate(results):
        assert status == 200, content
        assert np.array_equal(as_array(content), expected[n % len(uploads)]), f"request {n}"
    assert len(loads) == 1
    latencies = sorted(seconds * 1000 for _, seconds, _ in results)
    centiles = statistics.quantiles(latencies, n=100)
    report = (f"\nload: 200 requests, 8 in flight, {wall:.1f} s ({200 / wall:.0f}/s); latency p50 "
              f"{centiles[49]:.0f} ms, p95 {centiles[94]:.0f} ms (tiny model, shared CPU)")
    with capsys.disabled():  # shown in every run, not only when the test fails
        print(report)


SERVE = ("import argparse, sys; from colorful_world.apps.server import add_arguments, main_from_args; "
         "sys.exit(main_from_args(add_arguments(argparse.ArgumentParser()).parse_args()))")


@pytest.mark.slow
def test_serve_runs_as_a_process_until_sigterm(tiny_model):
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "--port", "0", "--checkpoint", str(tiny_model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, proc.kill)  # a hung start must not hang the suite
    watchdog.start()
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line + proc.stderr.read()
        base = line.split()[2].rstrip("/")
        assert requests.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
        answer = requests.post(f"{base}/colorize", data=encode(photo().convert("L"), "PNG"), timeout=30)
        assert answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).size == (61, 47)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


@pytest.mark.slow
def test_a_one_pixel_wide_upload_costs_memory_by_its_pixels(tiny_model):
    """A 1 x 4,000,000 PNG (a few KB): about 470 bytes a pixel before, held under the model lock."""
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "--port", "0", "--checkpoint", str(tiny_model)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = proc.stdout.readline().split()[2]
        small = requests.post(f"{base}colorize", data=encode(photo().convert("L"), "PNG"), timeout=30)
        assert small.status_code == 200
        before = _peak_rss_mb(proc.pid)
        tall = requests.post(f"{base}colorize", data=encode(Image.new("L", (1, 4_000_000), 90), "PNG"), timeout=120)
        assert tall.status_code == 200 and Image.open(io.BytesIO(tall.content)).size == (1, 4_000_000)
        grew = _peak_rss_mb(proc.pid) - before
        assert grew < 4_000_000 * 100 / 2**20, f"{grew:.0f} MB for 4 MP"
    finally:
        proc.kill()
        proc.wait()


def test_serve_with_a_missing_model_is_one_clear_error(tmp_path, capsys):
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--checkpoint", str(tmp_path / "missing.safetensors"), "--port", "0"])
    assert main_from_args(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "missing.safetensors" in error and error.count("\n") == 1


def test_serve_on_an_impossible_port_is_one_clear_error(tiny_model, capsys):
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--checkpoint", str(tiny_model), "--port", "70000"])
    assert main_from_args(args) == 2
    error = capsys.readouterr().err
    assert error == "error: port must be from 0 to 65535, not 70000\n"


@pytest.mark.slow
def test_serve_on_ipv6_prints_a_url_with_brackets(tiny_model):
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "--host", "::1", "--port", "0", "--checkpoint",
                             str(tiny_model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving on http://[::1]:"), line  # (stderr would block: it still runs)
        assert requests.get(f"{line.split()[2]}healthz", timeout=10).json()["status"] == "ok"
    finally:
        proc.kill()
        proc.wait()


# --- The result's name ---------------------------------------------------------------------------

def multipart(parts: list[tuple[bytes, bytes | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body written byte for byte, file names as given (a client library
    would escape them): (name, filename or None, content) for each part; (body, Content-Type)."""
    boundary = b"colorful-world-test-boundary"
    body = b""
    for name, filename, content in parts:
        body += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"'
        body += (b"; filename=" + filename if filename is not None else b"") + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--" + boundary + b"--\r\n", f"multipart/form-data; boundary={boundary.decode()}"


@pytest.mark.parametrize("raw_name, expected", [
    (b'"grandma.jpg"', "grandma-colour.png"),
    (b'"C:\\\\Users\\\\me\\\\Oma Anna.JPG"', "Oma-Anna-colour.png"),  # a Windows path: its last part
    (b'"../../etc/passwd"', "passwd-colour.png"),
    (b'"a\\"b; filename=evil.sh.jpg"', "a-b--filename-evil-sh-colour.png"),  # a quote, a second filename
    (b'"evil.jpg\\"\\r\\nSet-Cookie: x=1"', "evil-colour.png"),  # an attempt at a second header
    ('"Gro\u00dfmutter 1923.jpg"'.encode(), "Gro-mutter-1923-colour.png"),  # UTF-8: ASCII only in a header
    (b'"..jpg"', "photo-colour.png"),
])
def test_the_png_is_named_after_the_upload_and_the_name_is_safe(url, raw_name, expected):
    body, content_type = multipart([(b"image", raw_name, encode(photo().convert("L"), "PNG"))])
    answer = requests.post(f"{url}/colorize", data=body, headers={"Content-Type": content_type}, timeout=30)
    assert answer.status_code == 200, answer.text
    header = answer.headers["Content-Disposition"]
    assert header == f'inline; filename="{expected}"'
    assert re.fullmatch(r'inline; filename="[A-Za-z0-9_-]{1,100}-colour\.png"', header)


def test_a_raw_body_and_a_long_name_still_get_a_short_safe_name(url):
    raw = requests.post(f"{url}/colorize", data=encode(photo(), "PNG"), timeout=30)
    assert raw.headers["Content-Disposition"] == 'inline; filename="photo-colour.png"'
    assert server._result_name("x" * 500 + ".jpg") == "x" * 100 + "-colour.png"
    assert server._result_name("line\r\nbreak\0.tif") == "line--break-colour.png"


# --- Colour strength --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hinted() -> Colorizer:
    """The bundled model, which takes hints."""
    colorizer = Colorizer.from_checkpoint(None)
    assert colorizer.takes_hints
    return colorizer


@pytest.fixture(scope="module")
def hinted_url(hinted):
    with serving(create_app(hinted)) as base:
        yield base


def astronaut_grey(width: int = 256, height: int = 256) -> Image.Image:
    return Image.fromarray(skdata.astronaut()).resize((width, height)).convert("L")


def colourfulness(image: Image.Image) -> float:
    """Mean chroma (CIELAB): 0 for a grey photo."""
    lab = rgb2lab(np.asarray(image.convert("RGB")))
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def test_strength_0_is_grey_and_2_is_more_colourful_than_1(hinted_url, hinted):
    upload = encode(astronaut_grey(), "PNG")
    answers, pngs = {}, {}
    for strength in ("0", "1", "2"):  # as the query, and as the form field the page posts
        as_query = requests.post(f"{hinted_url}/colorize?strength={strength}", data=upload, timeout=60)
        as_form = requests.post(f"{hinted_url}/colorize", files={"image": ("a.png", upload)},
                                data={"strength": strength}, timeout=60)
        assert as_query.status_code == as_form.status_code == 200, as_query.text + as_form.text
        assert as_query.content == as_form.content
        pngs[strength], answers[strength] = as_query.content, Image.open(io.BytesIO(as_query.content))
        expected = hinted.colorize(astronaut_grey(), chroma_gain=hinted.chroma_gain * float(strength))
        assert np.array_equal(np.asarray(answers[strength]), np.asarray(expected))
    grey = np.asarray(answers["0"]).astype(int)
    assert np.abs(grey - grey[..., :1]).max() <= 1  # R = G = B: no colour at all
    assert colourfulness(answers["0"]) < 0.5
    assert colourfulness(answers["2"]) > 1.3 * colourfulness(answers["1"]) > 1.3 * 5
    default = requests.post(f"{hinted_url}/colorize", data=upload, timeout=60)
    assert default.content == pngs["1"]  # 1 is the model's own colour


def post_setting(url: str, name: str, value: str, where: str) -> requests.Response:
    """A photo posted with one setting, as a query parameter ("query") or a form field ("form")."""
    upload = encode(photo(), "PNG")
    if where == "query":
        return requests.post(f"{url}/colorize?{name}={urllib.parse.quote(value)}", data=upload, timeout=30)
    return requests.post(f"{url}/colorize", files={"image": upload}, data={name: value}, timeout=30)


@pytest.mark.parametrize("value", ["-0.1", "2.01", "nan", "inf", "strong", "1,5"])
@pytest.mark.parametrize("where", ["query", "form"])
def test_a_strength_out_of_bounds_is_a_json_400(url, value, where):
    answer = post_setting(url, "strength", value, where)
    assert_json_error(answer, 400)
    assert "strength must be a number from 0 to 2" in answer.json()["error"]


# --- Contrast restoration -----------------------------------------------------------------------

def faded(image: Image.Image) -> Image.Image:
    """A faded print: the grey levels squeezed from 0-255 into 90-160."""
    return image.point(lambda v: 90 + v * 70 // 255)


def grey_range(image: Image.Image) -> float:
    """The spread of a photo's lightness: its 1st to 99th percentile of grey levels."""
    low, high = np.percentile(np.asarray(image.convert("L")), [1, 99])
    return float(high - low)


def test_restore_contrast_reaches_the_colorizer(hinted_url, hinted):
    print_ = faded(astronaut_grey())
    upload = encode(print_, "PNG")
    kept = requests.post(f"{hinted_url}/colorize", data=upload, timeout=60)
    restored = requests.post(f"{hinted_url}/colorize?restore_contrast=1", data=upload, timeout=60)
    as_form = requests.post(f"{hinted_url}/colorize", files={"image": ("print.png", upload)},
                            data={"restore_contrast": "1"}, timeout=60)
    assert kept.status_code == restored.status_code == as_form.status_code == 200
    assert restored.content == as_form.content
    assert np.array_equal(as_array(restored.content),
                          np.asarray(hinted.colorize(print_, restore_contrast=True)))
    before, after = grey_range(print_), grey_range(Image.open(io.BytesIO(restored.content)))
    assert before < 75 and after > 2.5 * before, (before, after)
    # Off by default: the photo keeps its own tones.
    assert abs(grey_range(Image.open(io.BytesIO(kept.content))) - before) <= 3
    off = requests.post(f"{hinted_url}/colorize?restore_contrast=0", data=upload, timeout=60)
    assert off.content == kept.content


@pytest.mark.parametrize("value", ["2", "yes", "-1", "1.0"])
@pytest.mark.parametrize("where", ["query", "form"])
def test_a_bad_restore_contrast_is_a_json_400(url, value, where):
    answer = post_setting(url, "restore_contrast", value, where)
    assert_json_error(answer, 400)
    assert "restore_contrast must be 1 or 0" in answer.json()["error"]


# --- Hints --------------------------------------------------------------------------------------

BLUE = "#2050ff"


def ab_near(png: bytes, x: int, y: int, radius: int = 2) -> np.ndarray:
    """The mean CIELAB (a, b) of the pixels around (x, y)."""
    lab = rgb2lab(as_array(png)[y - radius:y + radius + 1, x - radius:x + radius + 1, :3])
    return lab[..., 1:].reshape(-1, 2).mean(axis=0)


def test_a_hint_moves_the_colour_near_it_towards_its_own(hinted_url, hinted):
    photo_ = astronaut_grey()
    upload = encode(photo_, "PNG")
    x, y = 60, 200  # on the suit, which the model leaves brownish
    hints = json.dumps([[x, y, BLUE]])
    without = requests.post(f"{hinted_url}/colorize", data=upload, timeout=60)
    as_form = requests.post(f"{hinted_url}/colorize", files={"image": ("a.png", upload)}, data={"hints": hints},
                            timeout=60)
    as_query = requests.post(f"{hinted_url}/colorize?hints={urllib.parse.quote(hints)}", data=upload, timeout=60)
    assert without.status_code == as_form.status_code == as_query.status_code == 200, as_form.text
    assert as_form.content == as_query.content
    assert np.array_equal(as_array(as_form.content), np.asarray(hinted.colorize(photo_, hints=[(x, y, BLUE)])))
    target = np.array(srgb_to_ab((0x20, 0x50, 0xff)))
    far, near = (np.linalg.norm(ab_near(png, x, y) - target) for png in (without.content, as_form.content))
    assert near < 0.5 * far, (near, far)
    # The lightness stays the photo's own, but where a blue that bright is out of sRGB's gamut (on
    # the suit's lightest folds: 2% of the photo, against 0.1% without the hint).
    light = rgb2lab(as_array(as_form.content))[..., 0]
    own = rgb2lab(np.asarray(photo_.convert("RGB")))[..., 0]
    assert np.mean(np.abs(light - own) > 1) < 0.03, np.abs(light - own).max()


def too_many_hints() -> str:
    return json.dumps([[k % 60, k // 60, "#ff0000"] for k in range(257)])


BAD_HINTS = {  # name: (hints field, words of the error)
    "not JSON": ("[[1, 2, '#ff0000']]", "JSON list"),
    "not a list": ('{"x": 1, "y": 2}', "a list"),
    "two numbers, no colour": ("[[1, 2]]", "is not [x, y"),
    "a colour that is not #rrggbb": ('[[1, 2, "#12345g"]]', "is not #rrggbb"),
    "a colour name": ('[[1, 2, "red"]]', "is not #rrggbb"),
    "x not a number": ('[["1", 2, "#ff0000"]]', "must be numbers"),
    "outside the photo, right": ('[[61, 2, "#ff0000"]]', "outside the 61x47 photo"),
    "outside the photo, above": ('[[3, -1, "#ff0000"]]', "outside the 61x47 photo"),
    "257 hints": (too_many_hints(), "at most 256"),
}


@pytest.mark.parametrize("name", BAD_HINTS)
def test_bad_hints_are_a_json_400(hinted_url, name):
    hints, words = BAD_HINTS[name]
    answer = requests.post(f"{hinted_url}/colorize", files={"image": ("a.png", encode(photo(), "PNG"))},
                           data={"hints": hints}, timeout=60)
    assert_json_error(answer, 400)
    assert words in answer.json()["error"]
    in_query = requests.post(f"{hinted_url}/colorize?hints={urllib.parse.quote(hints)}",
                             data=encode(photo(), "PNG"), timeout=60)
    assert_json_error(in_query, 400)


def test_256_hints_are_taken(hinted_url):
    hints = json.dumps([[k % 61, k // 61, "#ff0000"] for k in range(256)])
    answer = requests.post(f"{hinted_url}/colorize", files={"image": encode(photo(), "PNG")},
                           data={"hints": hints}, timeout=60)
    assert answer.status_code == 200, answer.text


def test_a_model_without_hints_refuses_them_as_json_400(url):
    answer = requests.post(f"{url}/colorize", files={"image": encode(photo(), "PNG")},
                           data={"hints": json.dumps([[1, 2, "#ff0000"]])}, timeout=30)
    assert_json_error(answer, 400)
    assert "trained without hints" in answer.json()["error"]
    empty = requests.post(f"{url}/colorize", files={"image": encode(photo(), "PNG")}, data={"hints": "[]"}, timeout=30)
    assert empty.status_code == 200  # no hints is no hints, for any model


def test_healthz_says_whether_the_model_takes_hints(hinted_url):
    assert requests.get(f"{hinted_url}/healthz", timeout=10).json()["hints"] is True


# --- The cache of prepared photos ---------------------------------------------------------------

def counting(colorizer: Colorizer) -> tuple[Colorizer, list]:
    """`colorizer` with its `prepare` calls recorded (the photo's size and restore_contrast)."""
    calls = []
    instrumented = copy.copy(colorizer)

    def prepare(image, size, restore_contrast=False):
        calls.append((image.size, restore_contrast))
        return Colorizer.prepare(colorizer, image, size, restore_contrast)

    instrumented.prepare = prepare
    return instrumented, calls


def posting(base: str):
    def post(upload: bytes, query: str = "") -> bytes:
        answer = requests.post(f"{base}/colorize{query}", data=upload, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.content
    return post


def test_the_same_photo_again_is_not_decoded_again(colorizer):
    """A hint's click re-posts the same bytes with other settings: prepared once."""
    instrumented, calls = counting(colorizer)
    a, b, c = (encode(photo(40 + 3 * k, 30).convert("L"), "PNG") for k in range(3))
    app = create_app(instrumented)
    cache = app.extensions["prepared_cache"]
    with serving(app) as base:
        post = posting(base)
        first = post(a)
        assert post(a) == first and post(a, "?strength=0.5") != first
        assert len(calls) == 1
        post(a, "?restore_contrast=1")  # prepared another way: kept apart
        post(a, "?size=64")
        assert len(calls) == 3 and len(cache) == 2
        post(b)
        post(c)  # at most 2 photos are kept, the least recently used dropped first
        assert len(calls) == 5 and len(cache) == 2
        assert post(c) == post(c) and len(calls) == 5
        assert post(a) == first and len(calls) == 6  # dropped, so prepared again: the same answer


def test_the_cache_holds_at_most_max_pixels(colorizer):
    """61x47 photos are 2,867 pixels: with a 5,000-pixel limit only one is kept at a time."""
    instrumented, calls = counting(colorizer)
    a, b = encode(photo().convert("L"), "PNG"), encode(photo().convert("RGB"), "PNG")
    app = create_app(instrumented, max_pixels=5000)
    cache = app.extensions["prepared_cache"]
    with serving(app) as base:
        post = posting(base)
        post(a)
        post(b)
        assert len(cache) == 1 and cache.held_pixels() == 61 * 47
        post(b)
        assert len(calls) == 2
        post(a)
        assert len(calls) == 3 and cache.held_pixels() <= 5000


def test_the_cache_can_be_turned_off(colorizer):
    instrumented, calls = counting(colorizer)
    upload = encode(photo().convert("L"), "PNG")
    app = create_app(instrumented, cache_photos=0)
    with serving(app) as base:
        post = posting(base)
        assert post(upload) == post(upload)
    assert len(calls) == 2 and len(app.extensions["prepared_cache"]) == 0
    with pytest.raises(ValueError, match="cache_photos"):
        create_app(colorizer, cache_photos=-1)
    args = add_arguments(argparse.ArgumentParser()).parse_args(["--cache-photos", "0"])
    assert args.cache_photos == 0


def test_prepared_cache_bounds_photos_and_pixels():
    def prepared(pixels: int):
        return SimpleNamespace(light=np.zeros((1, pixels), np.float32))

    cache = PreparedCache(photos=3, pixels=100)
    keys = [PreparedCache.key(bytes([k]), 32, False) for k in range(6)]
    assert keys[0] != PreparedCache.key(bytes([0]), 32, True) != PreparedCache.key(bytes([0]), 64, False)
    for key, pixels in zip(keys, [40, 40, 10, 30, 101, 5]):
        cache.put(key, prepared(pixels))
        assert len(cache) <= 3 and cache.held_pixels() <= 100
    # 40 + 40 + 10 fit; 30 more drops the first 40; 101 alone is too many, never kept; 5 more
    # makes four photos, so the oldest left goes.
    assert [cache.get(key) is not None for key in keys] == [False, False, True, True, False, True]
