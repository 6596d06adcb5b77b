"""Default places, chosen only when the user names none: Drive on Colab for what must outlive
the session (runs, the LFW archive), local disk for what is read often (photos, decoded cache)."""

import os
from pathlib import Path

COLAB_ROOT = Path("/content")
COLAB_DRIVE = COLAB_ROOT / "drive" / "MyDrive"
COLAB_ARCHIVE_CACHE = COLAB_DRIVE / "colorful_world" / "data"
COLAB_RUNS = COLAB_DRIVE / "colorful_world" / "runs"
COLAB_DATA = COLAB_ROOT / "data"
COLAB_CACHE = COLAB_ROOT / "cache" / "colorful_world"


def on_colab() -> bool:
    """Colab's runtime: it sets COLAB_RELEASE_TAG and has /content. colab/setup.sh asks the same
    two questions in bash (the package is not installed yet when it runs)."""
    return bool(os.environ.get("COLAB_RELEASE_TAG")) and COLAB_ROOT.is_dir()


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorful_world"


def decoded_cache_dir() -> Path:
    """Where decoded photos are cached: local disk, never Drive."""
    return COLAB_CACHE if on_colab() else user_cache_dir()
