"""HTTP and Lambda limits, round two: header sizes, ambiguous framing refused with 400 and the
connection closed, cheroot's own errors as JSON, strict `?size=`, one format rule, and a seeded,
bounded fuzz of the framing and of Lambda's event shape. Loopback only."""

import base64
import copy
import importlib.util
import io
import json
import random
import socket
import threading
import zlib
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image, PngImagePlugin

from colorful_world.apps.server import create_app, make_server
from colorful_world.inference.colorize import Colorizer
from colorful_world.io import images
from colorful_world.io.images import BadImageError

HANDLER = Path(__file__).parent.parent / "deploy" / "lambda_handler.py"


@pytest.fixture(scope="module")
def address(tiny_model):
    httpd = make_server(create_app(Colorizer.from_checkpoint(tiny_model)), "127.0.0.1", 0, deadline_s=5)
    thread = threading.Thread(target=httpd.serve, daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", httpd.bind_addr[1])
    finally:
        httpd.stop()
        thread.join(10)


def exchange(address, raw: bytes, timeout: float = 5.0) -> tuple[list[tuple[int, dict, bytes]], bool]:
    """Send `raw` on one connection, then read until the server closes it (or `timeout` passes).
    Returns the responses parsed, and whether the server closed the connection."""
    with socket.create_connection(address, timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)  # all sent: the server reads to the end, answers, and closes
        except OSError:
            pass  # the server refused and closed before it had all: its answer is still there
        data, closed = b"", False
        try:
            while True:
                piece = sock.recv(1 << 16)
                if not piece:
                    closed = True
                    break
                data += piece
        except (socket.timeout, ConnectionResetError):
            closed = closed or not data.endswith(b"}")
    responses = []
    while data.startswith(b"HTTP/"):
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        responses.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses, closed


def healthy(address) -> bool:
    responses, _ = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return [(s, json.loads(b)["status"]) for s, _, b in responses] == [(200, "ok")]


def json_error(response) -> str:
    status, headers, body = response
    assert headers["content-type"] == "application/json", (status, headers, body)
    return json.loads(body)["error"]


SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("raw", [
    # two Content-Lengths: the last won, and the rest of the body was read as a request
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    b"POST /colorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
], ids=["two-lengths", "negative-length", "plus-length", "negative-chunk", "request-after-last-chunk", "trailer",
        "length-and-chunked", "chunked-twice"])
def test_ambiguous_framing_is_refused_and_the_connection_closed(address, raw):
    responses, closed = exchange(address, raw)
    assert [status for status, _, _ in responses] == [400], responses  # one answer: nothing smuggled
    assert json_error(responses[0]) and closed
    assert healthy(address)


@pytest.mark.parametrize("raw, status", [
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", 413),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 20_000 + b"\r\n", 413),
    (b"POST /colorize HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /colorize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n", 400),
], ids=["one-huge-header", "many-headers", "malformed-length", "gzip-chunked", "http2", "bad-header"])
def test_cheroots_own_refusals_are_json(address, raw, status):
    """A 200 KB header was read whole (a 400 MB one grew the server by 1.2 GB); cheroot's own
    refusals were plain text."""
    responses, closed = exchange(address, raw)
    assert [s for s, _, _ in responses] == [status], responses
    assert json_error(responses[0]) and closed
    assert healthy(address)


@pytest.mark.parametrize("size", ["%2B64", "%2064", "1_28", "%EF%BC%96%EF%BC%94", "64.0", "0x40"])
def test_size_takes_ascii_digits_only(address, size):
    raw = (f"POST /colorize?size={size} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
           .encode())
    (response,), _ = exchange(address, raw)
    assert response[0] == 400 and "size must be" in json_error(response)


def _png(width: int, height: int, text: bytes = b"") -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    extra = chunk(b"zTXt", b"k\x00\x00" + zlib.compress(text)) if text else b""
    rows = zlib.compress(b"\x00" * (width + 1) * height)
    return b"\x89PNG\r\n\x1a\n" + header + extra + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize("body, status", [
    (_png(0, 0), 422),  # a PNG with no pixels: 415 "not a format this server reads" before
    (_png(4, 4, b"a" * (64 << 20)), 413),  # a metadata bomb: 422 before, where the README says 413
    (_png(40_000_001, 1), 413),  # over the pixel limit whichever side is long
    (_png(1, 40_000_001), 413),
], ids=["zero-pixels", "metadata-bomb", "wide", "tall"])
def test_the_server_answers_each_kind_of_bad_photo_as_documented(address, body, status):
    raw = b"POST /colorize HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    (response,), _ = exchange(address, raw, timeout=60)
    assert response[0] == status, json_error(response)


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n"


def test_every_door_decodes_the_same_formats(tmp_path, monkeypatch):
    """An EPS named .jpg reached Ghostscript from colorize and train; the server refused it. Now
    one list (io.images.FORMATS) for every door, widened only on purpose."""
    from PIL import EpsImagePlugin

    reached = []
    def load(self):
        reached.append(1)
        raise OSError("Ghostscript would run here")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "load", load)
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(EPS)
    with pytest.raises(BadImageError, match="not a readable image"):
        images.load_rgb(fake)  # colorize, folders and training all decode through it
    assert reached == []
    monkeypatch.setenv(images.EXTRA_FORMATS_ENV, "eps")
    assert "EPS" in images.allowed_formats()
    with pytest.raises(BadImageError):
        images.load_rgb(fake)
    assert reached == [1]  # widened knowingly: the decoder is reached


