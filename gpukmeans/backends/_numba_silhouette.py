"""numba kernels of the exact silhouette (:mod:`gpukmeans.silhouette`), CPU backend.

Both kernels compute the same thing from the per-cluster weighted sums of distances

    S[u, j] = sum_{v in cluster j} w[v] * d(Xq[u], Y[v])

reduced on the fly to the two numbers the silhouette needs per query (the sum
over its own cluster, and the smallest mean over the other clusters of positive
weight), so that neither a distance matrix nor ``S`` itself is ever held:

- :func:`pairwise_cluster_sums` (any metric) streams the reference points past
  a block of ``_BLOCK`` query points transposed into an L1-resident buffer; the
  inner loops run over the block (vectorised), one reference point at a time,
  and each cluster's sum is folded straight into the outputs. Memory:
  O(_BLOCK x n_features) per thread besides the O(n_queries) outputs.
- :func:`build_sorted` + :func:`sorted_cluster_sums` (manhattan only): the sum
  of ``|x_f - y_f|`` over a cluster separates by band, and for one band it is
  ``x W_< - P_< + P_> - x W_>`` where ``W`` and ``P`` are sums of weights and of
  weighted values below/above ``x``: a binary search in the band's sorted,
  merged values with prefix sums. O(n_features x log n) per (query, cluster).

Conventions (the caller, :mod:`gpukmeans.silhouette`, guarantees them so that
each kernel compiles exactly once):

- ``Xq`` and ``Y`` are C-contiguous float64 (float32 input is widened first, so
  every per-pair distance is computed in float64, like scikit-learn does on a
  float64 copy); ``w`` is float64; ``offsets`` is int64 of length
  ``n_clusters + 1`` and ``Y[offsets[j]:offsets[j + 1]]`` are the points of
  cluster ``j`` (the caller sorts them by cluster).
- ``metric`` is the integer code of :class:`gpukmeans.metrics.Metric` (0
  euclidean, 1 manhattan, 2 chebyshev); the branch in ``_term`` is
  loop-invariant and LLVM unswitches it out of the inner loops.
- Each output row is computed by one thread, in a fixed order that does not
  depend on the partition of the rows between threads: results are
  bit-identical whatever the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._numba_kernels import PRANGE_ONLY


@njit(inline="always")
def _term(metric, acc, diff):
    """Fold one coordinate difference into a distance accumulator (as in :mod:`._numba_kernels`).

    Defined here rather than imported: numba's disk cache of this module would
    not notice a change in another module's inlined function.
    metric 0 (euclidean): acc + diff**2; 1 (manhattan): acc + |diff|; 2 (chebyshev): max(acc, |diff|).
    """
    if metric == 0:
        return acc + diff * diff
    elif metric == 1:
        return acc + abs(diff)
    else:
        return max(acc, abs(diff))


_BLOCK = 64  # query points per block, transposed into an L1-resident buffer
_N_PARTS = 256  # parallel parts of the query rows (no cross-part reduction)


@njit(inline="always")
def _part(n, n_parts, c):
    return c * n // n_parts, (c + 1) * n // n_parts


@njit(nogil=True, cache=True)
def _load_block(X, b0, m, buf):
    """Copy rows ``b0 .. b0+m`` of X transposed into ``buf`` (n_features, _BLOCK); zero padding."""
    n_features = X.shape[1]
    for p in range(m):
        for f in range(n_features):
            buf[f, p] = X[b0 + p, f]
    for p in range(m, _BLOCK):
        for f in range(n_features):
            buf[f, p] = 0.0


@njit(nogil=True, cache=True)
def _block_sum(buf, Y, w, lo, hi, metric, dist, acc):
    """acc[p] = sum_{v = lo .. hi-1} w[v] * d(buffered query p, Y[v]) (float64, in order of v)."""
    n_features = buf.shape[0]
    for p in range(_BLOCK):
        acc[p] = 0.0
    for v in range(lo, hi):
        for p in range(_BLOCK):
            dist[p] = 0.0
        for f in range(n_features):
            y = Y[v, f]
            for p in range(_BLOCK):
                dist[p] = _term(metric, dist[p], buf[f, p] - y)
        wv = w[v]
        if metric == 0:
            for p in range(_BLOCK):
                acc[p] += wv * np.sqrt(dist[p])
        else:
            for p in range(_BLOCK):
                acc[p] += wv * dist[p]


@njit(inline="always")
def _fold(j, total, acc_value, q_label, own, nearest, u):
    """Fold the sum over cluster ``j`` into query ``u``'s own-cluster sum or nearest other-cluster mean."""
    if j == q_label:
        own[u] = acc_value
    elif total > 0:
        mean = acc_value / total
        if mean < nearest[u]:
            nearest[u] = mean


