"""Which pixels are valid: the nodata rule.

A pixel is masked (left out of the fit, labelled nodata in outputs) when:

- ``rule="all"`` (default): *every* band equals its nodata value. A water
  pixel that is 0 in one band only (SWIR over water, nodata 0) stays valid;
- ``rule="any"``: *any* band equals its nodata value (stricter; drops such
  pixels);
- ``rule="none"``: the nodata value is ignored;

and, whatever the rule, when any band is NaN or the raster's own mask (alpha
channel, GDAL dataset mask) marks it invalid.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._errors import ImageryError
from ._raster import Raster

NODATA_RULES = ("all", "any", "none")


def check_rule(rule: str) -> str:
    """Return ``rule`` if valid, else raise :class:`ImageryError`."""
    if rule not in NODATA_RULES:
        raise ImageryError(f"nodata rule must be one of {list(NODATA_RULES)}; got {rule!r}.")
    return rule


def valid_pixels(block: np.ndarray, nodata, rule: str = "all") -> np.ndarray:
    """Validity of each pixel of a ``(n, bands)`` block (True = valid).

    Parameters
    ----------
    block : ndarray of shape (n, bands)
    nodata : float, sequence of floats (one per band) or None
        A NaN entry means "this band has no nodata value"; a value the dtype
        cannot hold (-9999 in uint8) never matches.
    rule : {"all", "any", "none"}
    """
    valid = np.ones(block.shape[0], dtype=bool)
    if block.dtype.kind == "f":
        valid &= ~np.isnan(block).any(axis=1)
    if nodata is None or rule == "none":
        return valid
    values = np.broadcast_to(np.asarray(nodata, dtype=np.float64), (block.shape[1],))
    hit = np.full(block.shape[0], rule == "all")
    for band, value in enumerate(values):
        if not _representable(value, block.dtype):
            equal = np.zeros(block.shape[0], dtype=bool)
        else:
            equal = block[:, band] == block.dtype.type(value)
        hit = (hit & equal) if rule == "all" else (hit | equal)
    return valid & ~hit


def _representable(value: float, dtype: np.dtype) -> bool:
    if not np.isfinite(value):
        return False
    if np.dtype(dtype).kind == "f":
        return True
    info = np.iinfo(dtype)
    return info.min <= value <= info.max and value == round(value)


def iter_blocks(raster: Raster, rule: str, block_pixels: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(row_start, row_stop, pixels, valid)`` for blocks of whole rows.

    ``pixels`` is ``(n, bands)`` (a view when the data is contiguous) and
    ``valid`` its validity, so that memory stays bounded by ``block_pixels``.
    """
    check_rule(rule)
    rows_per_block = max(1, block_pixels // raster.width)
    for r0 in range(0, raster.height, rows_per_block):
        r1 = min(r0 + rows_per_block, raster.height)
        pixels = np.asarray(raster.data[r0:r1]).reshape(-1, raster.n_bands)
        valid = valid_pixels(pixels, raster.nodata, rule)
        if raster.mask is not None:
            valid &= np.asarray(raster.mask[r0:r1]).reshape(-1)
        yield r0, r1, pixels, valid


def valid_mask(raster: Raster, rule: str = "all", block_pixels: int = 1 << 22) -> np.ndarray:
    """``(rows, cols)`` boolean map of valid pixels (see the module docstring)."""
    out = np.empty((raster.height, raster.width), dtype=bool)
    for r0, r1, _, valid in iter_blocks(raster, rule, block_pixels):
        out[r0:r1] = valid.reshape(r1 - r0, raster.width)
    return out
