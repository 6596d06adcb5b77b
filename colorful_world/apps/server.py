"""An HTTP API for colorization: a thin door onto `Colorizer`, as a WSGI app.

`create_app` builds the app, for `colorful-world serve`, for gunicorn or any WSGI host, and for
serverless adapters; `add_arguments` and `main_from_args` are the door the `colorful-world serve`
subcommand goes through.

Routes:
    GET  /          a page with a plain upload form (no JavaScript); the result shows below it
    GET  /healthz   {"status": "ok", ...} once the model is loaded
    POST /colorize  the photo as the multipart field `image`, or as the raw body. Settings, as
                    query parameters or form fields: `size` (the network's working side),
                    `strength` (colour strength, 0 to 2, 1 the model's own), `hints` (a JSON
                    list of [x, y, "#rrggbb"], at most 256) and `restore_contrast` (1 or 0).
                    Answers a PNG at the photo's own size, named after the upload.

Every error is JSON, {"error": "one sentence"}: 400 for a malformed request, 413 for an upload
over the byte or pixel limit (or a decompression bomb), 415 for something that is not a photo
in a format we read, 422 for a photo that cannot be decoded.

The web stack (Flask, and cheroot as the server) is the `serve` extra. It is imported inside
the functions that need it, so the other commands start, and work, without it.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable

from PIL import Image, UnidentifiedImageError

from colorful_world.core.hints import HintError, parse_hints
from colorful_world.core.tone import check_strength
from colorful_world.io import images
from colorful_world.io.errors import ConfigError

if TYPE_CHECKING:
    from cheroot.wsgi import Server
    from flask import Flask

    from colorful_world.inference.colorize import Colorizer

MAX_BYTES = 10_000_000  # the whole request body, multipart framing included
MAX_PIXELS = 40_000_000  # the server's default, lower than images.MAX_PIXELS: it bounds one request's memory
MAX_FORM_PARTS = 20
IN_FLIGHT = 2  # photos worked on at once: I/O overlaps, and memory is 2 photos' worth at most
MAX_SIZE_FACTOR = 4  # `?size=` up to 4x the training size: 16x the work, and far from what it saw

# The formats the package reads from disk, and only those: PIL can open many more (EPS, PSD,
# ICO...), some through decoders or helper programs that untrusted uploads should not reach.
FORMATS = tuple(sorted({Image.registered_extensions()[s] for s in images.IMAGE_SUFFIXES}))


def _loader(backend: str) -> Callable[[str | None], Colorizer]:
    def load(checkpoint: str | None) -> Colorizer:
        from colorful_world.inference.colorize import Colorizer  # imports torch: only once a model is wanted
        return Colorizer.from_checkpoint(checkpoint, backend=backend)
    return load


# How each `--backend` loads a model into a `Colorizer` (what the app uses of it: `working_size`,
# `prepare`, `predict`, `finish`, `image_size`, `depth`). ONNX Runtime (the onnx
# extra) is the faster one on a CPU.
BACKENDS: dict[str, Callable[[str | None], Colorizer]] = {name: _loader(name) for name in ("torch", "onnx")}


class RequestRefused(Exception):
    """An upload the server will not colorize; answered as JSON with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(colorizer: Colorizer | None = None, checkpoint: str | None = None,
               max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               backend: str = "torch", in_flight: int = IN_FLIGHT) -> Flask:
    """The WSGI app. The model is `colorizer`, or loaded here once from `checkpoint` (None: the
    bundled face model) with `backend`; every request of this process shares it. At most
    `in_flight` photos are worked on at once (the others wait their turn).

    Raises ValueError for limits that cannot work, and CheckpointError (a ValueError) for a
    model that cannot be loaded: a server that starts is a server that can answer.
    """
    from flask import Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException

    if max_bytes < 1:
        raise ConfigError(f"max_bytes must be positive, not {max_bytes}")
    if in_flight < 1:
        raise ConfigError(f"in_flight must be at least 1, not {in_flight}")
    if not 0 < max_pixels <= images.MAX_PIXELS:
        raise ConfigError(f"max_pixels must be from 1 to the package's {images.MAX_PIXELS:,}, "
                         f"not {max_pixels:,}")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    if colorizer is None:
        colorizer = BACKENDS[backend](checkpoint)
    # The network runs one photo at a time: torch already spreads a forward pass over every
    # core. Decoding and encoding happen outside that lock, so requests overlap their I/O, and
    # at most `in_flight` photos are worked on at once: each costs at most about 14 bytes a
    # pixel (benchmarks/photo_memory.py: 0.55 GB at 40 MP), so memory stays bounded by that many.
    model_lock = threading.Lock()
    photos_at_once = threading.BoundedSemaphore(in_flight)

    from colorful_world.apps.http_limits import BoundedBody

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    # A photo needs one form field; werkzeug's default of 1,000 parts lets a form cost far more
    # parsing than its bytes suggest.
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    # The body, chunked or not, is read whole and bounded before Flask sees it.
    app.wsgi_app = BoundedBody(app.wsgi_app, max_bytes, _too_many_bytes(max_bytes))

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify(error=message), status

    @app.get("/")
    def page() -> Response:
        return Response(PAGE.format(max_mb=f"{max_bytes / 1e6:g}", max_mp=f"{max_pixels / 1e6:g}"),
                        mimetype="text/html")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", working_size=colorizer.image_size,
                       max_bytes=max_bytes, max_pixels=max_pixels)

    @app.post("/colorize")
    def colorize() -> Response:
        data, name = _upload_bytes(request)
        size = _working_size(_setting(request, "size"), colorizer)
        look = _look(request, colorizer)
        with photos_at_once:
            png = _colorize_png(colorizer, data, size, max_pixels, model_lock, look)
        return Response(png, mimetype="image/png",
                        headers={"Content-Disposition": f'inline; filename="{_result_name(name)}"'})

    @app.errorhandler(RequestRefused)
    def refused(err: RequestRefused) -> tuple[Response, int]:
        return error(err.status, str(err))

    @app.errorhandler(413)  # raised by werkzeug itself, with a message that names no limit
    def too_large(_) -> tuple[Response, int]:
        if (request.content_length or 0) <= max_bytes:  # within the bytes: too many form parts
            return error(413, f"the form has more than {MAX_FORM_PARTS} parts; send the photo as "
                              "its one file field 'image'")
        return error(413, _too_many_bytes(max_bytes))

    @app.errorhandler(HTTPException)  # 404, 405, and 400 for a request werkzeug cannot parse
    def http_error(err: HTTPException) -> tuple[Response, int]:
        return error(err.code or 500, err.description or err.name)

    @app.errorhandler(500)  # a bug, not the input: logged by Flask, answered as JSON all the same
    def internal_error(_) -> tuple[Response, int]:
        return error(500, "internal error: the server could not colorize this photo")

    return app


