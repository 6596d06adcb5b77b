"""The colorize app for notebooks: upload a photo (or give a path or URL), see it in colour, click
the colour picture where you know a colour to set it (a colour hint), and download the result.

Works with ipywidgets 7 (Colab ships 7.7.1) and 8 (JupyterLab 4). Anything wrong with a photo is
said in the app in one sentence, never raised as a traceback.

Clicks on the picture come from ipyevents, not ipycanvas. ipyevents listens on the ipywidgets
Image the app already shows, and hands back the click in that picture's own pixels (dataX,
dataY) whatever size the browser draws it at; its front end declares @jupyter-widgets/base 1 to 6,
so the same release loads under ipywidgets 7 and 8, and its npm package carries the bundle that
Colab's custom widget manager fetches from the CDN (enabled below on Colab). ipycanvas would
replace the picture with a canvas fed pixel buffers, the part of it that Colab's widget manager has
broken more than once (colab-cdn-widget-manager #8, ipycanvas #270 and #318, colabtools #4157).
Without ipyevents the app still colorizes; only clicks are lost, and the app says so.
"""

import base64
import html
import io
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ipywidgets as widgets
import numpy as np
import requests
import traitlets
from PIL import Image, ImageColor, ImageDraw

from colorful_world.core.color_lut import lab_to_srgb_u8
from colorful_world.core.hints import HintError
from colorful_world.core.resize import photo_size_rows
from colorful_world.core.tone import STRENGTH_MAX
from colorful_world.core.units import AB_SCALE
from colorful_world.inference.colorize import Colorizer, Prepared
from colorful_world.io.errors import CheckpointError
from colorful_world.io.images import BadImageError, open_image, split_alpha
from colorful_world.io.paths import on_colab
from colorful_world.io.png import png_bytes

PREVIEW_SIDE = 360  # the pictures on show fit side by side; the download keeps every pixel
URL_TIMEOUT_S = (10, 60)  # connect, then between bytes
# A download link is a data URL sent to the browser: made after every change up to this size
# (2 MP: about 3 MB and 0.1 s), on request above it, so that a click on a big scan stays quick.
EAGER_DOWNLOAD_PIXELS = 2_000_000
GREY_SPREAD = 8  # channels of a black-and-white photo saved as RGB (a JPEG's noise) differ by less
MARKER_RADIUS = 5  # of a hint's dot on the colour picture, in the picture's pixels
ERROR_STYLE = "color:#b00020;font-weight:bold"
NO_HINTS = ("This model was trained without colour hints, so clicks cannot set colours: use a model "
            "trained with them (new training runs take them by default).")


def load_colorizer(source: Colorizer | str | Path | None) -> Colorizer:
    """A Colorizer as given, or loaded from a model file (an .onnx one on ONNX Runtime), a run
    folder, or None: the bundled model, on ONNX Runtime where it is installed (about twice as
    quick a click on a CPU as torch, and no torch needed), else on torch."""
    if isinstance(source, Colorizer):
        return source
    if not source:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            backend = "torch"
        else:
            backend = "onnx"
        try:
            return Colorizer.from_checkpoint(None, backend=backend)
        except CheckpointError as err:
            raise CheckpointError(f"{err}. Train one (notebooks/train.ipynb), then give its run folder "
                                  "or its generator.safetensors.") from None
    from colorful_world.training.run_folder import find_model  # torch's side: a run's checkpoints
    model = find_model(source)
    return Colorizer.from_checkpoint(model)  # auto: an .onnx model on ONNX Runtime, the others on torch


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, content) of each file in a FileUpload value, whichever ipywidgets made it."""
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": {...}, "content": bytes}}
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]  # 8: a tuple of dicts


def fetch(path_or_url: str) -> tuple[str, bytes]:
    """(name, content) of a photo on disk or on the web; OSError or RequestException if unreachable.
    A path on Google Drive mounts Drive first, on Colab."""
    text = path_or_url.strip()
    if urlsplit(text).scheme in ("http", "https"):
        response = requests.get(text, timeout=URL_TIMEOUT_S)
        response.raise_for_status()
        return Path(unquote(urlsplit(text).path)).name or "photo", response.content
    from colorful_world.apps.notebook import mount_drive_for
    path = Path(text).expanduser()
    mount_drive_for(path)
    return path.name, path.read_bytes()


class _NamedBytes(io.BytesIO):
    """Uploaded bytes that go by the file's name, so that an error message names the file."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__  # PIL names the file by its repr


