"""The silhouette engine of the CUDA backend (see ``_CPUEngine`` in :mod:`gpukmeans.silhouette`).

Same two methods, same arguments (host NumPy arrays, float64 points sorted by
cluster) and same results as the numba engine; the O(n²) work runs on the GPU.
"""

from __future__ import annotations

import numpy as np

from ._runtime import kernel, load_cupy

_THREADS = 128
_TILE = 256  # points per shared-memory tile (gks::TILE in silhouette.cu)


class CUDAEngine:
    """Silhouette kernels on the GPU (``backend="cuda"``)."""

    name = "cuda"

    @staticmethod
    def pairwise_sums(Xq, q_labels, Y, w, offsets, cluster_w, metric: int):
        """Brute force over all pairs, tiles of Y in shared memory (``silhouette.cu``)."""
        cp = load_cupy()
        n_q, d = Xq.shape
        k = offsets.shape[0] - 1
        own = cp.empty(n_q, dtype=cp.float64)
        nearest = cp.empty(n_q, dtype=cp.float64)
        if n_q == 0:
            return own.get(), nearest.get()
        D = d if d <= 8 else 0
        shared = _TILE * (d + 1) * 8
        fn = kernel(cp, "silhouette.cu", f"silhouette_sums_kernel<{metric}, {D}>", shared)
        args = (
            cp.asarray(Xq, dtype=cp.float64),
            cp.asarray(q_labels, dtype=cp.int64),
            np.int64(n_q),
            cp.asarray(Y, dtype=cp.float64),
            cp.asarray(w, dtype=cp.float64),
            cp.asarray(offsets, dtype=cp.int64),
            np.int32(k),
            cp.asarray(cluster_w, dtype=cp.float64),
            np.int32(d),
            own,
            nearest,
        )
        fn((-(-n_q // _THREADS),), (_THREADS,), args, shared_mem=shared)
        return own.get(), nearest.get()

    @staticmethod
    def sorted_sums(Xq, q_labels, Y, w, offsets, cluster_w):
        """Manhattan by per-(cluster, band) sorted values, prefix sums and binary searches (CuPy).

        ``sum_v w_v |x - y_v| = x W_< - P_< + (P - P_<) - x (W - W_<)`` with
        ``W_<``/``P_<`` the weight / weighted value of the points below ``x``;
        values are shifted by the cluster's middle value to keep the sums small.
        """
        cp = load_cupy()
        n_q, d = Xq.shape
        k = offsets.shape[0] - 1
        xq = cp.asarray(Xq, dtype=cp.float64)
        yd = cp.asarray(Y, dtype=cp.float64)
        wd = cp.asarray(w, dtype=cp.float64)
        q_lab = cp.asarray(q_labels, dtype=cp.int64)
        own = cp.zeros(n_q, dtype=cp.float64)
        nearest = cp.full(n_q, cp.inf, dtype=cp.float64)
        for j in range(k):
            lo, hi = int(offsets[j]), int(offsets[j + 1])
            if hi == lo:
                continue
            wj = wd[lo:hi]
            s = cp.zeros(n_q, dtype=cp.float64)
            for f in range(d):
                order = cp.argsort(yd[lo:hi, f])
                v = yd[lo:hi, f][order]
                shift = v[(hi - lo) // 2]
                v = v - shift
                ww = wj[order]
                cw = cp.concatenate([cp.zeros(1), cp.cumsum(ww)])
                cv = cp.concatenate([cp.zeros(1), cp.cumsum(ww * v)])
                x = xq[:, f] - shift
                pos = cp.searchsorted(v, x, side="right")
                w_lo, p_lo = cw[pos], cv[pos]
                s += x * w_lo - p_lo + (cv[-1] - p_lo) - x * (cw[-1] - w_lo)
            mine = q_lab == j
            own = cp.where(mine, s, own)
            if cluster_w[j] > 0:
                nearest = cp.where(mine, nearest, cp.minimum(nearest, s / float(cluster_w[j])))
        return own.get(), nearest.get()
