"""Small numba kernels for the imagery layer (compiled once, cached on disk)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def add_counts(keys, counts):
    """``counts[k] += 1`` for every key ``k`` (a dense histogram, in place, no temporaries)."""
    for i in range(keys.shape[0]):
        counts[keys[i]] += 1