def is_black_and_white(image: Image.Image) -> bool:
    """A grey photo, or one saved in colour whose channels hardly differ anywhere."""
    picture, _ = split_alpha(image, keep_grey=True)
    if picture.mode == "L":
        return True
    small = picture.copy()
    small.thumbnail((128, 128))
    pixels = np.asarray(small, dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return float(np.percentile(spread, 99)) <= GREY_SPREAD


def preview_png(image: Image.Image, side: int | None = None) -> bytes:
    """PNG of the image, shrunk to fit side x side when a side is given."""
    if side:
        image = image.copy()
        image.thumbnail((side, side))
    return png_bytes(image)


def download_link(image: Image.Image, name: str) -> str:
    """An HTML link that saves the full-size result from the browser, no server round trip."""
    data = base64.b64encode(png_bytes(image)).decode()
    return (f'<a download="{html.escape(name)}" href="data:image/png;base64,{data}">'
            f"Download {html.escape(name)} ({image.width} × {image.height})</a>")


def as_hex(colour: str) -> str:
    """A ColorPicker's value (#rrggbb, #rgb or a CSS name, which ipywidgets allows) as #rrggbb."""
    return "#{:02x}{:02x}{:02x}".format(*ImageColor.getrgb(colour)[:3])


def strength_words(strength: float) -> str:
    """The colour strength as a person says it."""
    if strength == 0:
        return "none: the black-and-white photo"
    if abs(strength - 1) < 1e-9:
        return "the model's own"
    if abs(strength - 2) < 1e-9:
        return "twice the model's"
    return f"{strength:.0%} of the model's"


def _detail_options(colorizer: Colorizer | None) -> list[tuple[str, int]]:
    """The sides the network may look at, in words: its own, half, twice and four times (each a
    multiple of 2**depth)."""
    if colorizer is None:
        return [("Normal", 0)]
    own, step = colorizer.image_size, 2 ** colorizer.depth
    words = {own // 2: "Coarse", own: "Normal (as the model was trained)", own * 2: "Fine", own * 4: "Finest"}
    return [(word, side) for side, word in sorted(words.items()) if side >= step and side % step == 0]


def _preview_of(prepared: Prepared, width: int, height: int) -> Prepared:
    """The prepared photo at the size it is shown: the network's colour (which does not depend on
    the photo's size) finished on it takes a few milliseconds, not the full photo's tens."""
    light = Image.fromarray(np.ascontiguousarray(prepared.light, dtype=np.float32))  # mode F
    light = np.asarray(light.resize((width, height), Image.BOX), np.float32)
    alpha = None
    if prepared.alpha is not None:
        alpha = np.asarray(Image.fromarray(prepared.alpha).resize((width, height), Image.BOX))
    return Prepared(np.ascontiguousarray(light), alpha, prepared.small)


def _click_events(image: widgets.Image):
    """An ipyevents listener for clicks on `image`, or None where ipyevents is not installed."""
    try:
        from ipyevents import Event
    except ImportError:
        return None
    if on_colab():  # Colab draws widgets other than its own only with its custom widget manager
        try:
            from google.colab import output
            output.enable_custom_widget_manager()
        except (ImportError, AttributeError):
            pass
    return Event(source=image, watched_events=["click"])


class ColorizeApp(widgets.VBox):
    """The app's widgets, the photo on show, its colour hints and what is kept between clicks.
    Built by `colorize_widget`."""

    # The click listener is a widget no one shows. A front end that builds only the models a shown
    # widget refers to (Colab's and Databricks' do: ipycanvas #290) would never build it, and no
    # click would come: the app refers to it, so that it is built with the app.
    click_listener = traitlets.Instance(widgets.Widget, allow_none=True).tag(sync=True, **widgets.widget_serialization)

    def __init__(self, colorizer: Colorizer | str | Path | None = None):
        super().__init__()
        self.photo: tuple[str, Image.Image] | None = None  # (name, decoded photo) on show
        self.hints: list[tuple[int, int, str]] = []  # (x, y, "#rrggbb"), pixels of the photo as shown
        self.selected: int | None = None  # the hint the colour picker sets
        self._prepared_key = self._prepared = self._preview = None
        self._colours: dict = {}  # (hints, gain) -> the network's ab, for the prepared photo
        self.current: tuple[Prepared, np.ndarray, float] | None = None  # what the colour picture shows
        self.message = widgets.HTML()
        try:
            self.colorizer = load_colorizer(colorizer)
        except (ValueError, OSError) as err:
            self.colorizer = None
            self.say(str(err), error=True)
        if on_colab():
            # Colab's frontend loses FileUpload files of about 1 MB and more (ipywidgets #3452);
            # its own dialog takes photos of any size, so it is the main button there.
            self.upload = widgets.Button(description="Upload", icon="upload")
            self.upload.on_click(self.upload_with_colab)
        else:
            self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
            self.upload.observe(self.on_upload, names="value")
        self.path_or_url = widgets.Text(placeholder="or a path or URL of a photo",
                                        layout=widgets.Layout(width="420px"))
        self.open_button = widgets.Button(description="Open")
        self.colab_output = widgets.Output()

        wide = {"description_width": "initial"}
        self.detail = widgets.Dropdown(options=_detail_options(self.colorizer), description="Detail", style=wide,
                                       value=self.colorizer.image_size if self.colorizer else 0,
                                       layout=widgets.Layout(width="auto"))
        self.strength = widgets.FloatSlider(value=1.0, min=0.0, max=STRENGTH_MAX, step=0.05, readout=False,
                                            continuous_update=False, description="Colour strength", style=wide)
        self.strength_label = widgets.Label(strength_words(1.0), layout=widgets.Layout(width="auto", min_width="16em"))
        self.restore_contrast = widgets.Checkbox(value=False, description="Restore faded contrast", indent=False)

        self.views = {name: widgets.Image(format="png") for name in ("photo", "grey", "colour")}
        self.views["colour"].add_class("colorful-world-colorized")  # a handle for browser tests
        self.view_titles = {"photo": "Your photo", "grey": "In black and white: what the model colours",
                            "colour": "In colour"}
        self.panels = widgets.HBox()

        self.hint_help = widgets.HTML()
        self.picker = widgets.ColorPicker(value="#808080", concise=False, description="Colour", disabled=True)
        self.hint_list = widgets.VBox()
        self.clear_hints_button = widgets.Button(description="Remove all hints", disabled=True)
        self.download = widgets.HTML()
        self.download_button = widgets.Button(description="Make the download", icon="download",
                                              layout=widgets.Layout(display="none"))
        self.click_events = self.click_listener = _click_events(self.views["colour"])
        self.children = self._layout()
        if self.colorizer is None:
            for control in (self.upload, self.path_or_url, self.open_button, self.detail, self.strength,
                            self.restore_contrast):
                control.disabled = True
            return
        self.say("Upload a black-and-white photo, or give its path or web address.")
        self._show_hints()
        self.open_button.on_click(self.on_open)
        self.detail.observe(self.render, names="value")
        self.strength.observe(self.on_strength, names="value")
        self.restore_contrast.observe(self.render, names="value")
        self.picker.observe(self.on_pick, names="value")
        self.clear_hints_button.on_click(self.clear_hints)
        self.download_button.on_click(self.make_download)
        if self.click_events is not None:
            self.click_events.on_dom_event(self.on_photo_click)

    def _layout(self) -> list[widgets.Widget]:
        sources = widgets.HBox([self.upload, self.path_or_url, self.open_button])
        look = widgets.VBox([widgets.HBox([self.detail, self.restore_contrast]),
                             widgets.HBox([self.strength, self.strength_label])])
        hints = widgets.VBox([self.hint_help, widgets.HBox([self.picker, self.clear_hints_button]), self.hint_list])
        return [sources, self.colab_output, look, self.message, self.panels, hints,
                widgets.HBox([self.download_button, self.download])]

    def say(self, text: str, error: bool = False) -> None:
        style = ERROR_STYLE if error else "color:inherit"
        self.message.value = f'<span style="{style}">{html.escape(text)}</span>'

    # Where photos come from.

    def on_upload(self, change: dict) -> None:
        files = uploaded_files(change["new"])
        if files:
            self.show(*files[0])

    def on_open(self, _button=None) -> None:
        try:
            name, data = fetch(self.path_or_url.value)
        except (OSError, requests.RequestException) as err:
            reason = getattr(err, "strerror", None) or err  # OSError's strerror leaves out the path
            self.say(f"{self.path_or_url.value.strip()}: could not read it ({reason})", error=True)
            return
        self.show(name, data)

    def upload_with_colab(self, _button=None) -> None:
        """Colab's own upload dialog, which takes photos of any size."""
        from google.colab import files  # exists only on Colab

        with self.colab_output:
            chosen = files.upload()
        self.colab_output.clear_output()
        if not chosen:
            self.say("No photo was chosen.")
        for name, data in list(chosen.items())[:1]:
            self.show(name, data)

    def show(self, name: str, data: bytes) -> None:
        """Decode an uploaded or fetched photo and colorize it; a bad one is reported."""
        if not data:
            self.say(f"{name} arrived empty: upload it again, or give its path or web address.", error=True)
            return
        try:
            image = open_image(_NamedBytes(data, name))
        except BadImageError as err:
            self.say(str(err), error=True)
            return
        self.photo = name, image
        self.hints, self.selected = [], None
        self._prepared_key = self.current = None  # nothing of the last photo is clicked on
        picture = split_alpha(image)[0]
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        self.views["photo"].value = png_bytes(picture)
        shown = ("photo", "colour") if is_black_and_white(image) else ("photo", "grey", "colour")
        self.panels.children = [widgets.VBox([widgets.Label(self.view_titles[name]), self.views[name]])
                                for name in shown]
        self.render()

    # Colour.

    def gain(self) -> float:
        """The chroma gain for the colour strength: relative to the model's own."""
        return self.colorizer.chroma_gain * self.strength.value

    def _prepare(self) -> tuple[Prepared, Prepared]:
        """The photo ready for the network, and at the size it is shown: made again only when
        the photo, the detail or the contrast changes, never for a hint or the strength."""
        key = (id(self.photo), self.detail.value, self.restore_contrast.value)
        if key != self._prepared_key:
            image = self.photo[1]
            self._prepared = self.colorizer.prepare(image, self.colorizer.working_size(self.detail.value),
                                                    self.restore_contrast.value)
            shown = image.copy()
            shown.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
            self._preview = _preview_of(self._prepared, *shown.size)
            self._prepared_key, self._colours = key, {}
        return self._prepared, self._preview

    def _network_colour(self, prepared: Prepared, gain: float) -> np.ndarray:
        """The network's ab for the hints and gain: remembered, so removing a hint (or every
        hint) brings back the picture that was, without running the network."""
        key = (tuple(self.hints), gain) if self.hints else ()  # without hints the gain changes nothing
        if key not in self._colours:
            if len(self._colours) >= 16:
                self._colours.pop(next(iter(self._colours)))
            self._colours[key] = self.colorizer.predict(prepared, self.hints or None, gain)
        return self._colours[key]

    def render(self, _change=None) -> bool:
        """Colorize the photo on show with its hints, strength and contrast, and show it. The
        colour is finished at the size it is shown; the full-size photo only for the download."""
        if self.photo is None:
            return False
        name, image = self.photo
        try:
            prepared, preview = self._prepare()
            gain = self.gain()
            ab = self._network_colour(prepared, gain)
        except HintError as err:
            self.say(str(err), error=True)
            return False
        except ValueError as err:  # BadImageError among them
            self.say(f"{name}: {err}", error=True)
            return False
        self.current = prepared, ab, gain
        self.views["colour"].value = png_bytes(self._with_markers(self.colorizer.finish(preview, ab, gain)))
        if len(self.panels.children) == 3:
            self.views["grey"].value = png_bytes(self.colorizer.finish(preview, ab, 0.0))
        self._show_hints()
        self._offer_download()
        grey = len(self.panels.children) == 2
        self.say(f"{name} ({image.width} × {image.height})"
                 + (" in colour." if grey else " already has colour: the model colours its black-and-white version."))
        return True

    def result(self) -> Image.Image:
        """The colour photo at its full size, as the picture shows it."""
        prepared, ab, gain = self.current
        return self.colorizer.finish(prepared, ab, gain)

    def colour_at(self, x: int, y: int) -> str:
        """#rrggbb of the full-size result's pixel (x, y), made for that pixel alone: its row of
        colour resized as `Colorizer.finish` resizes it, on the row's own L."""
        prepared, ab, gain = self.current
        rows = photo_size_rows(ab * np.float32(AB_SCALE * gain), *prepared.light.shape)
        pixel = lab_to_srgb_u8(prepared.light[y:y + 1], lambda top, bottom: rows(y + top, y + bottom))[0, x]
        return "#{:02x}{:02x}{:02x}".format(*pixel)

    def _with_markers(self, picture: Image.Image) -> Image.Image:
        """The colour picture with a dot of each hint's colour where it is, ringed white and black."""
        if not self.hints:
            return picture
        picture = picture.copy()
        draw = ImageDraw.Draw(picture)
        width, height = self.photo[1].size
        for index, (x, y, colour) in enumerate(self.hints):
            cx, cy = (x + 0.5) * picture.width / width, (y + 0.5) * picture.height / height
            r = MARKER_RADIUS + (2 if index == self.selected else 0)
            draw.ellipse((cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1), fill="black")
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline="white", width=2)
        return picture

    # Hints.

    def on_photo_click(self, event: dict) -> None:
        """ipyevents' click on the colour picture: a hint at that point of the photo."""
        if self.photo is None or self.current is None:
            return
        shown_width, shown_height = self._preview.light.shape[::-1]
        if "dataX" in event:  # the picture's own pixels, whatever size the browser draws it at
            fx, fy = event["dataX"] / shown_width, event["dataY"] / shown_height
        else:
            fx, fy = event["relativeX"] / event["boundingRectWidth"], event["relativeY"] / event["boundingRectHeight"]
        width, height = self.photo[1].size
        self.add_hint(min(max(int(fx * width), 0), width - 1), min(max(int(fy * height), 0), height - 1))

    def add_hint(self, x: int, y: int) -> None:
        """A hint at the photo's pixel (x, y), of the colour the model gives there: the colour
        picker starts at it, and sets it."""
        if not self.colorizer.takes_hints:  # even at strength 0, where the network would not be asked
            self.say(NO_HINTS, error=True)
            return
        colour = self.colour_at(x, y)
        selected, self.selected = self.selected, len(self.hints)
        self.hints.append((x, y, colour))
        self._quiet_picker(colour)
        if not self.render():
            self.hints.pop()
            self.selected = selected
            self._show_hints()

    def select(self, index: int | None) -> None:
        """Let the colour picker set hint `index`, starting at its colour."""
        self.selected = index
        if index is not None:
            self._quiet_picker(self.hints[index][2])
        self._show_hints()

    def _quiet_picker(self, colour: str) -> None:
        self.picker.unobserve(self.on_pick, names="value")
        try:
            self.picker.value = colour
        finally:
            self.picker.observe(self.on_pick, names="value")

    def on_pick(self, change: dict) -> None:
        if self.selected is None:
            return
        x, y, _ = self.hints[self.selected]
        self.hints[self.selected] = (x, y, as_hex(change["new"]))
        self.render()

    def remove_hint(self, index: int) -> None:
        del self.hints[index]
        if self.selected is not None and self.selected >= index:
            self.selected = self.selected - 1 if self.selected > index else None
        if self.selected is None and self.hints:
            self.selected = len(self.hints) - 1
        if self.selected is not None:
            self._quiet_picker(self.hints[self.selected][2])
        self.render()

    def clear_hints(self, _button=None) -> None:
        self.hints, self.selected = [], None
        self.render()

    def _show_hints(self) -> None:
        """The hints, listed with their colours, each removable; the picker free when one is chosen."""
        if self.colorizer is None:
            return
        if self.click_events is None:
            self.hint_help.value = ("<i>Colour hints need ipyevents (pip install ipyevents) to hear "
                                    "clicks on the picture.</i>")
        elif not self.colorizer.takes_hints:
            self.hint_help.value = f"<i>{html.escape(NO_HINTS)}</i>"
        elif not self.hints:
            self.hint_help.value = ("<b>Colour hints:</b> none. Know a colour? Click the colour picture "
                                    "there, then set it with the picker.")
        else:
            count = f"{len(self.hints)} colour hint{'s' if len(self.hints) > 1 else ''}"
            self.hint_help.value = (f"<b>{count}.</b> The picker sets the one marked ▸; click another "
                                    "to set it instead.")
        self.picker.disabled = self.selected is None
        self.clear_hints_button.disabled = not self.hints
        rows = list(self.hint_list.children)
        for row in rows[len(self.hints):]:  # widgets live until closed: none left behind
            for part in row.children:
                part.close()
            row.close()
        rows = rows[:len(self.hints)]
        while len(rows) < len(self.hints):  # row i always shows hint i: made once, updated after
            index = len(rows)
            choose = widgets.Button(layout=widgets.Layout(width="auto"))
            choose.on_click(lambda _b, i=index: self.select(i))
            remove = widgets.Button(description="Remove", layout=widgets.Layout(width="auto"))
            remove.add_class("colorful-world-remove-hint")
            remove.on_click(lambda _b, i=index: self.remove_hint(i))
            rows.append(widgets.HBox([widgets.HTML(), choose, remove]))
        for index, (row, (x, y, colour)) in enumerate(zip(rows, self.hints)):
            swatch, choose, _ = row.children
            swatch.value = (f'<span style="display:inline-block;width:1.1em;height:1.1em;vertical-align:middle;'
                            f'border:1px solid #444;background:{colour}"></span>')
            choose.description = f"{'▸ ' if index == self.selected else ''}at ({x}, {y})"
        if len(rows) != len(self.hint_list.children):
            self.hint_list.children = rows

    # Strength and the download.

    def on_strength(self, change: dict) -> None:
        self.strength_label.value = strength_words(change["new"])
        self.render()

    def _offer_download(self) -> None:
        width, height = self.photo[1].size
        if width * height <= EAGER_DOWNLOAD_PIXELS:
            self.make_download()
        else:
            self.download.value = ""
            self.download_button.layout.display = None

    def make_download(self, _button=None) -> None:
        """A link that saves the full-size colour photo, named after the upload."""
        self.download.value = download_link(self.result(), f"{Path(self.photo[0]).stem}-colour.png")
        self.download_button.layout.display = "none"


def colorize_widget(colorizer: Colorizer | str | Path | None = None) -> ColorizeApp:
    """The colorize app, ready to display: a Colorizer, a model file, a run folder (its newest
    model), or None for the bundled model. A model that cannot be loaded is explained in the app."""
    return ColorizeApp(colorizer)
