"""Which runtime runs the network, by one rule for every door (colorize, serve, the widget, the
Python API). Imports neither torch nor numpy: the command line reads it to build its options."""

import importlib.util
from pathlib import Path

from colorful_world.io.errors import ConfigError

BACKENDS = ("auto", "torch", "onnx")  # what runs the network, as every door names it (--backend)
BACKEND_HELP = ("what runs the network: torch, or onnx (ONNX Runtime, faster on a CPU; the light install's); "
                "auto: onnx for an .onnx model, else torch where it is installed, else onnx (default: auto)")


def resolve_backend(backend: str, model: str | Path | None = None) -> str:
    """"torch" or "onnx" as given; "auto": ONNX Runtime for an .onnx `model`, else torch where it
    is installed, else ONNX Runtime (the light install, whose bundled model ships as .onnx too)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if model is not None and Path(model).suffix == ".onnx":
        return "onnx"
    try:
        return "torch" if importlib.util.find_spec("torch") else "onnx"
    except ImportError:  # an import hook that refuses torch: as good as not installed
        return "onnx"
