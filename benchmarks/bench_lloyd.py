"""Lloyd iterations of gpukmeans (each metric and update) side by side with scikit-learn and FAISS.

Data: 1,000,000 real pixels (both Aral Sea MODIS images shipped in the package,
NIR/G/B uint8 converted once to float32), k = 8, the same 8 initial centers for
every library, a fixed number of iterations (``tol=0``; the iterations each run really
did are recorded, and a run that converged early is reported as such). Every case runs at 2 and at 12 iterations, so
``scripts/bench_report.py`` can report the marginal time of one iteration
(fixed set-up cancelled out) next to the end-to-end fit time.

Run::

    pytest benchmarks/bench_lloyd.py --benchmark-json=bench.json
    python scripts/bench_report.py bench.json

``GPUKMEANS_BENCH_N`` changes the number of samples (CI smoke runs use a small one
with ``--benchmark-disable``). JIT compilation happens in a warm-up call that is
not timed.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from gpukmeans import KMeans

N_SAMPLES = int(os.environ.get("GPUKMEANS_BENCH_N", "1000000"))
N_CLUSTERS = 8
ITERATIONS = (2, 12)


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    parts = []
    for name in ("MOD_01.jpg", "MOD_24.jpg"):
        with resources.as_file(resources.files("gpukmeans") / "data" / "aral" / name) as path:
            parts.append(np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3))
    X = np.concatenate(parts)
    X = np.resize(X, (N_SAMPLES, 3))  # repeats the images if more samples are asked for
    return X.astype(np.float32)


@pytest.fixture(scope="module")
def init(pixels) -> np.ndarray:
    rng = np.random.default_rng(0)
    # distinct pixel values, so that no center starts empty
    distinct = np.unique(pixels[rng.choice(len(pixels), 5000, replace=False)], axis=0)
    return distinct[rng.choice(len(distinct), N_CLUSTERS, replace=False)].copy()


def _info(benchmark, library: str, metric: str, update: str, n_iter: int, X: np.ndarray) -> None:
    """Record what was measured; ``n_iter`` is the number of iterations the run really did."""
    benchmark.extra_info.update(
        library=library,
        metric=metric,
        update=update,
        n_iter=n_iter,
        n_samples=X.shape[0],
        n_features=X.shape[1],
        n_clusters=N_CLUSTERS,
        dtype=str(X.dtype),
    )


@pytest.mark.parametrize("n_iter", ITERATIONS)
@pytest.mark.parametrize(
    "metric, update",
    [
        ("euclidean", "mean"),
        ("manhattan", "mean"),
        ("chebyshev", "mean"),
        ("manhattan", "median"),
        ("chebyshev", "guarded"),
    ],
)
def test_gpukmeans(benchmark, pixels, init, metric, update, n_iter):
    benchmark.group = f"lloyd {N_SAMPLES}x3 k={N_CLUSTERS} {n_iter} it"
    km = KMeans(N_CLUSTERS, metric=metric, update=update, init=init, n_init=1, max_iter=n_iter, tol=0, backend="cpu")
    km.fit(pixels)  # warm-up: JIT compile (or load from cache), not timed
    benchmark.pedantic(km.fit, args=(pixels,), rounds=5, warmup_rounds=1)
    _info(benchmark, "gpukmeans", metric, update, km.n_iter_, pixels)


@pytest.mark.parametrize("n_iter", ITERATIONS)
def test_sklearn(benchmark, pixels, init, n_iter):
    cluster = pytest.importorskip("sklearn.cluster", reason="scikit-learn not installed: peer skipped")
    benchmark.group = f"lloyd {N_SAMPLES}x3 k={N_CLUSTERS} {n_iter} it"
    km = cluster.KMeans(N_CLUSTERS, init=init, n_init=1, max_iter=n_iter, tol=0, algorithm="lloyd")
    benchmark.pedantic(km.fit, args=(pixels,), rounds=5, warmup_rounds=1)
    _info(benchmark, "scikit-learn", "euclidean", "mean", int(km.n_iter_), pixels)


@pytest.mark.parametrize("n_iter", ITERATIONS)
def test_faiss(benchmark, pixels, init, n_iter):
    faiss = pytest.importorskip("faiss", reason="faiss-cpu not installed: peer skipped")
    benchmark.group = f"lloyd {N_SAMPLES}x3 k={N_CLUSTERS} {n_iter} it"

    def fit():
        km = faiss.Kmeans(3, N_CLUSTERS, niter=n_iter, max_points_per_centroid=10**9, seed=0)
        km.train(pixels, init_centroids=init)
        return km

    km = benchmark.pedantic(fit, rounds=5, warmup_rounds=1)
    _info(benchmark, "faiss", "euclidean", "mean", len(km.obj), pixels)
    benchmark.extra_info["threads"] = faiss.omp_get_max_threads()
