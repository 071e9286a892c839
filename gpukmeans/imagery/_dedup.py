"""Exact de-duplication of integer pixel vectors.

Integer imagery has far fewer distinct pixel vectors than pixels (an 8-bit
RGB image has at most 2^24, usually tens of thousands). Each vector is packed
into one integer *key* (band values minus the band minimum, bit-concatenated,
first band most significant, so sorting keys sorts vectors lexicographically
like ``np.unique(axis=0)``). Counting keys gives the distinct vectors and their
pixel counts; clustering those vectors with ``sample_weight=counts`` is the
same problem as clustering every pixel. Keys of up to 24 bits are counted in a
dense table when the image is large enough for that to pay; otherwise (and for
keys of up to 64 bits) by sorting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._progress import Progress
from ._kernels import add_counts
from ._raster import Raster

DENSE_BITS = 24  # keys up to this many bits use a dense 2^bits table
_MERGE_EVERY = 1 << 23  # merge partial uniques when this many accumulate


@dataclass(frozen=True)
class PixelCodec:
    """Invertible packing of integer pixel vectors into ``uint32``/``uint64`` keys.

    Attributes
    ----------
    mins : ndarray of shape (bands,)
        Value subtracted from each band.
    widths : tuple of int
        Bits given to each band.
    dtype : numpy dtype
        Dtype of the pixel values (restored by :meth:`decode`).
    """

    mins: np.ndarray
    widths: tuple[int, ...]
    dtype: np.dtype

    @property
    def bits(self) -> int:
        return int(sum(self.widths))

    @property
    def dense(self) -> bool:
        return self.bits <= DENSE_BITS

    @property
    def key_dtype(self) -> np.dtype:
        return np.dtype(np.uint32 if self.bits <= 32 else np.uint64)

    @classmethod
    def for_raster(cls, raster: Raster, valid_blocks=None) -> PixelCodec | None:
        """A codec for ``raster``'s values, or ``None`` (float data, or more than 64 bits needed).

        8-bit data needs no pass over the pixels; wider integers are scanned
        once (``valid_blocks``: an iterable of ``(pixels, valid)`` pairs) for
        each band's range.
        """
        dtype = raster.data.dtype
        if dtype.kind not in "ui":
            return None
        n_bands = raster.n_bands
        if dtype.itemsize == 1:
            info = np.iinfo(dtype)
            return cls(np.full(n_bands, info.min, dtype=np.int64), (8,) * n_bands, dtype)
        lo = np.full(n_bands, np.iinfo(np.int64).max)
        hi = np.full(n_bands, np.iinfo(np.int64).min)
        for pixels, valid in valid_blocks:
            if valid.any():
                v = pixels[valid]
                lo = np.minimum(lo, v.min(axis=0))
                hi = np.maximum(hi, v.max(axis=0))
        if np.any(lo > hi):  # no valid pixel at all
            return None
        widths = tuple(max(1, int(r).bit_length()) for r in (hi - lo))
        if sum(widths) > 64:
            return None
        return cls(lo.astype(np.int64), widths, dtype)

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """Keys of a ``(n, bands)`` block of pixels."""
        kd = self.key_dtype
        keys = np.zeros(pixels.shape[0], dtype=kd)
        for band, width in enumerate(self.widths):
            col = pixels[:, band]
            if self.mins[band] != 0:
                col = col.astype(np.int64) - self.mins[band]
            keys <<= kd.type(width)
            keys |= col.astype(kd, copy=False)
        return keys

    def decode(self, keys: np.ndarray) -> np.ndarray:
        """Pixel vectors ``(n, bands)`` of ``keys``, in the original dtype."""
        keys = keys.astype(self.key_dtype, copy=True)
        out = np.empty((keys.shape[0], len(self.widths)), dtype=self.dtype)
        for band in range(len(self.widths) - 1, -1, -1):
            width = self.widths[band]
            out[:, band] = ((keys & self.key_dtype.type((1 << width) - 1)).astype(np.int64) + self.mins[band]).astype(
                self.dtype
            )
            keys >>= self.key_dtype.type(width)
        return out


@dataclass
class DistinctPixels:
    """The distinct valid pixel vectors of a raster and how many pixels hold each.

    Attributes
    ----------
    codec : PixelCodec
    keys : ndarray of shape (n_distinct,)
        Sorted keys.
    counts : int64 ndarray of shape (n_distinct,)
    """

    codec: PixelCodec
    keys: np.ndarray
    counts: np.ndarray
    table: bool = False  # use dense 2^bits lookup tables
    _lut: np.ndarray | None = None

    @property
    def n_distinct(self) -> int:
        return int(self.keys.shape[0])

    @property
    def n_pixels(self) -> int:
        return int(self.counts.sum())

    def values(self) -> np.ndarray:
        """``(n_distinct, bands)`` vectors, sorted lexicographically."""
        return self.codec.decode(self.keys)

    def index(self, keys: np.ndarray) -> np.ndarray:
        """Position of each of ``keys`` (all present) in :attr:`keys`."""
        if self.table:
            if self._lut is None:
                self._lut = np.zeros(1 << self.codec.bits, dtype=np.int32)
                self._lut[self.keys] = np.arange(self.n_distinct, dtype=np.int32)
            return self._lut[keys]
        return np.searchsorted(self.keys, keys)

    def label_lookup(self, labels: np.ndarray):
        """A function mapping keys to ``labels[index(keys)]`` (a dense table when possible)."""
        labels = np.asarray(labels)
        if self.table:
            table = np.full(1 << self.codec.bits, -1, dtype=labels.dtype)
            table[self.keys] = labels
            return lambda keys: table[keys]
        return lambda keys: labels[np.searchsorted(self.keys, keys)]


def count_distinct(
    codec: PixelCodec,
    blocks,
    n_blocks: int,
    n_pixels: int,
    *,
    max_distinct: int | None = None,
    progress: bool | None = None,
) -> DistinctPixels | None:
    """Count the distinct valid pixel vectors of ``blocks`` (``(pixels, valid)`` pairs).

    ``n_pixels`` (the total, an upper bound) decides between a dense table
    (short keys, at least ``2^bits / 8`` pixels) and sorting. Returns ``None``
    as soon as more than ``max_distinct`` distinct vectors are found
    (de-duplication would not pay).
    """
    table = codec.dense and n_pixels >= (1 << codec.bits) // 8
    dense_counts = np.zeros(1 << codec.bits, dtype=np.int64) if table else None
    parts_k: list[np.ndarray] = []
    parts_c: list[np.ndarray] = []
    pending = 0
    with Progress(n_blocks, "count colours", enabled=progress) as bar:
        for pixels, valid in blocks:
            keys = codec.encode(pixels[valid] if not valid.all() else pixels)
            if dense_counts is not None:
                add_counts(keys, dense_counts)
            else:
                k, c = np.unique(keys, return_counts=True)
                parts_k.append(k)
                parts_c.append(c)
                pending += k.shape[0]
                if pending > _MERGE_EVERY:
                    parts_k, parts_c = _merge(parts_k, parts_c)
                    pending = parts_k[0].shape[0]
                    if max_distinct is not None and pending > max_distinct:
                        return None
            bar.update()
    if dense_counts is not None:
        keys = np.flatnonzero(dense_counts).astype(codec.key_dtype)
        counts = dense_counts[keys]
    else:
        (keys,), (counts,) = (
            _merge(parts_k, parts_c) if parts_k else ([np.empty(0, codec.key_dtype)], [np.empty(0, np.int64)])
        )
    if max_distinct is not None and keys.shape[0] > max_distinct:
        return None
    return DistinctPixels(codec, keys, counts.astype(np.int64), table)


def _merge(parts_k: list[np.ndarray], parts_c: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    keys = np.concatenate(parts_k)
    counts = np.concatenate(parts_c)
    merged, inverse = np.unique(keys, return_inverse=True)
    return [merged], [np.bincount(inverse, weights=counts, minlength=merged.shape[0]).astype(np.int64)]
