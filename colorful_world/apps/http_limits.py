"""What keeps one HTTP client from holding the server: a bounded body, read whole before the app
runs, and a deadline for a request's headers and body to arrive.

`BoundedBody` is WSGI middleware: it works under any WSGI host. `DeadlineConnection` is the
deadline for cheroot, the server `colorful-world serve` runs (other hosts have their own
timeouts, e.g. gunicorn's --timeout).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import socket
import threading
import time

from cheroot.server import ChunkedRFile, HeaderReader, HTTPConnection, HTTPRequest

READ_BYTES = 1 << 16
REQUEST_DEADLINE_S = 30.0  # a 10 MB upload at 3 Mbit/s; a client slower than that holds a thread
# The request line and headers together: a browser sends a few KB; cheroot's own default is no limit.
MAX_HEADER_BYTES = 64 * 1024
MAX_CHUNK_LINE = 1024  # a chunk's size line, extensions included
_HEX = frozenset(b"0123456789abcdefABCDEF")

# What Lambda (behind API Gateway, an ALB or a function URL) carries each way: 6 MB, the base64
# of a binary body (4/3) and the event or response around it included.
LAMBDA_PAYLOAD_BYTES = 6_000_000
LAMBDA_ENVELOPE_BYTES = 64 * 1024  # the JSON around the body: headers, context, names
PNG_WORST_BYTES_PER_PIXEL = 5.01  # RGBA that does not compress (4), a filter byte a row of a 1-pixel-wide photo (1), framing


LAMBDA_MAX_BYTES = 4_000_000  # an upload: 5.33 MB as base64


def lambda_limits() -> tuple[int, int]:
    """(max request body bytes, max photo pixels) under which a request and its answer both
    fit Lambda's payload, whatever the photo: the answer is a PNG, at worst
    PNG_WORST_BYTES_PER_PIXEL bytes a pixel, base64'd (a 2 MP grainy photo's is 6.4 MB)."""
    room = (LAMBDA_PAYLOAD_BYTES - LAMBDA_ENVELOPE_BYTES) * 3 // 4  # bytes of a body, before base64
    assert LAMBDA_MAX_BYTES <= room
    return LAMBDA_MAX_BYTES, int(room / PNG_WORST_BYTES_PER_PIXEL) // 1000 * 1000


def framing_problem(content_lengths: list[bytes], transfer_encoding: bytes | None, protocol: str) -> str | None:
    """The one rule of request framing (RFC 9112 section 6): why this request's body cannot be
    delimited without guessing, or None. Refused with 400, and the connection closed, because
    what a guess leaves unread would be taken for the next request.

    `content_lengths`: each Content-Length header line's value, as sent; `transfer_encoding`: the
    Transfer-Encoding header (lines joined by commas), or None."""
    if len(content_lengths) > 1:
        return "the request has more than one Content-Length header"
    if content_lengths and not (content_lengths[0].strip().isdigit() and content_lengths[0].strip().isascii()):
        return f"Content-Length must be a number of bytes, not {content_lengths[0].decode('latin-1')[:40]!r}"
    if transfer_encoding is None:
        return None
    if protocol != "HTTP/1.1":
        return "Transfer-Encoding is HTTP/1.1's; this request says it is older"
    if content_lengths:
        return "the request has both Content-Length and Transfer-Encoding"
    codings = [c.strip().lower() for c in transfer_encoding.split(b",")]
    if codings != [b"chunked"]:
        return f"Transfer-Encoding may only be 'chunked', not {transfer_encoding.decode('latin-1')[:40]!r}"
    return None


class BoundedBody:
    """Reads the request body whole (at most `max_bytes`) before the app sees it, chunked or not.

    A Content-Length over the limit is refused before a byte is read; a chunked body is cut
    at the limit (and under `DeadlineConnection`, a chunk that announces more is refused before
    it is read). Refusals are JSON: 413 for too many bytes, 400 for malformed framing.
    """

    def __init__(self, app, max_bytes: int, too_large: str):
        self.app, self.max_bytes, self.too_large = app, max_bytes, too_large

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(start_response, 400, "malformed Content-Length header")
        if length > self.max_bytes:
            return _json(start_response, 413, self.too_large)
        try:
            body = _read(environ["wsgi.input"], None if chunked else length, self.max_bytes)
        except _TooLarge:
            return _json(start_response, 413, self.too_large)
        except (ValueError, OverflowError, OSError) as err:
            if "Too Large" in str(err):  # _BoundedReads' refusal of a chunk over the limit
                return _json(start_response, 413, self.too_large)
            return _json(start_response, 400, f"the request body is malformed or was cut short ({err})")
        body_arrived()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


class _TooLarge(Exception):
    pass


def _read(stream, length: int | None, limit: int) -> bytes:
    """`length` bytes, or with None (chunked) all there is; _TooLarge past `limit`."""
    parts, total = [], 0
    while length is None or total < length:
        want = READ_BYTES if length is None else min(READ_BYTES, length - total)
        piece = stream.read(want)
        if not piece:
            if length is not None:
                raise ValueError(f"{total} of {length} bytes arrived")
            break
        total += len(piece)
        if total > limit:
            raise _TooLarge
        parts.append(piece)
    return b"".join(parts)


def _json(start_response, status: int, message: str) -> list[bytes]:
    body = json.dumps({"error": message}).encode()
    reason = {400: "Bad Request", 413: "Request Entity Too Large"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body))), ("Connection", "close")])
    return [body]


class _Deadlines:
    """Requests still arriving, by the thread serving each; a watchdog shuts the socket of one
    past its deadline, which ends its blocked read at once and frees the thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arriving: dict[int, tuple[socket.socket, float]] = {}
        self.watchdog: threading.Thread | None = None

    def start(self, sock: socket.socket, seconds: float) -> None:
        with self.lock:
            self.arriving[threading.get_ident()] = (sock, time.monotonic() + seconds)
            if self.watchdog is None:
                self.watchdog = threading.Thread(target=self._watch, name="request-deadlines", daemon=True)
                self.watchdog.start()

    def done(self) -> None:
        with self.lock:
            self.arriving.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self.lock:
                late = [key for key, (_, deadline) in self.arriving.items() if deadline < now]
                for key in late:
                    sock, _ = self.arriving.pop(key)
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by its client


