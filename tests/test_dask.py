"""KMeans on Dask arrays over a real 2-worker LocalCluster, checked against the in-memory fit.

Every fit here is compared with the in-memory fit of the same data from the
same initial centers (the reference): labels identical (the data are tie-free
or the ties resolve in the same kernels), centers and objective equal up to the
order of float64 summation, same number of iterations, whatever the chunking.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import pytest
from conftest import METRICS, blobs, pick_init
from numpy.testing import assert_allclose, assert_array_equal

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from gpukmeans import ConvergenceWarning, KMeans  # noqa: E402

N = 6000
#: regular, ragged last chunk, empty chunks (first, middle and last)
CHUNKINGS = {
    "regular": 1500,
    "ragged": 1700,
    "empty": (0, 2000, 0, 1, 2999, 1000, 0),
}


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with 1 thread each, shut down after the module."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit="2GiB"
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(2)
    yield client
    client.close()
    cluster.close()


def as_dask(X, chunks):
    return da.from_array(X, chunks=(chunks, X.shape[1]))


def assert_same_fit(ours, ref, rtol=1e-6):
    assert ours.n_iter_ == ref.n_iter_
    assert_array_equal(np.asarray(ours.labels_.compute()), ref.labels_)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=rtol, atol=1e-6)
    assert_allclose(ours.inertia_, ref.inertia_, rtol=rtol)
    assert ours.cluster_centers_.dtype == ref.cluster_centers_.dtype
    assert [h["n_changed"] for h in ours.history_] == [h["n_changed"] for h in ref.history_]


# ------------------------------------------------------------------ same answer as in memory
@pytest.mark.parametrize("chunking", list(CHUNKINGS))
@pytest.mark.parametrize("metric", METRICS)
def test_fit_matches_in_memory_from_same_init(client, metric, chunking):
    X = blobs(N, 3, 6, seed=1, dtype=np.float32)
    init = pick_init(X, 6, 7)
    ref = KMeans(6, metric=metric, init=init, tol=1e-6).fit(X)
    ours = KMeans(6, metric=metric, init=init, tol=1e-6).fit(as_dask(X, CHUNKINGS[chunking]))
    assert ref.n_iter_ > 3
    assert_same_fit(ours, ref)
    assert ours.labels_.chunks[0] == as_dask(X, CHUNKINGS[chunking]).chunks[0]


@pytest.mark.parametrize(
    ("metric", "update", "data"),
    [
        ("manhattan", "median", "float64"),  # radix select, 8 passes
        ("chebyshev", "guarded", "float32"),  # radix select, 4 passes, + objectives
        ("manhattan", "median", "uint8"),  # per-chunk histograms
        ("euclidean", "median", "int16"),  # histograms, negative values
        ("manhattan", "mean", "float64"),
    ],
)
def test_updates_with_weights_match_in_memory(client, metric, update, data):
    rng = np.random.default_rng(3)
    X = blobs(N, 3, 5, seed=2, dtype=np.float64)
    if data == "uint8":
        X = np.clip(np.round(X * 8 + 60), 0, 255).astype(np.uint8)
    elif data == "int16":
        X = np.round(X * 5).astype(np.int16)
    else:
        X = X.astype(data)
    w = rng.integers(0, 4, N).astype(np.float64)  # zeros included
    init = np.asarray(pick_init(X, 5, 11), dtype=np.float64)
    ref = KMeans(5, metric=metric, update=update, init=init, tol=1e-6).fit(X, sample_weight=w)
    ours = KMeans(5, metric=metric, update=update, init=init, tol=1e-6).fit(
        as_dask(X, CHUNKINGS["empty"]), sample_weight=da.from_array(w, chunks=2500)
    )
    assert_same_fit(ours, ref)


@pytest.mark.parametrize(("metric", "update"), [("manhattan", "median"), ("chebyshev", "guarded")])
@pytest.mark.parametrize("chunking", ["ragged", "empty"])
def test_imagery_medians_come_from_the_assignment_tasks(client, monkeypatch, metric, update, chunking):
    """uint8 imagery without weights: the median histograms ride with the assignments after the first update."""
    from gpukmeans.distributed._backend import DaskBackend

    reduced = []
    original = DaskBackend._reduce
    monkeypatch.setattr(
        DaskBackend, "_reduce", lambda self, f, *a, **kw: reduced.append(f.__name__) or original(self, f, *a, **kw)
    )
    X = np.clip(np.round(blobs(N, 3, 5, seed=2) * 8 + 60), 0, 255).astype(np.uint8)
    init = np.asarray(pick_init(X, 5, 11), dtype=np.float32)
    ref = KMeans(5, metric=metric, update=update, init=init, tol=1e-6).fit(X)
    ours = KMeans(5, metric=metric, update=update, init=init, tol=1e-6).fit(as_dask(X, CHUNKINGS[chunking]))
    assert_same_fit(ours, ref)
    assert ref.n_iter_ > 3
    assert reduced.count("_hist_chunk") == 1  # the first median update only


def test_label_counts_of_dask_labels(client):
    from gpukmeans.distributed._backend import DaskBackend

    X = blobs(N, 3, 5, seed=8)
    km = KMeans(5, init=pick_init(X, 5, 1), max_iter=3).fit(as_dask(X, CHUNKINGS["empty"]))
    labels = km.labels_.compute()
    fit_labels = _last_dask_labels(X, km)
    counts = DaskBackend(fit_labels.data).label_counts(fit_labels, 7)
    assert_array_equal(counts, np.bincount(labels, minlength=7))


def _last_dask_labels(X, km):
    """The DaskLabels of a final assignment of X to the fitted centers, as a fit leaves them."""
    from gpukmeans.distributed._backend import DaskBackend, DaskData, DaskWeights

    data = DaskData(as_dask(X, CHUNKINGS["empty"]).persist(), np.dtype(np.float64))
    backend = DaskBackend(data)
    labels = backend.xp.full(N, -1, dtype=np.int32)
    backend.assign(data, DaskWeights(None, data.dtype, data.chunks), km.cluster_centers_, 0, labels, False)
    return labels


@pytest.mark.parametrize("chunking", ["ragged", "empty"])
@pytest.mark.parametrize("stride", [1, 3, 7])
def test_objective_on_a_sample_as_in_memory(client, chunking, stride):
    """The sampled cluster objectives: each chunk takes its part of the global sample (chunk offsets)."""
    from gpukmeans.backends.cpu import CPUBackend
    from gpukmeans.distributed._backend import DaskBackend, DaskData, DaskWeights

    X = blobs(N, 3, 5, seed=4)
    w = np.random.default_rng(4).uniform(0.5, 2.0, N)
    centers = pick_init(X, 5, 2)
    candidates = np.stack([centers, centers + 0.5, centers - 0.25])
    data = DaskData(as_dask(X, CHUNKINGS[chunking]).persist(), np.dtype(np.float64))
    backend = DaskBackend(data)
    weights = DaskWeights(da.from_array(w, chunks=(data.chunks,)), data.dtype, data.chunks)
    labels = backend.xp.full(N, -1, dtype=np.int32)
    backend.assign(data, weights, centers, 2, labels, False)
    got = backend.objective(data, weights, labels, candidates, 2, stride)
    ref_labels = np.full(N, -1, np.int32)
    CPUBackend().assign(X, w, centers, 2, ref_labels, False)
    assert_allclose(got, CPUBackend().objective(X, w, ref_labels, candidates, 2, stride), rtol=1e-12)


@pytest.mark.parametrize("chunking", ["ragged", "empty"])
def test_guarded_on_a_sample_as_in_memory(client, monkeypatch, chunking):
    import gpukmeans._driver as driver

    monkeypatch.setattr(driver, "GUARD_SAMPLE", 256)
    monkeypatch.setattr(driver, "_SAMPLE_PER_CLUSTER", 8)
    X = np.round(blobs(N, 3, 5, seed=6) * 10).astype(np.float32)
    init = pick_init(X, 5, 3)
    ref = KMeans(5, metric="chebyshev", init=init, tol=0).fit(X)
    ours = KMeans(5, metric="chebyshev", init=init, tol=0).fit(as_dask(X, CHUNKINGS[chunking]))
    assert ref.n_iter_ > 3
    assert_same_fit(ours, ref)


def test_median_midpoint_rule_on_exact_half(client):
    """Unit weights and even cluster sizes: the median is a midpoint, as numpy.median."""
    X = np.array([[0.0], [1.0], [2.5], [4.0], [100.0], [101.0], [103.5], [110.0]])
    init = np.array([[1.0], [102.0]])
    ours = KMeans(2, metric="manhattan", init=init).fit(as_dask(X, 3))
    assert_allclose(np.sort(ours.cluster_centers_.ravel()), [np.median(X[:4]), np.median(X[4:])])
    ref = KMeans(2, metric="manhattan", init=init).fit(X)
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_empty_cluster_is_relocated_as_in_memory(client, monkeypatch, metric):
    """Relocation patches a copy of the labels; with the median, its histograms are counted afresh for it."""
    from gpukmeans import _driver
    from gpukmeans.distributed import _backend

    calls, top = [], []
    original = _driver._relocate_empty_clusters
    monkeypatch.setattr(_driver, "_relocate_empty_clusters", lambda *a: calls.append(1) or original(*a))
    top_m = _backend._TopK.__getitem__
    monkeypatch.setattr(_backend._TopK, "__getitem__", lambda self, key: top.append(key) or top_m(self, key))
    X = blobs(N, 2, 4, seed=5)
    if metric == "manhattan":  # integer-valued: histogram medians that ride with the assignments
        X = np.round(X * 8)
    init = pick_init(X, 5, 3)
    init[4] = init[3]  # duplicate center: cluster 4 is empty after the first assignment
    ref = KMeans(5, metric=metric, init=init).fit(X)
    n_ref = len(calls)
    ours = KMeans(5, metric=metric, init=init).fit(as_dask(X, CHUNKINGS["ragged"]))
    assert n_ref >= 1 and len(calls) == 2 * n_ref
    assert len(top) == n_ref  # the farthest samples found per chunk, on the workers, not on the client
    assert_same_fit(ours, ref)
    assert np.unique(ours.labels_.compute()).size == 5


def test_unknown_chunk_sizes_and_the_active_client(client):
    from gpukmeans.distributed._scheduler import ensure_scheduler

    X = blobs(N, 3, 4, seed=12)
    Xd = as_dask(X, 1000)
    keep = X[:, 0] > -1.0
    masked = Xd[da.from_array(keep, chunks=1000)]  # boolean mask: chunk sizes unknown (NaN)
    assert np.isnan(masked.shape[0])
    init = pick_init(X[keep], 4, 0)
    assert_same_fit(KMeans(4, init=init).fit(masked), KMeans(4, init=init).fit(X[keep]))
    assert ensure_scheduler() is client


def test_chunk_labels_never_travel_and_are_recomputed_identically():
    """An assignment result pickles without its labels (only statistics travel); the labels come back exactly."""
    import pickle

    from gpukmeans.backends import _numba_kernels as k
    from gpukmeans.distributed._backend import ChunkLabels, _lab

    X = blobs(5000, 3, 5, seed=13, dtype=np.float32)
    centers = pick_init(X, 5, 2)
    labels = np.full(5000, -1, dtype=np.int32)
    k.assign(X, np.ones(5000, np.float32), centers, 1, labels, False)
    result = ChunkLabels(labels.copy(), centers, 1, (1.0, 2, np.zeros((5, 4)), None))
    payload = pickle.dumps(result)
    assert len(payload) < 1000 < labels.nbytes
    moved = pickle.loads(payload)
    assert moved.labels is None and moved.stats[1] == 2
    assert_array_equal(_lab(moved, X), labels)


def _chunk_run(X, centers_seq, weights=None, start=None, hist_spec=None):
    """Assignment tasks of one chunk in a row (as the workers run them), from ``start`` (a ChunkLabels or None).

    With ``hist_spec``, each task's median histograms are checked against a fresh count of its labels.
    """
    from gpukmeans.backends import _numba_kernels as k
    from gpukmeans.distributed._backend import _assign_chunk

    results, labc = [], start
    for centers in centers_seq:
        given = getattr(labc, "labels", labc)  # None: no previous labels, or dropped in transit
        before = None if given is None else given.copy()
        out = _assign_chunk(X, weights, labc, centers, 0, True, X.dtype, {}, hist_spec)
        if before is not None:  # the task's input is left as it was
            assert_array_equal(given, before)
        assert_array_equal(out.labels, k.pairwise(X, centers, 0).argmin(axis=1))
        if hist_spec is not None:
            lo, n_bins = hist_spec
            w = np.ones(X.shape[0], X.dtype) if weights is None else weights
            assert out.stats[3][0] == lo
            assert_array_equal(out.stats[3][1], k.histogram(X, w, out.labels, 5, lo, n_bins))
        results.append(out)
        labc = out
    return results


def _centers_seq(X, n, seed):
    """``n`` sets of 5 centers that move a little each time (samples change cluster at every step)."""
    rng = np.random.default_rng(seed)
    base = pick_init(X, 5, seed)
    return [np.ascontiguousarray(base + rng.normal(scale=0.3, size=base.shape), X.dtype) for _ in range(n)]


@pytest.mark.parametrize("threads", [1, 2], ids=["serial", "parallel"])
def test_chunk_sums_move_with_relabelled_samples_exactly(monkeypatch, threads):
    """Unit weights: each chunk's sums start from its previous ones; on integer data they equal the full sums."""
    import numba

    from gpukmeans.backends import _numba_kernels as k
    from gpukmeans.distributed._backend import RESUM_EVERY

    if numba.config.NUMBA_NUM_THREADS < threads:
        pytest.skip("needs 2 numba threads")
    kernel = "assign_serial" if threads == 1 else "assign"
    given = []
    original = getattr(k, kernel)
    monkeypatch.setattr(k, kernel, lambda *a: given.append(a[7] is not None) or original(*a))
    X = np.round(blobs(3000, 3, 5, seed=21, spread=40.0, std=6.0)).astype(np.float32)
    seq = _centers_seq(X, RESUM_EVERY + 3, 4)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        results = _chunk_run(X, seq)
    finally:
        numba.set_num_threads(before)
    assert [r.updated for r in results] == [0, *range(1, RESUM_EVERY), 0, 1, 2]
    assert given == [r.updated > 0 for r in results]  # the kernel was given the previous sums
    moved = 0
    for r in results:
        objective, n_changed, sums, hist = r.stats
        assert hist is None
        assert_array_equal(sums, k.weighted_sums(X, np.ones(3000, np.float32), r.labels, 5))
        moved += n_changed
    assert moved > 100  # samples did move between the sums
    # given weights (even all ones), a chunk sums in full every time
    assert all(r.updated == 0 for r in _chunk_run(X, seq[:4], weights=np.ones(3000, np.float32)))


