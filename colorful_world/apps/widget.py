"""The colorize app for notebooks: upload a photo (or give a path or URL) and see
original | grey | colorized side by side, at a working size of your choice, with a download link.

Works with ipywidgets 7 (Colab ships 7.7.1) and 8. Anything wrong with a photo is said in the
app in one sentence, never raised as a traceback.
"""

import base64
import html
import io
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ipywidgets as widgets
import numpy as np
import requests
import torch
from PIL import Image

from colorful_world.nets.checkpoint import CheckpointError
from colorful_world.training.run_folder import find_model
from colorful_world.core.color import model_to_rgb, rgb_to_model
from colorful_world.inference.colorize import Colorizer
from colorful_world.io.images import BadImageError, open_image, split_alpha
from colorful_world.io.paths import on_colab
from colorful_world.io.png import png_bytes

PREVIEW_SIDE = 320  # the three previews fit side by side; the download keeps every pixel
URL_TIMEOUT_S = (10, 60)  # connect, then between bytes


def load_colorizer(source: Colorizer | str | Path | None) -> Colorizer:
    """A Colorizer as given, or loaded from a model file, a run folder, or None: the bundled model."""
    if isinstance(source, Colorizer):
        return source
    try:
        return Colorizer.from_checkpoint(find_model(source))
    except CheckpointError as err:
        if source:
            raise
        raise CheckpointError(f"{err}. Train one (notebooks/train.ipynb), then give its run folder "
                              "or its generator.safetensors.") from None


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, content) of each file in a FileUpload value, whichever ipywidgets made it."""
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": {...}, "content": bytes}}
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]  # 8: a tuple of dicts


def fetch(path_or_url: str) -> tuple[str, bytes]:
    """(name, content) of a photo on disk or on the web; OSError or RequestException if unreachable."""
    text = path_or_url.strip()
    if urlsplit(text).scheme in ("http", "https"):
        response = requests.get(text, timeout=URL_TIMEOUT_S)
        response.raise_for_status()
        return Path(unquote(urlsplit(text).path)).name or "photo", response.content
    path = Path(text).expanduser()
    return path.name, path.read_bytes()


class _NamedBytes(io.BytesIO):
    """Uploaded bytes that go by the file's name, so that an error message names the file."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__  # PIL names the file by its repr


def grey_of(image: Image.Image) -> Image.Image:
    """What the network sees: the photo's CIELAB lightness, with no colour."""
    rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    l_norm, ab = rgb_to_model(rgb)
    grey = model_to_rgb(l_norm, torch.zeros_like(ab))[0]
    return Image.fromarray((grey.permute(1, 2, 0) * 255 + 0.5).byte().numpy())


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
            f"Download {html.escape(name)} ({image.width}x{image.height})</a>")


def _size_slider(colorizer: Colorizer | None) -> widgets.IntSlider:
    """The network's working side: multiples of 2**depth, up to four times the training size."""
    label = {"description": "working size", "style": {"description_width": "initial"}}
    if colorizer is None:
        return widgets.IntSlider(**label)
    step = 2 ** colorizer.depth
    return widgets.IntSlider(value=colorizer.image_size, min=step, max=max(4 * colorizer.image_size, step),
                             step=step, continuous_update=False, **label)


class ColorizeApp(widgets.VBox):
    """The app's widgets and the photo on show. Built by `colorize_widget`."""

    def __init__(self, colorizer: Colorizer | str | Path | None = None):
        super().__init__()
        self.photo: tuple[str, Image.Image] | None = None  # (name, decoded photo) on show
        self.message = widgets.HTML()
        try:
            self.colorizer = load_colorizer(colorizer)
        except (ValueError, OSError) as err:
            self.colorizer = None
            self.say(str(err), error=True)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.path_or_url = widgets.Text(placeholder="or a path or URL of a photo",
                                        layout=widgets.Layout(width="420px"))
        self.open_button = widgets.Button(description="Open")
        self.working_size = _size_slider(self.colorizer)
        # The model's own chroma gain to start with; 0 is the grey photo, 2 twice its colour.
        self.colour_strength = widgets.FloatSlider(
            value=self.colorizer.chroma_gain if self.colorizer else 1.0, min=0.0, max=2.0, step=0.05,
            continuous_update=False, description="colour strength", style={"description_width": "initial"})
        self.views = {name: widgets.Image(format="png") for name in ("original", "grey", "colorized")}
        self.views["colorized"].add_class("colorful-world-colorized")  # a handle for browser tests
        self.download = widgets.HTML()
        self.colab_output = widgets.Output()
        self.children = self._layout()
        if self.colorizer is None:
            for control in (self.upload, self.path_or_url, self.open_button, self.working_size,
                            self.colour_strength):
                control.disabled = True
            return
        self.say(f"Model trained at {self.colorizer.image_size} px. Upload a photo.")
        self.upload.observe(self.on_upload, names="value")
        self.open_button.on_click(self.on_open)
        self.working_size.observe(self.render, names="value")
        self.colour_strength.observe(self.render, names="value")

    def _layout(self) -> list[widgets.Widget]:
        sources = [self.upload, self.path_or_url, self.open_button]
        if on_colab():
            # Colab's FileUpload delivers files of about 1 MB and more empty (ipywidgets #3452).
            colab_button = widgets.Button(description="Upload with Colab")
            colab_button.on_click(self.upload_with_colab)
            sources.insert(1, colab_button)
        panels = [widgets.VBox([widgets.Label(name), view]) for name, view in self.views.items()]
        return [widgets.HBox(sources), self.colab_output, widgets.HBox([self.working_size, self.colour_strength]),
                self.message,
                widgets.HBox(panels), self.download]

    def say(self, text: str, error: bool = False) -> None:
        style = "color:#b00020;font-weight:bold" if error else "color:inherit"
        self.message.value = f'<span style="{style}">{html.escape(text)}</span>'

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
        for name, data in list(chosen.items())[:1]:
            self.show(name, data)

    def show(self, name: str, data: bytes) -> None:
        """Decode an uploaded or fetched photo and colorize it; a bad one is reported."""
        if not data:
            self.say(f"{name} arrived empty. On Colab the Upload button loses photos of about 1 MB "
                     "and more: use 'Upload with Colab', or a path (say on your Drive) or a URL.",
                     error=True)
            return
        try:
            self.photo = name, open_image(_NamedBytes(data, name))
        except BadImageError as err:
            self.say(str(err), error=True)
            return
        self.render()

    def render(self, _change=None) -> None:
        """Colorize the photo on show at the chosen working size and fill the three views."""
        if self.photo is None:
            return
        name, image = self.photo
        try:
            colour = self.colorizer.colorize(image, size=self.working_size.value,
                                             chroma_gain=self.colour_strength.value)
        except ValueError as err:  # BadImageError among them
            self.say(f"{name}: {err}", error=True)
            return
        preview = split_alpha(image)[0]
        preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        self.views["original"].value = png_bytes(preview)
        self.views["grey"].value = png_bytes(grey_of(preview))
        self.views["colorized"].value = preview_png(colour, PREVIEW_SIDE)
        self.download.value = download_link(colour, f"{Path(name).stem}_colorized.png")
        self.say(f"{name}: {image.width}x{image.height}, colorized at {self.working_size.value} px "
                 f"(trained at {self.colorizer.image_size} px).")


def colorize_widget(colorizer: Colorizer | str | Path | None = None) -> ColorizeApp:
    """The colorize app, ready to display: a Colorizer, a model file, a run folder (its newest
    model), or None for the bundled model. A model that cannot be loaded is explained in the app."""
    return ColorizeApp(colorizer)
