"""Exact silhouette (gpukmeans.silhouette) against scikit-learn, across paths, weights and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gpukmeans.backends import get_backend
from gpukmeans.silhouette import silhouette_samples, silhouette_score

sk_metrics = pytest.importorskip("sklearn.metrics")

METRICS = ["euclidean", "manhattan", "chebyshev"]
ALGOS = {
    "euclidean": ["auto", "brute", "dedup"],
    "manhattan": ["auto", "brute", "dedup", "sorted"],
    "chebyshev": ["auto", "brute", "dedup"],
}
ALL_CASES = [(m, a) for m in METRICS for a in ALGOS[m]]


def _tied(n=240, d=3, k=4, seed=0, hi=6):
    """Small integer values: many ties and duplicated rows; one singleton cluster."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, hi, size=(n, d)).astype(np.float64)
    labels = rng.integers(0, k, size=n)
    labels[5] = k  # singleton
    return X, labels


def _continuous(n=200, d=4, k=3, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    X = rng.normal(size=(n, d)) + 1.5 * labels[:, None]
    return X, labels


# ----------------------------------------------------------------------------- against scikit-learn
@pytest.mark.parametrize(("metric", "algorithm"), ALL_CASES)
@pytest.mark.parametrize("data", [_tied, _continuous])
def test_matches_sklearn(metric, algorithm, data):
    X, labels = data()
    ref = sk_metrics.silhouette_samples(X, labels, metric=metric)
    s, info = silhouette_samples(X, labels, metric=metric, algorithm=algorithm, return_info=True)
    assert s.dtype == np.float64 and s.shape == (X.shape[0],)
    np.testing.assert_allclose(s, ref, rtol=0, atol=1e-9)
    score = silhouette_score(X, labels, metric=metric, algorithm=algorithm)
    assert isinstance(score, float)
    assert abs(score - sk_metrics.silhouette_score(X, labels, metric=metric)) < 1e-9
    if algorithm != "auto":
        assert info["path"] == algorithm


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int64])
def test_dtypes_match_sklearn_on_float64_copy(metric, dtype):
    rng = np.random.default_rng(3)
    if dtype == np.float32:
        X = (rng.normal(size=(150, 3)) * 40).astype(np.float32)
    else:
        X = rng.integers(0, 200, size=(150, 3)).astype(dtype)
    labels = rng.integers(0, 3, size=150)
    ref = sk_metrics.silhouette_score(X.astype(np.float64), labels, metric=metric)
    assert abs(silhouette_score(X, labels, metric=metric) - ref) < 1e-6
    np.testing.assert_allclose(
        silhouette_samples(X, labels, metric=metric),
        sk_metrics.silhouette_samples(X.astype(np.float64), labels, metric=metric),
        atol=1e-9,
    )


def test_large_integers_are_not_rounded_to_float32():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(9)
    X = (10**9 + rng.integers(0, 5, size=(80, 2))).astype(np.int64)  # float32 would merge these values
    labels = rng.integers(0, 3, size=80)
    for metric in METRICS:
        # reference from exact pairwise distances: scikit-learn's own euclidean path
        # (||x||^2 - 2 x.y + ||y||^2) loses every digit at this offset and returns 0
        D = cdist(X.astype(np.float64), X.astype(np.float64), metric={"manhattan": "cityblock"}.get(metric, metric))
        ref = sk_metrics.silhouette_score(D, labels, metric="precomputed")
        assert ref != 0.0
        assert abs(silhouette_score(X, labels, metric=metric) - ref) < 1e-9


def test_singleton_clusters_score_zero():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [9.0, 0.0], [9.0, 1.0], [20.0, 20.0]])
    labels = np.array([0, 0, 1, 2, 2, 3])
    for metric in METRICS:
        s = silhouette_samples(X, labels, metric=metric)
        assert s[2] == 0.0 and s[5] == 0.0
        np.testing.assert_allclose(s, sk_metrics.silhouette_samples(X, labels, metric=metric), atol=1e-12)