def test_chunk_sums_survive_labels_dropped_in_transit_and_patched_labels():
    """Labels recomputed after a transfer are those the sums were made from; patched labels are summed in full."""
    import pickle

    from gpukmeans.backends import _numba_kernels as k

    X = np.round(blobs(2000, 2, 5, seed=22, spread=40.0, std=6.0)).astype(np.float64)
    seq = _centers_seq(X, 3, 5)
    first = _chunk_run(X, seq[:2])[-1]
    moved = pickle.loads(pickle.dumps(first))  # labels dropped
    after = _chunk_run(X, seq[2:], start=moved)[-1]
    assert after.updated == 2
    assert_array_equal(after.stats[2], k.weighted_sums(X, np.ones(2000), after.labels, 5))
    patched = first.labels.copy()
    patched[:7] = 4
    after = _chunk_run(X, seq[2:], start=patched)[-1]
    assert after.updated == 0
    assert_array_equal(after.stats[2], k.weighted_sums(X, np.ones(2000), after.labels, 5))


@pytest.mark.parametrize("fused", [True, False], ids=["in-the-assignment", "second-pass"])
def test_chunk_median_histograms_move_with_relabelled_samples(monkeypatch, fused):
    """Once the median update asks for them, each chunk keeps exact histograms of its labels, moved when it can be:
    in the assignment's pass, or (histograms too wide for a copy per thread) in a second pass over the labels."""
    import numba

    from gpukmeans.backends import _numba_kernels as k
    from gpukmeans.distributed._chunks import HostKernels

    if numba.get_num_threads() < 2:
        pytest.skip("needs 2 numba threads (a serial task always moves them in its pass)")
    counted, second = [], []
    original = HostKernels.histogram
    monkeypatch.setattr(HostKernels, "histogram", lambda self, *a: counted.append(1) or original(self, *a))
    monkeypatch.setattr(k, "moves_in_assign", lambda *a: fused)
    moves = k.histogram_moves
    monkeypatch.setattr(k, "histogram_moves", lambda *a: second.append(1) or moves(*a))
    X = np.round(blobs(2500, 3, 5, seed=23, spread=40.0, std=6.0)).astype(np.float32)
    spec = (float(X.min()), int(X.max() - X.min()) + 1)
    seq = _centers_seq(X, 6, 6)
    first = _chunk_run(X, seq[:1])[0]  # before the median update: no histograms
    assert first.stats[3] is None
    runs = _chunk_run(X, seq[1:], start=first, hist_spec=spec)  # counted once, then moved
    assert len(counted) == 1 and sum(r.stats[1] for r in runs[1:]) > 20
    counted.clear()
    _chunk_run(X, seq[:3], hist_spec=spec)  # from scratch: every sample moves in
    assert not counted
    patched = runs[-1].labels.copy()
    patched[:5] = 0
    _chunk_run(X, seq[:2], start=patched, hist_spec=spec)  # unknown counts: counted again, then moved
    assert len(counted) == 1
    counted.clear()
    assert len(second) == (0 if fused else 4 + 3 + 1)  # every task that moved them (not the counting ones)
    w = np.random.default_rng(3).integers(0, 3, X.shape[0]).astype(np.float32)
    _chunk_run(X, seq[:3], weights=w, hist_spec=spec)  # weights: counted each time
    assert len(counted) == 3