def _upload_bytes(request) -> tuple[bytes, str]:
    """The photo's bytes and file name: the multipart field `image`, or else the whole raw body
    (so `curl --data-binary @photo.jpg` works whatever Content-Type it sends)."""
    name = ""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise RequestRefused(400, "the form has no file field named 'image'")
        data, name = upload.read(), upload.filename or ""
    else:
        data = request.get_data(cache=False)
    if not data:
        raise RequestRefused(400, "the upload is empty: send a photo as the form field 'image' "
                                  "or as the request body")
    return data, name


def _result_name(upload_name: str) -> str:
    """grandma.jpg -> grandma-colour.png: ASCII letters, digits, '-' and '_' of the stem only,
    so the header can carry no quote, path or line break."""
    stem = upload_name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in stem).strip("-")[:100]
    return f"{safe or 'photo'}-colour.png"


def _setting(request, name: str) -> str | None:
    """A setting from the query string, or else from the form."""
    value = request.args.get(name)
    return request.form.get(name) if value is None and request.mimetype == "multipart/form-data" else value


def _look(request, colorizer: Colorizer) -> dict:
    """strength, hints and restore_contrast, checked: what `Colorizer.colorize` takes of them."""
    strength, hints, contrast = (_setting(request, k) for k in ("strength", "hints", "restore_contrast"))
    try:
        gain = colorizer.chroma_gain * check_strength(strength if strength not in (None, "") else 1)
        parsed = parse_hints(hints) if hints else []
    except ValueError as err:  # HintError is one
        raise RequestRefused(400, str(err)) from None
    if parsed and not colorizer.takes_hints:
        raise RequestRefused(400, "this server's model was trained without hints, so it cannot take them")
    if contrast not in (None, "", "0", "1", "true", "false", "on", "off"):
        raise RequestRefused(400, f"restore_contrast must be 1 or 0, not {contrast!r}")
    return {"chroma_gain": gain, "hints": parsed, "restore_contrast": contrast in ("1", "true", "on")}


