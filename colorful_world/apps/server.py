"""An HTTP API for colorization: a thin door onto `Colorizer`, as a WSGI app.

`create_app` builds the app, for `colorful-world serve`, for gunicorn or any WSGI host, and for
serverless adapters; `add_arguments` and `main_from_args` are the door the `colorful-world serve`
subcommand goes through.

Routes:
    GET  /          the upload page: before and after side by side, a download link, colour
                    strength, contrast restoration and hints; without JavaScript, a plain form
                    whose result shows below it
    GET  /healthz   {"status": "ok", "hints": whether the model takes them, ...} once the model is loaded
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
import hashlib
import html
import io
import os
import signal
import sys
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from PIL import Image, UnidentifiedImageError

from colorful_world.core.hints import MAX_HINTS, HintError, parse_hints
from colorful_world.core.tone import check_strength
from colorful_world.inference.backends import BACKEND_HELP
from colorful_world.inference.backends import BACKENDS as BACKEND_NAMES
from colorful_world.io import images
from colorful_world.io.errors import ConfigError

if TYPE_CHECKING:
    from cheroot.wsgi import Server
    from flask import Flask

    from colorful_world.inference.colorize import Colorizer, Prepared

MAX_BYTES = 10_000_000  # the whole request body, multipart framing included
MAX_PIXELS = 40_000_000  # the server's default, lower than images.MAX_PIXELS: it bounds one request's memory
MAX_FORM_PARTS = 20
IN_FLIGHT = 2  # photos worked on at once: I/O overlaps, and memory is 2 photos' worth at most
MAX_SIZE_FACTOR = 4  # `?size=` up to 4x the training size: 16x the work, and far from what it saw
CACHE_PHOTOS = 2  # prepared photos kept for the next request (a hint's click re-posts the same photo)

# The formats the package reads from disk, and only those: PIL can open many more (EPS, PSD,
# ICO...), some through decoders or helper programs that untrusted uploads should not reach.
FORMATS = tuple(sorted({Image.registered_extensions()[s] for s in images.IMAGE_SUFFIXES}))


def _loader(backend: str) -> Callable[[str | None], Colorizer]:
    def load(checkpoint: str | None) -> Colorizer:
        from colorful_world.inference.colorize import Colorizer  # the engine: imported once a model is wanted
        return Colorizer.from_checkpoint(checkpoint, backend=backend)
    return load


# How each `--backend` loads a model into a `Colorizer` (what the app uses of it: `working_size`,
# `prepare`, `predict`, `finish`, `image_size`, `depth`). ONNX Runtime is the faster one on a CPU;
# auto takes it where torch is not installed (`resolve_backend`, as colorize does).
BACKENDS: dict[str, Callable[[str | None], Colorizer]] = {name: _loader(name) for name in BACKEND_NAMES}


class PreparedCache:
    """Photos lately prepared (decoded, their L taken and resized), by the sha256 of their bytes
    and how they were prepared: each click of a hint re-posts the same photo, and must not decode
    it again. At most `photos` of them and `pixels` pixels in all (a prepared photo holds about
    5 bytes a pixel: L as float32, and alpha), the least recently used dropped first."""

    def __init__(self, photos: int, pixels: int):
        self.photos, self.pixels = photos, pixels
        self._items: OrderedDict[tuple, Prepared] = OrderedDict()
        self._held = 0  # pixels of the photos in _items
        self._lock = threading.Lock()  # requests run in threads of their own

    @staticmethod
    def key(data: bytes, size: int, restore_contrast: bool) -> tuple:
        return hashlib.sha256(data).hexdigest(), size, restore_contrast

    def get(self, key: tuple) -> Prepared | None:
        with self._lock:
            prepared = self._items.get(key)
            if prepared is not None:
                self._items.move_to_end(key)
            return prepared

    def put(self, key: tuple, prepared: Prepared) -> None:
        if self.photos < 1 or prepared.light.size > self.pixels:
            return
        with self._lock:
            if key in self._items:  # two requests prepared the same photo at once
                return
            self._items[key] = prepared
            self._held += prepared.light.size
            while len(self._items) > self.photos or self._held > self.pixels:
                self._held -= self._items.popitem(last=False)[1].light.size

    def held_pixels(self) -> int:
        return self._held

    def __len__(self) -> int:
        return len(self._items)


class RequestRefused(Exception):
    """An upload the server will not colorize; answered as JSON with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(colorizer: Colorizer | None = None, checkpoint: str | None = None,
               max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               backend: str = "auto", in_flight: int = IN_FLIGHT, cache_photos: int = CACHE_PHOTOS) -> Flask:
    """The WSGI app. The model is `colorizer`, or loaded here once from `checkpoint` (None: the
    bundled face model) with `backend`; every request of this process shares it. At most
    `in_flight` photos are worked on at once (the others wait their turn). The last
    `cache_photos` photos prepared (0: none), `max_pixels` in all, are kept for requests that
    send the same bytes again (`PreparedCache`, as `app.extensions["prepared_cache"]`).

    Raises ValueError for limits that cannot work, and CheckpointError (a ValueError) for a
    model that cannot be loaded: a server that starts is a server that can answer.
    """
    from flask import Flask, Response, jsonify, request
    from werkzeug.exceptions import HTTPException

    if max_bytes < 1:
        raise ConfigError(f"max_bytes must be positive, not {max_bytes}")
    if in_flight < 1:
        raise ConfigError(f"in_flight must be at least 1, not {in_flight}")
    if cache_photos < 0:
        raise ConfigError(f"cache_photos must be 0 or more, not {cache_photos}")
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
    cache = PreparedCache(cache_photos, max_pixels)

    from colorful_world.apps.http_limits import BoundedBody

    app = Flask(__name__)
    app.extensions["prepared_cache"] = cache
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
        return Response(_page(max_bytes, max_pixels, colorizer.takes_hints), mimetype="text/html")

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", working_size=colorizer.image_size, hints=colorizer.takes_hints,
                       max_bytes=max_bytes, max_pixels=max_pixels)

    @app.post("/colorize")
    def colorize() -> Response:
        data, name = _upload_bytes(request)
        size = _working_size(_setting(request, "size"), colorizer)
        look = _look(request, colorizer)
        with photos_at_once:
            png = _colorize_png(colorizer, data, size, max_pixels, model_lock, look, cache)
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
    # Checked here, so a malformed list is refused before the photo is decoded; passed on in the
    # shape Colorizer takes, (x, y, "#rrggbb"): whether a point is inside the photo is known later.
    hints = [(x, y, "#%02x%02x%02x" % rgb) for x, y, rgb in parsed]
    return {"chroma_gain": gain, "hints": hints, "restore_contrast": contrast in ("1", "true", "on")}


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
                  model_lock: threading.Lock, look: dict | None = None,
                  cache: PreparedCache | None = None) -> bytes:
    """Decode, prepare and encode in this request's thread; only the network holds the lock.
    A photo found in `cache` (the same bytes, prepared the same way) is not decoded again."""
    look = look or {}
    contrast = look.get("restore_contrast", False)
    try:
        working = colorizer.working_size(size)
        key = PreparedCache.key(data, working, contrast) if cache is not None else None
        prepared = cache.get(key) if cache is not None else None
        if prepared is None:
            prepared = colorizer.prepare(_decode(data, max_pixels), working, contrast)
            if cache is not None:
                cache.put(key, prepared)
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
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help=BACKEND_HELP)
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                        help=f"largest request body accepted, in bytes (default: {MAX_BYTES:,})")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help=f"largest photo accepted, in pixels (default: {MAX_PIXELS:,})")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT,
                        help="photos decoded, colorized and encoded at once; each may take up to "
                             f"--max-pixels x 20 bytes of memory (default: {IN_FLIGHT})")
    parser.add_argument("--cache-photos", type=int, default=CACHE_PHOTOS,
                        help="photos kept prepared for the next request that sends the same bytes "
                             "(a click of a hint on the page), --max-pixels in all, about 5 bytes a "
                             f"pixel; 0: none (default: {CACHE_PHOTOS})")
    return parser