@njit(nogil=True, cache=True)
def _pairwise_range(Xq, q_labels, Y, w, offsets, cluster_w, metric, start, stop, own, nearest):
    n_features = Xq.shape[1]
    n_clusters = offsets.shape[0] - 1
    buf = np.empty((n_features, _BLOCK))
    dist = np.empty(_BLOCK)
    acc = np.empty(_BLOCK)
    for b0 in range(start, stop, _BLOCK):
        m = min(_BLOCK, stop - b0)
        _load_block(Xq, b0, m, buf)
        for j in range(n_clusters):
            _block_sum(buf, Y, w, offsets[j], offsets[j + 1], metric, dist, acc)
            for p in range(m):
                _fold(j, cluster_w[j], acc[p], q_labels[b0 + p], own, nearest, b0 + p)


@njit(parallel=PRANGE_ONLY, cache=True)
def pairwise_cluster_sums(Xq, q_labels, Y, w, offsets, cluster_w, metric):
    """Silhouette sums by brute force (all pairs, tiled), reduced straight per cluster.

    Parameters
    ----------
    Xq : (n_queries, n_features) float64
    q_labels : (n_queries,) int64
        Cluster of each query.
    Y : (n_points, n_features) float64, sorted by cluster
    w : (n_points,) float64
    offsets : (n_clusters + 1,) int64
    cluster_w : (n_clusters,) float64
        Total weight ``W_j`` of each cluster (of ``w`` over its points).
    metric : int

    Returns
    -------
    own : (n_queries,) float64
        ``S[u, q_labels[u]]`` where ``S[u, j] = sum_{v in cluster j} w[v] d(Xq[u], Y[v])``
        (true distance, not squared, for euclidean).
    nearest : (n_queries,) float64
        ``min_{j != q_labels[u], W_j > 0} S[u, j] / W_j`` (inf if there is no such cluster).
    """
    n_queries = Xq.shape[0]
    own = np.zeros(n_queries)
    nearest = np.full(n_queries, np.inf)
    n_blocks = (n_queries + _BLOCK - 1) // _BLOCK
    n_parts = max(1, min(_N_PARTS, n_blocks))
    for c in prange(n_parts):
        b_start, b_stop = _part(n_blocks, n_parts, c)
        _pairwise_range(
            Xq,
            q_labels,
            Y,
            w,
            offsets,
            cluster_w,
            metric,
            b_start * _BLOCK,
            min(n_queries, b_stop * _BLOCK),
            own,
            nearest,
        )
    return own, nearest