def _too_many_bytes(limit: int) -> str:
    return f"the upload is larger than the {limit:,} bytes this server accepts"


def _working_size(text: str | None, colorizer: Colorizer) -> int | None:
    """`?size=` as the side the network works at, or None for its training size."""
    if not text:
        return None
    from colorful_world.core.config import MAX_IMAGE_SIZE

    step = 2 ** colorizer.depth
    top = min(MAX_SIZE_FACTOR * colorizer.image_size, MAX_IMAGE_SIZE)  # the model bounds' ceiling too
    # ASCII digits only: int() would also take '+64', ' 64', '1_28' and full-width digits.
    size = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0  # 0: refused below
    if size % step or not step <= size <= top:
        raise RequestRefused(400, f"size must be a multiple of {step} from {step} to {top}, "
                                  f"not {text!r}")
    return size


def _colorize_png(colorizer: Colorizer, data: bytes, size: int | None, max_pixels: int,
                  model_lock: threading.Lock, look: dict | None = None) -> bytes:
    """Decode, prepare and encode in this request's thread; only the network holds the lock."""
    look = look or {}
    image = _decode(data, max_pixels)
    try:
        prepared = colorizer.prepare(image, colorizer.working_size(size), look.get("restore_contrast", False))
        with model_lock:
            ab = colorizer.predict(prepared, look.get("hints"), look.get("chroma_gain"))
        return colorizer.finish_png(prepared, ab, look.get("chroma_gain"))
    except HintError as err:  # a hint outside this photo: the request's fault, not the photo's
        raise RequestRefused(400, str(err)) from None
    except (ValueError, OSError) as err:  # BadImageError, or a mode or profile PIL cannot convert
        raise RequestRefused(422, f"this photo cannot be colorized: {err}") from None


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    """The photo in `data`, decoded; its pixel count is read from the header and checked first,
    so a decompression bomb is refused before it takes any memory.

    Decoders of untrusted bytes fail in many ways (OSError, SyntaxError, struct.error...), in
    open as in load; each is the file's fault, answered 422. Too many pixels, a decompression
    bomb or a metadata bomb (text chunks past PIL's limits) is answered 413. The formats and
    the pixel rule are the package's own (io.images), as every other door's.
    """
    formats = images.allowed_formats()
    try:
        image = Image.open(io.BytesIO(data), formats=formats)  # reads the header only
        images.check_pixels(image.width, image.height, max_pixels)
        image.load()
    except Image.DecompressionBombError as err:  # PIL's own cap, far above ours, checked in open
        raise RequestRefused(413, f"refused as a decompression bomb: {err}") from None
    except images.PhotoTooLargeError as err:
        raise RequestRefused(413, f"{err} by this server") from None
    except UnidentifiedImageError:
        known = next((name for name, magic in _SIGNATURES if data.startswith(magic)), None)
        if known in formats:  # a PNG of 0x0 pixels, say: a photo's header PIL will not take
            raise RequestRefused(422, f"the image cannot be decoded: a {known} file whose header is "
                                      "broken or has no pixels") from None
        raise RequestRefused(415, "the upload is not an image in a format this server reads "
                                  f"({', '.join(formats)})") from None
    except Exception as err:
        if images.metadata_bomb(err):
            raise RequestRefused(413, f"refused: its metadata would take too much memory ({err})") from None
        raise RequestRefused(422, f"the image cannot be decoded: {err}") from None
    return image


