"""KMeans.fit / predict / transform / score on Dask arrays (called by :class:`gpukmeans.KMeans`)."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask import delayed
from dask.array.utils import meta_from_array

from .. import _init
from .._driver import LloydResult, lloyd
from .._validation import (
    NotFittedError,
    check_distance_range,
    check_kind_and_shape,
    check_random_state,
    check_total_weight,
    float_dtype_for,
    join_ranges,
)
from ..backends import get_backend
from ._backend import DaskBackend, DaskData, DaskWeights, _limit_threads
from ._chunks import full_labels, host, kernels_for, prep, prep_x
from ._scheduler import ensure_scheduler, threads_per_host

#: Below this many samples the initialisation sees every sample (so it draws exactly what the
#: in-memory fit draws for the same seed); above it, a uniform sample of this size.
INIT_SAMPLE_SIZE = 1 << 17
_INITS = ("k-means++", "random", "k-means||")


# ------------------------------------------------------------------ validation
def check_dask_array(X: Any, name: str = "X"):
    """Validate a 2-D Dask array and return it with one chunk along the features (rows chunked as given)."""
    if not isinstance(X, da.Array):
        if not hasattr(X, "to_dask_array"):
            raise TypeError(f"{name} is a {type(X).__name__}; expected a dask.array.Array or a Dask DataFrame.")
        X = X.to_dask_array(lengths=True)
    if X.ndim == 2 and any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    check_kind_and_shape(X, name)
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def _weights_array(sample_weight, X):
    """sample_weight as a Dask array with the row chunks of X (None stays None)."""
    if sample_weight is None:
        return None
    n = X.shape[0]
    if np.isscalar(sample_weight):
        sample_weight = np.full(n, sample_weight, dtype=np.float64)
    if not isinstance(sample_weight, da.Array):
        sample_weight = np.asarray(sample_weight)
    if np.dtype(sample_weight.dtype).kind not in "fiub":
        raise TypeError(f"sample_weight must hold real numbers; got dtype {sample_weight.dtype}.")
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},) to match X; got {tuple(sample_weight.shape)}.")
    if isinstance(sample_weight, da.Array):
        return sample_weight.rechunk((X.chunks[0],))
    return da.from_array(sample_weight, chunks=(X.chunks[0],))


def _stats_chunk(Xc, wc, dtype, check_weights):
    """Pass 1 over a chunk: finiteness, weights, weighted sums for the mean of X, least and greatest value.

    Returns ``(finite, weights finite, negative weights, positive weights,
    total weight, weighted sums of X, (lo, hi))``; NumPy statistics.
    """
    is_float = np.dtype(Xc.dtype).kind == "f"
    Xc, wc, kernels = prep(Xc, wc, dtype)
    xp = kernels.xp
    finite = bool(xp.isfinite(Xc).all()) if is_float else True
    w_ok = (not check_weights) or bool(xp.isfinite(wc).all())
    negative = bool((wc < 0).any()) if check_weights else False
    w64 = wc.astype(xp.float64)
    xsum = host(w64 @ Xc.astype(xp.float64)) if finite and w_ok and Xc.shape[0] else np.zeros(Xc.shape[1])
    value_range = (float(Xc.min()), float(Xc.max())) if finite and Xc.size else (np.inf, -np.inf)
    return finite, w_ok, negative, int((wc > 0).sum()), float(w64.sum()), xsum, value_range


def _var_chunk(Xc, wc, dtype, mean):
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros(Xc.shape[1])
    xp = kernels.xp
    return host(wc.astype(xp.float64) @ (Xc.astype(xp.float64) - xp.asarray(mean)) ** 2)


def _check_params(est):
    """The estimator's own parameter checks ("k-means||" is accepted here only)."""
    probe = copy.copy(est)
    if isinstance(est.init, str) and est.init == "k-means||":
        probe.init = "k-means++"
    if isinstance(est.backend, str) and est.backend.lower() not in ("auto", "cpu", "numba"):
        raise ValueError(
            f"backend={est.backend!r} is not available for Dask arrays: each chunk runs on the backend of its "
            "array type (NumPy chunks on 'cpu', CuPy chunks on 'cuda'); leave backend='auto'."
        )
    probe.backend = "cpu"
    return probe._check_params(None)