def test_duplicates_across_clusters_give_zero_not_nan():
    # a = b = 0: identical rows in two clusters (0/0 -> 0, like scikit-learn)
    X = np.array([[1.0, 1.0]] * 4 + [[3.0, 3.0]])
    labels = np.array([0, 0, 1, 1, 1])
    for metric in METRICS:
        for algorithm in ALGOS[metric]:
            s = silhouette_samples(X, labels, metric=metric, algorithm=algorithm)
            assert np.all(np.isfinite(s))
            np.testing.assert_allclose(s, sk_metrics.silhouette_samples(X, labels, metric=metric), atol=1e-12)


def test_arbitrary_label_values():
    X, labels = _tied(n=120, k=3)
    names = np.array(["water", "sand", "veg", "salt"])[labels]
    weird = np.array([-7, 3, 100, 42])[labels]
    ref = sk_metrics.silhouette_score(X, labels)
    assert abs(silhouette_score(X, names) - ref) < 1e-12
    assert abs(silhouette_score(X, weird) - ref) < 1e-12
    assert abs(silhouette_score(X.tolist(), labels.tolist()) - ref) < 1e-12


def test_kmeans_labels_on_image_crop():
    from PIL import Image

    from gpukmeans import KMeans
    from gpukmeans import __file__ as pkg

    img = np.asarray(Image.open(pkg.replace("__init__.py", "data/aral/MOD_01.jpg")))
    X = img[300:340, 200:250].reshape(-1, 3)  # 2,000 uint8 pixels, many repeated
    for metric in METRICS:
        labels = KMeans(3, metric=metric, random_state=0).fit(X).labels_
        score, info = silhouette_score(X, labels, metric=metric, return_info=True)
        assert info["n_unique"] < X.shape[0]
        ref = sk_metrics.silhouette_score(X.astype(np.float64), labels, metric=metric)
        assert abs(score - ref) < 1e-9


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 25),
    d=st.integers(1, 3),
    k=st.integers(2, 5),
    hi=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    metric=st.sampled_from(METRICS),
)
def test_property_matches_sklearn(n, d, k, hi, seed, metric):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, hi + 1, size=(n, d)).astype(np.float64)
    labels = rng.integers(0, k, size=n)
    assume(2 <= len(np.unique(labels)) <= n - 1)
    ref = sk_metrics.silhouette_samples(X, labels, metric=metric)
    for algorithm in ALGOS[metric]:
        np.testing.assert_allclose(silhouette_samples(X, labels, metric=metric, algorithm=algorithm), ref, atol=1e-12)


# ----------------------------------------------------------------------------- shortcuts == brute force
@pytest.mark.parametrize("metric", METRICS)
def test_shortcuts_equal_brute_force(metric):
    rng = np.random.default_rng(7)
    # duplicates plus continuous values far from zero (stress the prefix-sum cancellation)
    base = rng.normal(size=(60, 5)) * 1e-2 + 1e4
    X = base[rng.integers(0, 60, size=400)]
    labels = rng.integers(0, 5, size=400)
    w = rng.integers(0, 4, size=400).astype(float)
    brute = silhouette_samples(X, labels, metric=metric, sample_weight=w, algorithm="brute")
    for algorithm in ALGOS[metric]:
        s, info = silhouette_samples(X, labels, metric=metric, sample_weight=w, algorithm=algorithm, return_info=True)
        np.testing.assert_allclose(s, brute, rtol=0, atol=1e-9)
        if algorithm != "brute":
            assert info["n_unique"] <= 240  # merged (row, label) pairs


def test_auto_path_choice():
    Xi, labels = _tied()
    Xc, labels_c = _continuous()
    assert silhouette_score(Xi, labels, return_info=True)[1]["path"] == "dedup"
    assert silhouette_score(Xi, labels, metric="chebyshev", return_info=True)[1]["path"] == "dedup"
    assert silhouette_score(Xc, labels_c, return_info=True)[1]["path"] == "brute"
    assert silhouette_score(Xi, labels, metric="manhattan", return_info=True)[1]["path"] == "sorted"
    assert silhouette_score(Xc, labels_c, metric="l1", return_info=True)[1]["path"] == "sorted"
    _, info = silhouette_score(Xi, labels, return_info=True)
    assert info["n_unique"] < Xi.shape[0] and info["n_samples"] == Xi.shape[0]
    assert info["backend"] == "cpu" and info["metric"] == "euclidean" and info["sample_indices"] is None


