"""KMeans on Dask arrays with CuPy chunks: every chunk runs on the CUDA backend (issue #7).

The tests marked ``gpu`` compare a fit on a CuPy-chunked Dask array with the
in-memory NumPy fit on the CPU from the same initial centers (identical labels,
centers equal up to float64 summation order; bit for bit on integer-valued
data), and check that predict/transform give lazy Dask arrays with CuPy chunks.
They run on Dask's threaded scheduler (no cluster, no worker processes) and skip,
with the reason, where Dask or a usable CUDA GPU is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import METRICS, blobs, pick_init
from numpy.testing import assert_allclose, assert_array_equal

da = pytest.importorskip("dask.array")
pytest.importorskip("distributed")  # gpukmeans.distributed needs it installed (not running)

import dask  # noqa: E402

from gpukmeans import KMeans  # noqa: E402

N = 6000
#: ragged chunks, an empty one and a single row among them
RAGGED = (1700, 0, 1700, 1, 1699, 900)
UPDATES = ("mean", "median", "guarded")


@pytest.fixture
def gpu(cp):
    """CuPy, with Dask's threaded scheduler for the test."""
    with dask.config.set(scheduler="threads"):
        yield cp


def cupy_chunked(cp, a, chunks):
    """A Dask array of CuPy chunks (rows chunked as ``chunks``)."""
    chunks = (chunks,) if a.ndim == 1 else (chunks, a.shape[1])
    return da.from_array(cp.asarray(a), chunks=chunks, asarray=False, name=False)


def assert_same_fit(cp, ours, ref, exact=False):
    labels = ours.labels_.compute()
    assert isinstance(labels, cp.ndarray) and labels.dtype == np.int32
    assert_array_equal(cp.asnumpy(labels), ref.labels_)
    assert isinstance(ours.cluster_centers_, np.ndarray)
    if exact:
        assert_array_equal(ours.cluster_centers_, ref.cluster_centers_)
    else:
        assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_allclose(ours.inertia_, ref.inertia_, rtol=1e-10)
    assert ours.n_iter_ == ref.n_iter_


# ------------------------------------------------------------------ GPU: same fit as in memory
@pytest.mark.gpu
@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("metric", METRICS)
def test_cupy_chunks_fit_matches_in_memory_cpu_fit(gpu, metric, update):
    X = blobs(N, 3, 5, seed=3)
    init = pick_init(X, 5, 7)
    params = dict(metric=metric, update=update, init=init, tol=0, max_iter=50)
    ref = KMeans(5, backend="cpu", **params).fit(X)
    ours = KMeans(5, **params).fit(cupy_chunked(gpu, X, RAGGED))
    assert ref.n_iter_ > 2
    assert_same_fit(gpu, ours, ref)
    assert ours.labels_.chunks[0] == RAGGED


@pytest.mark.gpu
@pytest.mark.parametrize("weights", ["int", "float"])
def test_cupy_chunks_weighted_median_matches_in_memory(gpu, weights):
    """Integer weights: radix digits counted on the GPU; fractional weights: those counts made on the host."""
    rng = np.random.default_rng(4)
    X = blobs(N, 3, 5, seed=2)
    w = rng.integers(0, 4, N).astype(np.float64) if weights == "int" else rng.uniform(0.5, 2.0, N)
    init = pick_init(X, 5, 11)
    params = dict(metric="manhattan", update="median", init=init, tol=0, max_iter=50)
    ref = KMeans(5, backend="cpu", **params).fit(X, sample_weight=w)
    ours = KMeans(5, **params).fit(cupy_chunked(gpu, X, RAGGED), sample_weight=cupy_chunked(gpu, w, 2500))
    assert_same_fit(gpu, ours, ref)


@pytest.mark.gpu
@pytest.mark.parametrize("weights", ["none", "int", "float"])
def test_cupy_chunks_integer_imagery_median_bit_identical(gpu, weights):
    """uint8 pixels: per-chunk histograms on the GPU (kernel; host counts for fractional weights), exact sums."""
    rng = np.random.default_rng(5)
    X = np.clip(np.round(blobs(N, 3, 5, seed=2) * 8 + 60), 0, 255).astype(np.uint8)
    w = {"none": None, "int": rng.integers(0, 4, N).astype(np.float64), "float": rng.uniform(0.5, 2.0, N)}[weights]
    init = np.asarray(pick_init(X, 5, 11), dtype=np.float64)
    params = dict(metric="manhattan", update="median", init=init, tol=0, max_iter=50)
    ref = KMeans(5, backend="cpu", **params).fit(X, sample_weight=w)
    Xd = cupy_chunked(gpu, X, RAGGED)
    ours = KMeans(5, **params).fit(Xd, sample_weight=None if w is None else cupy_chunked(gpu, w, 2500))
    assert_same_fit(gpu, ours, ref, exact=weights != "float")
    assert ours.cluster_centers_.dtype == ref.cluster_centers_.dtype


# ------------------------------------------------------------------ GPU: predict, transform, score, init
@pytest.mark.gpu
def test_cupy_chunks_predict_transform_are_lazy_cupy_arrays(gpu):
    X = blobs(N, 3, 4, seed=8)
    Xd = cupy_chunked(gpu, X, RAGGED)
    km = KMeans(4, metric="manhattan", random_state=0).fit(Xd)  # k-means++ on every row, tol > 0
    ref = KMeans(4, metric="manhattan", random_state=0, backend="cpu").fit(X)  # the same draw
    assert_same_fit(gpu, km, ref)

    labels = km.predict(Xd)
    assert isinstance(labels, da.Array) and isinstance(labels._meta, gpu.ndarray)
    assert labels.chunks[0] == RAGGED and labels.dtype == np.int32
    got = labels.compute()
    assert isinstance(got, gpu.ndarray)
    assert_array_equal(gpu.asnumpy(got), km.predict(X))  # in memory, on the CPU, from the same centers
    assert_array_equal(gpu.asnumpy(got), ref.labels_)

    dist = km.transform(Xd)
    assert isinstance(dist, da.Array) and isinstance(dist._meta, gpu.ndarray)
    assert dist.chunks == (RAGGED, (4,)) and dist.dtype == np.float64
    got = dist.compute()
    assert isinstance(got, gpu.ndarray)
    assert_allclose(gpu.asnumpy(got), km.transform(X), rtol=1e-12)

    assert_allclose(km.score(Xd), km.score(X), rtol=1e-10)
    again = KMeans(4, metric="manhattan", init=ref.cluster_centers_)
    fit_labels = again.fit_predict(Xd)
    assert isinstance(fit_labels, da.Array) and isinstance(fit_labels._meta, gpu.ndarray)
    assert_array_equal(gpu.asnumpy(fit_labels.compute()), again.fit_predict(X))


@pytest.mark.gpu
def test_cupy_chunks_kmeans_parallel_matches_numpy_chunks(gpu):
    """k-means|| draws on the host from costs computed on the GPU: the NumPy-chunked fit's centers."""
    X = blobs(N, 3, 6, seed=6)
    params = dict(n_clusters=6, init="k-means||", random_state=0, tol=0)
    on_gpu = KMeans(**params).fit(cupy_chunked(gpu, X, RAGGED))
    with dask.config.set(scheduler="sync"):  # NumPy chunks: numba's parallel kernels, one task at a time
        on_cpu = KMeans(**params).fit(da.from_array(X, chunks=(RAGGED, 3)))
    assert_allclose(on_gpu.cluster_centers_, on_cpu.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_array_equal(gpu.asnumpy(on_gpu.labels_.compute()), on_cpu.labels_.compute())
