"""Lloyd iterations on an NVIDIA GPU: gpukmeans ``backend="cuda"``, faiss-gpu and PyTorch.

Same protocol as ``bench_lloyd.py`` (same data, initial centers, fixed short
and long iteration counts, marginal time per iteration), on the GPU cases of
``_common.gpu_cases`` (pixels up to 100M x 3, embeddings 1M x 64). The data is
copied to the device once, outside the timing; every timed call ends with a
device synchronisation. ``test_hbm_bandwidth`` measures the device's read
bandwidth in the same run (the floor is bytes of X / that bandwidth), and
``test_gpukmeans_cuda_compile_time`` the kernels' compile time (NVRTC) apart.

Each test skips itself, with the reason, where its library or a CUDA device is
missing; the report lists those skips. PyTorch k-means is written the usual
way (``torch.cdist`` + ``argmin`` + ``index_add_``), as a user would.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pytest
from _common import ROUNDS, SMOKE, case_data, converged, gpu_cases, import_or_skip, record, with_iterations

CASES = gpu_cases()


def _cupy_with_gpu():
    """CuPy with a usable GPU, or skip with the reason (CuPy missing, no GPU, old driver)."""
    from gpukmeans.backends import CUDAUnavailableError
    from gpukmeans.backends.cuda._runtime import load_cupy

    try:
        return load_cupy()
    except CUDAUnavailableError as exc:
        pytest.skip(str(exc))


def _torch_cuda():
    torch = import_or_skip("torch", "PyTorch not installed: peer skipped")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA device: peer skipped")
    return torch


def _faiss_gpu():
    faiss = import_or_skip("faiss", "faiss not installed: faiss-gpu peer skipped")
    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        pytest.skip("faiss-gpu not available (faiss-cpu build or no CUDA device): peer skipped")
    return faiss


def _record(benchmark, case, library, n_iter_asked, n_iter, **extra):
    record(benchmark, case, library, n_iter_asked, n_iter, group=" cuda", **extra)


def test_hbm_bandwidth(benchmark):
    cupy = _cupy_with_gpu()
    a = cupy.ones((1 << 26) if SMOKE else (1 << 30) // 4 * 4, dtype=cupy.float32)

    def best():
        a.sum()
        cupy.cuda.Device().synchronize()
        t_best = np.inf
        for _ in range(10):
            t0 = time.perf_counter()
            a.sum()
            cupy.cuda.Device().synchronize()
            t_best = min(t_best, time.perf_counter() - t0)
        return t_best

    t = benchmark.pedantic(best, rounds=1, iterations=1)
    benchmark.group = "machine: GPU read bandwidth"
    benchmark.extra_info.update(kind="gpu_read_bandwidth", bytes=a.nbytes, best_s=t, gb_per_s=a.nbytes / t / 1e9)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32"])
def test_gpukmeans_cuda_compile_time(benchmark, dtype):
    """NVRTC compile time of the kernels a fit needs, apart from the run time (``bench_compile.py``'s steps).

    ``cold``: an empty CuPy kernel cache (the first GPU fit after installation); ``cached``: the same
    cache directory in a new process (every later use).
    """
    _cupy_with_gpu()
    from bench_compile import run_steps

    benchmark.group = "compile cuda"
    with tempfile.TemporaryDirectory() as tmp:
        cold = benchmark.pedantic(run_steps, args=(dtype, tmp, "cuda"), rounds=1, iterations=1)
        cached = run_steps(dtype, tmp, "cuda")
    benchmark.extra_info.update(kind="compile", device="cuda", dtype=dtype, cold=cold, cached=cached)


@pytest.mark.gpu
@pytest.mark.parametrize("case, n_iter", with_iterations(CASES))
def test_gpukmeans_cuda(benchmark, case, n_iter):
    cupy = _cupy_with_gpu()
    from gpukmeans import KMeans

    X, init = case_data(case)
    Xd, initd = cupy.asarray(X), cupy.asarray(init)
    km = KMeans(case.k, metric=case.metric, update=case.update, init=initd, n_init=1, max_iter=n_iter, tol=0)
    pool = cupy.get_default_memory_pool()

    def fit():
        km.fit(Xd)
        cupy.cuda.Device().synchronize()
        return km

    km = benchmark.pedantic(fit, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    facts = {"pool_bytes": pool.total_bytes(), "objective": km.inertia_, "converged": converged(km)}
    _record(benchmark, case, "gpukmeans", n_iter, km.n_iter_, **facts)


@pytest.mark.gpu
@pytest.mark.parametrize("case, n_iter", with_iterations(CASES, peers_only=True))
def test_torch(benchmark, case, n_iter):
    torch = _torch_cuda()
    X, init = case_data(case)
    Xd = torch.as_tensor(np.asarray(X), device="cuda")
    C0 = torch.as_tensor(init, device="cuda")

    def fit():
        C = C0.clone()
        for _ in range(n_iter):
            labels = torch.cdist(Xd, C).argmin(dim=1)
            sums = torch.zeros_like(C).index_add_(0, labels, Xd)
            counts = torch.bincount(labels, minlength=C.shape[0]).to(C.dtype)
            C = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], C)
        torch.cuda.synchronize()
        return C

    torch.cuda.reset_peak_memory_stats()
    benchmark.pedantic(fit, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    _record(benchmark, case, "torch", n_iter, n_iter, peak_device_bytes=torch.cuda.max_memory_allocated() - Xd.nbytes)


@pytest.mark.gpu
@pytest.mark.parametrize("case, n_iter", with_iterations(CASES, peers_only=True))
def test_faiss_gpu(benchmark, case, n_iter):
    faiss = _faiss_gpu()
    X, init = case_data(case)

    def fit():
        km = faiss.Kmeans(case.d, case.k, niter=n_iter, max_points_per_centroid=10**9, seed=0, gpu=True)
        km.train(X, init_centroids=init)
        return km

    km = benchmark.pedantic(fit, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    _record(benchmark, case, "faiss-gpu", n_iter, len(km.obj), note="includes the host-to-device copy of X")
