"""I/O helpers beside the engine: photos in, PNGs out, archives, downloads, paths, user errors. Imports nothing else of the package."""