_deadlines = _Deadlines()


def body_arrived() -> None:
    """The request served by this thread has all its bytes: its deadline no longer applies."""
    _deadlines.done()


class _BoundedReads:
    """A connection's input stream that refuses any one read of more than `limit` bytes: a chunk
    announcing 200 MB (or 2**64 bytes) is refused before it is read, not after. (cheroot's own
    `max_request_body_size` does this too, but it would answer an over-long Content-Length with
    a plain-text 413 before the app's JSON one.)"""

    def __init__(self, stream, limit: int):
        self._stream, self._limit = stream, limit

    def read(self, size: int = -1) -> bytes:
        if size is not None and size > self._limit:
            raise OSError("Request Entity Too Large")
        return self._stream.read(size)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _FramingHeaders(HeaderReader):
    """cheroot's header reader, held to `framing_problem`: it notes each Content-Length line as
    sent (cheroot keeps the last) and refuses, with the ValueError cheroot answers 400, before
    cheroot reads any framing of its own."""

    def __init__(self, protocol: str):
        self.protocol = protocol
        self.content_lengths: list[bytes] = []

    def __call__(self, rfile, hdict=None):
        self.content_lengths = []
        original = rfile.readline

        def readline(*args):
            line = original(*args)
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() == b"content-length":
                self.content_lengths.append(value.strip())
            return line

        rfile.readline = readline
        try:
            headers = super().__call__(rfile, hdict)
        finally:
            del rfile.readline
        problem = framing_problem(self.content_lengths, headers.get(b"Transfer-Encoding"), self.protocol)
        if problem:
            raise ValueError(problem)
        return headers


class _StrictChunks(ChunkedRFile):
    """A chunked body read by RFC 9112's grammar: a size of hex digits on a short line, and no
    trailer after the last chunk; anything else is a ValueError (answered 400, connection closed)."""

    def _fetch(self):
        if self.closed:
            return
        line = self.rfile.readline(MAX_CHUNK_LINE)
        if not line.endswith(b"\r\n"):
            raise ValueError("a chunk size line is too long or does not end in CRLF")
        self.bytes_read += len(line)
        digits = line[:-2].split(b";", 1)[0].strip()
        if not digits or not set(digits) <= _HEX:
            raise ValueError(f"bad chunk size {digits[:20]!r}")
        size = int(digits, 16)
        if size == 0:
            if self.rfile.readline(MAX_CHUNK_LINE) != b"\r\n":
                raise ValueError("trailer fields after the last chunk are not accepted")
            self.closed = True
            return
        if self.maxlen and self.bytes_read + size > self.maxlen:
            raise OSError("Request Entity Too Large")
        chunk = self.rfile.read(size)
        self.bytes_read += len(chunk)
        self.buffer += chunk
        if len(chunk) != size or self.rfile.read(2) != b"\r\n":
            raise ValueError("a chunk is cut short or does not end in CRLF")


class JsonRequest(HTTPRequest):
    """cheroot's request, held to `framing_problem` and answering its own errors (a header too
    large, a malformed request line, an HTTP version it does not speak) as JSON, like the app's."""

    def read_request_headers(self):
        self.header_reader = _FramingHeaders(self.response_protocol)
        return super().read_request_headers()

    def respond(self):
        if not self.chunked_read:
            return super().respond()
        self.rfile = _StrictChunks(self.conn.rfile, self.server.max_request_body_size)
        self.server.gateway(self).respond()
        self.ready and self.ensure_headers_sent()
        if self.chunked_write:
            self.conn.wfile.write(b"0\r\n\r\n")

    def send_headers(self):
        # The app's "Connection: close" (every refusal of BoundedBody's) closes the connection:
        # what it left unread is never taken for the next request.
        if any(k.lower() == b"connection" and v.strip().lower() == b"close" for k, v in self.outheaders):
            self.close_connection = True
        return super().send_headers()

    def simple_response(self, status, msg=""):
        status = str(status)
        text = msg.decode("latin-1") if isinstance(msg, bytes) else str(msg or status[4:])
        body = json.dumps({"error": text}).encode()
        if int(status[:3]) >= 400:
            self.close_connection = True
        head = [f"{self.server.protocol} {status}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: close"]
        try:
            self.conn.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            pass  # the client is gone