def test_released_labels_are_reused_only_when_nothing_else_holds_them():
    """A released assignment result lends its labels array to a later copy, unless it is still referred to."""
    from gpukmeans.distributed._backend import _SPARE_LABELS, ChunkLabels

    n = 4321  # a length no other test uses
    centers = np.zeros((2, 2))
    _SPARE_LABELS.free.pop(n, None)
    source = np.arange(n, dtype=np.int32) % 2

    held = ChunkLabels(np.full(n, 7, np.int32), centers, 0, None)
    kept = held.labels  # handed out (as a chunk of a labels array would be): must never be reused
    del held
    out = _SPARE_LABELS.copy(source)
    assert out is not kept and (kept == 7).all()

    released = ChunkLabels(np.full(n, 5, np.int32), centers, 0, None)
    buffer_id = id(released.labels)
    del released
    out = _SPARE_LABELS.copy(source)
    assert id(out) == buffer_id  # no fresh pages
    assert_array_equal(out, source)
    assert _SPARE_LABELS.copy(source) is not out  # lent once


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_seeded_init_draws_as_in_memory_on_small_data(client, init):
    X = blobs(N, 3, 6, seed=4)
    w = np.random.default_rng(0).uniform(0.5, 2.0, N)
    ref = KMeans(6, init=init, n_init=2, random_state=42).fit(X, sample_weight=w)
    ours = KMeans(6, init=init, n_init=2, random_state=42).fit(as_dask(X, 1100), sample_weight=w)
    assert_same_fit(ours, ref)


