"""colorful-world: turn black-and-white photographs into colour ones, faces first."""

__all__ = ["Colorizer"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Loaded on first use, so the command line starts without importing torch for every command.
    if name == "Colorizer":
        from colorful_world.inference.colorize import Colorizer
        return Colorizer
    raise AttributeError(f"module 'colorful_world' has no attribute {name!r}")