def main_from_args(args: argparse.Namespace) -> int:
    """Load the model, then serve until Ctrl-C or SIGTERM. The first stdout line says where.

    Returns 0 after a clean stop, 2 when the model, the limits or the address cannot work, or
    the web stack is not installed; the reason goes to stderr.
    """
    try:
        app = create_app(checkpoint=args.checkpoint, backend=args.backend, max_bytes=args.max_bytes,
                         max_pixels=args.max_pixels, in_flight=args.in_flight,
                         cache_photos=args.cache_photos)
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


def _page(max_bytes: int, max_pixels: int, takes_hints: bool) -> str:
    """PAGE with this server's limits and whether its model takes hints filled in."""
    values = {"max_mb": f"{max_bytes / 1e6:g}", "max_mp": f"{max_pixels / 1e6:g}", "max_bytes": max_bytes,
              "max_hints": MAX_HINTS, "hints": "true" if takes_hints else "false"}
    page = PAGE
    for name, value in values.items():  # named markers, not str.format: CSS and scripts are full of braces
        page = page.replace(f"{{{name}}}", html.escape(str(value)))
    return page


# The upload page, one self-contained file (no external assets: it works offline, and behind any
# prefix, since `colorize` is a relative URL). Without JavaScript it is a plain form whose answer
# (the PNG, or the JSON error) shows in the frame below it. With JavaScript the script takes the
# form over: it posts the same fields with XMLHttpRequest (whose upload reports progress), shows
# before and after side by side, fitted to the window, links the PNG under the name the server
# gives it, says errors in a sentence, and turns clicks on the result into hints.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>colorful-world: colorize a black-and-white photo</title>
<link rel="icon" href="data:,">
<style>
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { max-width: 120rem; margin: 0 auto; padding: 0.5rem 1rem; }
  h1 { font-size: 1.4rem; margin: 0.2rem 0 0.5rem; }
  form { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem 1.5rem; }
  .note { margin: 0.4rem 0; font-size: 0.9rem; opacity: 0.8; }
  #status { min-height: 1.8rem; margin: 0.3rem 0; }  /* kept: the photos below never jump */
  #error { color: #c62828; font-weight: bold; margin: 0; }
  .pair { display: flex; gap: 1rem; }
  .pair figure { flex: 1 1 0; min-width: 0; margin: 0; position: relative; }
  figcaption { display: flex; justify-content: space-between; align-items: center; height: 1.8rem; }
  /* Fitted to the window whatever the photo's size: the whole photo, never 100% zoom. */
  .pair img { display: block; margin: 0 auto; max-width: 100%; max-height: calc(100vh - 14rem); }
  #after { cursor: crosshair; }
  body[data-state=busy] #after { opacity: 0.7; }
  #download { font-weight: bold; padding: 0.15rem 0.6rem; border: 1px solid currentColor; border-radius: 0.3rem; }
  .mark { position: absolute; width: 1.1rem; height: 1.1rem; margin: -0.55rem 0 0 -0.55rem;
          border: 2px solid #fff; border-radius: 50%; box-shadow: 0 0 0 1px #000; color: #fff;
          font: bold 0.7rem/1.1rem sans-serif; text-align: center; text-shadow: 0 0 2px #000;
          pointer-events: none; }  /* a click through a mark still lands on the photo */
  #hints { display: flex; flex-wrap: wrap; gap: 0.3rem 1.2rem; list-style: none; padding: 0; margin: 0.4rem 0; }
  #hints input { vertical-align: middle; }
  iframe { width: 100%; height: 70vh; border: 1px solid #ccc; }
  .js iframe, .nojs-hidden { display: none; }
  .js .nojs-hidden { display: inline; }
  @media (max-width: 40rem) {  /* a phone: one above the other, each half the window */
    .pair { flex-direction: column; }
    .pair img { max-height: calc(50vh - 5rem); }
  }
</style>
</head>
<body>
<h1>Colorize a black-and-white photo</h1>
<form id="upload" action="colorize" method="post" enctype="multipart/form-data" target="result"
      data-max-bytes="{max_bytes}" data-max-hints="{max_hints}" data-hints="{hints}">
  <label>Photo <input type="file" name="image" accept="image/*" required></label>
  <label>Colour strength <input type="range" name="strength" min="0" max="2" step="0.05" value="1">
    <output id="strength-shown" class="nojs-hidden">1.00</output></label>
  <label><input type="checkbox" name="restore_contrast" value="1"> Restore faded contrast</label>
  <button type="submit">Colorize</button>
</form>
<p class="note">Up to {max_mb} MB and {max_mp} megapixels. Colour strength: 0 is grey, the middle
the model's own colour, the right end twice as strong. The colour version is a PNG at the photo's
own size.</p>
<div id="status" aria-live="polite">
  <span id="progress" hidden><progress></progress> <span></span></span>
  <p id="error" role="alert" hidden></p>
</div>
<section id="viewer" hidden>
  <div class="pair">
    <figure><figcaption>Before</figcaption><img id="before" alt="your photo as uploaded"></figure>
    <figure id="after-figure"><figcaption>After <a id="download" href="#">Download PNG</a></figcaption>
      <img id="after" alt="the colour version"></figure>
  </div>
  <p id="hint-help" class="note"></p>
  <ol id="hints"></ol>
</section>
<iframe name="result" title="result"></iframe>
<script>
"use strict";
// Without this script the form above posts into the frame, as it always has: the script only
// adds to it.
document.documentElement.classList.add("js");
const $ = (id) => document.getElementById(id);
const form = $("upload");
const limits = { bytes: Number(form.dataset.maxBytes), hints: Number(form.dataset.maxHints) };
const takesHints = form.dataset.hints === "true";
// The photo being worked on, its hints ({x, y, colour}: the photo's own pixels) and the request
// in flight: a new one replaces it, so only the latest settings' answer is ever shown.
const state = { file: null, name: "", hints: [], request: null, urls: {} };

$("hint-help").textContent = takesHints
  ? "Know a colour? Click the colour photo there, then pick the colour: it is colorized again."
  : "This server's model was trained without colour hints, so clicks on the photo do nothing.";
form.addEventListener("submit", (event) => { event.preventDefault(); start(); });
form.elements.strength.addEventListener("input", showStrength);
form.elements.strength.addEventListener("change", again);
form.elements.restore_contrast.addEventListener("change", again);
$("after").addEventListener("click", addHint);
$("after").addEventListener("load", drawMarks);
window.addEventListener("resize", drawMarks);
showStrength();

function start() {
  const file = form.elements.image.files[0];
  if (!file) return;
  if (file !== state.file) {  // a new photo: its own hints, and its own before
    state.file = file;
    state.name = file.name;
    state.hints = [];
    $("before").src = setUrl("before", file);
    $("viewer").hidden = true;
    listHints();
  }
  colorize();
}

function again() {
  if (state.file) colorize();
}

function showStrength() {
  $("strength-shown").textContent = Number(form.elements.strength.value).toFixed(2);
}

function colorize() {
  if (state.request) state.request.abort();
  $("error").hidden = true;
  if (state.file.size > limits.bytes) {  // refused before minutes of uploading, not after
    return fail(`it is ${bytes(state.file.size)}, more than the ${bytes(limits.bytes)} this server takes`);
  }
  const body = new FormData(form);
  body.set("image", state.file);  // the photo shown, even if another file was picked since
  if (state.hints.length) body.set("hints", JSON.stringify(state.hints.map((h) => [h.x, h.y, h.colour])));
  const request = new XMLHttpRequest();
  state.request = request;
  request.open("POST", form.action);
  request.responseType = "blob";
  request.upload.onprogress = (event) => progress("Uploading", event);
  request.upload.onload = () => progress("Colorizing");  // the server's work has no measure: no bar
  request.onprogress = (event) => progress("Receiving the colour photo", event);
  request.onload = () => answered(request);
  request.onerror = () => {
    if (request === state.request) fail("the server could not be reached; check the connection and try again");
  };
  request.send(body);
  progress("Uploading");
}

function progress(stage, event) {
  const bar = $("progress").querySelector("progress");
  if (event && event.lengthComputable) {
    bar.max = event.total;
    bar.value = event.loaded;
  } else {
    bar.removeAttribute("value");  // an indeterminate bar
  }
  $("progress").querySelector("span").textContent = `${stage}…`;
  $("progress").hidden = false;
  document.body.dataset.state = "busy";
}

async function answered(request) {
  if (request !== state.request) return;  // replaced by newer settings
  state.request = null;
  if (request.status === 200) return show(request.response, fileName(request));
  let message = `the server answered ${request.status} ${request.statusText}`;
  try {
    message = JSON.parse(await request.response.text()).error || message;  // errors are {"error": "..."}
  } catch (err) {}  // not JSON (a proxy's page, say): the status says what it can
  if (!state.request) fail(message);
}

async function show(png, name) {
  const after = $("after");
  after.src = setUrl("after", png);
  $("download").href = after.src;
  $("download").download = name;
  await after.decode().catch(() => {});
  $("viewer").hidden = false;
  drawMarks();
  $("viewer").scrollIntoView({ block: "nearest" });
  if (state.request) return;  // newer settings are on their way: their progress stays shown
  $("progress").hidden = true;
  document.body.dataset.state = "done";
}

function fail(message) {
  state.request = null;
  $("progress").hidden = true;
  $("error").textContent = sentence(`Could not colorize ${state.name}: ${message}`);
  $("error").hidden = false;
  document.body.dataset.state = "error";
}

// The server names the PNG after the upload (grandma.jpg -> grandma-colour.png).
function fileName(request) {
  const header = request.getResponseHeader("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(header);
  return match ? match[1] : "photo-colour.png";
}

// An object URL for `blob` under `key`, the one it replaces released (photos are large).
function setUrl(key, blob) {
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = URL.createObjectURL(blob);
  return state.urls[key];
}

function addHint(event) {
  if (!takesHints || !state.file) return;
  if (state.hints.length >= limits.hints) return fail(`a photo takes at most ${limits.hints} hints`);
  const img = event.currentTarget;
  const box = img.getBoundingClientRect();
  // The photo is shown scaled to fit: the pixel of the photo itself under the pointer.
  const x = pixel((event.clientX - box.left) / box.width, img.naturalWidth);
  const y = pixel((event.clientY - box.top) / box.height, img.naturalHeight);
  state.hints.push({ x, y, colour: colourAt(img, x, y) });
  listHints();
  colorize();
}

// The pixel a share (0 to 1) of the way across `count` pixels falls in.
function pixel(share, count) {
  return Math.min(count - 1, Math.max(0, Math.floor(share * count)));
}

// The result's colour at a pixel: the colour picker starts from what the model gave there.
function colourAt(img, x, y) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const context = canvas.getContext("2d");
  context.drawImage(img, x, y, 1, 1, 0, 0, 1, 1);
  const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

function listHints() {
  const list = $("hints");
  list.replaceChildren(...state.hints.map((hint, n) => {
    const item = document.createElement("li");
    const colour = document.createElement("input");
    colour.type = "color";
    colour.value = hint.colour;
    colour.setAttribute("aria-label", `colour of hint ${n + 1}`);
    colour.addEventListener("input", () => { hint.colour = colour.value; drawMarks(); });
    colour.addEventListener("change", () => { hint.colour = colour.value; colorize(); });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.addEventListener("click", () => { state.hints.splice(n, 1); listHints(); colorize(); });
    item.append(`${n + 1}. at (${hint.x}, ${hint.y}) `, colour, " ", remove);
    return item;
  }));
  drawMarks();
}

// Numbered marks over the result where the hints are, placed on the image as it is shown now.
function drawMarks() {
  const after = $("after");
  const figure = $("after-figure");
  figure.querySelectorAll(".mark").forEach((mark) => mark.remove());
  if (!after.naturalWidth) return;
  state.hints.forEach((hint, n) => {
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = n + 1;
    mark.style.background = hint.colour;
    mark.style.left = `${after.offsetLeft + (hint.x + 0.5) / after.naturalWidth * after.offsetWidth}px`;
    mark.style.top = `${after.offsetTop + (hint.y + 0.5) / after.naturalHeight * after.offsetHeight}px`;
    figure.append(mark);
  });
}

function sentence(text) {
  text = text.trim();
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function bytes(count) {
  return count >= 1e6 ? `${(count / 1e6).toFixed(1)} MB` : `${Math.ceil(count / 1e3)} KB`;
}
</script>
</body>
</html>
"""
