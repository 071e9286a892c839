"""Property-based tests (hypothesis): random shapes, dtypes, duplicates, k, metric, update and weights."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from conftest import METRICS, ref_terms, ref_weighted_median
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from gpukmeans import ConvergenceWarning, KMeans
from gpukmeans.backends import _numba_kernels as K

# GPUKMEANS_HYPOTHESIS_EXAMPLES=1000 for a longer hunt; the default keeps the suite fast.
MAX_EXAMPLES = int(os.environ.get("GPUKMEANS_HYPOTHESIS_EXAMPLES", "35"))
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = (np.uint8, np.int32, np.float32, np.float64)
CODES = {"euclidean": 0, "manhattan": 1, "chebyshev": 2}


@st.composite
def problems(draw):
    """A random clustering problem: X, sample_weight (or None), n_clusters, metric, update."""
    n = draw(st.integers(1, 300))
    d = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = draw(st.sampled_from(["few", "small-int", "wide"]))
    if values == "few":  # many duplicates: values from a tiny integer set
        X = rng.integers(0, draw(st.integers(1, 4)), size=(n, d))
    elif values == "small-int":
        X = rng.integers(0, 256 if dtype == np.uint8 else 50, size=(n, d))
    else:
        X = rng.normal(scale=draw(st.sampled_from([1e-3, 1.0, 100.0])), size=(n, d))
        if dtype == np.uint8:
            X = np.abs(X) % 256
        X = X + (0 if dtype in (np.float32, np.float64) else 0.5)
    X = X.astype(dtype)
    weights = draw(st.sampled_from(["none", "int", "float", "with-zeros"]))
    if weights == "none":
        w = None
    elif weights == "int":
        w = rng.integers(1, 5, n).astype(np.float64)
    elif weights == "float":
        w = rng.uniform(0.05, 3.0, n)
    else:
        w = rng.integers(0, 3, n).astype(np.float64)
        w[rng.integers(0, n)] = 1.0
    n_positive = n if w is None else int((w > 0).sum())
    k = draw(st.integers(1, min(n_positive, 12)))
    metric = draw(st.sampled_from(METRICS))
    update = draw(st.sampled_from(["auto", "mean", "median", "guarded"]))
    init = draw(st.sampled_from(["k-means++", "random"]))
    return X, w, k, metric, update, init, seed


def _fit(X, w, k, metric, update, init, seed, **kw):
    km = KMeans(k, metric=metric, update=update, init=init, n_init=1, random_state=seed % 1000, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        km.fit(X, sample_weight=w)
    return km, caught


def _tolerances(Xf, metric):
    scale = max(1.0, float(np.abs(Xf).max()))
    d = Xf.shape[1]
    if Xf.dtype == np.float32:
        rtol = 1e-5
        atol = 1e-5 * (scale**2 * d if metric == "euclidean" else scale * d)
    else:
        rtol = 1e-9
        atol = 1e-12 * (scale**2 * d if metric == "euclidean" else scale * d)
    return rtol, atol


@SETTINGS
@given(problems())
def test_fit_invariants(problem):
    X, w, k, metric, update, init, seed = problem
    km, caught = _fit(X, w, k, metric, update, init, seed)
    n, d = X.shape
    expected_dtype = np.float64 if X.dtype == np.float64 else np.float32

    # shapes, dtypes, no NaN
    assert km.cluster_centers_.shape == (k, d)
    assert km.cluster_centers_.dtype == expected_dtype
    assert np.isfinite(km.cluster_centers_).all()
    assert km.labels_.shape == (n,)
    assert km.labels_.dtype == np.int32
    assert km.labels_.min() >= 0 and km.labels_.max() < k
    assert 1 <= km.n_iter_ <= 300
    assert len(km.history_) == km.n_iter_
    assert np.isfinite(km.inertia_) and km.inertia_ >= 0

    # every label is a nearest center (exact ties tolerated within rounding)
    Xf = X.astype(expected_dtype)
    D = ref_terms(Xf, km.cluster_centers_, CODES[metric])
    own = D[np.arange(n), km.labels_]
    rtol, atol = _tolerances(Xf, metric)
    assert (own <= D.min(axis=1) * (1 + rtol) + atol).all()

    # inertia equals a NumPy recomputation
    ww = np.ones(n) if w is None else w
    expected = float(ww @ own)
    assert abs(km.inertia_ - expected) <= rtol * 10 * expected + atol * ww.sum()

    # ConvergenceWarning exactly when fewer distinct labels than clusters
    distinct = len(np.unique(km.labels_))
    warned = any(issubclass(c.category, ConvergenceWarning) for c in caught)
    assert warned == (distinct < k)
    assert not [c for c in caught if not issubclass(c.category, ConvergenceWarning)]

    # predict agrees with the training labels; score with the inertia
    assert_array_equal(km.predict(X), km.labels_)
    assert km.score(X, sample_weight=w) == -km.inertia_


@SETTINGS
@given(problems())
def test_objective_monotone_for_guaranteed_rules(problem):
    X, w, k, metric, update, init, seed = problem
    # the rules that never increase the objective: the metric's own rule, "auto", and "guarded"
    rule = {"euclidean": "mean", "manhattan": "median", "chebyshev": "guarded"}[metric]
    update = ("auto", rule, "guarded")[seed % 3]
    X = X.astype(np.float64)  # exact-ish arithmetic: float32 rounding could add noise
    km, _ = _fit(X, w, k, metric, update, init, seed, tol=0)
    objectives = np.array([h["objective"] for h in km.history_] + [km.inertia_])
    slack = 1e-9 * np.maximum(objectives[:-1], 1e-300) + 1e-12
    assert (np.diff(objectives) <= slack).all(), objectives


@SETTINGS
@given(problems())
def test_refit_from_fitted_centers_is_a_fixed_point(problem):
    X, w, k, metric, update, init, seed = problem
    km, _ = _fit(X, w, k, metric, update, init, seed, tol=0)
    # Converged with labels and centers stable, and every cluster holding weight
    # (no empty-cluster relocation moved a center after the last assignment).
    last = km.history_[-1]
    ww = np.ones(X.shape[0]) if w is None else w
    assume(last["n_changed"] == 0 and last["center_shift"] == 0)
    assume((np.bincount(km.labels_, weights=ww, minlength=k) > 0).all())
    again, _ = _fit(X, w, k, metric, update, km.cluster_centers_, seed)
    assert again.n_iter_ == 1
    assert_array_equal(again.labels_, km.labels_)
    if np.array_equal(X, np.round(X)) or (w is not None and not (w == 1).all()):
        # every sum exact (integer data), or summed in full (weights other than ones): the very same centers
        assert_array_equal(again.cluster_centers_, km.cluster_centers_)
    else:
        # without weights the first fit updated its sums from the samples that moved; the refit sums its
        # labels afresh: equal up to float64 rounding (see the README on moved sums)
        assert_allclose(again.cluster_centers_, km.cluster_centers_, rtol=1e-9, atol=1e-12 * np.abs(X).max())


@settings(max_examples=MAX_EXAMPLES, deadline=None)
@given(
    st.lists(st.integers(-6, 6), min_size=1, max_size=40),
    st.data(),
)
def test_weighted_median_kernels_match_reference(values, data):
    n = len(values)
    weights = data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    weights[data.draw(st.integers(0, n - 1))] += 1  # at least one positive weight
    halves = data.draw(st.booleans())
    X = (np.array(values, np.float64) / (2 if halves else 1)).reshape(-1, 1)
    w = np.array(weights, np.float64)
    labels = np.zeros(n, np.int32)
    expected = ref_weighted_median(X[:, 0], w)
    medians, total = K.weighted_median(X, w, labels, 1)
    assert medians[0, 0] == expected
    assert total[0] == w.sum()
    buckets, _ = K.weighted_median_buckets(X, w, labels, 1, *K.feature_ranges(X))
    assert buckets[0, 0] == expected
    # the median minimises the weighted L1 cost
    cost = lambda c: w @ np.abs(X[:, 0] - c)  # noqa: E731
    assert cost(medians[0, 0]) <= min(cost(v) for v in X[:, 0]) + 1e-12
    if not halves:
        ok, lo, hi = K.integer_range(X)
        assert ok
        hist, _ = K.weighted_median_hist(X, w, labels, 1, lo, int(hi - lo) + 1)
        assert hist[0, 0] == expected
    if (w == 1).all():
        assert medians[0, 0] == np.median(X[:, 0])


def test_extreme_finite_values_do_not_crash():
    # The widest range each metric admits in float64: the integer-valued fast path of the median must not
    # overflow on it. Wider ranges are refused with a clear error (their distances or squared center shifts
    # overflow float64; see test_validation.py).
    for metric in METRICS:
        X = np.array([[1e150], [-1e150], [0.0], [1.0]])
        km, _ = _fit(X, None, 2, metric, "median", "random", 0)
        assert np.isfinite(km.cluster_centers_).all()
        assert km.labels_.shape == (4,)
        with pytest.raises(ValueError, match="(?i)rescale X"):
            _fit(X * 1e5, None, 2, metric, "median", "random", 0)
