"""colorful-world: turn black-and-white photographs into colour ones, faces first."""

from colorful_world.colorize import Colorizer

__all__ = ["Colorizer"]
__version__ = "0.1.0"