# ------------------------------------------------------------------ fit
def fit(est, X, sample_weight=None):
    """:meth:`KMeans.fit` for a ``dask.array.Array`` (see :mod:`gpukmeans.distributed`)."""
    config = _check_params(est)
    metric, rule = config.metric, config.rule
    ensure_scheduler()
    X = check_dask_array(X)
    dtype = float_dtype_for(X)
    n_samples, n_features = (int(s) for s in X.shape)
    if est.n_clusters > n_samples:
        raise ValueError(f"n_clusters={est.n_clusters} is larger than the number of samples ({n_samples}).")
    w = _weights_array(sample_weight, X)
    if not isinstance(est.init, str) and not callable(est.init):
        est._check_init_array(est.init, _Shape(dtype, n_features), get_backend("cpu"))  # fail before any work

    X = X.persist()
    if w is not None:
        w = w.persist()
    data = DaskData(X, dtype)
    weights = DaskWeights(w, dtype, data.chunks)
    backend = DaskBackend(data, threads_per_host())

    stats = dask.compute(
        *[delayed(_stats_chunk)(x, wc, dtype, w is not None) for x, wc in zip(data.blocks, weights.blocks)]
    )
    if not all(s[0] for s in stats):
        raise ValueError("X contains NaN or infinity; remove or impute those values first.")
    if not all(s[1] for s in stats):
        raise ValueError("sample_weight contains NaN or infinity; remove or impute those values first.")
    if any(s[2] for s in stats):
        raise ValueError("sample_weight contains negative values; weights must be >= 0.")
    n_positive = sum(s[3] for s in stats)
    if n_positive == 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight.")
    if est.n_clusters > n_positive:
        raise ValueError(
            f"n_clusters={est.n_clusters} is larger than the number of samples with positive weight ({n_positive})."
        )
    if w is not None:
        check_total_weight(sum(s[4] for s in stats), dtype)
    x_range = join_ranges(*(s[6] for s in stats))
    check_distance_range(x_range, n_features, dtype, metric, n_samples=n_samples)
    if not isinstance(est.init, str) and not callable(est.init):
        est._check_init_array(est.init, _Shape(dtype, n_features), get_backend("cpu"), x_range, metric)
    tol = 0.0
    if est.tol != 0:
        total = sum(s[4] for s in stats)
        mean = sum(s[5] for s in stats) / total
        var = sum(
            dask.compute(*[delayed(_var_chunk)(x, wc, dtype, mean) for x, wc in zip(data.blocks, weights.blocks)])
        )
        tol = float(np.mean(var / total)) * float(est.tol)

    random_state = check_random_state(est.random_state)
    best: LloydResult | None = None
    for _ in range(config.n_init):
        centers = initial_centers(est, X, w, data, weights, backend, metric, random_state, x_range)
        if est.verbose:
            print("Initialization complete")
        result = lloyd(
            data,
            weights,
            centers,
            backend=backend,
            metric=metric,
            rule=rule,
            max_iter=est.max_iter,
            tol=tol,
            verbose=bool(est.verbose),
        )
        if best is None or result.objective < best.objective:
            best = result

    present = best.labels.present  # from the final assignment, when the driver made one
    if present is None:  # the run ended on the centers of its last assignment: count the labels
        present = backend.label_counts(best.labels, est.n_clusters) > 0
    n_distinct = int(np.count_nonzero(present))
    if n_distinct < est.n_clusters:
        from .._estimator import ConvergenceWarning

        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters "
            f"({est.n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )
    est.cluster_centers_ = np.asarray(best.centers, dtype=dtype)
    est.labels_ = best.labels.array.persist()
    est.inertia_ = float(best.objective)
    est.n_iter_ = best.n_iter
    est.history_ = best.history
    est.update_ = rule
    est.n_features_in_ = n_features
    est._backend, est._metric = get_backend("cpu"), metric
    return est


class _Shape:
    def __init__(self, dtype, n_features):
        self.dtype = np.dtype(dtype)
        self.shape = (0, n_features)


# ------------------------------------------------------------------ initialisation
def _sample(X, w, dtype, random_state, size):
    """(rows, weights, all) : every sample if ``n <= size``, else a uniform sample of ``size`` distinct rows."""
    n = X.shape[0]
    if n <= size:
        rows, ws = dask.compute(X.astype(dtype), w if w is not None else None)
        ws = np.ones(n, dtype=dtype) if ws is None else np.asarray(host(ws), dtype=dtype)
        return np.ascontiguousarray(host(rows), dtype=dtype), ws, True
    index = np.sort(random_state.choice(n, size=size, replace=False)) if n < (1 << 24) else None
    if index is None:  # choice without replacement permutes n: draw with replacement, drop repeats
        index = np.unique(random_state.randint(0, n, size=size))
    rows, ws = dask.compute(X[index].astype(dtype), w[index] if w is not None else None)
    ws = np.ones(len(index), dtype=dtype) if ws is None else np.asarray(host(ws), dtype=dtype)
    return np.ascontiguousarray(host(rows), dtype=dtype), ws, False