class DeadlineConnection(HTTPConnection):
    """cheroot's connection, with `deadline_s` for the headers and body of each request to arrive
    (cheroot's own timeout is per read, so a byte every few seconds would hold a thread forever),
    and no single read of more than `max_read` bytes."""

    deadline_s = REQUEST_DEADLINE_S
    max_read = 10_000_000
    RequestHandlerClass = JsonRequest

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rfile = _BoundedReads(self.rfile, self.max_read)

    def communicate(self):
        _deadlines.start(self.socket, self.deadline_s)
        try:
            return super().communicate()
        finally:
            _deadlines.done()


# Lambda: the event's shape, checked before apig-wsgi reads it (it raises on a malformed one,
# and Lambda answers that 500), and the answer's size, checked before Lambda refuses it.

def _strings(value, lists: bool = False) -> bool:
    """A dict of str to str (to lists of str with `lists`), or None."""
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    return all(isinstance(k, str) and (all(isinstance(v, str) for v in vs) if lists and isinstance(vs, list)
                                       else not lists and isinstance(vs, str)) for k, vs in value.items())


def lambda_event_problem(event) -> str | None:
    """Why `event` is not an API Gateway (payload 1.0 or 2.0), ALB or function URL event that
    apig-wsgi can read, or None."""
    if not isinstance(event, dict):
        return "the event is not a JSON object"
    context = event.get("requestContext")
    if context is not None and not isinstance(context, dict):
        return "requestContext is not an object"
    version = "alb" if context and "elb" in context else event.get("version", "1.0")
    if version == "2.0":
        http = (context or {}).get("http")
        if not isinstance(http, dict) or not all(isinstance(http.get(k), str) for k in ("method", "sourceIp")):
            return "requestContext.http must give method and sourceIp"
        if not all(isinstance(event.get(k), str) for k in ("rawPath", "rawQueryString")):
            return "rawPath and rawQueryString must be strings"
        if not isinstance(event.get("headers"), dict) or not _strings(event["headers"]):
            return "headers must be an object of strings"
        cookies = event.get("cookies", [])
        if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
            return "cookies must be a list of strings"
    elif version in ("1.0", "alb"):
        if not all(isinstance(event.get(k), str) for k in ("path", "httpMethod")):
            return "path and httpMethod must be strings"
        if not _strings(event.get("headers")) or not _strings(event.get("queryStringParameters")):
            return "headers and queryStringParameters must be objects of strings"
        if not _strings(event.get("multiValueHeaders"), lists=True) or \
                not _strings(event.get("multiValueQueryStringParameters"), lists=True):
            return "multiValueHeaders and multiValueQueryStringParameters must be objects of string lists"
    else:
        return f"unknown event version {str(version)[:20]!r}"
    body, encoded = event.get("body"), event.get("isBase64Encoded", False)
    if body is not None and not isinstance(body, str):
        return "body must be a string"
    if not isinstance(encoded, bool):
        return "isBase64Encoded must be true or false"
    if encoded and body:
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "body is marked base64 but is not valid base64"
    return None


def _lambda_json(event, status: int, message: str) -> dict:
    body = json.dumps({"error": message})
    headers = {"Content-Type": "application/json"}
    shaped = {"multiValueHeaders": {k: [v] for k, v in headers.items()}} \
        if isinstance(event, dict) and "multiValueHeaders" in event else {"headers": headers}
    return {"statusCode": status, **shaped, "body": body, "isBase64Encoded": False}


def bounded_lambda_handler(handler, max_pixels: int):
    """`handler` (apig-wsgi's) with the event's shape checked first (400 JSON, not Lambda's 500)
    and its answer checked against Lambda's payload (413 JSON, never one API Gateway refuses)."""

    def bounded(event, context):
        problem = lambda_event_problem(event)
        if problem:
            return _lambda_json(event, 400, f"malformed Lambda event: {problem}")
        response = handler(event, context)
        size = len(json.dumps(response))
        if size > LAMBDA_PAYLOAD_BYTES:
            return _lambda_json(event, 413, f"the answer would be {size / 1e6:.1f} MB, more than the "
                                            f"{LAMBDA_PAYLOAD_BYTES / 1e6:g} MB Lambda carries; send a smaller photo "
                                            f"(at most {max_pixels:,} pixels is always within it)")
        return response

    return bounded