def test_init_on_a_sample_and_kmeans_parallel(client, monkeypatch):
    from gpukmeans.distributed import _fit

    X = blobs(N, 3, 6, seed=6)
    Xd = as_dask(X, 1000)
    best = min(KMeans(6, random_state=s).fit(X).inertia_ for s in range(5))
    monkeypatch.setattr(_fit, "INIT_SAMPLE_SIZE", 500)  # the sample path: 500 of 6000 rows
    sampled = KMeans(6, random_state=0).fit(Xd)
    parallel = KMeans(6, init="k-means||", random_state=0).fit(Xd)
    again = KMeans(6, init="k-means||", random_state=0).fit(Xd)
    for km in (sampled, parallel):
        assert km.inertia_ <= 1.2 * best
        assert np.unique(km.labels_.compute()).size == 6
    assert_array_equal(parallel.cluster_centers_, again.cluster_centers_)  # seeded: reproducible
    with pytest.raises(ValueError, match="Unknown init"):
        KMeans(6, init="k-means||").fit(X)  # k-means|| is for Dask input only


# ------------------------------------------------------------------ predict, transform, score
def test_predict_transform_score_are_lazy_and_match(client):
    X = blobs(N, 3, 5, seed=8, dtype=np.float32)
    w = np.random.default_rng(1).uniform(0, 3, N)
    km = KMeans(5, metric="manhattan", random_state=0).fit(as_dask(X, 2000))
    Xd = as_dask(X, CHUNKINGS["empty"])
    labels = km.predict(Xd)
    assert isinstance(labels, da.Array) and labels.chunks[0] == Xd.chunks[0] and labels.dtype == np.int32
    assert_array_equal(labels.compute(), km.predict(X))
    assert_array_equal(labels.compute(), km.labels_.compute())
    dist = km.transform(Xd)
    assert isinstance(dist, da.Array) and dist.chunks == (Xd.chunks[0], (5,))
    assert_allclose(dist.compute(), km.transform(X), rtol=1e-6)
    assert_allclose(km.score(Xd, sample_weight=w), km.score(X, sample_weight=w), rtol=1e-6)
    assert_array_equal(km.fit_predict(Xd).compute(), km.labels_.compute())


