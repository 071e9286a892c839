"""Reading JPEG/PNG (Pillow), GeoTIFF (rasterio, optional) and ``.npy`` into a :class:`Raster`.

The format is recognised from the file's first bytes, not its extension.
Pillow images are converted only when nothing is lost (palette to RGB, 1-bit
to 8-bit, alpha to a validity mask); anything else is refused with a message.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from typing import Any

import numpy as np

from ._errors import ImageryError
from ._raster import Raster, Window, shift_transform

_PIL_NATIVE = {"L", "RGB", "I;16", "I;16L", "I;16B", "I", "F"}
_PIL_CONVERT = {"1": "L", "P": "RGB", "PA": "RGBA"}
_PIL_ALPHA = {"LA": "L", "RGBA": "RGB", "La": "L", "RGBa": "RGB"}


def _sniff(path: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if not head:
        raise ImageryError(f"{path}: file is empty.")
    return "pillow"


def read_image(
    path: str | os.PathLike,
    *,
    window: Any = None,
    nodata: float | None = None,
    band_names: Any = None,
    pixel_size: float | None = None,
    crs: str | None = None,
    transform: Any = None,
    band_axis: str | int = "auto",
) -> Raster:
    """Read an image file into a :class:`Raster`, optionally only a pixel window.

    Parameters
    ----------
    path : str or path-like
        JPEG, PNG (or anything else Pillow reads), GeoTIFF (needs rasterio:
        ``pip install gpukmeans[geo]``) or ``.npy``.
    window : str, Window, pair of slices or (r0, r1, c0, c1), optional
        Crop, in NumPy order: ``"140:600,110:500"`` is ``img[140:600, 110:500]``.
        GeoTIFFs read only the window from disk.
    nodata : float, optional
        Overrides the file's nodata value.
    band_names : sequence of str, optional
        Overrides the band names (GeoTIFF band descriptions by default).
    pixel_size : float, optional
        Ground pixel size in metres, used for areas (overrides georeferencing).
    crs, transform : optional
        Georeferencing for files that carry none (JPEG/PNG/.npy), or to
        override the file's; the transform is that of the full image and is
        shifted by ``window``.
    band_axis : "auto", 0 or -1
        For 3-D ``.npy`` arrays: 0 means ``(bands, rows, cols)``, -1 means
        ``(rows, cols, bands)``; ``"auto"`` takes axis 0 as bands when it is the
        shortest axis and at most 64 long. 2-D arrays are one band.

    Returns
    -------
    Raster

    Raises
    ------
    ImageryError
        Missing, truncated or corrupt file; unsupported pixel mode; bad window.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageryError(f"{path}: no such file.")
    kind = _sniff(path)
    if kind == "npy":
        raster = _read_npy(path, band_axis)
    elif kind == "tiff":
        raster = _read_geotiff(path, Window.coerce(window))
        window = None  # already applied while reading
    else:
        if kind == "png":
            _refuse_16bit_colour_png(path)
        raster = _read_pillow(path)
    if crs is not None:
        raster.crs = str(crs)
    if transform is not None:
        raster.transform = _parse_transform(transform)
    if nodata is not None:
        raster.nodata = float(nodata)
    if pixel_size is not None:
        raster.pixel_size = float(pixel_size)
    if band_names is not None:
        names = band_names.split(",") if isinstance(band_names, str) else list(band_names)
        raster.band_names = tuple(n.strip() for n in names)
    raster.__post_init__()  # re-validate the overrides
    return raster.crop(window)


def _parse_transform(transform: Any) -> tuple[float, ...]:
    if isinstance(transform, str):
        parts = transform.replace(" ", "").split(",")
        try:
            transform = [float(p) for p in parts]
        except ValueError:
            raise ImageryError(f"transform {transform!r} must be 6 comma-separated numbers a,b,c,d,e,f.") from None
    values = tuple(float(v) for v in list(transform)[:6])
    if len(values) != 6 or not all(np.isfinite(values)):
        raise ImageryError(f"transform must be 6 finite numbers (a, b, c, d, e, f); got {transform!r}.")
    return values


def _read_npy(path: str, band_axis: str | int) -> Raster:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageryError(f"{path}: not a readable .npy array ({exc}).") from None
    if data.ndim == 3:
        if band_axis == "auto":
            band_axis = 0 if (data.shape[0] <= 64 and data.shape[0] < min(data.shape[1:])) else -1
        if band_axis not in (0, -1):
            raise ImageryError(f"band_axis must be 'auto', 0 or -1; got {band_axis!r}.")
        if band_axis == 0:
            data = np.moveaxis(data, 0, -1)
    return Raster(data, source=path)


