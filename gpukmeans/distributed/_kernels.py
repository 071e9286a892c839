"""Serial numba kernels for the exact distributed weighted median.

Each runs on one chunk inside one Dask task (Dask parallelises across chunks)
and returns small per-chunk statistics that the client reduces:

- :func:`radix_hist` - one 8-bit digit of a radix select on the sortable bit
  pattern of float32/float64 values: per ``(cluster, feature)`` a 256-bin
  histogram of the weights of the values whose higher digits match the prefix
  already selected. 4 passes (float32) or 8 passes (float64) pin down the exact
  weighted median, whatever the values.
- :func:`min_above` - smallest member value above a given value, for the
  midpoint rule when the cumulative weight reaches exactly half.

Samples of weight 0 are ignored, as in the in-memory median kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(inline="always")
def _key(b, sign, full):
    """Unsigned key ordered like the float whose bit pattern is ``b`` (-0.0 counts as +0.0)."""
    if b == sign:  # -0.0
        b = np.uint64(0)
    if b & sign:
        return (~b) & full
    return b | sign


@njit(nogil=True, cache=True)
def radix_hist(U, sample_weight, labels, nbits, shift, prefix, hist):
    """Accumulate one radix digit of the member values of each (cluster, feature).

    IN: U (n_samples, n_features) uint32 or uint64, the bit view of float32/float64 X;
    sample_weight (n_samples,); labels (n_samples,) int32; nbits (32 or 64);
    shift (bit position of the digit); prefix (n_clusters, n_features) uint64, the
    key bits above the digit already selected (ignored for the top digit).
    INOUT: hist (n_clusters, n_features, 256) float64.
    """
    n_samples, n_features = U.shape
    sign = np.uint64(1) << np.uint64(nbits - 1)
    full = (sign - np.uint64(1)) | sign
    top = shift + 8 >= nbits
    high = np.uint64(shift + 8) if not top else np.uint64(0)
    low = np.uint64(shift)
    for i in range(n_samples):
        wi = np.float64(sample_weight[i])
        if wi > 0:
            j = labels[i]
            for f in range(n_features):
                key = _key(np.uint64(U[i, f]), sign, full)
                if top or (key >> high) == prefix[j, f]:
                    hist[j, f, np.int64((key >> low) & np.uint64(255))] += wi


@njit(nogil=True, cache=True)
def min_above(X, sample_weight, labels, values, out):
    """out[j, f] = min(out[j, f], smallest X[i, f] > values[j, f] over members i of j with w_i > 0).

    IN: X (n_samples, n_features) float; sample_weight; labels int32;
    values (n_clusters, n_features) float64. INOUT: out (n_clusters, n_features) float64.
    """
    n_samples, n_features = X.shape
    for i in range(n_samples):
        if sample_weight[i] > 0:
            j = labels[i]
            for f in range(n_features):
                v = np.float64(X[i, f])
                if v > values[j, f] and v < out[j, f]:
                    out[j, f] = v


def key_to_value(keys: np.ndarray, nbits: int) -> np.ndarray:
    """Inverse of the sortable-key map: uint64 keys -> float64 values (exactly the stored floats)."""
    keys = np.asarray(keys, dtype=np.uint64)
    sign = np.uint64(1) << np.uint64(nbits - 1)
    full = np.uint64((1 << nbits) - 1)
    bits = np.where(keys & sign, keys ^ sign, (~keys) & full)
    if nbits == 32:
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return bits.view(np.float64).copy()