def test_errors(client):
    X = blobs(100, 2, 2, seed=0)
    bad = X.copy()
    bad[57, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(as_dask(bad, 30))
    with pytest.raises(ValueError, match="negative"):
        KMeans(2).fit(as_dask(X, 30), sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match="larger than the number of samples with positive weight"):
        KMeans(3).fit(as_dask(X, 30), sample_weight=np.r_[np.ones(2), np.zeros(98)])
    with pytest.raises(ValueError, match="2-D"):
        KMeans(2).fit(da.from_array(X[:, 0], chunks=30))
    km = KMeans(2)
    with pytest.raises(AttributeError, match="not fitted"):
        km.predict(as_dask(X, 30))
    km.fit(as_dask(X, 30))
    with pytest.raises(ValueError, match="3 features"):
        km.predict(as_dask(np.ones((10, 3)), 5))
    far = X.astype(np.float32)
    far[57] = 1e20  # a float32 fill value: squared euclidean distances overflow float32
    with pytest.raises(ValueError, match="past the largest float32"):
        KMeans(2).fit(as_dask(far, 30))
    with pytest.raises(ValueError, match="X with init"):
        KMeans(2, init=np.array([[0.0, 0.0], [1e200, 0.0]])).fit(as_dask(X, 30))
    with pytest.raises(ValueError, match="only the ratios of the weights matter"):
        KMeans(2).fit(as_dask(X, 30), sample_weight=np.full(100, 1e307))
    with pytest.raises(ValueError, match="underflow"):
        KMeans(2).fit(as_dask(X * 1e-310, 30))
    with pytest.raises(ValueError, match="X with the fitted centers"):
        km.predict(as_dask(np.full((10, 2), 1e160), 5)).compute()
    # manhattan distances of the same float32 data are in range: the same labels as the data scaled down by 2**64
    scaled = X.astype(np.float32) * np.float32(2.0**64)
    init = X[:2].astype(np.float32)
    small = KMeans(2, metric="manhattan", init=init).fit(as_dask(X.astype(np.float32), 30))
    large = KMeans(2, metric="manhattan", init=init * np.float32(2.0**64)).fit(as_dask(scaled, 30))
    assert_array_equal(large.labels_.compute(), small.labels_.compute())
    duplicates = np.repeat(np.arange(3.0)[:, None], 10, axis=0)
    with pytest.warns(ConvergenceWarning, match="distinct clusters \\(3\\)"):
        KMeans(4, init=np.array([[0.0], [1.0], [2.0], [2.0]])).fit(as_dask(duplicates, 7))


def test_clear_error_without_dask(monkeypatch):
    """With Dask not importable, a Dask array is refused with the install command."""
    X = as_dask(blobs(100, 2, 2, seed=0), 50)
    for name in list(sys.modules):
        if name.startswith("gpukmeans.distributed"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'gpukmeans\[dask\]'"):
        KMeans(2).fit(X)


# ------------------------------------------------------------------ raster path
def test_segment_geotiff_window_by_window(client, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from gpukmeans.distributed import segment_geotiff

    src = os.path.join(os.path.dirname(__file__), "data", "rmnp_crop.tif")  # uint8, nodata 255
    with rasterio.open(src) as ds:
        pixels = np.moveaxis(ds.read(), 0, -1).reshape(-1, ds.count)
        height, width = ds.shape
    valid = ~(pixels == 255).all(axis=1)
    init = pick_init(pixels[valid].astype(np.float32), 4, 0)
    km = segment_geotiff(src, tmp_path / "classes.tif", 4, block_rows=7, init=init, metric="manhattan")
    ref = KMeans(4, metric="manhattan", init=init).fit(pixels[valid])
    assert_allclose(km.cluster_centers_, ref.cluster_centers_)
    with rasterio.open(tmp_path / "classes.tif") as out:
        classes = out.read(1)
        assert out.nodata == 255 and out.shape == (height, width) and out.crs is not None
    assert_array_equal(classes.reshape(-1)[valid], ref.labels_)
    assert (classes.reshape(-1)[~valid] == 255).all() and (~valid).any()


# ------------------------------------------------------------------ a worker dies mid-fit
def test_worker_killed_mid_fit_recovers_or_fails_clearly(client, monkeypatch):
    from gpukmeans.distributed._backend import DaskBackend

    X = blobs(200_000, 3, 8, seed=9, dtype=np.float32)
    init = pick_init(X, 8, 1)
    ref = KMeans(8, init=init, tol=0, max_iter=12).fit(X)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    calls = []
    original = DaskBackend.assign

    def assign(self, *args):
        calls.append(1)
        if len(calls) == 4:  # kill a worker while the 4th iteration's tasks run
            threading.Timer(0.02, os.kill, (victim, signal.SIGKILL)).start()
        return original(self, *args)

    monkeypatch.setattr(DaskBackend, "assign", assign)
    try:
        ours = KMeans(8, init=init, tol=0, max_iter=12).fit(as_dask(X, 20_000))
    except Exception as exc:  # allowed: a clear error naming the lost worker
        assert "worker" in str(exc).lower() or "lost" in str(exc).lower(), repr(exc)
    else:
        assert_same_fit(ours, ref)
    finally:
        client.wait_for_workers(2, timeout=60)
    assert len(calls) >= 4
    assert victim not in client.run(os.getpid).values()  # the worker really died (and was replaced)
