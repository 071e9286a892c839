"""Exceptions raised by :mod:`gpukmeans.imagery`."""

from __future__ import annotations


class ImageryError(ValueError):
    """Imagery that cannot be used as given: unreadable, unsupported or inconsistent.

    The message is one line that names the file or parameter and what to do.
    The command line prints it and exits with status 2.
    """


class GridMismatchError(ImageryError):
    """Two rasters that must share a pixel grid do not (shape, CRS or transform differ)."""