# Fuzz: seeded and bounded -----------------------------------------------------------------------

def _fuzz_request(rng: random.Random, photo: bytes) -> bytes:
    method, path = rng.choice([("GET", "/healthz"), ("POST", "/colorize"), ("POST", "/colorize?size=32"),
                               ("GET", "/nowhere")])
    body = rng.choice([b"", b"hello", photo, bytes(rng.randrange(256) for _ in range(rng.randrange(64)))])
    headers = [b"Host: x"]
    framing = rng.choice(["length", "length", "chunked", "none", "both", "twice", "garbage"])
    if framing in ("length", "both", "twice"):
        headers.append(b"Content-Length: %d" % len(body))
    if framing == "twice":
        headers.append(b"Content-Length: %d" % rng.randrange(0, 100))
    if framing == "garbage":
        headers.append(b"Content-Length: " + rng.choice([b"-1", b"1e3", b" 12 3", b"0x10", b"\xff", b"99999999999999999"]))
    if framing in ("chunked", "both"):
        headers.append(b"Transfer-Encoding: " + rng.choice([b"chunked", b"chunked", b"gzip, chunked", b"identity",
                                                            b"chunked, chunked"]))
        pieces, rest = [], body
        while rest:
            cut = rng.randrange(1, len(rest) + 1)
            size = rng.choice([b"%x" % cut, b"%x" % cut, b"-%x" % cut, b"%x;ext=1" % cut, b"zz", b"%x" % (cut + 3)])
            pieces.append(size + b"\r\n" + rest[:cut] + b"\r\n")
            rest = rest[cut:]
        body = b"".join(pieces) + rng.choice([b"0\r\n\r\n", b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n", b"0\r\n", b""])
    if rng.random() < 0.1:
        headers.append(b"X-Pad: " + b"p" * rng.choice([100, 70_000]))
    rng.shuffle(headers)
    raw = b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()) + b"\r\n".join(headers) + b"\r\n\r\n" + body
    return raw + (SMUGGLED if rng.random() < 0.3 else b"")


def test_fuzzed_framing_is_answered_in_json_and_the_server_stays_healthy(address):
    rng = random.Random(26)
    photo = io.BytesIO()
    Image.new("L", (24, 16), 90).save(photo, "PNG")
    seen = set()
    for case in range(120):
        raw = _fuzz_request(rng, photo.getvalue())
        responses, _ = exchange(address, raw, timeout=3)
        assert responses, f"case {case}: no answer to {raw[:200]!r}"
        for status, headers, body in responses:
            seen.add(status)
            assert status == 200 or 400 <= status < 500, (case, status, raw[:200])
            if headers.get("content-type") == "image/png":
                assert status == 200 and body.startswith(b"\x89PNG")
            else:
                assert headers["content-type"] == "application/json", (case, status, headers, body)
                answer = json.loads(body)
                assert answer["status"] == "ok" if status == 200 else answer["error"]
    assert healthy(address)
    assert {200, 400} <= seen  # the fuzz reached both sides of the rule


@pytest.fixture(scope="module")
def lambda_handler(tiny_model):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODEL", str(tiny_model))
        mp.delenv("BACKEND", raising=False)
        spec = importlib.util.spec_from_file_location("lambda_handler_limits", HANDLER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.handler


def _v2_event(path="/healthz", method="GET", body=None, encoded=False, query=""):
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
             "headers": {"host": "abc.execute-api.eu-west-1.amazonaws.com", "content-type": "image/png"},
             "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                         "sourceIp": "203.0.113.7", "userAgent": "curl"}},
             "isBase64Encoded": encoded}
    if body is not None:
        event["body"] = body
    return event


CONTEXT = SimpleNamespace(function_name="colorful-world", aws_request_id="fuzz")


def _lambda_answer(handler, event) -> tuple[int, dict]:
    response = handler(event, CONTEXT)
    assert len(json.dumps(response)) <= 6_000_000
    status = response["statusCode"]
    assert status == 200 or 400 <= status < 500, (status, response.get("body", "")[:200])
    headers = response.get("headers") or {k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}
    return status, headers | {"body": response["body"], "isBase64Encoded": response["isBase64Encoded"]}


@pytest.mark.parametrize("event", [
    {"isBase64Encoded": True, "body": "abc"},
    {k: v for k, v in _v2_event().items() if k != "headers"},
    _v2_event(body=12345),
    _v2_event("/colorize", "POST", body="abc", encoded=True),
    [1, 2, 3],
    _v2_event() | {"version": "3.0"},
], ids=["bad-base64", "no-headers", "numeric-body", "bad-base64-v2", "a-list", "unknown-version"])
def test_a_malformed_lambda_event_is_a_400_in_json(lambda_handler, event):
    status, answer = _lambda_answer(lambda_handler, event)
    assert status == 400 and json.loads(answer["body"])["error"]


def test_a_grainy_photo_at_lambdas_pixel_limit_is_answered_within_6_mb(lambda_handler):
    """A 2 MP grainy photo was accepted and answered with 6.4-6.9 MB, which API Gateway refuses;
    the pixel limit now holds any photo's PNG, base64'd, within Lambda's payload: the worst
    (grain that does not compress, with an alpha channel) at the limit is answered, within it."""
    import numpy as np

    from colorful_world.apps.http_limits import lambda_limits

    rng = np.random.default_rng(0)
    grainy = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1100, 1800), dtype=np.uint8)).save(grainy, "JPEG", quality=90)
    event = _v2_event("/colorize", "POST", base64.b64encode(grainy.getvalue()).decode(), True)
    status, answer = _lambda_answer(lambda_handler, event)  # asserts the answer's size
    assert status == 413 and "pixels" in json.loads(answer["body"])["error"]

    _, max_pixels = lambda_limits()
    width = 1000
    worst = Image.fromarray(rng.integers(0, 256, (max_pixels // width, width, 2), dtype=np.uint8), "LA")
    upload = io.BytesIO()
    worst.save(upload, "PNG", compress_level=1)
    event = _v2_event("/colorize", "POST", base64.b64encode(upload.getvalue()).decode(), True)
    status, answer = _lambda_answer(lambda_handler, event)
    assert status == 200 and answer["isBase64Encoded"]
    assert Image.open(io.BytesIO(base64.b64decode(answer["body"]))).size == worst.size


def test_fuzzed_lambda_events_get_json_4xx_or_200(lambda_handler):
    rng = random.Random(9)
    png = io.BytesIO()
    Image.new("L", (24, 16), 90).save(png, "PNG")
    photo = base64.b64encode(png.getvalue()).decode()
    wrong = [None, 0, 1.5, "x", [], {}, True, ["a"], {"a": 1}]
    statuses = set()
    for case in range(150):
        event = _v2_event(*rng.choice([("/healthz", "GET"), ("/colorize", "POST"), ("/", "GET")]),
                          body=rng.choice([None, photo, "abc", "", photo[:-3]]), encoded=rng.random() < 0.8)
        if rng.random() < 0.5:
            event = {"path": event["rawPath"], "httpMethod": event["requestContext"]["http"]["method"],
                     "headers": event["headers"], "queryStringParameters": None, "body": event.get("body"),
                     "isBase64Encoded": event["isBase64Encoded"]}
        for _ in range(rng.choice([0, 0, 1, 2])):  # break it somewhere
            target = event
            keys = list(target)
            key = rng.choice(keys)
            if isinstance(target[key], dict) and target[key] and rng.random() < 0.5:
                target, key = target[key], rng.choice(list(target[key]))
            if rng.random() < 0.3:
                del target[key]
            else:
                target[key] = copy.deepcopy(rng.choice(wrong))
        status, _ = _lambda_answer(lambda_handler, event)
        statuses.add(status)
    assert {200, 400} <= statuses
    status, answer = _lambda_answer(lambda_handler, _v2_event())
    assert status == 200 and json.loads(answer["body"])["status"] == "ok"