def _refuse_16bit_colour_png(path: str) -> None:
    """Pillow reads 16-bit colour PNGs as 8-bit without telling: refuse them instead."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise ImageryError(f"{path}: corrupt PNG (no IHDR header).")
    bit_depth, colour_type = struct.unpack(">BB", head[24:26])
    if bit_depth == 16 and colour_type in (2, 4, 6):
        raise ImageryError(
            f"{path}: 16-bit colour PNG is not supported (Pillow would silently cut it to 8 bits); "
            "save it as GeoTIFF or .npy, or convert it to 8-bit first."
        )


def _read_pillow(path: str) -> Raster:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # raises on truncated or corrupt data
            if getattr(im, "n_frames", 1) > 1:
                raise ImageryError(f"{path}: has {im.n_frames} frames; only single-frame images are supported.")
            mode = im.mode
            if mode in _PIL_CONVERT:
                if mode == "P" and "transparency" in im.info:
                    im = im.convert("RGBA")
                else:
                    im = im.convert(_PIL_CONVERT[mode])
            mode = im.mode
            mask = None
            if mode in _PIL_ALPHA:
                rgba = np.asarray(im)
                mask = rgba[..., -1] > 0
                data = np.ascontiguousarray(rgba[..., :-1])
            elif mode in _PIL_NATIVE:
                data = np.asarray(im)
                if mode.startswith("I;16"):
                    data = data.astype(np.uint16)
            else:
                raise ImageryError(
                    f"{path}: pixel mode {mode!r} is not supported; convert it to RGB, grayscale or 16-bit grayscale."
                )
    except UnidentifiedImageError:
        raise ImageryError(f"{path}: not a recognised image file (JPEG, PNG, GeoTIFF or .npy).") from None
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as exc:
        if isinstance(exc, ImageryError):
            raise
        raise ImageryError(f"{path}: cannot be read, the file is truncated or corrupt ({exc}).") from None
    except Image.DecompressionBombError as exc:
        raise ImageryError(f"{path}: {exc} Save very large images as GeoTIFF or .npy instead.") from None
    return Raster(data, mask=mask, source=path)


def _read_geotiff(path: str, window: Window | None) -> Raster:
    try:
        import rasterio
        import rasterio.errors
        from rasterio.enums import ColorInterp, MaskFlags
        from rasterio.windows import Window as RioWindow
    except ImportError:
        raise ImageryError(
            f"{path}: reading GeoTIFF needs rasterio; install it with pip install 'gpukmeans[geo]'."
        ) from None
    try:
        with warnings.catch_warnings(), rasterio.open(path) as ds:
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            rio_window = None
            if window is not None:
                r0, r1, c0, c1 = window.resolve(ds.height, ds.width)
                rio_window = RioWindow(c0, r0, c1 - c0, r1 - r0)
            # An alpha band becomes the validity mask, unless the file has a nodata value: GDAL then ignores
            # the alpha for masking, and 4-band R,G,B,NIR files written as "RGBA" are common.
            has_nodata = any(v is not None for v in ds.nodatavals)
            bands = [i + 1 for i, ci in enumerate(ds.colorinterp) if has_nodata or ci != ColorInterp.alpha] or [1]
            data = ds.read(bands, window=rio_window)
            transform = tuple(ds.transform)[:6]
            if rio_window is not None:
                transform = shift_transform(transform, r0, c0)
            flags = [ds.mask_flag_enums[i - 1] for i in bands]
            uses_mask = len(bands) < ds.count or (
                not has_nodata and any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)
            )
            mask = ds.dataset_mask(window=rio_window) > 0 if uses_mask else None
            nodatavals = [ds.nodatavals[i - 1] for i in bands]
            descriptions = [ds.descriptions[i - 1] for i in bands]
            crs = ds.crs.to_string() if ds.crs is not None else None
            georeferenced = not ds.transform.is_identity or crs is not None
    except ImageryError:
        raise
    except Exception as exc:  # rasterio raises RasterioIOError, CPLE_* errors and others
        raise ImageryError(f"{path}: cannot be read, the file is truncated or corrupt ({exc}).") from None
    nodata: Any = None
    if any(v is not None for v in nodatavals):
        values = tuple(float("nan") if v is None else float(v) for v in nodatavals)
        nodata = values[0] if len(set(values)) == 1 else values
    names = tuple(descriptions) if all(descriptions) else None
    return Raster(
        np.ascontiguousarray(np.moveaxis(data, 0, -1)),
        crs=crs,
        transform=transform if georeferenced else None,
        nodata=nodata,
        mask=mask,
        band_names=names,
        source=path,
        meta={"format": "GTiff"},
    )