def initial_centers(est, X, w, data, weights, backend, metric, random_state, x_range):
    n_clusters, cpu = est.n_clusters, get_backend("cpu")
    init = est.init
    if isinstance(init, str) and init in ("k-means++", "random"):
        rows, ws, _ = _sample(X, w, data.dtype, random_state, max(INIT_SAMPLE_SIZE, 64 * n_clusters))
        if np.count_nonzero(ws > 0) < n_clusters:
            raise ValueError(
                f"The initialisation sample holds fewer than n_clusters={n_clusters} samples of positive weight; "
                "pass explicit initial centers (init=array)."
            )
        if init == "random":
            centers, _ = _init.random_init(rows, ws, n_clusters, backend=cpu, random_state=random_state)
        else:
            centers, _ = _init.kmeans_plusplus(
                rows, ws, n_clusters, backend=cpu, metric=metric, random_state=random_state
            )
        return centers
    if isinstance(init, str) and init == "k-means||":
        from ._init import kmeans_parallel

        return kmeans_parallel(data, weights, n_clusters, metric=metric, random_state=random_state, backend=backend)
    given = init(X.astype(data.dtype), n_clusters, random_state) if callable(init) else init
    if isinstance(given, da.Array):
        given = given.compute()
    return est._check_init_array(host(given), _Shape(data.dtype, data.shape[1]), cpu, x_range, metric)


# ------------------------------------------------------------------ predict / transform / score
def _check_fitted(est, X):
    if not hasattr(est, "cluster_centers_"):
        raise NotFittedError(f"This {type(est).__name__} instance is not fitted yet; call fit first.")
    X = check_dask_array(X)
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(est).__name__} is expecting {est.n_features_in_} features "
            "as input (the number it was fitted with)."
        )
    centers = np.ascontiguousarray(est.cluster_centers_)
    return X, centers, centers.dtype


def _check_chunk(Xc, centers, metric, dtype):
    """Refuse a chunk holding NaN or infinity (checked in the chunk's own memory and dtype), or values so far
    from the centers that their distances overflow ``dtype`` (see :func:`check_distance_range`)."""
    if np.dtype(Xc.dtype).kind == "f" and not bool(kernels_for(Xc).xp.isfinite(Xc).all()):
        raise ValueError("X contains NaN or infinity; remove or impute those values first.")
    if Xc.size:
        value_range = join_ranges((float(Xc.min()), float(Xc.max())), (float(centers.min()), float(centers.max())))
        check_distance_range(
            value_range, Xc.shape[1], dtype, metric, name="X with the fitted centers", n_samples=Xc.shape[0]
        )


def _predict_chunk(Xc, centers, metric, dtype, threads):
    _limit_threads(threads)
    _check_chunk(Xc, centers, metric, dtype)
    Xc, wc, kernels = prep(Xc, None, dtype)
    labels = full_labels(kernels, Xc.shape[0])
    if Xc.shape[0]:
        kernels.assign(Xc, wc, centers, metric.code, labels, False)
    return labels


def _transform_chunk(Xc, centers, metric, dtype, threads):
    _limit_threads(threads)
    _check_chunk(Xc, centers, metric, dtype)
    Xc, kernels = prep_x(Xc, dtype)
    if Xc.shape[0] == 0:
        return kernels.xp.empty((0, centers.shape[0]), dtype=dtype)
    terms = kernels.pairwise(Xc, centers, metric.code)
    return kernels.xp.sqrt(terms) if metric.squared_objective else terms


def predict(est, X):
    """Lazy labels: a Dask array of int32 with the row chunks of X (and their array type: NumPy or CuPy)."""
    X, centers, dtype = _check_fitted(est, X)
    return X.map_blocks(
        _predict_chunk,
        centers,
        est._metric,
        dtype,
        threads_per_host(),
        drop_axis=1,
        dtype=np.int32,
        meta=meta_from_array(X._meta, ndim=1, dtype=np.int32),
    )


def transform(est, X):
    """Lazy distances: a Dask array (n_samples, n_clusters) with the row chunks of X (and their array type)."""
    X, centers, dtype = _check_fitted(est, X)
    return X.map_blocks(
        _transform_chunk,
        centers,
        est._metric,
        dtype,
        threads_per_host(),
        chunks=(X.chunks[0], (centers.shape[0],)),
        dtype=dtype,
        meta=meta_from_array(X._meta, ndim=2, dtype=dtype),
    )


def _score_chunk(Xc, wc, centers, metric, dtype, threads):
    _limit_threads(threads)
    _check_chunk(Xc, centers, metric, dtype)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return 0.0
    objective, _, _ = kernels.assign(Xc, wc, centers, metric.code, full_labels(kernels, Xc.shape[0]), False)
    return float(objective)


def score(est, X, sample_weight=None):
    """Opposite of the weighted objective of X on the fitted centers."""
    X, centers, dtype = _check_fitted(est, X)
    w = _weights_array(sample_weight, X)
    ensure_scheduler()
    threads = threads_per_host()
    xb = list(X.to_delayed().ravel())
    wb = [None] * len(xb) if w is None else list(w.to_delayed().ravel())
    metric = est._metric
    parts = dask.compute(*[delayed(_score_chunk)(x, wc, centers, metric, dtype, threads) for x, wc in zip(xb, wb)])
    total = 0.0
    for p in parts:
        total += p
    return -total


__all__ = ["INIT_SAMPLE_SIZE", "fit", "predict", "transform", "score", "initial_centers", "check_dask_array"]
