"""The numba kernels of the CPU backend against plain-NumPy and scipy references."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from conftest import CDIST_TERM, FLOAT_DTYPES, ref_terms, ref_weighted_median, ref_weighted_sums
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

from gpukmeans.backends import _numba_kernels as K

CODES = (0, 1, 2)
# 1 point, less than one block, exactly one block, several blocks (not a multiple
# of 64), and more than 2 * 4096 points so the reductions use several chunks.
SIZES = (1, 63, 64, 200, 3 * 4096 + 37)


def rtol_for(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


def make(n, d, k, dtype, seed=0, weights="random"):
    rng = np.random.default_rng(seed + 7 * n + k)
    X = rng.normal(size=(n, d)).astype(dtype)
    C = rng.normal(size=(k, d)).astype(dtype)
    if weights == "ones":
        w = np.ones(n, dtype)
    else:
        w = rng.uniform(0.1, 3.0, n).astype(dtype)
    return X, C, w


# --------------------------------------------------------------------- helpers
def test_parallel_kernels_run_only_their_prange_loops():
    """Every parallel kernel is compiled with ``PRANGE_ONLY``, which keeps numba's array expressions serial.

    With ``parallel=True`` numba makes each ``np.zeros`` and ``a += b`` a parallel
    region of its own, each a round trip to the thread pool (see ``PRANGE_ONLY``).
    """
    from numba import prange

    from gpukmeans.backends import _numba_silhouette

    kernels = [
        (name, f)
        for module in (K, _numba_silhouette)
        for name, f in vars(module).items()
        if isinstance(f, numba.core.registry.CPUDispatcher) and f.targetoptions.get("parallel")
    ]
    assert len(kernels) >= 19  # the assignment, reductions, histograms, medians, silhouette sums...
    for name, f in kernels:
        assert f.targetoptions["parallel"] is K.PRANGE_ONLY, name

    def expressions_and_a_prange(x):
        out = np.zeros(x.shape[0])
        total = np.zeros(4)
        for i in prange(x.shape[0]):
            out[i] = 2.0 * x[i]
        for _ in range(3):
            total += out[:4]
        return out, total

    counts = {}
    for option in (True, K.PRANGE_ONLY):
        f = numba.njit(parallel=option)(expressions_and_a_prange)
        out, total = f(np.arange(10.0))
        assert_array_equal(out, 2.0 * np.arange(10.0))
        assert_array_equal(total, 3 * out[:4])
        counts[option is True] = f.overloads[f.signatures[0]].metadata["parfor_diagnostics"].count_parfors()
    assert counts == {True: 4, False: 1}  # plain parallel=True: the two zeros and the += are parallel loops too


def test_n_chunks_for():
    assert K.n_chunks_for(1) == 1
    assert K.n_chunks_for(4095) == 1
    assert K.n_chunks_for(2 * 4096) == 2
    assert K.n_chunks_for(3 * 4096 + 37) == 3
    assert K.n_chunks_for(10**9) == 64


# -------------------------------------------------------------------- pairwise
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("n", SIZES)
def test_pairwise_matches_cdist(n, code, dtype):
    X, C, _ = make(n, 3, 5, dtype)
    out = K.pairwise(X, C, code)
    assert out.shape == (n, 5)
    assert out.dtype == dtype
    expected = cdist(X.astype(np.float64), C.astype(np.float64), CDIST_TERM[code])
    assert_allclose(out, expected, rtol=rtol_for(dtype), atol=1e-6 if dtype == np.float32 else 1e-13)
    assert_allclose(out, ref_terms(X, C, code), rtol=rtol_for(dtype), atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("code", CODES)
def test_pairwise_single_center_and_feature(code):
    X = np.array([[0.0], [1.5], [-2.0]])
    C = np.array([[0.5]])
    expected = {0: [0.25, 1.0, 6.25], 1: [0.5, 1.0, 2.5], 2: [0.5, 1.0, 2.5]}[code]
    assert_array_equal(K.pairwise(X, C, code)[:, 0], expected)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pairwise_many_features_hand_values(dtype):
    X = np.array([[1, -2, 3, 0, 5]], dtype=dtype)
    C = np.array([[0, 0, 0, 0, 0], [1, -2, 3, 0, 5], [2, 2, 2, 2, 2]], dtype=dtype)
    assert_array_equal(K.pairwise(X, C, 0)[0], [39, 0, 1 + 16 + 1 + 4 + 9])
    assert_array_equal(K.pairwise(X, C, 1)[0], [11, 0, 1 + 4 + 1 + 2 + 3])
    assert_array_equal(K.pairwise(X, C, 2)[0], [5, 0, 4])


# ---------------------------------------------------------------------- assign
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("n", SIZES)
def test_assign_labels_objective_sums(n, code, dtype):
    k, d = 5, 3
    X, C, w = make(n, d, k, dtype)
    terms = ref_terms(X, C, code)
    labels = np.full(n, -1, np.int32)
    objective, n_changed, sums = K.assign(X, w, C, code, labels, True)
    assert labels.dtype == np.int32
    # Every label is a nearest center (float64 reference, float32 tolerance) ...
    lab_terms = terms[np.arange(n), labels]
    assert_allclose(lab_terms, terms.min(axis=1), rtol=rtol_for(dtype), atol=1e-6 if dtype == np.float32 else 0)
    # ... and exactly the first argmin of the distances the kernel computes.
    assert_array_equal(labels, np.argmin(K.pairwise(X, C, code), axis=1))
    if dtype == np.float64:  # random data: no ties
        assert_array_equal(labels, np.argmin(terms, axis=1))
    assert n_changed == n  # every label was -1
    assert_allclose(objective, float(w.astype(np.float64) @ lab_terms), rtol=rtol_for(dtype) * 5)
    assert sums.shape == (k, d + 1)
    assert sums.dtype == np.float64
    assert_allclose(sums, ref_weighted_sums(X, w, labels, k), rtol=1e-10, atol=1e-10)
    assert_allclose(sums[:, -1].sum(), w.astype(np.float64).sum(), rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_assign_without_accumulate_returns_zero_sums(code, dtype):
    X, C, w = make(300, 2, 4, dtype)
    labels = np.zeros(300, np.int32)
    objective, n_changed, sums = K.assign(X, w, C, code, labels, False)
    assert sums.shape == (4, 3)
    assert not sums.any()
    terms = ref_terms(X, C, code)
    assert_allclose(objective, float(w.astype(np.float64) @ terms.min(axis=1)), rtol=rtol_for(dtype) * 5)
    assert n_changed == int((np.argmin(terms, axis=1) != 0).sum())


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("n", (70, 3 * 4096 + 37))
def test_assign_counts_changed_labels(n, code, dtype):
    X, C, w = make(n, 3, 4, dtype)
    truth = np.full(n, -1, np.int32)
    K.assign(X, w, C, code, truth, False)
    labels = truth.copy()
    _, n_changed, _ = K.assign(X, w, C, code, labels, False)
    assert n_changed == 0
    assert_array_equal(labels, truth)
    rng = np.random.default_rng(1)
    stale = truth.copy()
    flip = rng.choice(n, size=max(1, n // 5), replace=False)
    stale[flip] = (stale[flip] + 1 + rng.integers(0, 3, flip.size)) % 4
    _, n_changed, _ = K.assign(X, w, C, code, stale, False)
    assert n_changed == flip.size
    assert_array_equal(stale, truth)  # labels are overwritten in place


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_assign_single_cluster(code, dtype):
    n = 2 * 4096 + 100
    X, C, w = make(n, 4, 1, dtype)
    labels = np.full(n, 3, np.int32)
    objective, n_changed, sums = K.assign(X, w, C, code, labels, True)
    assert not labels.any()
    assert n_changed == n
    expected = cdist(X.astype(np.float64), C.astype(np.float64), CDIST_TERM[code])[:, 0]
    assert_allclose(objective, float(w.astype(np.float64) @ expected), rtol=rtol_for(dtype) * 5)
    w64 = w.astype(np.float64)
    assert_allclose(sums[0, :-1], w64 @ X.astype(np.float64), rtol=1e-10)
    assert_allclose(sums[0, -1], w64.sum(), rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_assign_ties_go_to_lowest_index(code, dtype):
    # Small integers: every distance is exact in float32 and float64, ties abound.
    rng = np.random.default_rng(code)
    n = 4096 * 2 + 333
    X = rng.integers(-3, 4, size=(n, 3)).astype(dtype)
    C = rng.integers(-3, 4, size=(9, 3)).astype(dtype)
    C[5] = C[2]  # duplicated center: index 2 must win over 5
    C[8] = C[0]
    terms = ref_terms(X, C, code)
    assert (np.sort(terms, axis=1)[:, 1] == terms.min(axis=1)).sum() > n // 10  # plenty of ties
    labels = np.full(n, -1, np.int32)
    w = np.ones(n, dtype)
    objective, _, _ = K.assign(X, w, C, code, labels, True)
    assert_array_equal(labels, np.argmin(terms, axis=1))  # np.argmin: first minimum
    assert not np.isin(labels, (5, 8)).any()
    assert objective == terms.min(axis=1).sum()


@pytest.mark.parametrize("code", CODES)
def test_assign_tie_hand_example(code):
    # The origin is at the same distance (1) from all four centers.
    X = np.zeros((1, 2))
    C = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        labels = np.array([-1], np.int32)
        objective, _, _ = K.assign(X, np.ones(1), C[perm], code, labels, False)
        assert labels[0] == 0
        assert objective == 1.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_assign_zero_weights_count_nothing(dtype):
    X, C, w = make(500, 3, 3, dtype)
    w[::2] = 0
    labels = np.full(500, -1, np.int32)
    objective, n_changed, sums = K.assign(X, w, C, 0, labels, True)
    assert n_changed == 500  # zero-weight samples are still labelled
    terms = ref_terms(X, C, 0)
    assert_array_equal(labels, np.argmin(K.pairwise(X, C, 0), axis=1))
    assert_allclose(objective, float(w[1::2].astype(np.float64) @ terms[1::2].min(axis=1)), rtol=1e-5)
    assert_allclose(sums[:, -1].sum(), w.astype(np.float64).sum(), rtol=1e-12)


def test_assign_is_independent_of_thread_count():
    X, C, w = make(5 * 4096 + 11, 3, 6, np.float32)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            labels = np.full(X.shape[0], -1, np.int32)
            objective, n_changed, sums = K.assign(X, w, C, 0, labels, True)
            objs = K.cluster_objectives(X, w, labels, C[None], 1)
            medians, weights = K.weighted_median_buckets(X, w, labels, C.shape[0], *K.feature_ranges(X))
            results.append((objective, n_changed, sums, labels, objs, medians, weights))
    finally:
        numba.set_num_threads(before)
    for other in results[1:]:
        assert other[0] == results[0][0]
        assert other[1] == results[0][1]
        for mine, first in zip(other[2:], results[0][2:]):
            assert_array_equal(mine, first)


# ----------------------------------------------------------------- point_costs
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("n", (1, 63, 200, 3 * 4096 + 37))
@pytest.mark.parametrize("d", (3, 13, K.MAX_UNROLLED_FEATURES + 4))  # compile-time feature counts, and generic
def test_point_costs(n, d, code, dtype):
    X, C, _ = make(n, d, 4, dtype)
    labels = np.random.default_rng(n).integers(0, 4, n).astype(np.int32)
    out = K.point_costs(X, C, code, labels)
    assert out.shape == (n,)
    assert out.dtype == dtype
    expected = cdist(X.astype(np.float64), C.astype(np.float64), CDIST_TERM[code])[np.arange(n), labels]
    assert_allclose(out, expected, rtol=rtol_for(dtype), atol=1e-6 if dtype == np.float32 else 1e-13)


# ---------------------------------------------------------- cluster_objectives
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("n, d", ((1, 3), (200, 3), (3 * 4096 + 37, 3), (5000, 11), (300, 40)))
@pytest.mark.parametrize("repeats", (False, True), ids=("distinct", "repeated"))
def test_cluster_objectives(n, d, code, dtype, repeats):
    k, n_sets = 4, 3
    X, _, w = make(n, d, k, dtype)
    rng = np.random.default_rng(n + code)
    labels = rng.integers(0, k, n).astype(np.int32)
    candidates = rng.normal(size=(n_sets, k, d)).astype(dtype)
    if repeats:  # as the guarded update offers them: a set repeats another's center for some clusters
        candidates[1, 0] = candidates[0, 0]
        candidates[2, 1:3] = candidates[0, 1:3]
        candidates[2, 3] = candidates[1, 3]
    out = K.cluster_objectives(X, w, labels, candidates, code)
    assert out.shape == (n_sets, k)
    assert out.dtype == np.float64
    expected = np.zeros((n_sets, k))
    for s in range(n_sets):
        terms = cdist(X.astype(np.float64), candidates[s].astype(np.float64), CDIST_TERM[code])
        for j in range(k):
            members = labels == j
            expected[s, j] = w[members].astype(np.float64) @ terms[members, j]
    assert_allclose(out, expected, rtol=rtol_for(dtype) * 5, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("d", (1, 3, 16, 17, 40))  # up to 16: unrolled feature loop; above: the generic one
@pytest.mark.parametrize("n_sets", (1, 3, 4, 6))  # 6: two passes of the four vector lanes
@pytest.mark.parametrize("stride", (1, 3))
def test_cluster_objectives_bit_for_bit(d, code, dtype, n_sets, stride):
    """The vector lanes give the scalar code's values exactly: the same operations in the same order.

    One chunk (n < 2 * 4096): each sample's term is built feature by feature in
    X's dtype, weighted in float64 and added to its (cluster, slot) accumulator
    in sample order; the four slots are then added in order.
    """
    from gpukmeans.backends._base import SAMPLE_RUN

    n, k = 3000, 5
    X, _, w = make(n, d, k, dtype, seed=d)
    rng = np.random.default_rng(d + 10 * code)
    labels = rng.integers(0, k, n).astype(np.int32)
    candidates = rng.normal(size=(n_sets, k, d)).astype(dtype)
    out = K.cluster_objectives(X, w, labels, candidates, code, stride)
    index = np.flatnonzero((np.arange(n) // SAMPLE_RUN) % stride == 0)
    expected = np.zeros((n_sets, k))
    for s in range(n_sets):
        acc = np.zeros(index.size, dtype)
        for f in range(d):
            diff = X[index, f] - candidates[s, labels[index], f]
            term = diff * diff if code == 0 else np.abs(diff)
            acc = np.maximum(acc, term) if code == 2 else acc + term
        slots = np.zeros((k, 4))
        np.add.at(slots, (labels[index], index % 4), w[index].astype(np.float64) * acc.astype(np.float64))
        for j in range(k):
            for slot in range(4):
                expected[s, j] += slots[j, slot]
    assert_array_equal(out, expected)


def test_cluster_objectives_computes_in_the_dtype_of_X():
    """Candidates of another dtype are converted to X's (the terms are X's dtype); no sets, no pass."""
    X, C, w = make(500, 3, 4, np.float32)
    labels = np.random.default_rng(0).integers(0, 4, 500).astype(np.int32)
    wide = np.stack([C, C + 0.1]).astype(np.float64) + 1e-9  # not representable in float32
    expected = K.cluster_objectives(X, w, labels, wide.astype(np.float32), 2)
    assert_array_equal(K.cluster_objectives(X, w, labels, wide, 2), expected)
    assert K.cluster_objectives(X, w, labels, wide[:0], 2).shape == (0, 4)


def test_add_terms_rejects_arrays_it_cannot_read_as_vectors():
    from numba import njit
    from numba.core.errors import TypingError

    from gpukmeans.backends._lanes import LANES, add_terms

    @njit
    def call(X, lanes, out):
        add_terms(2, X, 0, 1.0, lanes, 0, 0, out, (0, 0))

    X = np.zeros((4, 4), np.float32)
    call(X[:, :2].copy(), np.zeros((1, 2, LANES), np.float32), np.zeros((1, 1, LANES)))  # contiguous: accepted
    with pytest.raises(TypingError, match="C-contiguous 2-D float"):
        call(X[:, :2], np.zeros((1, 2, LANES), np.float32), np.zeros((1, 1, LANES)))
    with pytest.raises(TypingError, match="dtype"):
        call(X[:, :2].copy(), np.zeros((1, 2, LANES)), np.zeros((1, 1, LANES)))
    with pytest.raises(TypingError, match="float64"):
        call(X[:, :2].copy(), np.zeros((1, 2, LANES), np.float32), np.zeros((1, 1, LANES), np.float32))


def test_cluster_objectives_hand_example():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0]])
    w = np.array([1.0, 3.0, 2.0])
    labels = np.array([0, 0, 1], np.int32)
    candidates = np.array([[[0.0, 0.0], [10.0, 10.0]], [[1.0, 1.0], [9.0, 12.0]]])
    assert_array_equal(K.cluster_objectives(X, w, labels, candidates, 0), [[12.0, 0.0], [8.0, 10.0]])
    assert_array_equal(K.cluster_objectives(X, w, labels, candidates, 1), [[6.0, 0.0], [8.0, 6.0]])
    assert_array_equal(K.cluster_objectives(X, w, labels, candidates, 2), [[6.0, 0.0], [4.0, 4.0]])


@pytest.mark.parametrize("n", (1, 64, 65, 1000, 64 * 4096 * 3 + 37))
@pytest.mark.parametrize("stride", (1, 2, 7, 100))
@pytest.mark.parametrize("code", CODES)
def test_cluster_objectives_on_a_sample(n, stride, code):
    """``stride`` > 1: the sums cover the runs of 64 samples whose index // 64 is a multiple of stride."""
    from gpukmeans.backends._base import SAMPLE_RUN

    k, d = 5, 3
    X, _, w = make(n, d, k, np.float64, seed=stride)
    rng = np.random.default_rng(stride + code)
    labels = rng.integers(0, k, n).astype(np.int32)
    candidates = rng.normal(size=(3, k, d))
    out = K.cluster_objectives(X, w, labels, candidates, code, stride)
    index = np.arange(n)
    sample = (index // SAMPLE_RUN) % stride == 0
    expected = np.zeros((3, k))
    for s in range(3):
        terms = cdist(X[sample], candidates[s], CDIST_TERM[code])
        for j in range(k):
            members = labels[sample] == j
            expected[s, j] = w[sample][members] @ terms[members, j]
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", (0, 1, 63, 64, 65, 1000, 12345))
@pytest.mark.parametrize("stride", (1, 2, 3, 7))
@pytest.mark.parametrize("offset", (0, 5, 64, 777, 10**6 + 3))
def test_sample_rows(n, stride, offset):
    from gpukmeans.backends._base import SAMPLE_RUN, sample_rows

    index = np.arange(n)
    expected = index[((offset + index) // SAMPLE_RUN) % stride == 0]
    assert_array_equal(sample_rows(n, stride, offset), expected)


# --------------------------------------------------------------- weighted_sums
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n", (1, 63, 200, 3 * 4096 + 37))
@pytest.mark.parametrize("k", (1, 5))
def test_weighted_sums(k, n, dtype):
    X, _, w = make(n, 3, k, dtype)
    w[::3] = 0
    labels = np.random.default_rng(n).integers(0, k, n).astype(np.int32)
    sums = K.weighted_sums(X, w, labels, k)
    assert sums.shape == (k, 4)
    assert sums.dtype == np.float64
    assert_allclose(sums, ref_weighted_sums(X, w, labels, k), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 8, 32, 33, 256])
@pytest.mark.parametrize("n", [0, 1, 1023, 1025, 70_001])
def test_label_counts_equal_bincount(k, n):
    rng = np.random.default_rng(n + k)
    labels = rng.integers(-1, k + 2, n).astype(np.int32)  # -1 and labels >= k are not counted
    labels[: n // 3] = k // 2  # a long run of one label (imagery)
    inside = labels[(labels >= 0) & (labels < k)]
    counts = K.label_counts(labels, k)
    assert counts.dtype == np.int64
    assert_array_equal(counts, np.bincount(inside, minlength=k))


def test_weighted_sums_empty_cluster_is_zero():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([0, 0, 2, 2, 2, 0], np.int32)
    sums = K.weighted_sums(X, np.ones(6, np.float32), labels, 4)
    assert_array_equal(sums[1], 0)
    assert_array_equal(sums[3], 0)
    assert_array_equal(sums[0], [0 + 2 + 10, 1 + 3 + 11, 3])
    assert_array_equal(sums[2], [4 + 6 + 8, 5 + 7 + 9, 3])


# ------------------------------------------------------------- weighted_median
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("count", (1, 2, 3, 4, 7, 10, 501, 1000))
def test_weighted_median_unit_weights_is_np_median(count, dtype):
    rng = np.random.default_rng(count)
    X = rng.normal(size=(count, 3)).astype(dtype)
    medians, weights = K.weighted_median(X, np.ones(count, dtype), np.zeros(count, np.int32), 1)
    assert medians.shape == (1, 3)
    assert medians.dtype == np.float64
    assert_allclose(medians[0], np.median(X.astype(np.float64), axis=0), rtol=1e-15, atol=0)
    assert weights[0] == count


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_weighted_median_unit_weights_per_cluster(dtype):
    rng = np.random.default_rng(5)
    k, n = 6, 1001
    X = rng.normal(size=(n, 4)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int32)
    labels[labels == 4] = 3  # cluster 4 empty
    medians, weights = K.weighted_median(X, np.ones(n, dtype), labels, k)
    for j in range(k):
        members = X[labels == j].astype(np.float64)
        assert weights[j] == members.shape[0]
        if members.shape[0]:
            assert_array_equal(medians[j], np.median(members, axis=0))
        else:
            assert np.isnan(medians[j]).all()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_weighted_median_with_zero_and_integer_weights(seed, dtype):
    rng = np.random.default_rng(seed)
    k, n = 5, 400
    X = rng.integers(-20, 20, size=(n, 3)).astype(dtype) / 4  # duplicates, exact values
    w = rng.integers(0, 4, n).astype(dtype)  # about a quarter zeros
    labels = rng.integers(0, k, n).astype(np.int32)
    medians, weights = K.weighted_median(X, w, labels, k)
    for j in range(k):
        members = labels == j
        assert weights[j] == w[members].astype(np.float64).sum()
        for f in range(3):
            expected = ref_weighted_median(X[members, f], w[members])
            assert medians[j, f] == expected
            # The weighted median minimises the weighted L1 cost (independent check).
            keep = members & (w > 0)
            vals = X[keep, f].astype(np.float64)
            ws = w[keep].astype(np.float64)
            costs = np.abs(vals[None, :] - vals[:, None]) @ ws  # L1 cost of every member value
            assert ws @ np.abs(vals - medians[j, f]) <= costs.min() + 1e-9
            # Repeating each sample w_i times: same median as np.median on the repeats.
            repeated = np.repeat(vals, w[keep].astype(np.int64))
            assert medians[j, f] == np.median(repeated)


def _median_problem(seed, kind, dtype, weighting, n=1500, d=3, k=5):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        X = rng.normal(size=(n, d))
    elif kind == "halves":  # many ties, exact halves of the weight
        X = rng.integers(-5, 5, (n, d)) / 2.0
    elif kind == "signed zeros":
        X = rng.choice([-0.0, 0.0, 1.5, -2.25, 1e30, -1e-30], size=(n, d))
    elif kind == "wide":  # magnitudes from 1e-20 to 1e20 in one feature
        X = rng.exponential(size=(n, d)) * 10.0 ** rng.integers(-20, 20, (n, 1))
    else:  # constant
        X = np.full((n, d), 3.25)
    w = {
        "unit": np.ones(n),
        "integer": rng.integers(0, 4, n).astype(np.float64),
        "fractional": rng.random(n) * (rng.random(n) > 0.2),
    }[weighting]
    labels = rng.integers(0, k, n).astype(np.int32)
    labels[labels == k - 1] = 0  # cluster k - 1 is empty
    return X.astype(dtype), w.astype(dtype), labels, k


@pytest.mark.parametrize("kind", ["normal", "halves", "signed zeros", "wide", "constant"])
@pytest.mark.parametrize("weighting", ["unit", "integer", "fractional"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_weighted_median_buckets_equal_quickselect(kind, weighting, dtype):
    X, w, labels, k = _median_problem(7, kind, dtype, weighting)
    lo, hi = K.feature_ranges(X)
    assert_array_equal(lo, X.min(axis=0).astype(np.float64))
    assert_array_equal(hi, X.max(axis=0).astype(np.float64))
    medians, weights = K.weighted_median_buckets(X, w, labels, k, lo, hi)
    ref, ref_weights = K.weighted_median(X, w, labels, k)
    assert_array_equal(medians, ref)  # NaN for the empty cluster in both
    assert np.isnan(medians[k - 1]).all()
    assert_allclose(weights, ref_weights, rtol=1e-12)
    for j in range(k - 1):  # against the reference definition
        for f in range(X.shape[1]):
            members = (labels == j) & (w > 0)
            assert medians[j, f] == ref_weighted_median(X[members, f].astype(np.float64), w[members])


@pytest.mark.parametrize("weighting", ["unit", "integer", "fractional"])
@pytest.mark.parametrize("kind", ["halves", "normal"])
def test_weighted_median_buckets_across_chunks(kind, weighting):
    """Several sample chunks: the members of the median's bucket and the next value come from all of them."""
    X, w, labels, k = _median_problem(12, kind, np.float64, weighting, n=50_000, d=4, k=4)
    medians, _ = K.weighted_median_buckets(X, w, labels, k, *K.feature_ranges(X))
    assert_array_equal(medians, K.weighted_median(X, w, labels, k)[0])


def test_weighted_median_buckets_midpoint_with_the_next_value_in_another_chunk():
    """An exact half: the median is the midpoint with the next larger value, found in a later chunk."""
    n = 40_000  # 4 sample chunks
    X = np.zeros((n, 2))
    X[: n // 2, 0], X[n // 2 :, 0] = 1.0, 2.0  # feature 0: the next value is in chunks 2-3 only
    X[:, 1] = np.linspace(-5.0, 5.0, n) ** 3  # feature 1: spread, so the buckets are narrow
    X[0, 0], X[-1, 0] = 0.0, 9.0  # the range: 1.0 and 2.0 fall in different, non-adjacent buckets
    w = np.ones(n)
    labels = np.zeros(n, np.int32)
    medians, _ = K.weighted_median_buckets(X, w, labels, 1, *K.feature_ranges(X))
    assert medians[0, 0] == 1.5 == np.median(X[:, 0])
    assert medians[0, 1] == np.median(X[:, 1])
    assert_array_equal(medians, K.weighted_median(X, w, labels, 1)[0])


def test_weighted_median_buckets_many_clusters_use_fewer_buckets():
    X, w, labels, _ = _median_problem(8, "normal", np.float32, "unit", n=20_000, d=16, k=64)
    labels = np.random.default_rng(8).integers(0, 64, X.shape[0]).astype(np.int32)
    medians, _ = K.weighted_median_buckets(X, w, labels, 64, *K.feature_ranges(X))
    assert_array_equal(medians, K.weighted_median(X, w, labels, 64)[0])


@pytest.mark.parametrize("n", (1, 64, 50_000))
def test_bucket_moves_equal_bucket_histograms_exactly(n):
    """Moving the relabelled samples in kept bucket counts gives the counts of a fresh pass, bit for bit."""
    X, w, labels, k = _median_problem(n, "normal", np.float32, "unit", n=n, d=3, k=5)
    lo, hi = K.feature_ranges(X)
    hist, count = K.bucket_histograms(X, w, labels, k, lo, hi)
    assert_array_equal(hist, count)  # unit weights: the weights are the counts
    counted = labels.copy()
    for seed in range(3):
        labels = _moved_labels(n, k, seed)
        if seed == 2:
            labels[: n // 2] = counted[: n // 2]  # half unchanged
        K.bucket_moves(X, labels, counted, lo, hi, count)
        assert_array_equal(counted, labels)
        fresh_hist, fresh_count = K.bucket_histograms(X, w, labels, k, lo, hi)
        assert_array_equal(count, fresh_count)
        medians, weights = K.medians_from_buckets(X, w, labels, k, lo, hi, count.astype(np.float64), count)
        assert_array_equal(medians, K.weighted_median(X, w, labels, k)[0])
        assert_array_equal(weights, np.bincount(labels, minlength=k))
    with pytest.raises(ValueError, match="another bucket layout"):
        K.bucket_moves(X, labels, counted, lo, hi, count[:, :, :, :-1].copy())


def test_cpu_backend_keeps_the_bucket_counts_of_a_run(monkeypatch):
    """A bound run with unit weights counts the buckets once, then moves its relabelled samples only.

    As the driver calls it: the run's labels, then a relocated copy, then the run's labels again; every
    median equals the quickselect's.
    """
    from gpukmeans.backends import cpu

    calls = []
    for name in ("bucket_histograms", "bucket_moves", "weighted_median_buckets"):
        original = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    rng = np.random.default_rng(3)
    n, k = 30_000, 6
    X = rng.normal(size=(n, 4)) * rng.uniform(0.1, 1000, 4)
    w = np.ones(n)
    bound = cpu.CPUBackend().bind(X, w)
    labels = np.full(n, -1, np.int32)
    sums = None
    for it in range(5):
        C = X[rng.choice(n, k, replace=False)]
        _, _, sums = bound.assign(X, w, C, 1, labels, True, sums)
        given = labels
        if it == 2:  # an iteration that emptied a cluster: the update gets a relocated copy
            given = labels.copy()
            given[rng.choice(n, 50, replace=False)] = k - 1
        got = bound.update(X, w, given, k, "median")
        assert_array_equal(got[0], K.weighted_median(X, w, given, k)[0])
        assert_array_equal(got[1], np.bincount(given, minlength=k))
    assert calls == ["bucket_histograms"] + ["bucket_moves"] * 4
    weighted = cpu.CPUBackend().bind(X, np.full(n, 2.0))  # other weights: counted afresh every time
    calls.clear()
    weighted.update(X, np.full(n, 2.0), labels, k, "median")
    weighted.update(X, np.full(n, 2.0), labels, k, "median")
    assert calls == ["weighted_median_buckets"] * 2


def test_cpu_backend_median_of_float_data_takes_the_bucket_select(monkeypatch, cpu_backend):
    X, w, labels, k = _median_problem(9, "normal", np.float64, "fractional")
    ref = K.weighted_median(X, w, labels, k)
    calls = []
    original = K.weighted_median_buckets
    monkeypatch.setattr(K, "weighted_median_buckets", lambda *a: calls.append(1) or original(*a))
    got = cpu_backend.update(X, w, labels, k, "median")
    assert calls
    assert_array_equal(got[0], ref[0])
    monkeypatch.setattr(K, "MAX_BUCKET_CELLS", 0)  # too many cells: the quickselect
    assert_array_equal(cpu_backend.update(X, w, labels, k, "median")[0], ref[0])
    assert len(calls) == 1


def test_weighted_median_hand_examples():
    X = np.array([[1.0], [2.0], [3.0], [4.0]])
    one = np.zeros(4, np.int32)
    cases = [
        ([1, 1, 1, 1], 2.5),  # cumulative weight exactly half at 2: midpoint
        ([1, 1, 1, 3], 3.5),  # cumulative 3 == half at value 3: midpoint of 3 and 4
        ([1, 1, 1, 4], 4.0),  # half = 3.5 first reached at 4
        ([5, 1, 1, 1], 1.0),
        ([0, 0, 0, 2], 4.0),  # zero weights ignored
        ([1, 0, 0, 1], 2.5),  # midpoint with the next *positive-weight* value
        ([0, 1, 1, 0], 2.5),
        ([2, 0, 1, 1], 2.0),  # cumulative 2 == half at 1; next positive-weight value is 3
    ]
    for w, expected in cases:
        medians, weights = K.weighted_median(X, np.array(w, np.float64), one, 1)
        assert medians[0, 0] == expected, (w, medians[0, 0], expected)
        assert weights[0] == sum(w)


def test_weighted_median_unsorted_input_and_ties():
    X = np.array([[5.0], [1.0], [5.0], [3.0], [1.0], [9.0]])
    labels = np.array([0, 0, 0, 0, 0, 1], np.int32)
    medians, weights = K.weighted_median(X, np.ones(6), labels, 2)
    assert medians[0, 0] == np.median([5, 1, 5, 3, 1]) == 3.0
    assert medians[1, 0] == 9.0
    assert_array_equal(weights, [5, 1])


def test_weighted_median_zero_weight_cluster_is_nan():
    X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], np.float32)
    labels = np.array([0, 1, 1], np.int32)
    medians, weights = K.weighted_median(X, np.array([0.0, 1.0, 1.0], np.float32), labels, 3)
    assert np.isnan(medians[0]).all()  # only a zero-weight member
    assert np.isnan(medians[2]).all()  # no member
    assert_array_equal(medians[1], [4.0, 5.0])
    assert_array_equal(weights, [0.0, 2.0, 0.0])


# -------------------------------------------- integer-valued (histogram) median
def test_integer_range():
    assert K.integer_range(np.array([[3.0, -2.0], [7.0, 0.0]])) == (True, -2.0, 7.0)
    assert K.integer_range(np.array([[3.0, -2.0], [7.5, 0.0]]))[0] is False
    assert K.integer_range(np.array([[255.0]], np.float32)) == (True, 255.0, 255.0)
    assert K.integer_range(np.array([[1e-30]]))[0] is False


def test_hist_chunks_for():
    assert K.hist_chunks_for(100, 10) == 1
    assert K.hist_chunks_for(64 * 4096, 10) == 64
    assert K.hist_chunks_for(64 * 4096, K._HIST_CHUNK_CELLS // 8) == 8
    assert K.hist_chunks_for(64 * 4096, K._HIST_CHUNK_CELLS // 2) == 2
    assert K.hist_chunks_for(64 * 4096, 10 * K._HIST_CHUNK_CELLS) == 2  # at least 2 when the data allow
    assert K.hist_chunks_for(5000, 10 * K._HIST_CHUNK_CELLS) == 1  # one chunk's worth of samples


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("n", (1, 2, 7, 300, 3 * 4096 + 37))
def test_weighted_median_hist_matches_reference(n, dtype):
    rng = np.random.default_rng(n)
    k, d = 4, 3
    X = rng.integers(-5, 250, size=(n, d)).astype(dtype)
    w = rng.integers(0, 4, n).astype(dtype)
    w[0] = 1
    labels = rng.integers(0, k, n).astype(np.int32)
    ok, lo, hi = K.integer_range(X)
    assert ok
    medians, weights = K.weighted_median_hist(X, w, labels, k, lo, int(hi - lo) + 1)
    sorted_medians, sorted_weights = K.weighted_median(X, w, labels, k)
    assert_array_equal(weights, sorted_weights)
    assert_array_equal(medians, sorted_medians)  # NaN == NaN for clusters of no weight
    for j in range(k):
        members = labels == j
        assert weights[j] == w[members].astype(np.float64).sum()
        for f in range(d):
            expected = ref_weighted_median(X[members, f], w[members])
            if np.isnan(expected):
                assert np.isnan(medians[j, f])
            else:
                assert medians[j, f] == expected


@pytest.mark.parametrize("width", (256, 40000), ids=["narrow-per-chunk", "wide-per-feature"])
@pytest.mark.parametrize("weighting", ("unit", "fractional"))
def test_histogram_equals_np_add_at(width, weighting):
    """Both routes of the histogram (per chunk of samples; per feature for wide histograms) against np.add.at."""
    rng = np.random.default_rng(width)
    n, k, d = 3 * 4096 + 37, 6, 5
    X = rng.integers(0, width, size=(n, d)).astype(np.float32)
    X[0] = width - 1
    w = np.ones(n, np.float32) if weighting == "unit" else rng.uniform(0, 2, n).astype(np.float32)
    w[::7] = 0
    labels = rng.integers(0, k, n).astype(np.int32)
    per_feature = K.hist_chunks_for(n, k * d * width) < K.n_chunks_for(n)
    assert per_feature == (width == 40000)
    expected = np.zeros((k, d, width))
    for f in range(d):
        np.add.at(expected, (labels, f, X[:, f].astype(np.int64)), w.astype(np.float64))
    hist = K.histogram(X, w, labels, k, 0.0, width)
    if weighting == "unit":
        assert_array_equal(hist, expected)
    else:
        assert_allclose(hist, expected, rtol=1e-12, atol=0)
    # the medians, scanned serially (narrow) or one row per thread (wide), are those of the definition
    assert (hist.size >= K.PARALLEL_MEDIAN_CELLS) == (width == 40000)
    medians, weights = K.medians_from_histogram(hist, 0.0)
    serial = np.full(hist.shape[:2], np.nan)
    K._medians_serial(hist, 0.0, weights, serial)
    assert_array_equal(medians, serial)
    assert_allclose(weights, [w[labels == j].astype(np.float64).sum() for j in range(k)], rtol=1e-12)
    for j in range(k):
        members = labels == j
        for f in range(d):
            assert medians[j, f] == ref_weighted_median(X[members, f], w[members])


def test_weighted_median_hist_unit_weights_is_np_median():
    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 10, 11):
        X = rng.integers(0, 256, size=(count, 3)).astype(np.float32)
        ok, lo, hi = K.integer_range(X)
        medians, _ = K.weighted_median_hist(
            X, np.ones(count, np.float32), np.zeros(count, np.int32), 1, lo, int(hi - lo) + 1
        )
        assert_array_equal(medians[0], np.median(X.astype(np.float64), axis=0))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cpu_backend_median_integer_and_general_paths_agree(cpu_backend, dtype):
    rng = np.random.default_rng(2)
    n, k = 2000, 5
    pixels = rng.integers(0, 256, size=(n, 3)).astype(dtype)  # takes the histogram path
    w = rng.integers(0, 3, n).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int32)
    got, weights = cpu_backend.update(pixels, w, labels, k, "median")
    expected, expected_weights = K.weighted_median(pixels, w, labels, k)
    assert_array_equal(got, expected)
    assert_array_equal(weights, expected_weights)
    shifted = pixels + dtype(0.5)  # not integer-valued: the general path
    got, _ = cpu_backend.update(shifted, w, labels, k, "median")
    assert_array_equal(got, expected + 0.5)


def test_cpu_backend_median_depends_only_on_current_values(cpu_backend):
    # The backend interface promises results that depend only on the inputs: a
    # backend that already saw an array must not reuse facts about its old values.
    rng = np.random.default_rng(0)
    n = 1000
    X = np.floor(rng.uniform(0, 10, (n, 2)))
    labels = np.zeros(n, np.int32)
    w = np.ones(n)
    first, _ = cpu_backend.update(X, w, labels, 1, "median")
    assert_array_equal(first[0], np.median(X, axis=0))
    X += 0.25  # same buffer, new values (still inside the old integer range)
    second, _ = cpu_backend.update(X, w, labels, 1, "median")
    assert_array_equal(second[0], np.median(X, axis=0))


# ------------------------------------------------------------ CPUBackend.update
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cpu_backend_update_mean_and_median(cpu_backend, dtype):
    rng = np.random.default_rng(3)
    n, k = 300, 4
    X = rng.normal(size=(n, 2)).astype(dtype)
    w = rng.uniform(0.5, 2, n).astype(dtype)
    labels = rng.integers(0, 3, n).astype(np.int32)  # cluster 3 empty
    mean, weights = cpu_backend.update(X, w, labels, k, "mean")
    ref = ref_weighted_sums(X, w, labels, k)
    assert_allclose(weights, ref[:, -1], rtol=1e-12)
    assert_allclose(mean[:3], ref[:3, :-1] / ref[:3, -1:], rtol=1e-10)
    assert np.isnan(mean[3]).all()
    assert weights[3] == 0
    median, weights = cpu_backend.update(X, w, labels, k, "median")
    assert_allclose(weights, ref[:, -1], rtol=1e-12)
    for j in range(3):
        for f in range(2):
            assert median[j, f] == ref_weighted_median(X[labels == j, f], w[labels == j])
    assert np.isnan(median[3]).all()


def test_cpu_backend_update_zero_weight_cluster_is_nan(cpu_backend):
    X = np.array([[1.0], [2.0], [3.0]])
    w = np.array([0.0, 1.0, 1.0])
    labels = np.array([0, 1, 1], np.int32)
    for rule in ("mean", "median"):
        centers, weights = cpu_backend.update(X, w, labels, 2, rule)
        assert np.isnan(centers[0, 0]), rule
        assert centers[1, 0] == 2.5, rule
        assert_array_equal(weights, [0.0, 2.0])


def test_cpu_backend_update_unknown_rule(cpu_backend):
    X = np.zeros((3, 1))
    with pytest.raises(ValueError, match="guarded|rule"):
        cpu_backend.update(X, np.ones(3), np.zeros(3, np.int32), 1, "guarded")


@pytest.mark.parametrize("code", CODES)
def test_cpu_backend_methods_match_kernels(cpu_backend, code):
    X, C, w = make(257, 3, 4, np.float32)
    labels = np.full(257, -1, np.int32)
    objective, n_changed, sums = cpu_backend.assign(X, w, C, code, labels, True)
    assert isinstance(objective, float) and isinstance(n_changed, int)
    assert_allclose(cpu_backend.pairwise(X, C.astype(np.float64), code), K.pairwise(X, C, code))
    assert_allclose(cpu_backend.point_costs(X, C, code, labels), K.pairwise(X, C, code).min(axis=1))
    objs = cpu_backend.objective(X, w, labels, C[None].astype(np.float64), code)
    assert_allclose(objs.sum(), objective, rtol=1e-6)


def test_cpu_backend_median_rescans_each_new_array():
    """The backend remembers the integer range of the X it last saw: another array is checked again."""
    from gpukmeans.backends.cpu import CPUBackend

    rng = np.random.default_rng(5)
    Xi = rng.integers(0, 20, (3000, 2)).astype(np.float32)  # integer-valued: histogram median
    Xf = Xi + rng.uniform(-0.4, 0.4, Xi.shape).astype(np.float32)  # not: quickselect median
    w = rng.integers(1, 3, Xi.shape[0]).astype(np.float32)
    labels = rng.integers(0, 4, Xi.shape[0]).astype(np.int32)
    backend = CPUBackend()
    for X in (Xi, Xf, Xi, Xf):
        medians, _ = backend.update(X, w, labels, 4, "median")
        ref = [[ref_weighted_median(X[labels == j, f], w[labels == j]) for f in range(2)] for j in range(4)]
        assert_array_equal(medians, ref)


def test_bound_cpu_backend_checks_integrality_once(monkeypatch):
    """Bound to a run, the backend scans X for integer values once; unbound, at every median update."""
    from gpukmeans.backends import cpu as cpu_module
    from gpukmeans.backends.cpu import CPUBackend

    calls = []
    real = cpu_module.k.integer_range
    monkeypatch.setattr(cpu_module.k, "integer_range", lambda X: calls.append(1) or real(X))
    rng = np.random.default_rng(2)
    X = rng.integers(0, 9, (500, 2)).astype(np.float64)
    w = np.ones(500)
    labels = rng.integers(0, 3, 500).astype(np.int32)
    unbound = CPUBackend()
    bound = unbound.bind(X, w)
    ref = unbound.update(X, w, labels, 3, "median")[0]
    for _ in range(3):
        assert_array_equal(bound.update(X, w, labels, 3, "median")[0], ref)
    assert len(calls) == 2  # once unbound, once for the bound run
    other = X + 0.5  # another array through the bound backend: checked afresh
    assert_array_equal(bound.update(other, w, labels, 3, "median")[0], ref + 0.5)
    assert len(calls) == 3
    unbound.update(X, w, labels, 3, "median")
    assert len(calls) == 4


def test_histogram_median_covers_uint16_ranges():
    """Integer data up to 65,536 values wide (uint16 reflectance) take the histogram median, and it is exact."""
    assert K.histogram_bins(True, 0.0, 10_000.0, 8, 13) == 10_001
    assert K.histogram_bins(True, 0.0, 65_535.0, 8, 13) == 65_536  # 6.8M cells: within one histogram's budget
    assert K.histogram_bins(True, 0.0, 65_536.0, 8, 13) == 0  # wider: quickselect
    assert K.histogram_bins(True, 0.0, 10_000.0, 256, 13) == 0  # too many cells: quickselect
    assert K.histogram_bins(True, 0.0, 10_000.0, 8, 13, K.HIST_BINS_SHIPPED) == 0  # GPU and Dask keep 4096
    assert K.histogram_bins(False, 0.0, 10.0, 8, 13) == 0
    # wide histograms get few chunks (at least 2 when the data allow), narrow ones as many as the sums
    assert K.hist_chunks_for(10**6, 8 * 13 * 10_001) == 2
    assert K.hist_chunks_for(10**6, 8 * 3 * 256) == K.n_chunks_for(10**6)
    rng = np.random.default_rng(11)
    n, k = 3 * 4096 + 37, 5
    X = rng.integers(0, 9000, (n, 3)).astype(np.float32)
    w = rng.integers(0, 3, n).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int32)
    ok, lo, hi = K.integer_range(X)
    n_bins = K.histogram_bins(ok, lo, hi, k, 3)
    assert n_bins > 4096
    got, weights = K.weighted_median_hist(X, w, labels, k, lo, n_bins)
    ref, ref_weights = K.weighted_median(X, w, labels, k)
    assert_array_equal(got, ref)
    assert_array_equal(weights, ref_weights)


# ------------------------------------------------ assign: feature counts, unit weights, moves
@pytest.mark.parametrize("d", (1, 2, 5, 8, 13, 17), ids=lambda d: f"d{d}")
def test_assign_every_feature_count(d):
    """Counts 1-16 run an instance compiled for that count, wider data the generic loops: same results."""
    assert K.feature_token(d) == ((0,) * d if d <= K.MAX_UNROLLED_FEATURES else ())
    n, k = 4096 * 2 + 77, 6
    for code in CODES:
        X, C, w = make(n, d, k, np.float32, seed=d)
        labels = np.full(n, -1, np.int32)
        objective, n_changed, sums = K.assign(X, w, C, code, labels, True)
        assert_array_equal(labels, np.argmin(K.pairwise(X, C, code), axis=1))
        terms = ref_terms(X, C, code)
        assert_allclose(terms[np.arange(n), labels], terms.min(axis=1), rtol=2e-5, atol=1e-5)
        assert n_changed == n
        assert_allclose(objective, float(w.astype(np.float64) @ terms[np.arange(n), labels]), rtol=1e-5)
        assert_allclose(sums, ref_weighted_sums(X, w, labels, k), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("code", CODES)
def test_assign_unit_weight_flag_changes_nothing(code, dtype):
    X, C, _ = make(3 * 4096 + 5, 3, 5, dtype)
    w = np.ones(X.shape[0], dtype)
    got, ref = np.full(X.shape[0], -1, np.int32), np.full(X.shape[0], -1, np.int32)
    out = K.assign(X, w, C, code, got, True, True)
    expected = K.assign(X, w, C, code, ref, True, False)
    assert_array_equal(got, ref)
    assert out[0] == expected[0] and out[1] == expected[1]
    assert_array_equal(out[2], expected[2])


def _moved_labels(n, k, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, n).astype(np.int32)


@pytest.mark.parametrize("unit", (True, False), ids=("unit", "weighted"))
@pytest.mark.parametrize("code", CODES)
def test_assign_moves_equal_full_sums_exactly_on_integer_data(code, unit):
    """``previous`` + the moves of the relabelled samples == summing everything again, bit for bit here."""
    rng = np.random.default_rng(code)
    n, k = 3 * 4096 + 101, 7
    X = rng.integers(0, 256, size=(n, 3)).astype(np.float32)
    w = np.ones(n, np.float32) if unit else rng.integers(1, 4, n).astype(np.float32)
    C = X[rng.choice(n, k, replace=False)]
    old = _moved_labels(n, k, code)
    previous = ref_weighted_sums(X, w, old, k)
    fast, full = old.copy(), old.copy()
    obj_f, ch_f, sums_f = K.assign(X, w, C, code, fast, True, unit, previous)
    obj_r, ch_r, sums_r = K.assign(X, w, C, code, full, True, unit)
    assert_array_equal(fast, full)
    assert ch_f == ch_r == int((full != old).sum()) and obj_f == obj_r
    assert_array_equal(sums_f, sums_r)
    assert_array_equal(sums_f, ref_weighted_sums(X, w, full, k))
    assert_array_equal(previous, ref_weighted_sums(X, w, old, k))  # not modified


@pytest.mark.parametrize("d", (3, 11), ids=("d3", "d11"))
def test_assign_moves_float_data_and_first_assignment(d):
    X, C, w = make(2 * 4096 + 9, d, 5, np.float64)
    n, k = X.shape[0], C.shape[0]
    first = np.full(n, -1, np.int32)  # -1: nothing to remove; zeros as previous sums
    _, _, sums = K.assign(X, w, C, 0, first, True, False, np.zeros((k, d + 1)))
    assert_allclose(sums, ref_weighted_sums(X, w, first, k), rtol=1e-12, atol=1e-12)
    old = _moved_labels(n, k, 3)
    labels = old.copy()
    _, _, sums = K.assign(X, w, C, 1, labels, True, False, ref_weighted_sums(X, w, old, k))
    assert_allclose(sums, ref_weighted_sums(X, w, labels, k), rtol=1e-12, atol=1e-10)


def test_cpu_backend_moves_keep_exact_counts_and_reset_emptied_clusters():
    from gpukmeans.backends.cpu import CPUBackend

    rng = np.random.default_rng(5)
    X = rng.normal(size=(5000, 2)) * 1e3 + 1e6  # float data: moves leave rounding residue in the sums
    w = np.ones(5000)
    old = np.zeros(5000, np.int32)
    old[:2500] = 1
    previous = ref_weighted_sums(X, w, old, 3)
    C = np.array([X[:2500].mean(axis=0), X[2500:].mean(axis=0), [0.0, 0.0]])
    C[1] = X[0]  # center 1 moves onto one sample: cluster 1 keeps only its exact duplicates
    bound = CPUBackend().bind(X, w)
    labels = old.copy()
    _, _, sums = bound.assign(X, w, C, 0, labels, True, previous)
    assert_array_equal(sums[2], 0.0)  # never had samples
    weights = ref_weighted_sums(X, w, labels, 3)[:, -1]
    assert_array_equal(sums[:, -1], weights)  # counts: exact
    assert_allclose(sums, ref_weighted_sums(X, w, labels, 3), rtol=1e-9)
    emptied = np.ones(5000, np.int32)
    labels2 = emptied.copy()
    C2 = np.array([[1e6, 1e6], [1e9, 1e9], [-1e9, -1e9]])  # everything goes to cluster 0: 1 and 2 empty
    _, _, sums2 = bound.assign(X, w, C2, 0, labels2, True, ref_weighted_sums(X, w, emptied, 3))
    assert_array_equal(sums2[1:], 0.0)  # exactly empty, no residue
    assert sums2[0, -1] == 5000


@pytest.mark.parametrize("n", (1, 64, 3 * 4096 + 37))
def test_histogram_moves_equal_histogram_exactly(n):
    rng = np.random.default_rng(n)
    k, lo, n_bins = 5, -3.0, 40
    X = rng.integers(-3, 37, size=(n, 3)).astype(np.float32)
    w = np.ones(n, np.float32)
    hist = np.zeros((k, 3, n_bins))
    counted = np.full(n, -1, np.int32)  # nothing counted yet
    for seed in range(3):
        labels = _moved_labels(n, k, seed)
        if seed == 2:
            labels[: n // 2] = counted[: n // 2]  # half unchanged
        K.histogram_moves(X, labels, counted, lo, hist)
        assert_array_equal(counted, labels)
        assert_array_equal(hist, K.histogram(X, w, labels, k, lo, n_bins))
        medians = K.medians_from_histogram(hist, lo)[0]
        for j in range(k):
            members = labels == j
            expected = [ref_weighted_median(X[members, f], w[members]) for f in range(3)] if members.any() else np.nan
            assert_array_equal(medians[j], expected)


def test_cpu_backend_median_keeps_histograms_across_calls():
    from gpukmeans.backends.cpu import CPUBackend

    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, size=(20_000, 3)).astype(np.float32)
    w = np.ones(X.shape[0], np.float32)
    bound, plain = CPUBackend().bind(X, w), CPUBackend()
    for seed in range(4):
        labels = _moved_labels(X.shape[0], 6, seed)
        labels[: 5000 * seed] = 0
        got = bound.update(X, w, labels.copy(), 6, "median")  # a new array every call, as after relocation
        ref = plain.update(X, w, labels, 6, "median")
        assert_array_equal(got[0], ref[0])
        assert_array_equal(got[1], ref[1])
    labels3 = (labels % 3).astype(np.int32)  # another cluster count: the histograms are rebuilt
    assert_array_equal(bound.update(X, w, labels3, 3, "median")[0], plain.update(X, w, labels3, 3, "median")[0])


def test_lowest_set_bit_helpers():
    probe = numba.njit(lambda m: (K._lowest_bit(m), K._lowest_bit_debruijn(m)))
    rng = np.random.default_rng(0)
    for i in range(64):
        high = int(rng.integers(0, 2**63)) << 1
        for mask in (1 << i, (1 << i) | (high >> (i + 1) << (i + 1)) % 2**64):
            assert probe(np.uint64(mask)) == (i, i)


def test_assign_kernel_results_do_not_depend_on_its_slots():
    """Sums per chunk (added in chunk order), histogram changes per group of chunks: any split, same bits."""
    rng = np.random.default_rng(5)
    n, d, k = 5 * 4096 + 11, 3, 6
    X = rng.integers(0, 51, size=(n, d)).astype(np.float32)  # integer-valued, as the histograms require
    w = np.ones(n, np.float32)
    C = X[rng.choice(n, k, replace=False)]
    start = rng.integers(0, k, n).astype(np.int32)
    token = K.feature_token(d)
    Xf = X + rng.normal(0, 0.3, (n, d)).astype(np.float32)  # float sums: their order shows in the bits
    for data, n_bins in ((Xf, 0), (X, 51)):
        results = []
        for n_slots in (1, 2, 3, 5, 64):
            labels = start.copy()
            out = K.assign_kernel(data, w, C, 2, labels, 2, True, token, 0.0, n_bins, n_slots, K.new_journal(n, 0))
            results.append((labels, *out))
        for got in results[1:]:
            for a, b in zip(got, results[0]):
                assert_array_equal(a, b)
    labels, _, n_changed, _, delta = results[0]
    assert n_changed == np.count_nonzero(labels != start)
    Xi = X[:, 0].astype(np.int64)  # bin b counts the value lo + b, lo = 0
    expected = np.zeros((k, 51))
    np.add.at(expected, (labels, Xi), 1.0)
    np.add.at(expected, (start, Xi), -1.0)
    assert_array_equal(delta[:, 0, :], expected)


@pytest.mark.parametrize("high, k", ((256, 4), (30_000, 4), (60_000, 12)), ids=("uint8", "wide", "snapshot"))
def test_cpu_backend_median_histograms_follow_the_run(high, k):
    """As the driver calls them: assign moves the samples in the kept histograms (small ones) or update
    compares with a snapshot (large ones); a relocated copy and a plain assignment in between stay exact."""
    from gpukmeans.backends import cpu

    # one copy of the histograms per thread: 4 x 3 x 256 cells are fused; 4 x 3 x 30,000 (more cells
    # than samples) and 12 x 3 x 60,000 (beyond the limit even on one thread) take the second pass
    n = 40_000
    fused = K.moves_in_assign(n, k * 3 * high, numba.get_num_threads())
    assert fused == (high == 256)
    rng = np.random.default_rng(high)
    X = rng.integers(0, high, size=(n, 3)).astype(np.float32)
    w = np.ones(n, np.float32)
    bound, plain = cpu.CPUBackend().bind(X, w), cpu.CPUBackend()
    labels, sums = np.full(n, -1, np.int32), None
    for it in range(5):
        C = X[rng.choice(n, k, replace=False)]
        _, _, sums = bound.assign(X, w, C, 1, labels, True, sums)
        got = bound.update(X, w, labels, k, "median")
        assert_array_equal(got[0], plain.update(X, w, labels, k, "median")[0])
        run = bound._bound[2][cpu._RUN_HISTOGRAM]
        assert (run.counts is labels) == fused and (run.snapshot is None) == fused
        if it == 2:  # an iteration that emptied a cluster: the update gets a relocated copy
            relocated = labels.copy()
            relocated[:100] = 3
            assert_array_equal(
                bound.update(X, w, relocated, k, "median")[0], plain.update(X, w, relocated, k, "median")[0]
            )
    bound.assign(X, w, X[:k], 1, labels, False)  # labels change outside the moves: not followed any more
    assert_array_equal(bound.update(X, w, labels, k, "median")[0], plain.update(X, w, labels, k, "median")[0])
    hist = bound._bound[2][cpu._RUN_HISTOGRAM].hist
    assert_array_equal(hist, K.histogram(X, w, labels, k, bound._bound[2][cpu._RUN_HISTOGRAM].lo, hist.shape[2]))


def test_cpu_backend_sums_everything_again_every_16th_update():
    """Float data: updated sums carry rounding from every move; every 16th call sums again, bit for bit."""
    from gpukmeans.backends import cpu

    rng = np.random.default_rng(11)
    X = rng.normal(size=(30_000, 3)) * 1e3 + 1e5
    w = np.ones(X.shape[0])
    bound, plain = cpu.CPUBackend().bind(X, w), cpu.CPUBackend()
    labels, sums = np.full(X.shape[0], -1, np.int32), None
    C = X[:5].copy()
    drifted = []
    for call in range(2 * cpu._RESUM_EVERY + 1):  # the first call has no previous sums
        C = C + rng.normal(size=C.shape) * 50
        before = labels.copy()
        _, _, sums = bound.assign(X, w, C, 0, labels, True, sums)
        ref_labels = before.copy()
        _, _, full = plain.assign(X, w, C, 0, ref_labels, True)
        assert_array_equal(labels, ref_labels)
        if call % cpu._RESUM_EVERY == 0:
            assert_array_equal(sums, full)
        else:
            assert_allclose(sums, full, rtol=1e-12)
            drifted.append(not np.array_equal(sums, full))
    assert any(drifted)  # the calls in between did update (with rounding), not sum again


@pytest.mark.parametrize("unit", (True, False))
def test_assign_journal_records_each_change_and_revert_undoes_them(unit):
    """A journal with room lists every relabelled sample and its previous label; the revert restores labels and
    the histograms moved along; a journal without room says so."""
    rng = np.random.default_rng(7)
    n, d, k = 3 * 4096 + 5, 3, 5
    X = rng.integers(0, 40, size=(n, d)).astype(np.float64)
    w = np.ones(n) if unit else rng.integers(1, 4, n).astype(np.float64)
    C = X[rng.choice(n, k, replace=False)]
    labels = np.full(n, -1, np.int32)
    K.assign(X, w, C, 2, labels, True, unit)
    before = labels.copy()
    hist = K.histogram(X, np.ones(n), labels, k, 0.0, 40)
    moved = C + rng.normal(0, 3, C.shape)
    journal = K.new_journal(n, n)
    K.assign(X, w, moved, 2, labels, True, unit, histogram=(hist, 0.0), journal=journal)
    changed = np.flatnonzero(labels != before)
    assert changed.size > 100 and K.journal_complete(journal)
    index, old, count = journal
    got = np.concatenate([index[c, : count[c]] for c in range(count.size)])
    got_old = np.concatenate([old[c, : count[c]] for c in range(count.size)])
    assert_array_equal(np.sort(got), changed)
    assert_array_equal(got_old[np.argsort(got)], before[changed])
    moved_hist = K.histogram(X, np.ones(n), labels if unit else before, k, 0.0, 40)
    assert_array_equal(hist, moved_hist)  # moved along with unit weights only
    K.revert_assign(X, labels, *journal, 0.0, hist if unit else np.zeros((0, 0, 0)))
    assert_array_equal(labels, before)
    assert_array_equal(hist, K.histogram(X, np.ones(n), before, k, 0.0, 40))
    tight = K.new_journal(n, 8)
    K.assign(X, w, moved, 2, labels, False, unit, journal=tight)
    assert not K.journal_complete(tight)
    with pytest.raises(ValueError, match="another number of samples"):
        K.assign(X, w, moved, 2, labels, False, unit, journal=K.new_journal(n // 2, 8))


def test_cpu_revert_undoes_only_its_own_revertible_assignment(monkeypatch):
    """CPUBackend.revert: after assign_revertible on these labels, once; never unbound, after a plain assign, on
    another labels array, or after a second assignment."""
    import gpukmeans.backends.cpu as cpu
    from gpukmeans.backends.cpu import CPUBackend

    monkeypatch.setattr(cpu, "_JOURNAL_SHARE", 1)  # room for every change

    rng = np.random.default_rng(3)
    n = 9000
    X = rng.integers(0, 30, size=(n, 3)).astype(np.float32)
    w = np.ones(n, np.float32)
    C = X[rng.choice(n, 4, replace=False)]
    moved = C + np.float32(2.5)
    backend = CPUBackend().bind(X, w)
    labels = np.full(n, -1, np.int32)
    backend.assign(X, w, C, 2, labels, True)
    assert not CPUBackend().revert(X, labels)  # unbound: nothing recorded
    backend.assign(X, w, moved, 2, labels, True)
    after = labels.copy()
    assert not backend.revert(X, labels)  # a plain assignment records nothing
    backend.assign_revertible(X, w, C, 2, labels, True)
    assert np.count_nonzero(labels != after) > 0
    assert not backend.revert(X, labels.copy())
    assert backend.revert(X, labels)
    assert_array_equal(labels, after)
    assert not backend.revert(X, labels)  # once
    backend.assign_revertible(X, w, C, 2, labels, True)
    backend.assign(X, w, moved, 2, labels, True)
    assert not backend.revert(X, labels)  # the last assignment was a plain one
    assert_array_equal(labels, after)


_SELECT_SCRIPT = """
import sys
import numpy as np
from gpukmeans.backends import _numba_kernels as K

assert not K.MASKED_STORES, "NUMBA_CPU_NAME=generic should select the select-form argmin"
data = np.load(sys.argv[1])
out = {}
for d in (3, 20):  # a compile-time feature count, and the generic loop
    X, C = data[f"X{d}"], data[f"C{d}"]
    for code in (0, 1, 2):
        labels = np.full(X.shape[0], -1, np.int32)
        objective, n_changed, sums = K.assign(X, np.ones(X.shape[0], X.dtype), C, code, labels, True)
        out[f"labels{d}_{code}"] = labels
        out[f"objective{d}_{code}"] = np.array(objective)
        out[f"sums{d}_{code}"] = sums
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow
def test_argmin_select_and_masked_store_forms_agree(tmp_path):
    """The argmin's index update is compiled as a masked store on AVX-512 and as a select elsewhere
    (MASKED_STORES); a process compiling for a generic CPU (the select form) gives the same labels, objectives
    and sums, bit for bit, on data full of exact ties."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(11)
    data = {}
    for d in (3, 20):
        X = rng.integers(-3, 4, size=(3 * 4096 + 29, d)).astype(np.float32)
        C = rng.integers(-3, 4, size=(9, d)).astype(np.float32)
        C[6] = C[1]  # duplicated center: index 1 must win
        data[f"X{d}"], data[f"C{d}"] = X, C
    np.savez(tmp_path / "in.npz", **data)
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env.pop("NUMBA_CPU_FEATURES", None)
    subprocess.run(
        [sys.executable, "-c", _SELECT_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    other = np.load(tmp_path / "out.npz")
    for d in (3, 20):
        X, C = data[f"X{d}"], data[f"C{d}"]
        terms = ref_terms(X, C, 0)
        assert (np.sort(terms, axis=1)[:, 1] == terms.min(axis=1)).sum() > X.shape[0] // 20  # ties
        for code in (0, 1, 2):
            labels = np.full(X.shape[0], -1, np.int32)
            objective, _, sums = K.assign(X, np.ones(X.shape[0], X.dtype), C, code, labels, True)
            assert_array_equal(labels, np.argmin(ref_terms(X, C, code), axis=1))
            assert_array_equal(other[f"labels{d}_{code}"], labels)
            assert float(other[f"objective{d}_{code}"]) == objective
            assert_array_equal(other[f"sums{d}_{code}"], sums)


def test_masked_stores_follows_the_target_cpu(monkeypatch):
    """MASKED_STORES: from NUMBA_CPU_FEATURES when numba is told a target, else from the host (False if
    llvmlite cannot read the host's features)."""
    from llvmlite import binding
    from numba.core import config

    monkeypatch.setattr(config, "CPU_NAME", "generic")
    monkeypatch.setattr(config, "CPU_FEATURES", None)
    assert K._masked_stores() is False
    monkeypatch.setattr(config, "CPU_NAME", None)
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+avx512f,+fma")
    assert K._masked_stores() is True
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,-avx512f")
    assert K._masked_stores() is False
    monkeypatch.setattr(config, "CPU_FEATURES", None)

    def broken():
        raise RuntimeError("failed to get host CPU features")

    monkeypatch.setattr(binding, "get_host_cpu_features", broken)
    assert K._masked_stores() is False
