"""Shared helpers for the gpukmeans test suite: data generators and plain-NumPy references.

The references here are written independently of the package (plain NumPy and
scipy) so that the tests compare the package against something it does not share
code with. Test modules import them with ``from conftest import ...``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

#: metric name -> kernel code, as documented in gpukmeans.metrics
METRIC_CODES = {"euclidean": 0, "manhattan": 1, "chebyshev": 2}
#: kernel code -> scipy.spatial.distance.cdist metric giving the objective term
CDIST_TERM = {0: "sqeuclidean", 1: "cityblock", 2: "chebyshev"}
#: metric name -> scipy.spatial.distance.cdist metric giving the (true) distance
CDIST_DIST = {"euclidean": "euclidean", "manhattan": "cityblock", "chebyshev": "chebyshev"}
METRICS = tuple(METRIC_CODES)
FLOAT_DTYPES = (np.float32, np.float64)


def blobs(n, d, k, seed, dtype=np.float64, spread=4.0, std=1.0):
    """Gaussian blobs around ``k`` uniform centers in ``[-spread, spread]^d``: overlapping but separated."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-spread, spread, size=(k, d))
    labels = rng.integers(0, k, n)
    return (centers[labels] + std * rng.normal(size=(n, d))).astype(dtype)


def grid_blobs(n, d, k, seed, spread=4.0):
    """Blobs rounded to multiples of 1/4 (float64): coordinate differences, L1 and Linf sums are exact."""
    return np.round(blobs(n, d, k, seed, np.float64, spread) * 4.0) / 4.0


def pick_init(X, k, seed):
    """``k`` distinct rows of X (explicit initial centers)."""
    rng = np.random.default_rng(seed)
    return X[rng.choice(X.shape[0], k, replace=False)].copy()


def ref_terms(X, C, code):
    """(n, k) float64 objective terms by broadcasting: squared L2, L1 or Linf."""
    diff = np.asarray(X, np.float64)[:, None, :] - np.asarray(C, np.float64)[None, :, :]
    if code == 0:
        return (diff**2).sum(axis=2)
    if code == 1:
        return np.abs(diff).sum(axis=2)
    return np.abs(diff).max(axis=2)


def ref_weighted_sums(X, w, labels, k):
    """(k, d + 1) float64: weighted coordinate sums and cluster weights (np.add.at)."""
    X = np.asarray(X, np.float64)
    w = np.asarray(w, np.float64)
    out = np.zeros((k, X.shape[1] + 1))
    np.add.at(out[:, :-1], labels, X * w[:, None])
    np.add.at(out[:, -1], labels, w)
    return out


def ref_weighted_median(values, weights):
    """Weighted median per the spec, by sorting and a linear scan (zero weights ignored).

    First sorted value whose cumulative weight is >= half the total; the
    midpoint with the next value when the cumulative weight is exactly half.
    """
    values = np.asarray(values, np.float64)
    weights = np.asarray(weights, np.float64)
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if values.size == 0:
        return np.nan
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    half = weights.sum() / 2.0
    total = 0.0
    for r in range(values.size):
        total += weights[r]
        if total >= half:
            if total == half and r + 1 < values.size:
                return (values[r] + values[r + 1]) / 2.0
            return values[r]
    return values[-1]


def ref_objective(X, w, centers, labels, metric):
    """Weighted objective recomputed in float64 with scipy's cdist."""
    X = np.asarray(X, np.float64)
    C = np.asarray(centers, np.float64)
    code = METRIC_CODES[metric]
    terms = cdist(X, C, CDIST_TERM[code])[np.arange(X.shape[0]), labels]
    w = np.ones(X.shape[0]) if w is None else np.asarray(w, np.float64)
    return float(w @ terms)


def sklearn_threads():
    """Context manager: run scikit-learn (OpenMP, OpenBLAS) single-threaded.

    scikit-learn's OpenMP threads spin after each parallel region, and so do
    numba's: on a 2-core machine alternating between the two thread pools makes
    both 100x slower. One thread for scikit-learn keeps the comparisons fast.
    """
    return threadpool_limits(limits=1)


@pytest.fixture
def cpu_backend():
    from gpukmeans.backends.cpu import CPUBackend

    return CPUBackend()


@pytest.fixture(scope="module")
def cp():
    """CuPy with a usable CUDA GPU, or skip the test with the reason (CuPy missing, no GPU, old driver)."""
    from gpukmeans.backends import CUDAUnavailableError
    from gpukmeans.backends.cuda import _runtime

    try:
        return _runtime.load_cupy()
    except CUDAUnavailableError as exc:
        pytest.skip(str(exc))
