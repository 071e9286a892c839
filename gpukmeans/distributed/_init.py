"""k-means|| (scalable k-means++, Bahmani et al. 2012) over the chunks of a Dask array."""

from __future__ import annotations

import dask
import numpy as np
from dask import delayed

from .. import _init
from ..backends import get_backend
from ._backend import _limit_threads
from ._chunks import full_labels, host, prep

# Each chunk runs on the kernels of its array type (NumPy: numba, CuPy: the CUDA backend); what comes back to
# the client (potentials, drawn rows, candidate weights) is NumPy, and the random draws are made on the host.


def _costs(Xc, wc, C, metric, kernels):
    labels = full_labels(kernels, Xc.shape[0])
    kernels.assign(Xc, wc, C, metric, labels, False)
    return kernels.point_costs(Xc, C, metric, labels).astype(kernels.xp.float64)


def _potential_chunk(Xc, wc, C, metric, dtype, threads):
    _limit_threads(threads)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return 0.0
    return float(wc.astype(kernels.xp.float64) @ _costs(Xc, wc, C, metric, kernels))


def _oversample_chunk(Xc, wc, C, metric, dtype, threads, factor, seed):
    """Rows drawn independently with probability min(1, factor * w_i * D(x_i)), as NumPy."""
    _limit_threads(threads)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return host(Xc[:0])
    costs = _costs(Xc, wc, C, metric, kernels)
    p = host(kernels.xp.minimum(1.0, factor * wc.astype(kernels.xp.float64) * costs))
    keep = np.random.default_rng(seed).random(Xc.shape[0]) < p
    return host(Xc[kernels.asarray(keep, bool)])


def _candidate_weights_chunk(Xc, wc, C, metric, dtype, threads):
    _limit_threads(threads)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros(C.shape[0])
    _, _, sums = kernels.assign(Xc, wc, C, metric, full_labels(kernels, Xc.shape[0]), True)
    return sums[:, -1]


def _chunk_weight(wc, n):
    return float(n) if wc is None else float(np.asarray(host(wc), dtype=np.float64).sum())


def _pick_in_chunk(Xc, wc, dtype, u):
    Xc, wc, _ = prep(Xc, wc, dtype)
    cdf = np.cumsum(host(wc).astype(np.float64))
    i = min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), Xc.shape[0] - 1)
    return host(Xc[i : i + 1]).copy()


def kmeans_parallel(data, weights, n_clusters, *, metric, random_state, backend, n_rounds=5, oversampling=2.0):
    """Initial centers by k-means|| in the chosen metric.

    The first candidate is a sample drawn with probability proportional to its
    weight; each of ``n_rounds`` rounds computes the potential
    ``phi = sum_i w_i D(x_i)`` to the candidates so far and adds every sample
    independently with probability ``min(1, l w_i D(x_i) / phi)``,
    ``l = oversampling * n_clusters``. The candidates, weighted by the total
    weight of the samples nearest to them, are reduced to ``n_clusters`` centers
    by weighted greedy k-means++ (:func:`gpukmeans._init.kmeans_plusplus`).

    Returns
    -------
    centers : (n_clusters, n_features) NumPy array, dtype of the fit
    """
    dtype, code, threads = data.dtype, metric.code, backend.threads
    pairs = list(zip(data.blocks, weights.blocks))
    chunk_w = (
        np.array([_chunk_weight(None, n) for n in data.chunks])
        if weights.array is None
        else np.array(dask.compute(*[delayed(_chunk_weight)(wc, n) for wc, n in zip(weights.blocks, data.chunks)]))
    )
    cdf = np.cumsum(chunk_w)
    c = min(int(np.searchsorted(cdf, random_state.random_sample() * cdf[-1], side="right")), len(cdf) - 1)
    while chunk_w[c] <= 0:  # guard against a draw landing on a weightless chunk through rounding
        c = (c + 1) % len(cdf)
    x, wc = pairs[c]
    C = delayed(_pick_in_chunk)(x, wc, dtype, random_state.random_sample()).compute()
    factor_l = oversampling * n_clusters
    for _ in range(n_rounds):
        phi = sum(dask.compute(*[delayed(_potential_chunk)(x, wc, C, code, dtype, threads) for x, wc in pairs]))
        if phi <= 0:
            break
        seeds = random_state.randint(0, 2**31 - 1, size=len(pairs))
        picked = dask.compute(
            *[
                delayed(_oversample_chunk)(x, wc, C, code, dtype, threads, factor_l / phi, int(s))
                for (x, wc), s in zip(pairs, seeds)
            ]
        )
        C = np.ascontiguousarray(np.concatenate([C, *picked]), dtype=dtype)
    cw = sum(dask.compute(*[delayed(_candidate_weights_chunk)(x, wc, C, code, dtype, threads) for x, wc in pairs]))
    if np.count_nonzero(cw > 0) < n_clusters:
        raise ValueError(
            f"k-means|| found only {np.count_nonzero(cw > 0)} distinct candidate centers for n_clusters={n_clusters} "
            "(too few distinct samples?); use init='k-means++' or explicit centers."
        )
    centers, _ = _init.kmeans_plusplus(
        C, cw.astype(dtype), n_clusters, backend=get_backend("cpu"), metric=metric, random_state=random_state
    )
    return centers
