"""Lloyd iterations on the CPU: gpukmeans (every metric and update) against scikit-learn and FAISS.

Every case (see ``_common.cpu_cases``: pixel-like data with 3 features,
multispectral with 8 and 13, embeddings with 64; n from 100k to 30M; k = 3, 8,
32, 256; float32 and float64) runs with a short and a long fixed iteration
count (``tol=0``; the iterations each run really did are recorded, a run that
converged early is reported as such). ``scripts/bench_report.py`` turns the
pair into the marginal time of one Lloyd iteration, ``(t_long - t_short) /
(it_long - it_short)``, free of fixed set-up (input validation, copies, the
final assignment), next to the end-to-end fit time of the long run.

Fairness
--------
- Same data, same dtype, same initial centers (``init=`` array), same
  iteration count, for every library.
- scikit-learn ``KMeans(algorithm="lloyd", n_init=1, tol=0)`` (euclidean only):
  keeps float32 input in float32 (its chunked GEMM runs in the input dtype),
  centres a copy of X first (set-up, cancelled in the marginal figure), and
  uses its OpenMP threads, set to all cores with threadpoolctl (2 here).
- FAISS ``Kmeans`` (euclidean only, float32 only: float64 cases are skipped,
  not converted) with ``max_points_per_centroid`` raised so it never
  subsamples; at 3 features it is timed with 1 and with 2 OpenMP threads (it is
  faster with one there), elsewhere with 2. The report compares against the
  faster of its runs.
- gpukmeans ``KMeans(backend="cpu")`` on numba's thread pool (2 threads). Its
  kernels are compiled (or loaded from numba's cache) in the untimed warm-up
  round; compile time is measured separately in ``bench_compile.py``.
- Each library's cases run back to back (the test functions run in file
  order, all cases of one library before the next), with one untimed warm-up
  round per case: OpenMP runtimes spin-wait after a parallel region, so
  interleaving scikit-learn/FAISS calls with numba calls in one process would
  slow them down on 2 cores.

Peak memory is the extra resident memory during the timed rounds above the
level before them (``/proc/self/clear_refs``; see ``_machine.PeakRSS``).

Run::

    pytest benchmarks --benchmark-json=benchmarks/results/run.json
    python scripts/bench_report.py benchmarks/results/run.json
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _common import ROUNDS, Case, case_data, converged, cpu_cases, import_or_skip, record, with_iterations
from _machine import PeakRSS

CASES = cpu_cases()


def _record(benchmark, case: Case, library: str, n_iter_asked: int, n_iter: int, peak: PeakRSS, **extra) -> None:
    record(benchmark, case, library, n_iter_asked, n_iter, peak_rss_extra_bytes=peak.extra_bytes, **extra)


def _pedantic(benchmark, fn):
    """One untimed warm-up call (JIT / cache load, thread pools up), then the timed rounds.

    The peak memory covers the timed rounds only, so the JIT's own memory is not counted.
    """
    if not benchmark.disabled:
        fn()
    with PeakRSS() as peak:
        result = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1)
    return result, peak


@pytest.mark.parametrize("case, n_iter", with_iterations(CASES))
def test_gpukmeans(benchmark, case, n_iter):
    import numba

    from gpukmeans import KMeans

    X, init = case_data(case)
    km = KMeans(
        case.k, metric=case.metric, update=case.update, init=init, n_init=1, max_iter=n_iter, tol=0, backend="cpu"
    )
    km, peak = _pedantic(benchmark, lambda: km.fit(X))
    _record(
        benchmark,
        case,
        "gpukmeans",
        n_iter,
        km.n_iter_,
        peak,
        threads=numba.get_num_threads(),
        objective=km.inertia_,
        history_ms_per_iter=float(np.median([h["time"] for h in km.history_]) * 1e3),
        converged=converged(km),
    )


@pytest.mark.parametrize("case, n_iter", with_iterations(CASES, peers_only=True))
def test_sklearn(benchmark, case, n_iter):
    cluster = import_or_skip("sklearn.cluster", "scikit-learn not installed: peer skipped")
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits

    X, init = case_data(case)
    km = cluster.KMeans(case.k, init=init, n_init=1, max_iter=n_iter, tol=0, algorithm="lloyd")
    # All cores, whatever OMP_NUM_THREADS says: another module of the session (a Dask
    # LocalCluster, for one) may have set it to 1 before scikit-learn's OpenMP started.
    with threadpool_limits(limits=os.cpu_count(), user_api="openmp"):
        km, peak = _pedantic(benchmark, lambda: km.fit(X))
        threads = _openmp_effective_n_threads()
    _record(
        benchmark,
        case,
        "scikit-learn",
        n_iter,
        km.n_iter_,
        peak,
        threads=threads,
        objective=float(km.inertia_),
        compute_dtype=str(km.cluster_centers_.dtype),
    )


def _faiss_params():
    params = []
    for p in with_iterations(CASES, peers_only=True):
        case, n_iter = p.values
        for threads in (1, 2) if case.d == 3 else (2,):
            params.append(pytest.param(case, n_iter, threads, id=f"{p.id}-t{threads}"))
    return params


@pytest.mark.parametrize("case, n_iter, threads", _faiss_params())
def test_faiss(benchmark, case, n_iter, threads):
    faiss = import_or_skip("faiss", "faiss-cpu not installed: peer skipped")
    if case.dtype != "float32":
        pytest.skip("faiss computes in float32 only: not run on float64 data (it would be a conversion)")
    X, init = case_data(case)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)

    def fit():
        km = faiss.Kmeans(case.d, case.k, niter=n_iter, max_points_per_centroid=10**9, seed=0, verbose=False)
        km.train(X, init_centroids=init)
        return km

    try:
        km, peak = _pedantic(benchmark, fit)
    finally:
        faiss.omp_set_num_threads(before)
    _record(
        benchmark,
        case,
        "faiss",
        n_iter,
        len(km.obj),
        peak,
        threads=threads,
        objective=float(km.obj[-1]) if len(km.obj) else None,
        variant=f"{threads} thread" + ("s" if threads > 1 else ""),
    )