def test_thread_count_does_not_change_bits():
    import numba

    X, labels = _continuous(n=3000, d=3, k=4)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    prev = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [silhouette_samples(X, labels, metric=m) for m in METRICS]
        numba.set_num_threads(2)
        two = [silhouette_samples(X, labels, metric=m) for m in METRICS]
    finally:
        numba.set_num_threads(prev)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- sample_weight
@pytest.mark.parametrize(("metric", "algorithm"), ALL_CASES)
def test_weights_equal_repeated_rows(metric, algorithm):
    X, labels = _tied(n=90, seed=4)
    rng = np.random.default_rng(5)
    w = rng.integers(0, 4, size=90)  # zeros drop rows
    w[5] = 1  # keep the singleton a singleton
    Xr, lr = np.repeat(X, w, axis=0), np.repeat(labels, w)
    ref = sk_metrics.silhouette_score(Xr, lr, metric=metric)
    score = silhouette_score(X, labels, metric=metric, sample_weight=w, algorithm=algorithm)
    assert abs(score - ref) < 1e-9
    s = silhouette_samples(X, labels, metric=metric, sample_weight=w.astype(np.float32), algorithm=algorithm)
    np.testing.assert_allclose(np.repeat(s, w), sk_metrics.silhouette_samples(Xr, lr, metric=metric), atol=1e-9)


