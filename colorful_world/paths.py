"""Default places, chosen only when the user names none: Drive on Colab for what must outlive
the session (runs, the LFW archive), local disk for what is read often (photos, decoded cache)."""

import os
import sys
from pathlib import Path

COLAB_DRIVE = Path("/content/drive/MyDrive")
COLAB_ARCHIVE_CACHE = COLAB_DRIVE / "colorful_world" / "data"
COLAB_RUNS = COLAB_DRIVE / "colorful_world" / "runs"
COLAB_DATA = Path("/content/data")
COLAB_CACHE = Path("/content/cache/colorful_world")


def on_colab() -> bool:
    """Whether this runs on Colab (the kernel imports google.colab; its shell sets the tag)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorful_world"


def decoded_cache_dir() -> Path:
    """Where decoded photos are cached: local disk, never Drive."""
    return COLAB_CACHE if on_colab() else user_cache_dir()


def default_run_dir() -> Path:
    """On Colab with Drive mounted, runs live on Drive so a disconnect loses nothing."""
    if on_colab() and COLAB_DRIVE.is_dir():
        return COLAB_RUNS / "faces"
    return Path("runs") / "faces"