# The first bytes of each format the package reads (io.images.FORMATS).
_SIGNATURES = (("PNG", b"\x89PNG\r\n\x1a\n"), ("JPEG", b"\xff\xd8\xff"), ("GIF", b"GIF8"), ("BMP", b"BM"),
               ("TIFF", b"II*\x00"), ("TIFF", b"MM\x00*"), ("WEBP", b"RIFF"))


def make_server(app, host: str = "127.0.0.1", port: int = 8000, max_bytes: int = MAX_BYTES,
                deadline_s: float | None = None) -> Server:
    """A production WSGI server for `app`, already listening (port 0: any free one, see
    `.bind_addr`); `.serve()` runs it until `.stop()`.

    cheroot (pure Python, a thread pool) rather than waitress: waitress reads a whole request
    body before the app sees it, so the app could refuse an oversized upload only after it
    arrived; cheroot streams the body, so the Content-Length check refuses it at once.
    `max_bytes` also refuses a chunk that announces more before it is read; a request whose
    headers and body take longer than `deadline_s` (default http_limits.REQUEST_DEADLINE_S)
    to arrive is cut off, so slow clients cannot hold every thread.
    """
    from cheroot.wsgi import Server

    from colorful_world.apps.http_limits import MAX_HEADER_BYTES, REQUEST_DEADLINE_S, DeadlineConnection

    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be from 0 to 65535, not {port}")
    server = Server((host, port), app)
    # The request line and headers, bounded (cheroot's default is none: one 400 MB header was read
    # whole); over it, a JSON 413 and the connection closed (http_limits.JsonRequest).
    server.max_request_header_size = MAX_HEADER_BYTES
    limits = {"deadline_s": REQUEST_DEADLINE_S if deadline_s is None else deadline_s, "max_read": max_bytes}
    server.ConnectionClass = type("Connection", (DeadlineConnection,), limits)
    server.prepare()
    return server


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the serve options to `parser` (see `main_from_args`)."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 for every interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000),
                        help="port (default: $PORT where set, as platforms such as Cloud Run set it, "
                             "else 8000; 0: any free one)")
    parser.add_argument("--checkpoint", "-c", default=None, help="generator.safetensors or a "
                        "training checkpoint (default: the bundled face model)")
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="torch",
                        help="what runs the model (default: torch)")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                        help=f"largest request body accepted, in bytes (default: {MAX_BYTES:,})")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"largest photo accepted, in pixels (default: {MAX_PIXELS:,})")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT,
                        help="photos decoded, colorized and encoded at once; each may take up to "
                             f"--max-pixels x 20 bytes of memory (default: {IN_FLIGHT})")
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Load the model, then serve until Ctrl-C or SIGTERM. The first stdout line says where.

    Returns 0 after a clean stop, 2 when the model, the limits or the address cannot work, or
    the web stack is not installed; the reason goes to stderr.
    """
    try:
        app = create_app(checkpoint=args.checkpoint, backend=args.backend, max_bytes=args.max_bytes,
                         max_pixels=args.max_pixels, in_flight=args.in_flight)
        server = make_server(app, args.host, args.port, args.max_bytes)
    except ModuleNotFoundError as err:
        print(f"error: serving needs {err.name}: pip install 'colorful-world[serve]'", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    host, port = server.bind_addr[:2]
    host = f"[{host}]" if ":" in host else host  # an IPv6 address takes brackets in a URL
    print(f"serving on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    # `docker stop` sends SIGTERM, which a process running as PID 1 would otherwise ignore.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


# The upload page: a plain form whose answer (the PNG, or the JSON error) shows in the frame
# below it, so it needs no JavaScript. `colorize` is relative: it works under a path prefix.
PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>colorful-world</title>
<body style="font-family: sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em">
<h1>Colorize a black-and-white photo</h1>
<form action="colorize" method="post" enctype="multipart/form-data" target="result">
  <label>Photo <input type="file" name="image" accept="image/*" required></label>
  <button type="submit">Colorize</button>
</form>
<p>Up to {max_mb} MB and {max_mp} megapixels. The colour version, a PNG at the photo's own size,
appears below.</p>
<iframe name="result" title="result" style="width: 100%; height: 70vh; border: 1px solid #ccc"></iframe>
</body>
</html>
"""