def test_weight_of_a_lone_sample_counts_as_copies():
    X = np.array([[0.0], [10.0], [11.0]])
    labels = np.array([0, 1, 1])
    # weight 3 on the lone sample: its cluster has 3 copies at distance 0, so s = 1
    s = silhouette_samples(X, labels, sample_weight=[3, 1, 1])
    ref = sk_metrics.silhouette_samples(np.array([[0.0]] * 3 + [[10.0], [11.0]]), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(s, ref[2:], atol=1e-12)
    assert s[0] == 1.0
    # unit weights equal no weights
    unit = silhouette_score(X, labels, sample_weight=np.ones(3))
    assert unit == pytest.approx(silhouette_score(X, labels), abs=1e-15)


def test_zero_weight_cluster_is_ignored():
    X, labels = _tied(n=100, k=3, seed=8)
    labels = labels.copy()
    labels[:4] = 9  # a cluster that only zero-weight samples belong to
    w = np.ones(100)
    w[:4] = 0
    keep = w > 0
    ref = sk_metrics.silhouette_score(X[keep], labels[keep])
    assert abs(silhouette_score(X, labels, sample_weight=w) - ref) < 1e-12


# ----------------------------------------------------------------------------- sample_size
def test_sample_size_matches_sklearn_subsample_and_is_reproducible():
    X, labels = _continuous(n=500)
    ours, info = silhouette_score(X, labels, sample_size=120, random_state=3, return_info=True)
    ref = sk_metrics.silhouette_score(X, labels, sample_size=120, random_state=3)
    assert abs(ours - ref) < 1e-9
    assert info["n_samples"] == 120 and info["sample_indices"].shape == (120,)
    assert silhouette_score(X, labels, sample_size=120, random_state=3) == ours
    rs = np.random.RandomState(11)
    assert silhouette_score(X, labels, sample_size=120, random_state=rs) != ours
    # a sample_size of at least n scores everything, exactly
    full = silhouette_score(X, labels)
    assert silhouette_score(X, labels, sample_size=10_000, random_state=0) == pytest.approx(full, abs=1e-12)


def test_sample_size_errors():
    X, labels = _continuous(n=50)
    with pytest.raises(ValueError, match="sample_size"):
        silhouette_score(X, labels, sample_size=0)
    with pytest.raises(TypeError, match="sample_size"):
        silhouette_score(X, labels, sample_size=2.5)
    with pytest.raises(ValueError, match="subsample"):
        silhouette_score(X, labels, sample_size=1, random_state=0)
    with pytest.raises(ValueError, match="2-D"):
        silhouette_score(X[:, 0], labels, sample_size=10)
    with pytest.raises(ValueError, match="labels has 49 entries"):
        silhouette_score(X, labels[:-1], sample_size=10)
    Xn = X.copy()
    Xn[:, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        silhouette_score(Xn, labels, sample_size=10)


def test_sample_size_on_lists_and_memmaps(tmp_path):
    X, labels = _continuous(n=300)
    ref = sk_metrics.silhouette_score(X, labels, sample_size=100, random_state=1)
    assert abs(silhouette_score(X.tolist(), labels, sample_size=100, random_state=1) - ref) < 1e-9
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X
    ref32 = sk_metrics.silhouette_score(np.asarray(mm, np.float64), labels, sample_size=100, random_state=1)
    assert abs(silhouette_score(mm, labels, sample_size=100, random_state=1) - ref32) < 1e-9


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    X, labels = _continuous(n=30)
    with pytest.raises(ValueError, match="labels has 29 entries but X has 30 samples"):
        silhouette_score(X, labels[:-1])
    with pytest.raises(ValueError, match="Number of labels is 1"):
        silhouette_score(X, np.zeros(30, dtype=int))
    with pytest.raises(ValueError, match="Number of labels is 30"):
        silhouette_samples(X, np.arange(30))
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        silhouette_score(Xn, labels)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        silhouette_score(Xi, labels)
    with pytest.raises(ValueError, match="labels contains NaN"):
        silhouette_score(X, np.where(labels == 0, np.nan, labels.astype(float)))
    with pytest.raises(ValueError, match="1-D"):
        silhouette_score(X, labels.reshape(-1, 1))
    with pytest.raises(ValueError, match="2-D"):
        silhouette_score(X[:, 0], labels)
    with pytest.raises(ValueError, match="Unknown metric"):
        silhouette_score(X, labels, metric="cosine")
    with pytest.raises(ValueError, match="Unknown algorithm"):
        silhouette_score(X, labels, algorithm="fast")
    with pytest.raises(ValueError, match="manhattan.* only"):
        silhouette_score(X, labels, algorithm="sorted")
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        silhouette_score(X, labels, sample_weight=np.ones(29))
    with pytest.raises(ValueError, match="negative"):
        silhouette_score(X, labels, sample_weight=-np.ones(30))
    w = (labels == 0).astype(float)
    with pytest.raises(ValueError, match="positive sample_weight is 1"):
        silhouette_score(X, labels, sample_weight=w)


def test_cuda_backend_raises_same_error_as_get_backend():
    X, labels = _continuous(n=30)
    with pytest.raises(ValueError) as expected:
        get_backend("cuda")
    for fn in (silhouette_score, silhouette_samples):
        with pytest.raises(ValueError) as got:
            fn(X, labels, backend="cuda")
        assert str(got.value) == str(expected.value)
    with pytest.raises(ValueError, match="Unknown backend"):
        silhouette_score(X, labels, backend="tpu")


def test_inputs_not_modified():
    X, labels = _tied(n=60)
    X32 = X.astype(np.float32)
    before = (X32.copy(), labels.copy())
    silhouette_samples(X32, labels, sample_weight=np.ones(60))
    np.testing.assert_array_equal(X32, before[0])
    np.testing.assert_array_equal(labels, before[1])


# ----------------------------------------------------------------------------- numba disk cache
_CACHE_SCRIPT = """
import json
import numpy as np
from gpukmeans.silhouette import silhouette_score
from gpukmeans.backends import _numba_silhouette as k

rng = np.random.default_rng(0)
X = rng.integers(0, 9, size=(300, 3)).astype(np.float32)
labels = rng.integers(0, 3, size=300)
for metric in ("euclidean", "manhattan", "chebyshev"):
    silhouette_score(X, labels, metric=metric)
    silhouette_score(X.astype(np.float64), labels, metric=metric, sample_weight=np.ones(300), algorithm="brute")
stats = {}
for name in dir(k):
    obj = getattr(k, name)
    if hasattr(obj, "stats") and hasattr(obj, "py_func"):
        stats[name] = [sum(obj.stats.cache_hits.values()), sum(obj.stats.cache_misses.values())]
print(json.dumps(stats))
"""


def test_second_process_loads_silhouette_kernels_from_disk():
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        out = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    run()  # compiles what is not cached yet
    used = {name: hm for name, hm in run().items() if hm[0] + hm[1] > 0}
    for name in ("pairwise_cluster_sums", "build_sorted", "sorted_cluster_sums"):
        assert name in used, f"kernel {name} was not exercised"
    misses = {name: hm[1] for name, hm in used.items() if hm[1]}
    assert not misses, f"kernels compiled again in a new process (cache misses): {misses}"
