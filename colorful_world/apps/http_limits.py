"""What keeps one HTTP client from holding the server: a bounded body, read whole before the app
runs, and a deadline for a request's headers and body to arrive.

`BoundedBody` is WSGI middleware: it works under any WSGI host. `DeadlineConnection` is the
deadline for cheroot, the server `colorful-world serve` runs (other hosts have their own
timeouts, e.g. gunicorn's --timeout).
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time

from cheroot.server import HTTPConnection

READ_BYTES = 1 << 16
REQUEST_DEADLINE_S = 30.0  # a 10 MB upload at 3 Mbit/s; a client slower than that holds a thread


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


class DeadlineConnection(HTTPConnection):
    """cheroot's connection, with `deadline_s` for the headers and body of each request to arrive
    (cheroot's own timeout is per read, so a byte every few seconds would hold a thread forever),
    and no single read of more than `max_read` bytes."""

    deadline_s = REQUEST_DEADLINE_S
    max_read = 10_000_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rfile = _BoundedReads(self.rfile, self.max_read)

    def communicate(self):
        _deadlines.start(self.socket, self.deadline_s)
        try:
            return super().communicate()
        finally:
            _deadlines.done()
