"""The :class:`Raster` container and pixel windows (crops)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._errors import ImageryError

Transform = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Window:
    """A pixel window ``rows[row_start:row_stop], cols[col_start:col_stop]`` (NumPy slicing order).

    ``None`` bounds mean "from the start" / "to the end", as in a slice.
    """

    row_start: int | None = None
    row_stop: int | None = None
    col_start: int | None = None
    col_stop: int | None = None

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``"r0:r1,c0:c1"`` (e.g. ``"140:600,110:500"``; bounds may be left empty).

        Raises
        ------
        ImageryError
            Malformed text.
        """
        m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*,\s*(\d*)\s*:\s*(\d*)\s*", text or "")
        if not m:
            raise ImageryError(f"window {text!r} is not of the form ROW0:ROW1,COL0:COL1 (e.g. 140:600,110:500).")
        r0, r1, c0, c1 = (int(g) if g else None for g in m.groups())
        return cls(r0, r1, c0, c1)

    @classmethod
    def coerce(cls, window: Any) -> Window | None:
        """Accept a Window, a string, a pair of slices or a 4-tuple ``(r0, r1, c0, c1)``."""
        if window is None or isinstance(window, Window):
            return window
        if isinstance(window, str):
            return cls.parse(window)
        if len(window) == 2 and all(isinstance(s, slice) for s in window):
            rows, cols = window
            if rows.step not in (None, 1) or cols.step not in (None, 1):
                raise ImageryError("window slices must have step 1.")
            return cls(rows.start, rows.stop, cols.start, cols.stop)
        if len(window) == 4:
            return cls(*window)
        raise ImageryError(f"window must be 'r0:r1,c0:c1', two slices or (r0, r1, c0, c1); got {window!r}.")

    def resolve(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Concrete bounds for an image of ``height`` x ``width``.

        Raises
        ------
        ImageryError
            Negative bounds, bounds outside the image, or an empty window.
        """
        r0 = 0 if self.row_start is None else int(self.row_start)
        r1 = height if self.row_stop is None else int(self.row_stop)
        c0 = 0 if self.col_start is None else int(self.col_start)
        c1 = width if self.col_stop is None else int(self.col_stop)
        if min(r0, r1, c0, c1) < 0 or r1 > height or c1 > width:
            raise ImageryError(
                f"window rows {r0}:{r1}, cols {c0}:{c1} is outside the image of {height} rows x {width} cols."
            )
        if r1 <= r0 or c1 <= c0:
            raise ImageryError(f"window rows {r0}:{r1}, cols {c0}:{c1} is empty.")
        return r0, r1, c0, c1


@dataclass
class Raster:
    """An image as a ``(rows, cols, bands)`` array plus what is known of its geometry.

    Parameters
    ----------
    data : ndarray of shape (rows, cols, bands)
        Pixel values (uint8, uint16, other integers or floats). May be a
        read-only memory map.
    crs : str, optional
        Coordinate reference system (``"EPSG:32618"`` or WKT); ``None`` if unknown.
    transform : tuple of 6 floats, optional
        Affine ``(a, b, c, d, e, f)`` mapping pixel ``(col, row)`` corners to CRS
        ``x = a*col + b*row + c``, ``y = d*col + e*row + f`` (rasterio's order).
    nodata : float or tuple of floats, optional
        Nodata value (one per band, or one for all).
    mask : bool ndarray of shape (rows, cols), optional
        ``False`` where a pixel is invalid regardless of nodata (alpha = 0, a
        GDAL dataset mask).
    band_names : tuple of str, optional
        One name per band (used by rules such as ``"darkest:NIR"``).
    pixel_size : float, optional
        Ground size of a (square) pixel in metres. When given it is used for
        areas instead of ``crs``/``transform``.
    source : str, optional
        Where the data came from (a path), for messages.
    """

    data: np.ndarray
    crs: str | None = None
    transform: Transform | None = None
    nodata: float | tuple[float, ...] | None = None
    mask: np.ndarray | None = None
    band_names: tuple[str, ...] | None = None
    pixel_size: float | None = None
    source: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = self.data
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim != 3:
            raise ImageryError(f"{self.name}: image must be 2-D or 3-D (rows, cols, bands); got shape {data.shape}.")
        if data.dtype.kind not in "uif":
            if data.dtype.kind == "b":
                data = data.astype(np.uint8)
            else:
                raise ImageryError(f"{self.name}: pixel type {data.dtype} is not supported (need integers or floats).")
        if 0 in data.shape:
            raise ImageryError(f"{self.name}: image is empty (shape {data.shape}).")
        self.data = data
        if self.transform is not None:
            self.transform = tuple(float(v) for v in self.transform)
            if len(self.transform) != 6:
                raise ImageryError(f"{self.name}: transform needs 6 numbers (a, b, c, d, e, f).")
        if self.band_names is not None:
            self.band_names = tuple(str(b) for b in self.band_names)
            if len(self.band_names) != self.n_bands:
                raise ImageryError(f"{self.name}: {len(self.band_names)} band names given for {self.n_bands} bands.")
        if self.mask is not None and self.mask.shape != data.shape[:2]:
            raise ImageryError(f"{self.name}: mask shape {self.mask.shape} does not match image {data.shape[:2]}.")
        if self.pixel_size is not None and not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise ImageryError(f"pixel size must be a positive number of metres; got {self.pixel_size!r}.")

    @property
    def name(self) -> str:
        """The source path, or ``"image"``."""
        return self.source or "image"

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    @property
    def n_bands(self) -> int:
        return int(self.data.shape[2])

    def crop(self, window: Any) -> Raster:
        """The pixels inside ``window`` (see :meth:`Window.coerce`), with the transform shifted to match."""
        win = Window.coerce(window)
        if win is None:
            return self
        r0, r1, c0, c1 = win.resolve(self.height, self.width)
        transform = shift_transform(self.transform, r0, c0)
        mask = None if self.mask is None else self.mask[r0:r1, c0:c1]
        return replace(self, data=self.data[r0:r1, c0:c1], transform=transform, mask=mask)


def shift_transform(transform: Transform | None, row_off: int, col_off: int) -> Transform | None:
    """Transform of a window starting at pixel ``(row_off, col_off)``."""
    if transform is None:
        return None
    a, b, c, d, e, f = transform
    return (a, b, c + a * col_off + b * row_off, d, e, f + d * col_off + e * row_off)


def as_raster(image: Any) -> Raster:
    """Wrap an array (``(rows, cols)`` or ``(rows, cols, bands)``) as a :class:`Raster`; pass Rasters through."""
    if isinstance(image, Raster):
        return image
    return Raster(np.asarray(image))
