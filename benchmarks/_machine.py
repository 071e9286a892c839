"""What the benchmarks run on, and what that machine can do at best.

- :func:`describe` collects the machine description that goes into the report:
  CPU model and cores, memory, GPU (``nvidia-smi``), library versions, BLAS
  libraries and their kernels (threadpoolctl), numba's threading layer and
  thread count, load average.
- :func:`read_bandwidth` and :func:`peak_flops` measure the two limits that
  bound a Lloyd iteration, in the same run as the benchmarks: the memory read
  bandwidth (a parallel numba sum over a float32 array of a given size) and the
  GEMM peak (NumPy's BLAS ``matmul``).
- :class:`PeakRSS` measures the peak extra resident memory of a block of code
  (Linux: resets the kernel's high-water mark through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
import time

import numpy as np
from numba import njit, prange

from gpukmeans.backends._numba_kernels import PRANGE_ONLY

# ----------------------------------------------------------------- description

_LIBRARIES = ("gpukmeans", "numpy", "numba", "sklearn", "faiss", "torch", "cupy", "threadpoolctl", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx2", "fma", "avx512f", "avx512_fp16", "amx_tile") if f in flags]
    except OSError:
        pass
    return []


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _caches() -> dict:
    out = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("L1d cache", "L2 cache", "L3 cache", "Hypervisor vendor"):
            out[key.strip()] = value.strip()
    return out


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` sees (empty without one)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        text = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # not installed (or broken): reported as such
            out[name] = None
            continue
        out[name] = getattr(mod, "__version__", "?")
    return out


def blas_info() -> list[dict]:
    """The BLAS / OpenMP libraries loaded in this process (threadpoolctl), with their kernel."""
    try:
        import numpy  # noqa: F401  (loads its BLAS)
        import threadpoolctl
    except ImportError:
        return []
    for name in ("sklearn.cluster", "faiss", "scipy.linalg"):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    keep = ("internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer", "filepath")
    infos = []
    for info in threadpoolctl.threadpool_info():
        entry = {k: info.get(k) for k in keep if info.get(k) is not None}
        entry["filepath"] = os.path.basename(entry.get("filepath", ""))
        infos.append(entry)
    return infos


def numba_threads() -> dict:
    import numba

    try:
        from gpukmeans.backends import _numba_kernels as k

        k.n_chunks_for(1)  # make sure the parallel runtime is up before asking for the layer
        _warm = np.zeros(10)
        _parallel_sum(_warm.astype(np.float32))
        layer = numba.threading_layer()
    except Exception as exc:  # pragma: no cover - reported, not fatal
        layer = f"? ({exc})"
    return {"threading_layer": layer, "num_threads": numba.get_num_threads()}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict:
    """Everything the report says about the machine and the software."""
    env = {k: os.environ[k] for k in sorted(os.environ) if k.startswith(("OMP_", "NUMBA_", "MKL_", "OPENBLAS_"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("GPUKMEANS_BENCH")})
    return {
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "caches": _caches(),
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "versions": versions(),
        "blas": blas_info(),
        "numba": numba_threads(),
        "environment": env,
        "load_average": load_average(),
    }


# -------------------------------------------------------------------- limits


@njit(nogil=True, fastmath=True, cache=True)
def _sum_range(a, start, stop):
    acc = np.float32(0)
    for i in range(start, stop):
        acc += a[i]
    return acc


@njit(parallel=PRANGE_ONLY, cache=True)
def _parallel_sum(a):
    """Sum of a float32 vector over all of numba's threads (64 chunks), vectorised.

    One parallel region per call, as in the kernels (``PRANGE_ONLY``): with
    plain ``parallel=True`` the ``np.zeros`` and the final sum were regions too,
    and each can wait for a wake-up of the pool, which small arrays then measure.
    """
    n = a.shape[0]
    parts = 64
    out = np.zeros(parts, dtype=np.float32)
    for c in prange(parts):
        out[c] = _sum_range(a, c * n // parts, (c + 1) * n // parts)
    return out.sum()


def read_bandwidth(n_bytes: int, repeats: int = 7) -> dict:
    """Best read bandwidth of a parallel (numba, all threads) sum over ``n_bytes`` of float32.

    The array is written once (pages faulted in) and then summed ``repeats``
    times; the best time gives the bandwidth. Arrays larger than the caches
    measure DRAM; small ones measure whichever cache holds them.
    """
    a = np.ones(max(1, n_bytes // 4), dtype=np.float32)
    _parallel_sum(a[:1024])  # compile (or load) outside the timing
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _parallel_sum(a)
        best = min(best, time.perf_counter() - t0)
    return {"bytes": a.nbytes, "best_s": best, "gb_per_s": a.nbytes / best / 1e9}


def peak_flops(dtype: str = "float32", size: int = 2048, repeats: int = 5) -> dict:
    """Best FLOP/s of a square ``matmul`` of ``size`` (NumPy's BLAS, all its threads)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    a @ b  # warm-up: thread pool up, pages touched
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    flops = 2.0 * size**3
    return {"size": size, "dtype": dtype, "best_s": best, "gflop_per_s": flops / best / 1e9}


# -------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRSS:
    """Peak resident memory above the level at entry, for the code in the ``with`` block.

    Linux only (``/proc/self/clear_refs`` resets ``VmHWM``); elsewhere
    ``extra_bytes`` stays ``None``. It counts everything the process touches,
    NumPy buffers, numba's allocations and C++ libraries' alike; memory freed
    earlier but kept by the allocator can be reused without showing up.
    """

    def __init__(self) -> None:
        self.extra_bytes: int | None = None
        self._ok = False

    def __enter__(self) -> PeakRSS:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._base = _status_kib("VmRSS")
            self._ok = self._base is not None
        except OSError:
            self._ok = False
        return self

    def __exit__(self, *exc) -> None:
        if self._ok:
            peak = _status_kib("VmHWM")
            if peak is not None:
                self.extra_bytes = max(0, peak - self._base) * 1024