@njit(nogil=True, cache=True)
def _build_segment(Y, w, lo, hi, f, s0, vals, cum_w, cum_p):
    """Sorted, merged values of band ``f`` of rows ``lo .. hi-1`` and their prefix sums.

    Values equal after sorting are merged (their weights summed); zero weights
    are dropped. Values are stored shifted by the segment's middle value
    (returned) so that the prefix sums stay small: ``x W_< - P_<`` then cancels
    at the scale of the cluster's spread, not of the raw values.
    Returns (length, shift).
    """
    size = hi - lo
    if size == 0:
        return 0, 0.0
    values = np.empty(size)
    for r in range(size):
        values[r] = Y[lo + r, f]
    order = np.argsort(values, kind="mergesort")
    shift = values[order[size // 2]]
    n = 0
    total_w = 0.0
    total_p = 0.0
    last = 0.0
    for r in range(size):
        wr = w[lo + order[r]]
        if wr == 0.0:
            continue
        v = values[order[r]] - shift
        total_w += wr
        total_p += wr * v
        if n > 0 and v == last:
            cum_w[s0 + n - 1] = total_w
            cum_p[s0 + n - 1] = total_p
        else:
            vals[s0 + n] = v
            cum_w[s0 + n] = total_w
            cum_p[s0 + n] = total_p
            last = v
            n += 1
    return n, shift


@njit(parallel=PRANGE_ONLY, cache=True)
def build_sorted(Y, w, offsets):
    """Per (cluster, band) sorted merged values with prefix sums of weights and weighted values.

    Parameters
    ----------
    Y : (n_points, n_features) float64, sorted by cluster
    w : (n_points,) float64
    offsets : (n_clusters + 1,) int64

    Returns
    -------
    vals, cum_w, cum_p : (n_points * n_features,) float64
        Segment ``t = j * n_features + f`` occupies ``starts[t] .. starts[t] + lengths[t]``:
        sorted distinct values of band ``f`` in cluster ``j`` (minus ``shifts[t]``),
        inclusive prefix sums of their weights and of weight x value.
    starts, lengths : (n_clusters * n_features,) int64
    shifts : (n_clusters * n_features,) float64
    """
    n_points, n_features = Y.shape
    n_clusters = offsets.shape[0] - 1
    total = n_points * n_features
    vals = np.empty(total)
    cum_w = np.empty(total)
    cum_p = np.empty(total)
    n_seg = n_clusters * n_features
    starts = np.empty(n_seg, dtype=np.int64)
    lengths = np.empty(n_seg, dtype=np.int64)
    shifts = np.empty(n_seg)
    for t in prange(n_seg):
        j = t // n_features
        f = t % n_features
        lo, hi = offsets[j], offsets[j + 1]
        s0 = lo * n_features + f * (hi - lo)
        starts[t] = s0
        lengths[t], shifts[t] = _build_segment(Y, w, lo, hi, f, s0, vals, cum_w, cum_p)
    return vals, cum_w, cum_p, starts, lengths, shifts


@njit(nogil=True, cache=True)
def _count_le(vals, s0, n, x):
    """Number of ``vals[s0 : s0 + n]`` (sorted ascending) that are <= x."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if vals[s0 + mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(nogil=True, cache=True)
def _sorted_range(Xq, q_labels, cluster_w, vals, cum_w, cum_p, starts, lengths, shifts, start, stop, own, nearest):
    n_features = Xq.shape[1]
    n_clusters = cluster_w.shape[0]
    for u in range(start, stop):
        for j in range(n_clusters):
            acc = 0.0
            for f in range(n_features):
                t = j * n_features + f
                n = lengths[t]
                if n == 0:
                    continue
                s0 = starts[t]
                x = Xq[u, f] - shifts[t]
                i = _count_le(vals, s0, n, x)
                w_all = cum_w[s0 + n - 1]
                p_all = cum_p[s0 + n - 1]
                w_le = 0.0
                p_le = 0.0
                if i > 0:
                    w_le = cum_w[s0 + i - 1]
                    p_le = cum_p[s0 + i - 1]
                acc += (x * w_le - p_le) + ((p_all - p_le) - x * (w_all - w_le))
            _fold(j, cluster_w[j], acc, q_labels[u], own, nearest, u)


@njit(parallel=PRANGE_ONLY, cache=True)
def sorted_cluster_sums(Xq, q_labels, cluster_w, vals, cum_w, cum_p, starts, lengths, shifts):
    """Silhouette sums for manhattan from the :func:`build_sorted` tables.

    Same outputs as :func:`pairwise_cluster_sums` with ``metric=1``: ``own`` and
    ``nearest``, each (n_queries,) float64.
    """
    n_queries = Xq.shape[0]
    own = np.zeros(n_queries)
    nearest = np.full(n_queries, np.inf)
    n_parts = max(1, min(_N_PARTS, n_queries // 256))
    for c in prange(n_parts):
        start, stop = _part(n_queries, n_parts, c)
        _sorted_range(Xq, q_labels, cluster_w, vals, cum_w, cum_p, starts, lengths, shifts, start, stop, own, nearest)
    return own, nearest
