"""Exact silhouette on one Aral MODIS crop: gpukmeans vs scikit-learn (pytest-benchmark).

Run::

    pytest benchmarks/bench_silhouette.py --benchmark-group-by=group --benchmark-columns=min,mean,max,rounds

Data: ``gpukmeans/data/aral/MOD_01.jpg``, crop ``img[140:600, 110:500]`` (460 x 390
= 179,400 RGB pixels, ~22,000 distinct vectors), labels from
``gpukmeans.KMeans(3, random_state=0)`` (euclidean k-means, the same labels for
every metric).

scikit-learn's exact silhouette is O(n^2) and takes minutes on the full crop,
so by default it runs on a random subsample of ``SKLEARN_N`` pixels and the
full-crop time is extrapolated by ``(179400 / SKLEARN_N) ** 2`` (recorded in
``extra_info["sklearn_full_s_extrapolated"]``). Set
``GPUKMEANS_BENCH_SKLEARN_FULL=1`` to time scikit-learn on the whole crop too
(several minutes per metric) and check that both agree to 1e-6.

``GPUKMEANS_BENCH_N`` (CI's smoke pass) caps scikit-learn's subsample at a tenth
of it; gpukmeans always scores the whole crop (well under a second).
``GPUKMEANS_BENCH_ROUNDS`` sets gpukmeans' timed rounds (default 5 here).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import gpukmeans
from gpukmeans.silhouette import silhouette_score

METRICS = ["euclidean", "manhattan", "chebyshev"]
_CAP = os.environ.get("GPUKMEANS_BENCH_N")
SKLEARN_N = 20_000 if not _CAP else max(200, min(20_000, int(_CAP) // 10))
ROUNDS = int(os.environ.get("GPUKMEANS_BENCH_ROUNDS", "5"))
IMAGE = Path(gpukmeans.__file__).parent / "data" / "aral" / "MOD_01.jpg"


@pytest.fixture(scope="module")
def aral():
    from PIL import Image

    img = np.asarray(Image.open(IMAGE))
    X = np.ascontiguousarray(img[140:600, 110:500].reshape(-1, img.shape[-1]))
    labels = gpukmeans.KMeans(3, random_state=0).fit(X).labels_
    for metric in METRICS:  # compile / load the numba kernels outside the timings
        silhouette_score(X[:2000], labels[:2000], metric=metric)
    return X, labels


@pytest.mark.parametrize("metric", METRICS)
def test_gpukmeans_exact(benchmark, aral, metric):
    X, labels = aral
    benchmark.group = f"silhouette {metric}"
    kwargs = {"metric": metric, "return_info": True}
    score, info = benchmark.pedantic(silhouette_score, args=(X, labels), kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1)
    benchmark.extra_info.update(
        n_samples=X.shape[0], n_unique=info["n_unique"], path=info["path"], score=score, exact=True
    )
    assert -1 <= score <= 1


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["auto", "brute"])
@pytest.mark.parametrize("metric", METRICS)
def test_gpukmeans_cuda_exact(benchmark, aral, metric, algorithm):
    """The same exact score with the O(n^2) part on the GPU (``brute``: all 179,400^2 pairs, no dedup)."""
    from gpukmeans.backends import CUDAUnavailableError, get_backend

    try:
        get_backend("cuda")
    except CUDAUnavailableError as exc:
        pytest.skip(str(exc))
    X, labels = aral
    benchmark.group = f"silhouette {metric}"
    kwargs = {"metric": metric, "return_info": True, "backend": "cuda", "algorithm": algorithm}
    score, info = benchmark.pedantic(silhouette_score, args=(X, labels), kwargs=kwargs, rounds=ROUNDS, warmup_rounds=1)
    benchmark.extra_info.update(
        n_samples=X.shape[0], n_unique=info["n_unique"], path=info["path"], score=score, exact=True, device="cuda"
    )
    assert abs(score - silhouette_score(X, labels, metric=metric)) < 1e-9


@pytest.mark.parametrize("metric", METRICS)
def test_sklearn_subsample(benchmark, aral, metric):
    sk = pytest.importorskip("sklearn.metrics")
    X, labels = aral
    idx = np.random.RandomState(0).permutation(X.shape[0])[:SKLEARN_N]
    Xs, ls = X[idx].astype(np.float64), labels[idx]
    benchmark.group = f"silhouette {metric}"
    score = benchmark.pedantic(sk.silhouette_score, args=(Xs, ls), kwargs={"metric": metric}, rounds=2)
    factor = (X.shape[0] / SKLEARN_N) ** 2
    benchmark.extra_info.update(n_samples=SKLEARN_N, score_on_subsample=score, extrapolation_factor=factor)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["sklearn_full_s_extrapolated"] = benchmark.stats.stats.mean * factor
    # our exact score of the same subsample agrees with scikit-learn's
    assert abs(silhouette_score(Xs, ls, metric=metric) - score) < 1e-6


@pytest.mark.skipif(not os.environ.get("GPUKMEANS_BENCH_SKLEARN_FULL"), reason="set GPUKMEANS_BENCH_SKLEARN_FULL=1")
@pytest.mark.parametrize("metric", METRICS)
def test_sklearn_full(benchmark, aral, metric):
    sk = pytest.importorskip("sklearn.metrics")
    X, labels = aral
    benchmark.group = f"silhouette {metric}"
    score = benchmark.pedantic(sk.silhouette_score, args=(X.astype(np.float64), labels), kwargs={"metric": metric})
    t0 = time.perf_counter()
    ours = silhouette_score(X, labels, metric=metric)
    benchmark.extra_info.update(n_samples=X.shape[0], score=score, ours=ours, ours_s=time.perf_counter() - t0)
    assert abs(ours - score) < 1e-6
