"""The KMeans estimator and the kmeans function: scikit-learn equivalence, properties, API."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
import sklearn.cluster
from conftest import (
    CDIST_DIST,
    FLOAT_DTYPES,
    METRICS,
    blobs,
    grid_blobs,
    pick_init,
    ref_objective,
    sklearn_threads,
)
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gpukmeans
from gpukmeans import ConvergenceWarning, KMeans, kmeans
from gpukmeans._init import kmeans_plusplus, random_init
from gpukmeans.backends.cpu import CPUBackend
from gpukmeans.metrics import get_metric

RULES = ("mean", "median", "guarded")
ALL_UPDATES = ("auto", *RULES)


def sk_lloyd(X, init, **kw):
    with sklearn_threads():
        return sklearn.cluster.KMeans(init.shape[0], init=init, n_init=1, algorithm="lloyd", **kw).fit(X)


# ------------------------------------------------------------ scikit-learn
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tol", (1e-4, 0.0))
def test_euclidean_matches_sklearn_lloyd(seed, dtype, tol):
    X = blobs(1500, 4, 6, seed, dtype)
    init = pick_init(X, 6, 100 + seed)
    ours = KMeans(6, init=init, tol=tol, max_iter=300).fit(X)
    ref = sk_lloyd(X, init, tol=tol, max_iter=300)
    assert ours.n_iter_ > 3  # overlapping blobs: a real run, not a one-step fit
    assert ours.cluster_centers_.dtype == dtype
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-5)
    atol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("max_iter", (1, 2, 5))
def test_euclidean_matches_sklearn_when_stopped_early(max_iter):
    X = blobs(1000, 3, 5, 11, np.float64)
    init = pick_init(X, 5, 1)
    ours = KMeans(5, init=init, max_iter=max_iter).fit(X)
    ref = sk_lloyd(X, init, max_iter=max_iter)
    assert ours.n_iter_ == ref.n_iter_ == max_iter
    assert_array_equal(ours.labels_, ref.labels_)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_euclidean_matches_sklearn(seed):
    X = blobs(800, 3, 5, seed, np.float64)
    w = np.random.default_rng(seed).uniform(0.2, 3.0, X.shape[0])
    init = pick_init(X, 5, seed)
    ours = KMeans(5, init=init).fit(X, sample_weight=w)
    with sklearn_threads():
        ref = sklearn.cluster.KMeans(5, init=init, n_init=1).fit(X, sample_weight=w)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("init", ("k-means++", "random"))
@pytest.mark.parametrize("seed", range(3))
def test_seeded_fit_matches_sklearn(seed, init):
    X = blobs(700, 3, 6, seed, np.float64)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, X.shape[0])
    ours = KMeans(6, init=init, n_init=3, random_state=seed).fit(X, sample_weight=w)
    with sklearn_threads():
        ref = sklearn.cluster.KMeans(6, init=init, n_init=3, random_state=seed).fit(X, sample_weight=w)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("k", (1, 2, 7, 20))
@pytest.mark.parametrize("seed", (0, 1, 42))
def test_kmeans_plusplus_indices_match_sklearn(seed, k, weighted):
    X = blobs(600, 3, 7, seed, np.float64)
    w = np.random.default_rng(seed).uniform(0.1, 5.0, X.shape[0]) if weighted else None
    centers, indices = kmeans_plusplus(
        X,
        np.ones(X.shape[0]) if w is None else w,
        k,
        backend=CPUBackend(),
        metric=get_metric("euclidean"),
        random_state=np.random.RandomState(seed),
    )
    with sklearn_threads():
        ref_centers, ref_indices = sklearn.cluster.kmeans_plusplus(X, k, random_state=seed, sample_weight=w)
    assert_array_equal(indices, ref_indices)
    assert_array_equal(centers, X[ref_indices])
    assert_array_equal(centers, ref_centers)


@pytest.mark.parametrize("metric", METRICS)
def test_kmeans_plusplus_returns_distinct_samples(metric):
    X = blobs(400, 2, 5, 3, np.float32)
    centers, indices = kmeans_plusplus(
        X,
        np.ones(400, np.float32),
        12,
        backend=CPUBackend(),
        metric=get_metric(metric),
        random_state=np.random.RandomState(0),
    )
    assert centers.dtype == np.float32
    assert len(set(indices.tolist())) == 12
    assert_array_equal(centers, X[indices])


def test_kmeans_plusplus_skips_zero_weight_samples():
    X = blobs(300, 2, 4, 0, np.float64)
    w = np.zeros(300)
    w[::3] = 1.0
    for seed in range(5):
        _, indices = kmeans_plusplus(
            X, w, 8, backend=CPUBackend(), metric=get_metric("manhattan"), random_state=np.random.RandomState(seed)
        )
        assert (w[indices] > 0).all()


@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("seed", (0, 7, 123))
def test_random_init_indices_match_numpy_choice(seed, weighted):
    n, k = 250, 9
    X = blobs(n, 2, 3, seed, np.float32)
    w = np.random.default_rng(seed).uniform(0.0, 2.0, n).astype(np.float32) if weighted else np.ones(n, np.float32)
    centers, indices = random_init(X, w, k, backend=CPUBackend(), random_state=np.random.RandomState(seed))
    w64 = w.astype(np.float64)
    expected = np.random.RandomState(seed).choice(n, k, replace=False, p=w64 / w64.sum())
    assert_array_equal(indices, expected)
    assert_array_equal(centers, X[expected])


def test_random_init_estimator_uses_the_same_draw():
    X = blobs(300, 2, 4, 5, np.float64)
    km = KMeans(4, init="random", n_init=1, max_iter=1, random_state=3).fit(X)
    seeds = np.random.RandomState(3).choice(300, 4, replace=False, p=np.full(300, 1 / 300))
    manual = KMeans(4, init=X[seeds], max_iter=1).fit(X)
    assert_array_equal(km.cluster_centers_, manual.cluster_centers_)


# ---------------------------------------------------------------- hand-solved
def test_toy_problem_solved_by_hand():
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    init = np.array([[0.0], [10.0]])
    euc = KMeans(2, init=init).fit(X)
    assert_array_equal(euc.cluster_centers_, [[0.5], [10.5]])
    assert_array_equal(euc.labels_, [0, 0, 1, 1])
    assert euc.inertia_ == 4 * 0.25
    assert euc.n_iter_ == 2  # labels stable at the second iteration
    man = KMeans(2, metric="manhattan", init=init).fit(X)
    assert_array_equal(man.cluster_centers_, [[0.5], [10.5]])  # midpoint median
    assert man.inertia_ == 2.0
    # chebyshev / guarded: current center, median and mean all cost 1 per cluster:
    # the current center wins the tie and nothing moves.
    che = KMeans(2, metric="chebyshev", init=init).fit(X)
    assert_array_equal(che.cluster_centers_, [[0.0], [10.0]])
    assert che.inertia_ == 2.0
    assert che.update_ == "guarded"
    assert che.n_iter_ == 1


def test_toy_problem_weighted_by_hand():
    X = np.array([[0.0, 0.0], [1.0, 4.0], [10.0, 10.0], [12.0, 10.0]])
    w = np.array([3.0, 1.0, 1.0, 1.0])
    init = X[[0, 2]]
    mean = KMeans(2, init=init).fit(X, sample_weight=w)
    assert_allclose(mean.cluster_centers_, [[0.25, 1.0], [11.0, 10.0]])
    assert_allclose(mean.inertia_, 3 * (0.25**2 + 1) + (0.75**2 + 9) + 1 + 1)
    med = KMeans(2, metric="l1", init=init).fit(X, sample_weight=w)
    assert_array_equal(med.cluster_centers_, [[0.0, 0.0], [11.0, 10.0]])
    assert med.inertia_ == 5.0 + 1 + 1


def test_docstring_example():
    X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=np.float32)
    km = KMeans(n_clusters=2, metric="manhattan", random_state=0).fit(X)
    assert sorted(km.cluster_centers_.tolist()) == [[1.0, 2.0], [10.0, 2.0]]
    centers, labels, inertia, n_iter, history = kmeans(np.array([[0.0], [0.5], [10.0], [10.5]]), 2, random_state=0)
    assert sorted(centers.ravel().tolist()) == [0.25, 10.25]
    assert inertia == 0.25


@pytest.mark.parametrize("metric", METRICS)
def test_empty_cluster_relocated_to_farthest_point(metric):
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    init = np.array([[0.0], [1.0], [1000.0]])  # nobody is nearest to the third center
    km = KMeans(3, metric=metric, update="mean", init=init, max_iter=1).fit(X)
    assert_array_equal(km.cluster_centers_, [[0.0], [1.5], [10.0]])
    assert_array_equal(km.labels_, [0, 1, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        full = KMeans(3, metric=metric, init=init).fit(X)
    assert np.isfinite(full.cluster_centers_).all()
    assert sorted(np.unique(full.labels_).tolist()) == [0, 1, 2]


def test_several_empty_clusters_take_the_farthest_points_in_order():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [20.0]])
    init = np.array([[0.0], [1.0], [1000.0], [2000.0]])  # clusters 2 and 3 start empty
    km = KMeans(4, init=init, max_iter=1).fit(X)
    # farthest sample (20) goes to the first empty cluster, the next (10) to the second
    assert_array_equal(km.cluster_centers_, [[0.0], [1.5], [20.0], [10.0]])
    assert_array_equal(km.labels_, [0, 1, 1, 3, 2])


@pytest.mark.parametrize("seed", range(6))
def test_farthest_samples_equal_a_stable_sort(seed):
    """The relocation's selection of the farthest samples (a partition) against a full stable argsort:
    same samples in the same order, ties to the lowest index, on costs full of ties and weightless -1s."""
    from gpukmeans._driver import _farthest

    rng = np.random.default_rng(seed)
    n = [1, 2, 50, 1000, 4097, 20000][seed]
    costs = rng.integers(0, 6, n).astype(np.float64)  # few distinct values: ties at every threshold
    costs[rng.random(n) < 0.2] = -1.0  # weightless samples
    for count in sorted({0, 1, 2, 3, n // 2, n - 1, n}):
        if 0 <= count <= n:
            expected = np.argsort(-costs, kind="stable")[:count]
            assert_array_equal(_farthest(np, costs, count), expected)


def test_zero_weight_samples_are_not_relocated_first():
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    w = np.array([1.0, 1.0, 1.0, 0.0])  # the farthest sample has no weight
    init = np.array([[0.0], [1.0], [1000.0]])
    km = KMeans(3, init=init, max_iter=1).fit(X, sample_weight=w)
    assert_array_equal(km.cluster_centers_, [[0.0], [1.0], [2.0]])
    assert_array_equal(km.labels_, [0, 1, 2, 2])
    assert km.inertia_ == 0.0


# ------------------------------------------------------------------ weights
def _repeat_fit(metric, update, X, w, init):
    weighted = KMeans(init.shape[0], metric=metric, update=update, init=init, tol=0).fit(X, sample_weight=w)
    reps = np.repeat(np.arange(X.shape[0]), w)
    repeated = KMeans(init.shape[0], metric=metric, update=update, init=init, tol=0).fit(X[reps])
    return weighted, repeated, reps


@pytest.mark.parametrize("update", ALL_UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_integer_weights_equal_repeated_samples(metric, update):
    X = grid_blobs(240, 3, 4, seed=METRICS.index(metric))
    w = np.random.default_rng(1).integers(1, 4, X.shape[0])
    init = pick_init(X, 4, 2)
    weighted, repeated, reps = _repeat_fit(metric, update, X, w, init)
    assert weighted.n_iter_ > 1
    assert_array_equal(weighted.labels_[reps], repeated.labels_)
    assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert_allclose(weighted.inertia_, repeated.inertia_, rtol=1e-12)
    assert weighted.n_iter_ == repeated.n_iter_
    assert_allclose(
        weighted.inertia_, ref_objective(X, w, weighted.cluster_centers_, weighted.labels_, metric), rtol=1e-12
    )


@pytest.mark.parametrize("update", ALL_UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_unit_weights_equal_no_weights(metric, update):
    X = blobs(400, 3, 5, 4, np.float32)
    a = KMeans(5, metric=metric, update=update, random_state=0).fit(X)
    b = KMeans(5, metric=metric, update=update, random_state=0).fit(X, sample_weight=np.ones(400))
    c = KMeans(5, metric=metric, update=update, random_state=0).fit(X, sample_weight=[1] * 400)
    for other in (b, c):
        assert_array_equal(a.cluster_centers_, other.cluster_centers_)
        assert_array_equal(a.labels_, other.labels_)
        assert a.inertia_ == other.inertia_
        assert a.n_iter_ == other.n_iter_


@pytest.mark.parametrize("metric", METRICS)
def test_weights_scale_invariance(metric):
    X = grid_blobs(300, 2, 4, seed=9)
    w = np.random.default_rng(0).integers(1, 5, 300).astype(np.float64)
    init = pick_init(X, 4, 0)
    a = KMeans(4, metric=metric, init=init).fit(X, sample_weight=w)
    b = KMeans(4, metric=metric, init=init).fit(X, sample_weight=4 * w)
    assert_array_equal(a.labels_, b.labels_)
    assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    assert_allclose(4 * a.inertia_, b.inertia_, rtol=1e-12)


@pytest.mark.parametrize("update", RULES)
@pytest.mark.parametrize("metric", METRICS)
def test_updated_sums_and_histograms_equal_summing_again_in_a_fit(metric, update):
    """Unit weights: the CPU backend moves the relabelled samples between the sums and median histograms of
    each iteration; weights of 2 sum everything again. Integer pixels: every sum is exact, so the fits agree bit
    for bit (same labels, centers, iterations and history)."""
    from gpukmeans.imagery import aral

    X = np.ascontiguousarray(aral.load(None)[0].data.reshape(-1, 3)[::5], dtype=np.float32)
    init = pick_init(X, 6, 1)
    a = KMeans(6, metric=metric, update=update, init=init, tol=0).fit(X)
    b = KMeans(6, metric=metric, update=update, init=init, tol=0).fit(X, sample_weight=np.full(X.shape[0], 2.0))
    assert a.n_iter_ > 3
    assert_array_equal(a.labels_, b.labels_)
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.n_iter_ == b.n_iter_ and 2 * a.inertia_ == b.inertia_
    assert [h["n_changed"] for h in a.history_] == [h["n_changed"] for h in b.history_]


def test_updated_sums_track_float_data_over_a_long_fit():
    X = blobs(20_000, 3, 8, seed=4) * 1e3 + 5e4  # float data far from the origin: rounding in every move
    init = pick_init(X, 8, 2)
    a = KMeans(8, init=init, tol=0, max_iter=200).fit(X)
    b = KMeans(8, init=init, tol=0, max_iter=200).fit(X, sample_weight=np.full(X.shape[0], 3.0))
    assert_array_equal(a.labels_, b.labels_)
    assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    means = np.stack([X[a.labels_ == j].mean(axis=0) for j in range(8)])
    assert_allclose(a.cluster_centers_, means, rtol=1e-12)


# --------------------------------------------------------------- properties
@pytest.mark.parametrize("update", ALL_UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_fitted_centers_as_init_stay_put(metric, update):
    X = blobs(500, 3, 5, 2, np.float32)
    first = KMeans(5, metric=metric, update=update, tol=0, random_state=1).fit(X)
    again = KMeans(5, metric=metric, update=update, init=first.cluster_centers_).fit(X)
    assert again.n_iter_ == 1
    assert_array_equal(again.cluster_centers_, first.cluster_centers_)
    assert_array_equal(again.labels_, first.labels_)
    assert again.inertia_ == first.inertia_


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", (np.uint8, np.float32, np.float64))
def test_fit_predict_equals_fit_then_predict(dtype, metric):
    X = (blobs(600, 3, 4, 8, np.float64, spread=50, std=10) + 100).astype(dtype)
    a = KMeans(4, metric=metric, random_state=5).fit(X)
    labels = KMeans(4, metric=metric, random_state=5).fit_predict(X)
    assert labels.dtype == np.int32
    assert_array_equal(a.predict(X), labels)
    assert_array_equal(a.labels_, labels)
    assert a.predict(X).dtype == np.int32


@pytest.mark.parametrize("update", ALL_UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_float32_and_float64_agree(metric, update):
    X = grid_blobs(800, 3, 4, 6, spread=6)  # multiples of 1/4: exact in float32 too
    init = pick_init(X, 4, 3)
    a = KMeans(4, metric=metric, update=update, init=init).fit(X)
    b = KMeans(4, metric=metric, update=update, init=init.astype(np.float32)).fit(X.astype(np.float32))
    assert a.cluster_centers_.dtype == np.float64
    assert b.cluster_centers_.dtype == np.float32
    assert (a.labels_ != b.labels_).mean() < 0.005
    assert_allclose(b.cluster_centers_, a.cluster_centers_, rtol=1e-3, atol=1e-3)
    assert_allclose(b.inertia_, a.inertia_, rtol=1e-3)


@pytest.mark.parametrize(
    ("metric", "update"),
    [
        ("euclidean", "mean"),
        ("euclidean", "guarded"),
        ("manhattan", "auto"),
        ("manhattan", "median"),
        ("manhattan", "guarded"),
        ("chebyshev", "auto"),
        ("chebyshev", "guarded"),
    ],
)
@pytest.mark.parametrize("weighted", (False, True))
@pytest.mark.parametrize("seed", range(3))
def test_objective_never_increases(metric, update, weighted, seed):
    X = blobs(600, 3, 6, 20 + seed, np.float64)
    w = np.random.default_rng(seed).uniform(0.0, 2.0, 600) if weighted else None
    km = KMeans(8, metric=metric, update=update, init="random", n_init=1, tol=0, random_state=seed).fit(
        X, sample_weight=w
    )
    objectives = np.array([h["objective"] for h in km.history_] + [km.inertia_])
    assert len(objectives) > 3
    assert (np.diff(objectives) <= 1e-10 * objectives[:-1]).all(), objectives
    assert_allclose(km.inertia_, ref_objective(X, w, km.cluster_centers_, km.labels_, metric), rtol=1e-10)


def test_guarded_beats_or_ties_mean_for_chebyshev_objective():
    X = blobs(600, 4, 5, 31, np.float64)
    init = pick_init(X, 5, 0)
    guarded = KMeans(5, metric="chebyshev", update="guarded", init=init).fit(X)
    start = ref_objective(X, None, init, np.argmin(cdist(X, init, "chebyshev"), axis=1), "chebyshev")
    assert guarded.inertia_ < start


# ------------------------------------------------------- the guarded update on a sample
def _small_guard_sample(monkeypatch, size=256):
    """Make the guarded update choose on a sample for test-sized data (``GUARD_SAMPLE`` samples)."""
    import gpukmeans._driver as driver

    monkeypatch.setattr(driver, "GUARD_SAMPLE", size)
    monkeypatch.setattr(driver, "_SAMPLE_PER_CLUSTER", 8)


def _spy_objective_strides(monkeypatch, lie=False):
    """Record the ``stride`` of every ``CPUBackend.objective`` call; ``lie``: sampled objectives negated."""
    strides = []
    original = CPUBackend.objective

    def objective(self, X, w, labels, candidates, metric, stride=1):
        strides.append(stride)
        out = original(self, X, w, labels, candidates, metric, stride)
        return -out if lie and stride > 1 else out

    monkeypatch.setattr(CPUBackend, "objective", objective)
    return strides


def _ref_guarded_choice(X, w, labels, candidates, metric):
    """Per cluster, the candidate of least objective (the first one, i.e. the current center, on ties)."""
    k = candidates.shape[1]
    objectives = np.array(
        [
            [ref_objective(X[labels == j], w[labels == j], candidates[s, j][None], 0, metric) for j in range(k)]
            for s in range(3)
        ]
    )
    best = np.zeros(k, dtype=int)
    for s in (1, 2):
        better = objectives[s] < objectives[best, np.arange(k)] * (1 - 1e-10)
        best[better] = s
    return candidates[best, np.arange(k)]


@pytest.mark.parametrize("data", ("float", "integer"))
@pytest.mark.parametrize("seed", range(3))
def test_guarded_on_a_sample_never_increases_the_objective(monkeypatch, data, seed):
    _small_guard_sample(monkeypatch)
    strides = _spy_objective_strides(monkeypatch)
    X = blobs(6000, 3, 8, 40 + seed)
    if data == "integer":
        X = np.round(X * 10)
    km = KMeans(8, metric="chebyshev", init="random", n_init=1, tol=0, random_state=seed).fit(X)
    assert max(strides) == 6000 // 256  # the choices were made on the sample
    objectives = np.array([h["objective"] for h in km.history_] + [km.inertia_])
    assert km.n_iter_ > 3
    assert (np.diff(objectives) <= 0).all(), objectives
    assert_allclose(km.inertia_, ref_objective(X, None, km.cluster_centers_, km.labels_, "chebyshev"), rtol=1e-12)
    distances = cdist(X, km.cluster_centers_, "chebyshev")
    assert_array_equal(km.labels_, np.argmin(distances, axis=1))
    again = KMeans(8, metric="chebyshev", init="random", n_init=1, tol=0, random_state=seed).fit(X)
    assert_array_equal(again.labels_, km.labels_)
    assert_array_equal(again.cluster_centers_, km.cluster_centers_)


@pytest.mark.parametrize("seed", range(3))
def test_guarded_undoes_a_sampled_choice_that_raises_the_objective(monkeypatch, capsys, seed):
    """A sample that misleads (negated objectives: the worst candidates win) is caught by the next assignment."""
    import gpukmeans._driver as driver

    _small_guard_sample(monkeypatch)
    strides = _spy_objective_strides(monkeypatch, lie=True)
    undone = []
    original = driver._checked_assign

    def checked(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo=True):
        out = original(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo)
        if redo:  # the loop's assignments (the final one keeps the centers before an undone choice)
            undone.append(out[3] is not centers)
        return out

    monkeypatch.setattr(driver, "_checked_assign", checked)
    X = np.round(blobs(6000, 3, 8, 50 + seed) * 10)
    w = np.random.default_rng(seed).integers(1, 4, 6000).astype(np.float64)
    km = KMeans(8, metric="chebyshev", init="random", n_init=1, tol=0, random_state=seed, verbose=True)
    km.fit(X, sample_weight=w)
    assert any(undone) and 1 in strides  # undone, then chosen on all samples
    said = capsys.readouterr().out.count("raised the objective; made again on all samples")
    assert said == sum(undone)  # one line per iteration that undid a choice
    objectives = np.array([h["objective"] for h in km.history_] + [km.inertia_])
    assert (np.diff(objectives) <= 0).all(), objectives
    assert_allclose(km.inertia_, ref_objective(X, w, km.cluster_centers_, km.labels_, "chebyshev"), rtol=1e-12)
    assert_array_equal(km.labels_, np.argmin(cdist(X, km.cluster_centers_, "chebyshev"), axis=1))


def _assigned(data_seed, init_seed):
    """Integer pixels assigned once to 6 chebyshev centers: X, w, metric, backend, labels, centers, objective, sums."""
    X = np.round(blobs(5000, 3, 6, data_seed) * 10)
    w = np.ones(5000)
    metric = get_metric("chebyshev")
    backend = CPUBackend().bind(X, w)
    labels = np.full(5000, -1, np.int32)
    centers = pick_init(X, 6, init_seed)
    objective, _, sums = backend.assign(X, w, centers, metric.code, labels, True)
    return X, w, metric, backend, labels, centers, objective, sums


@pytest.mark.parametrize("accumulate", (True, False))
def test_checked_assign_restores_the_labels_and_chooses_exactly(accumulate):
    """The undo: previous labels restored, the exact guarded choice assigned, counts and sums from them."""
    from gpukmeans._driver import _checked_assign, _guarded_candidates, _Pending

    X, w, metric, backend, labels, centers, objective, sums = _assigned(9, 3)
    before = labels.copy()
    candidates = _guarded_candidates(backend, X, w, labels, sums, centers)
    pending = _Pending(objective, centers, candidates, sums)
    bad = centers + 100.0  # every sample now far from every center: a higher objective
    got_objective, n_changed, got_sums, got_centers = _checked_assign(
        backend, X, w, bad, metric, labels, accumulate, sums, pending
    )
    expected_centers = _ref_guarded_choice(X, w, before, candidates, "chebyshev")
    assert_array_equal(got_centers, expected_centers)
    expected_labels = np.argmin(cdist(X, expected_centers, "chebyshev"), axis=1)
    assert_array_equal(labels, expected_labels)
    assert n_changed == np.count_nonzero(expected_labels != before)
    assert got_objective <= objective
    assert_allclose(got_objective, ref_objective(X, w, expected_centers, expected_labels, "chebyshev"), rtol=1e-12)
    if accumulate:
        assert_array_equal(got_sums[:, -1], np.bincount(expected_labels, minlength=6))
        assert_allclose(got_sums[:, :-1], np.array([X[expected_labels == j].sum(axis=0) for j in range(6)]))


@pytest.mark.parametrize("lie", (False, True))
@pytest.mark.parametrize("seed", range(8))
def test_guarded_on_a_sample_converges_on_an_exact_choice(monkeypatch, seed, lie):
    """A sampled run that converges ends on a choice made on all samples: the final assignment checks nothing.

    With ``lie`` every sampled choice is the worst one, so the run also goes through undos.
    """
    import gpukmeans._driver as driver

    _small_guard_sample(monkeypatch)
    strides = _spy_objective_strides(monkeypatch, lie=lie)
    pendings = []
    original = driver._checked_assign

    def checked(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo=True):
        pendings.append(pending)
        return original(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo)

    monkeypatch.setattr(driver, "_checked_assign", checked)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 9))
    X = np.round(blobs(6000, 3, k, 60 + seed) * 10)
    w = rng.integers(1, 4, 6000).astype(np.float64) if seed % 2 else None
    km = KMeans(k, metric="chebyshev", init="random", n_init=1, tol=0, max_iter=300, random_state=seed)
    km.fit(X, sample_weight=w)
    assert km.n_iter_ < 300  # converged: no label changed, or no center moved
    assert max(strides) > 1  # choices were made on the sample
    if len(pendings) == km.n_iter_ + 1:
        assert pendings[-1] is None  # the final assignment: no sampled choice left to check
    else:
        assert len(pendings) == km.n_iter_  # the run ended on the centers of its last assignment: no final one
    objectives = np.array([h["objective"] for h in km.history_] + [km.inertia_])
    assert (np.diff(objectives) <= 0).all(), objectives
    assert_array_equal(km.labels_, np.argmin(cdist(X, km.cluster_centers_, "chebyshev"), axis=1))


@pytest.mark.parametrize("room", (True, False))
@pytest.mark.parametrize("accumulate", (True, False))
def test_checked_assign_keeping_every_center_restores_the_labels_only(monkeypatch, accumulate, room):
    """An undo whose exact choice keeps every center: the previous labels, no label changed, no further pass.

    The CPU backend restores them from its journal of the rejected assignment when the journal holds every
    change (no second assignment); otherwise they come from an assignment to the previous centers.
    """
    import gpukmeans.backends.cpu as cpu
    from gpukmeans._driver import _checked_assign, _Pending

    monkeypatch.setattr(cpu, "_JOURNAL_SHARE", 1 if room else 64)  # room for every sample, or for 78
    X, w, metric, backend, labels, centers, objective, sums = _assigned(11, 5)
    before = labels.copy()
    # the medians and means offered are far worse than the current centers: the exact choice keeps them all
    candidates = np.stack([centers, centers + 50.0, centers - 50.0]).astype(np.float64)
    pending = _Pending(objective, centers, candidates, sums)
    calls, reverts = [], []
    original_assign, original_revert = CPUBackend._assign, CPUBackend.revert

    def spy_assign(self, X, w, centers, *args):
        calls.append(centers.copy())
        return original_assign(self, X, w, centers, *args)

    def spy_revert(self, X, labels):
        reverts.append(original_revert(self, X, labels))
        return reverts[-1]

    monkeypatch.setattr(CPUBackend, "_assign", spy_assign)
    monkeypatch.setattr(CPUBackend, "revert", spy_revert)
    got_objective, n_changed, got_sums, got_centers = _checked_assign(
        backend, X, w, centers + 100.0, metric, labels, accumulate, sums, pending
    )
    assert reverts == [room]  # the rejected choice moved most samples: more than 78
    assert len(calls) == (1 if room else 2)  # the rejected choice (then the restoring assignment); no third pass
    if not room:
        assert_array_equal(calls[1], centers)
    assert_array_equal(got_centers, centers)
    assert got_centers.dtype == X.dtype
    assert_array_equal(labels, before)
    assert n_changed == 0
    assert got_objective == objective
    assert_allclose(got_objective, ref_objective(X, w, centers, before, "chebyshev"), rtol=1e-12)
    if accumulate:
        assert_array_equal(got_sums[:, -1], np.bincount(before, minlength=6))
        assert_allclose(got_sums[:, :-1], np.array([X[before == j].sum(axis=0) for j in range(6)]))


@pytest.mark.parametrize("seed", range(4))
def test_guarded_undo_by_revert_is_the_undo_by_assignment(monkeypatch, seed):
    """Undos that restore the labels from the journal give the fit of undos that assign the previous centers."""
    _small_guard_sample(monkeypatch)
    _spy_objective_strides(monkeypatch, lie=True)  # every sampled choice is the worst one: undos
    reverts = []
    original_revert = CPUBackend.revert

    def spy_revert(self, X, labels):
        reverts.append(original_revert(self, X, labels))
        return reverts[-1]

    X = np.round(blobs(6000, 3, 6, 80 + seed) * 10)
    w = None if seed % 2 else np.random.default_rng(seed).integers(1, 4, 6000).astype(np.float64)
    fits = []
    for revert in (spy_revert, lambda self, X, labels: False):
        monkeypatch.setattr(CPUBackend, "revert", revert)
        km = KMeans(6, metric="chebyshev", init="random", n_init=1, tol=0, random_state=seed)
        fits.append(km.fit(X, sample_weight=w))
    assert any(reverts)
    by_revert, by_assignment = fits
    assert_array_equal(by_revert.labels_, by_assignment.labels_)
    assert_array_equal(by_revert.cluster_centers_, by_assignment.cluster_centers_)
    assert by_revert.n_iter_ == by_assignment.n_iter_
    for key in ("objective", "center_shift", "n_changed"):
        assert [h[key] for h in by_revert.history_] == [h[key] for h in by_assignment.history_]
    assert_allclose(by_revert.inertia_, by_assignment.inertia_, rtol=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_guarded_final_undo_keeps_the_centers_before_the_choice(monkeypatch, capsys, seed):
    """A run stopped by max_iter whose last sampled choice raised the objective ends on the centers before it.

    No comparison on every sample follows the final assignment: the exact choice would be a step that
    nothing iterates on. The labels, objective and centers are those of the last iteration's assignment.
    """
    import gpukmeans._driver as driver

    _small_guard_sample(monkeypatch)
    strides = _spy_objective_strides(monkeypatch, lie=True)  # every sampled choice is the worst one
    finals = []
    original = driver._checked_assign

    def checked(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo=True):
        n_calls = len(strides)
        out = original(backend, X, w, centers, metric, labels, accumulate, label_sums, pending, redo)
        if not redo:
            finals.append((pending, out, strides[n_calls:]))
        return out

    monkeypatch.setattr(driver, "_checked_assign", checked)
    X = np.round(blobs(6000, 3, 6, 90 + seed) * 10)
    w = np.random.default_rng(seed).integers(1, 4, 6000).astype(np.float64) if seed else None
    n_undone = 0
    for max_iter in range(2, 12):  # the worst choice does not always raise the objective: try several stops
        finals.clear()
        km = KMeans(6, metric="chebyshev", init="random", n_init=1, tol=0, max_iter=max_iter, random_state=seed)
        km.fit(X, sample_weight=w)
        assert_array_equal(km.labels_, np.argmin(cdist(X, km.cluster_centers_, "chebyshev"), axis=1))
        assert_allclose(km.inertia_, ref_objective(X, w, km.cluster_centers_, km.labels_, "chebyshev"), rtol=1e-12)
        if not finals or finals[0][0] is None or finals[0][1][3] is not finals[0][0].centers:
            continue  # ended on a choice made on every sample, or the last choice lowered the objective
        [(pending, out, later_strides)] = finals
        n_undone += 1
        assert km.n_iter_ == max_iter
        assert later_strides == []  # no comparison of the candidates after the final assignment
        assert_array_equal(km.cluster_centers_, pending.centers)
        assert km.inertia_ == km.history_[-1]["objective"]  # the objective of the last iteration's assignment
    assert n_undone > 0


@pytest.mark.parametrize("metric, update", [("euclidean", "mean"), ("manhattan", "median"), ("chebyshev", "guarded")])
def test_no_final_assignment_when_the_last_update_kept_every_center(monkeypatch, metric, update):
    """A run that converges with no label changed and every center kept ends without a final pass.

    The labels are already those of the returned centers. A run stopped by ``tol`` after its centers
    moved still gets its final assignment.
    """
    calls = []
    original = CPUBackend._assign

    def spy(self, X, w, centers, metric_code, labels, accumulate, *args):
        calls.append(accumulate)
        return original(self, X, w, centers, metric_code, labels, accumulate, *args)

    monkeypatch.setattr(CPUBackend, "_assign", spy)
    X = np.round(blobs(3000, 3, 5, 7) * 10)
    km = KMeans(5, metric=metric, update=update, init="random", n_init=1, tol=0, random_state=1).fit(X)
    assert km.n_iter_ < 300 and km.history_[-1]["n_changed"] == 0
    assert calls == [True] * km.n_iter_  # one assignment per iteration, none after
    assert_array_equal(km.labels_, np.argmin(cdist(X, km.cluster_centers_, CDIST_DIST[metric]), axis=1))
    assert_allclose(km.inertia_, ref_objective(X, np.ones(3000), km.cluster_centers_, km.labels_, metric), rtol=1e-12)
    calls.clear()
    stopped = KMeans(5, metric=metric, update=update, init="random", n_init=1, tol=1e9, random_state=1).fit(X)
    assert stopped.n_iter_ == 1 and stopped.history_[-1]["center_shift"] > 0
    assert calls == [True, False]  # the centers moved: the final assignment gives their labels
    assert_array_equal(stopped.labels_, np.argmin(cdist(X, stopped.cluster_centers_, CDIST_DIST[metric]), axis=1))


def _numpy_l1_mean_kmeans(X, init, max_iter, tol):
    """Assign by L1, average the members: the classic loop, in plain NumPy."""
    centers = init.astype(np.float64).copy()
    labels = np.full(X.shape[0], -1)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        new_labels = np.argmin(cdist(X, centers, "cityblock"), axis=1)
        changed = (new_labels != labels).sum()
        labels = new_labels
        new = np.array([X[labels == j].mean(axis=0) for j in range(centers.shape[0])])
        shift = ((new - centers) ** 2).sum()
        centers = new
        if changed == 0 or shift <= tol:
            break
    labels = np.argmin(cdist(X, centers, "cityblock"), axis=1)
    return centers, labels, n_iter


@pytest.mark.parametrize("tol", (0.0, 1e-4))
@pytest.mark.parametrize("seed", range(3))
def test_manhattan_mean_update_matches_numpy_loop(seed, tol):
    X = blobs(700, 3, 5, 40 + seed, np.float64)
    init = pick_init(X, 5, seed)
    km = KMeans(5, metric="cityblock", update="mean", init=init, tol=tol).fit(X)
    centers, labels, n_iter = _numpy_l1_mean_kmeans(X, init, 300, tol * np.var(X, axis=0).mean())
    assert km.update_ == "mean"
    assert km.n_iter_ > 2
    assert km.n_iter_ == n_iter
    assert_array_equal(km.labels_, labels)
    assert_allclose(km.cluster_centers_, centers, rtol=1e-12, atol=1e-12)
    assert_allclose(km.inertia_, cdist(X, centers, "cityblock")[np.arange(700), labels].sum(), rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_same_random_state_same_result(metric):
    X = blobs(500, 3, 5, 1, np.float32)
    for init in ("k-means++", "random"):
        a = KMeans(5, metric=metric, init=init, random_state=11).fit(X)
        b = KMeans(5, metric=metric, init=init, random_state=11).fit(X)
        c = KMeans(5, metric=metric, init=init, random_state=np.random.RandomState(11)).fit(X)
        for other in (b, c):
            assert_array_equal(a.cluster_centers_, other.cluster_centers_)
            assert_array_equal(a.labels_, other.labels_)
            assert a.inertia_ == other.inertia_
            assert a.n_iter_ == other.n_iter_


@pytest.mark.parametrize("metric", METRICS)
def test_n_init_keeps_lowest_objective(metric):
    X = blobs(400, 2, 8, 13, np.float64)
    best = KMeans(8, metric=metric, init="random", n_init=6, random_state=2).fit(X)
    rs = np.random.RandomState(2)  # shared: six single runs draw the same inits in order
    singles = [KMeans(8, metric=metric, init="random", n_init=1, random_state=rs).fit(X) for _ in range(6)]
    inertias = [s.inertia_ for s in singles]
    assert len(set(inertias)) > 1  # the test needs the runs to differ
    winner = singles[int(np.argmin(inertias))]
    assert best.inertia_ == min(inertias)
    assert_array_equal(best.cluster_centers_, winner.cluster_centers_)
    assert_array_equal(best.labels_, winner.labels_)
    assert best.n_iter_ == winner.n_iter_
    # n_init="auto" means 10 runs for init="random", 1 for k-means++
    auto = KMeans(8, metric=metric, init="random", random_state=2).fit(X)
    ten = KMeans(8, metric=metric, init="random", n_init=10, random_state=2).fit(X)
    assert auto.inertia_ == ten.inertia_
    pp_auto = KMeans(8, metric=metric, random_state=2).fit(X)
    pp_one = KMeans(8, metric=metric, n_init=1, random_state=2).fit(X)
    assert pp_auto.inertia_ == pp_one.inertia_


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("metric", [*METRICS, "l2", "l1", "cityblock", "linf", "chessboard"])
def test_transform_matches_cdist(metric, dtype):
    X = blobs(300, 4, 3, 17, dtype)
    Y = blobs(50, 4, 3, 18, dtype)
    km = KMeans(3, metric=metric, random_state=0).fit(X)
    canonical = get_metric(metric).name
    for data in (X, Y):
        out = km.transform(data)
        assert out.shape == (data.shape[0], 3)
        assert out.dtype == dtype
        expected = cdist(data.astype(np.float64), km.cluster_centers_.astype(np.float64), CDIST_DIST[canonical])
        assert_allclose(
            out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 0
        )
    ft = KMeans(3, metric=metric, random_state=0).fit_transform(X)
    assert_array_equal(ft, km.transform(X))
    # predict is the argmin of transform
    assert_array_equal(km.predict(Y), np.argmin(km.transform(Y), axis=1))


@pytest.mark.parametrize("metric", METRICS)
def test_score_is_minus_objective(metric):
    X = blobs(300, 3, 4, 21, np.float64)
    Y = blobs(80, 3, 4, 22, np.float64)
    w = np.random.default_rng(0).uniform(0.5, 1.5, 300)
    km = KMeans(4, metric=metric, random_state=1).fit(X, sample_weight=w)
    assert km.score(X, sample_weight=w) == -km.inertia_
    assert_allclose(-km.score(Y), ref_objective(Y, None, km.cluster_centers_, km.predict(Y), metric), rtol=1e-12)
    wy = np.linspace(0.1, 2, 80)
    assert_allclose(
        -km.score(Y, sample_weight=wy), ref_objective(Y, wy, km.cluster_centers_, km.predict(Y), metric), rtol=1e-12
    )


@pytest.mark.parametrize("metric", METRICS)
def test_inertia_and_labels_match_numpy(metric):
    X = blobs(500, 3, 6, 23, np.float32)
    w = np.random.default_rng(2).uniform(0, 3, 500).astype(np.float32)
    km = KMeans(6, metric=metric, random_state=4).fit(X, sample_weight=w)
    code = {"euclidean": "sqeuclidean", "manhattan": "cityblock", "chebyshev": "chebyshev"}[metric]
    D = cdist(X.astype(np.float64), km.cluster_centers_.astype(np.float64), code)
    assert_allclose(D[np.arange(500), km.labels_], D.min(axis=1), rtol=1e-5, atol=1e-6)
    assert_allclose(km.inertia_, w.astype(np.float64) @ D[np.arange(500), km.labels_], rtol=1e-5)


@pytest.mark.parametrize("alias", ["l2", "L2", "Euclidean", "l1", "cityblock", "linf", "chessboard", "CHEBYSHEV"])
def test_metric_aliases_give_the_canonical_result(alias):
    canonical = get_metric(alias).name
    X = blobs(300, 2, 4, 0, np.float32)
    a = KMeans(4, metric=alias, random_state=3).fit(X)
    b = KMeans(4, metric=canonical, random_state=3).fit(X)
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_
    expected_update = {"euclidean": "mean", "manhattan": "median", "chebyshev": "guarded"}[canonical]
    assert a.update_ == expected_update


def test_update_auto_resolves_per_metric():
    X = blobs(200, 2, 3, 0, np.float64)
    init = pick_init(X, 3, 0)
    for metric, rule in (("euclidean", "mean"), ("manhattan", "median"), ("chebyshev", "guarded")):
        auto = KMeans(3, metric=metric, init=init).fit(X)
        explicit = KMeans(3, metric=metric, update=rule, init=init).fit(X)
        assert auto.update_ == rule
        assert explicit.update_ == rule
        assert_array_equal(auto.cluster_centers_, explicit.cluster_centers_)
    assert KMeans(3, metric="manhattan", update="mean", init=init).fit(X).update_ == "mean"


# --------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, np.float32),
        (np.uint16, np.float32),
        (np.int32, np.float32),
        (np.int64, np.float32),
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.bool_, np.float32),
    ],
)
def test_output_dtypes(dtype, expected):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2 if dtype == np.bool_ else 200, size=(300, 3)).astype(dtype)
    km = KMeans(2 if dtype == np.bool_ else 4, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == expected
    assert km.labels_.dtype == np.int32
    assert km.transform(X).dtype == expected
    assert isinstance(km.inertia_, float)
    assert isinstance(km.n_iter_, int)
    assert km.n_features_in_ == 3


def test_uint8_image_pixels_match_float32():
    pixels = np.clip(blobs(1000, 3, 5, 2, np.float64, spread=100, std=15) + 128, 0, 255).astype(np.uint8)
    a = KMeans(5, metric="manhattan", random_state=0).fit(pixels)
    b = KMeans(5, metric="manhattan", random_state=0).fit(pixels.astype(np.float32))
    assert a.cluster_centers_.dtype == np.float32
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert_array_equal(a.labels_, b.labels_)
    assert_array_equal(a.predict(pixels[:10]), b.predict(pixels[:10].astype(np.float64)))


@pytest.mark.parametrize("update", ALL_UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_translation_invariance_integer_and_general_median_paths(metric, update):
    # uint8-like integer data takes the histogram median, the shifted copy the
    # general one: the fits must differ by the shift only.
    rng = np.random.default_rng(4)
    pixels = np.clip(blobs(900, 3, 5, 12, np.float64, spread=90, std=20) + 128, 0, 255).round().astype(np.uint8)
    w = rng.integers(1, 4, 900).astype(np.float64)
    init = pick_init(pixels.astype(np.float64), 5, 0)
    a = KMeans(5, metric=metric, update=update, init=init).fit(pixels, sample_weight=w)
    b = KMeans(5, metric=metric, update=update, init=init + 0.5).fit(pixels + np.float32(0.5), sample_weight=w)
    assert a.n_iter_ > 1
    assert_array_equal(a.labels_, b.labels_)
    assert a.n_iter_ == b.n_iter_
    assert_allclose(b.cluster_centers_, a.cluster_centers_ + 0.5, rtol=0, atol=1e-4)
    assert_allclose(a.inertia_, b.inertia_, rtol=1e-5)


def test_multi_chunk_fit_matches_sklearn():
    X = blobs(3 * 4096 + 500, 2, 6, 3, np.float64)
    init = pick_init(X, 6, 3)
    ours = KMeans(6, init=init).fit(X)
    ref = sk_lloyd(X, init)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)


def test_pickle_round_trip():
    import pickle

    X = blobs(200, 3, 3, 1, np.float32)
    km = KMeans(3, metric="manhattan", random_state=0).fit(X)
    copy = pickle.loads(pickle.dumps(km))
    assert_array_equal(copy.cluster_centers_, km.cluster_centers_)
    assert_array_equal(copy.predict(X), km.labels_)
    assert_array_equal(copy.transform(X), km.transform(X))
    assert copy.get_params() == km.get_params()


def test_list_input():
    X = [[0, 0], [0, 1], [10, 10], [10, 11]]
    km = KMeans(2, random_state=0).fit(X)
    assert km.cluster_centers_.dtype == np.float32
    assert sorted(km.cluster_centers_.tolist()) == [[0.0, 0.5], [10.0, 10.5]]
    assert km.predict([[1, 1]]).tolist() == [km.labels_[0]]


@pytest.mark.parametrize("metric", METRICS)
def test_fewer_distinct_points_than_clusters_warns(metric):
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 1.0]]), [10, 7, 3], axis=0)
    for init in ("k-means++", "random"):
        with pytest.warns(ConvergenceWarning, match="distinct clusters"):
            km = KMeans(5, metric=metric, init=init, random_state=0).fit(X)
        assert np.isfinite(km.cluster_centers_).all()
        assert km.cluster_centers_.shape == (5, 2)
        assert len(np.unique(km.labels_)) == 3
        assert km.inertia_ == 0.0
        assert np.isfinite(km.transform(X)).all()


def test_all_points_identical():
    X = np.full((20, 3), 7, dtype=np.uint8)
    with pytest.warns(ConvergenceWarning):
        km = KMeans(4, metric="chebyshev", random_state=0).fit(X)
    assert_array_equal(km.cluster_centers_, np.full((4, 3), 7.0))
    assert km.inertia_ == 0.0
    assert not km.labels_.any()


def test_no_warning_when_enough_distinct_points():
    X = blobs(200, 2, 3, 0, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(3, random_state=0).fit(X)


def test_convergence_warning_is_a_user_warning():
    assert issubclass(ConvergenceWarning, UserWarning)
    assert gpukmeans.ConvergenceWarning is ConvergenceWarning


def test_k_equals_n_and_k_one():
    X = blobs(30, 2, 3, 0, np.float64)
    km = KMeans(30, random_state=0).fit(X)
    assert km.inertia_ == 0.0
    assert sorted(km.labels_.tolist()) == list(range(30))
    one = KMeans(1, metric="manhattan").fit(X)
    assert_array_equal(one.cluster_centers_[0], np.median(X, axis=0))
    assert not one.labels_.any()
    mean = KMeans(1).fit(X)
    assert_allclose(mean.cluster_centers_[0], X.mean(axis=0), rtol=1e-12)
    assert_allclose(mean.inertia_, ((X - X.mean(axis=0)) ** 2).sum(), rtol=1e-12)


# ------------------------------------------------------------ history/verbose
@pytest.mark.parametrize("metric", METRICS)
def test_history(metric):
    X = blobs(500, 3, 5, 3, np.float64)
    km = KMeans(5, metric=metric, tol=0, random_state=0).fit(X)
    assert len(km.history_) == km.n_iter_ > 1
    assert [h["iteration"] for h in km.history_] == list(range(1, km.n_iter_ + 1))
    for h in km.history_:
        assert set(h) >= {"iteration", "objective", "center_shift", "n_changed", "time"}
        assert h["center_shift"] >= 0 and h["time"] >= 0 and h["n_changed"] >= 0
    assert km.history_[0]["n_changed"] == 500
    assert km.history_[-1]["n_changed"] == 0  # tol=0: stops on strict convergence
    assert km.history_[-1]["objective"] == km.inertia_


def test_history_center_shift_matches_centers():
    X = blobs(400, 2, 4, 5, np.float64)
    init = pick_init(X, 4, 1)
    km1 = KMeans(4, init=init, max_iter=1).fit(X)
    km2 = KMeans(4, init=init, max_iter=2).fit(X)
    assert_allclose(km1.history_[0]["center_shift"], ((km1.cluster_centers_ - init) ** 2).sum(), rtol=1e-12)
    shift2 = ((km2.cluster_centers_ - km1.cluster_centers_) ** 2).sum()
    assert_allclose(km2.history_[1]["center_shift"], shift2, rtol=1e-12)
    assert_allclose(km2.history_[1]["objective"], km1.inertia_, rtol=1e-12)


def test_tol_stops_early():
    X = blobs(1000, 3, 6, 7, np.float64)
    init = pick_init(X, 6, 0)
    strict = KMeans(6, init=init, tol=0).fit(X)
    loose = KMeans(6, init=init, tol=1e-1).fit(X)
    assert loose.n_iter_ < strict.n_iter_
    tol = 1e-1 * np.var(X, axis=0).mean()
    assert loose.history_[-1]["center_shift"] <= tol
    assert all(h["center_shift"] > tol for h in loose.history_[:-1])


@pytest.mark.parametrize("metric", METRICS)
def test_verbose_prints_one_line_per_iteration(capsys, metric):
    X = blobs(300, 2, 4, 1, np.float64)
    quiet = KMeans(4, metric=metric, random_state=0).fit(X)
    assert capsys.readouterr().out == ""
    km = KMeans(4, metric=metric, random_state=0, verbose=True).fit(X)
    lines = capsys.readouterr().out.splitlines()
    iteration_lines = [line for line in lines if line.startswith("Iteration")]
    assert len(iteration_lines) == km.n_iter_ == quiet.n_iter_
    assert_array_equal(km.cluster_centers_, quiet.cluster_centers_)


# ------------------------------------------------------------- function form
@pytest.mark.parametrize("metric", METRICS)
def test_function_form_matches_estimator(metric):
    X = blobs(300, 3, 4, 2, np.float32)
    w = np.random.default_rng(0).uniform(0.5, 1, 300)
    result = kmeans(X, 4, sample_weight=w, metric=metric, random_state=8, n_init=2)
    km = KMeans(4, metric=metric, random_state=8, n_init=2).fit(X, sample_weight=w)
    assert isinstance(result, gpukmeans.KMeansResult)
    assert_array_equal(result.centers, km.cluster_centers_)
    assert_array_equal(result.labels, km.labels_)
    assert result.inertia == km.inertia_
    assert result.n_iter == km.n_iter_
    assert [h["objective"] for h in result.history] == [h["objective"] for h in km.history_]
    centers, labels, inertia, n_iter, history = result
    assert centers is result.centers


# ----------------------------------------------------- scikit-learn API
def test_get_set_params_round_trip():
    init = np.zeros((3, 2))
    km = KMeans(
        3, metric="l1", update="median", init=init, n_init=1, max_iter=50, tol=0.5, random_state=4, verbose=True
    )
    params = km.get_params()
    assert set(params) == {
        "n_clusters",
        "metric",
        "update",
        "init",
        "n_init",
        "max_iter",
        "tol",
        "random_state",
        "backend",
        "verbose",
    }
    assert params["init"] is init
    assert params["metric"] == "l1" and params["max_iter"] == 50
    other = KMeans().set_params(**params)
    assert other.get_params() == params
    assert km.set_params(n_clusters=5) is km
    assert km.n_clusters == 5
    defaults = KMeans().get_params()
    assert defaults == {
        "n_clusters": 8,
        "metric": "euclidean",
        "update": "auto",
        "init": "k-means++",
        "n_init": "auto",
        "max_iter": 300,
        "tol": 1e-4,
        "random_state": None,
        "backend": "auto",
        "verbose": False,
    }


def test_sklearn_clone():
    km = KMeans(3, metric="chebyshev", random_state=2, max_iter=20)
    copy = clone(km)
    assert copy is not km
    assert copy.get_params() == km.get_params()
    X = blobs(200, 2, 3, 0, np.float64)
    km.fit(X)
    fresh = clone(km)
    assert not hasattr(fresh, "cluster_centers_")
    fresh.fit(X)
    assert_array_equal(fresh.cluster_centers_, km.cluster_centers_)


@pytest.mark.parametrize("metric", METRICS)
def test_sklearn_pipeline(metric):
    X = blobs(400, 3, 4, 9, np.float64) * [1.0, 100.0, 0.01]
    pipe = make_pipeline(StandardScaler(), KMeans(4, metric=metric, random_state=0))
    pipe.fit(X)
    scaled = StandardScaler().fit_transform(X)
    direct = KMeans(4, metric=metric, random_state=0).fit(scaled)
    assert_array_equal(pipe.predict(X), direct.labels_)
    assert_allclose(pipe.transform(X), direct.transform(scaled), rtol=1e-12)
    assert_array_equal(pipe[-1].cluster_centers_, direct.cluster_centers_)
    assert_array_equal(pipe.fit_predict(X), direct.labels_)
    assert pipe.score(X) == direct.score(scaled)


def test_repr():
    assert repr(KMeans()) == "KMeans()"
    assert repr(KMeans(3, metric="manhattan")) == "KMeans(n_clusters=3, metric='manhattan')"
    r = repr(KMeans(init=np.zeros((8, 2)), tol=0.5))
    assert r.startswith("KMeans(init=array(") and "tol=0.5" in r
    assert "random_state=0" in repr(KMeans(random_state=0))


def test_fit_returns_self_and_refit_replaces_state():
    X = blobs(200, 2, 3, 0, np.float64)
    km = KMeans(3, random_state=0)
    assert km.fit(X) is km
    km.set_params(n_clusters=2).fit(X[:, :1])
    assert km.cluster_centers_.shape == (2, 1)
    assert km.n_features_in_ == 1
    assert km.labels_.shape == (200,)


def test_callable_init():
    X = blobs(200, 2, 3, 0, np.float64)
    calls = []

    def my_init(data, n_clusters, random_state):
        calls.append((data.shape, n_clusters, type(random_state)))
        return data[:n_clusters]

    km = KMeans(3, init=my_init, max_iter=1, random_state=0).fit(X)
    assert calls == [((200, 2), 3, np.random.RandomState)]
    assert_array_equal(km.cluster_centers_, KMeans(3, init=X[:3], max_iter=1).fit(X).cluster_centers_)


def test_available_backends_and_cpu_aliases():
    assert "cpu" in gpukmeans.available_backends()
    X = blobs(100, 2, 2, 0, np.float64)
    base = KMeans(2, random_state=0).fit(X)
    for backend in ("cpu", "numba", "auto"):
        km = KMeans(2, random_state=0, backend=backend).fit(X)
        assert_array_equal(km.cluster_centers_, base.cluster_centers_)
