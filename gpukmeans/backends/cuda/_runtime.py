"""CuPy loading with errors that say what is missing, and the memoized CUDA kernels.

CuPy is imported only here and only when the CUDA backend is asked for, so
``import gpukmeans`` never needs it. Each kernel instance (operation, dtype,
metric, number of features) is compiled once per process and device with NVRTC
from the ``.cu`` sources shipped next to this module, and CuPy keeps the binary
in its on-disk kernel cache, so a new process does not compile again.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

__all__ = ["CUDAUnavailableError", "load_cupy", "kernel", "SOURCES"]

#: The CUDA C sources shipped as package data.
SOURCES = ("kmeans.cu", "silhouette.cu")
#: NVRTC options: no fused multiply-adds, so distances match the CPU backend bit for bit.
OPTIONS = ("--std=c++17", "--fmad=false")

_CUDA_ERROR_INSUFFICIENT_DRIVER = 35
_CUDA_ERROR_NO_DEVICE = 100


class CUDAUnavailableError(ValueError):
    """``backend="cuda"`` cannot run here; the message says why (CuPy missing, no GPU, old driver)."""


def _version(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def load_cupy() -> Any:
    """Import CuPy and check that a usable CUDA GPU is there.

    Raises
    ------
    CUDAUnavailableError
        CuPy is not installed, no GPU is visible, or the NVIDIA driver is
        older than the CUDA version CuPy was built for; the message names the
        case and what to do.
    """
    try:
        import cupy
    except ImportError as exc:
        raise CUDAUnavailableError(
            "backend='cuda' needs CuPy, which is not installed: pip install \"gpukmeans[cuda]\" "
            f'(CuPy for CUDA 12; use "gpukmeans[cuda13]" with a CUDA 13 driver). Import error: {exc}'
        ) from None
    runtime = cupy.cuda.runtime
    try:
        n_devices = runtime.getDeviceCount()
    except runtime.CUDARuntimeError as exc:
        status = getattr(exc, "status", None)
        if status == _CUDA_ERROR_INSUFFICIENT_DRIVER:
            try:
                driver_version = runtime.driverGetVersion()
            except Exception:
                driver_version = 0
            if driver_version == 0:
                raise CUDAUnavailableError(
                    "backend='cuda': no NVIDIA driver is installed (or it cannot be loaded), so no GPU can be used; "
                    "use backend='cpu'."
                ) from None
            driver = _version(driver_version)
            raise CUDAUnavailableError(
                f"backend='cuda': the NVIDIA driver is too old for this CuPy build (driver supports CUDA {driver}, "
                f"CuPy was built for CUDA {_version(runtime.runtimeGetVersion())}): update the driver or install "
                "the CuPy wheel for your CUDA version (cupy-cuda12x or cupy-cuda13x)."
            ) from None
        if status == _CUDA_ERROR_NO_DEVICE:
            n_devices = 0
        else:
            raise CUDAUnavailableError(f"backend='cuda': CUDA could not be initialised: {exc}") from None
    if n_devices == 0:
        raise CUDAUnavailableError(
            "backend='cuda': no CUDA GPU is visible on this machine (check nvidia-smi and CUDA_VISIBLE_DEVICES); "
            "use backend='cpu'."
        )
    return cupy


_SOURCE_CACHE: dict[str, str] = {}
_KERNELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def source(name: str) -> str:
    """Text of one shipped ``.cu`` file."""
    if name not in _SOURCE_CACHE:
        _SOURCE_CACHE[name] = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return _SOURCE_CACHE[name]


def kernel(cupy: Any, file: str, expression: str, shared_bytes: int = 0) -> Any:
    """The compiled kernel ``expression`` (e.g. ``"assign_kernel<float, 0, 3>"``) of ``file``, memoized.

    ``shared_bytes`` above 48 KiB raises the kernel's dynamic shared memory
    limit to that size (kept at the largest size asked so far).
    """
    key = (cupy.cuda.runtime.getDevice(), file, expression)
    with _LOCK:
        entry = _KERNELS.get(key)
        if entry is None:
            module = cupy.RawModule(code=source(file), options=OPTIONS, name_expressions=[expression])
            entry = [module.get_function(expression), 48 * 1024]
            _KERNELS[key] = entry
        if shared_bytes > entry[1]:
            entry[0].max_dynamic_shared_size_bytes = int(shared_bytes)  # CuPy's RawKernel attribute
            entry[1] = shared_bytes
    return entry[0]


def expressions(d_values: tuple[int, ...] = tuple(range(9))) -> list[tuple[str, str]]:
    """Every ``(file, kernel expression)`` the backend can ask for, with D in ``d_values``.

    The CPU-only tests compile these with ``nvcc`` (explicitly instantiated) and,
    where NVRTC is installed, through NVRTC with these very name expressions.
    """
    out = [("kmeans.cu", "sum_rows_kernel")]
    for T in ("float", "double"):
        out.append(("kmeans.cu", f"histogram_kernel<{T}>"))
        out.append(("kmeans.cu", f"means_kernel<{T}>"))
        for D in d_values:
            out.append(("kmeans.cu", f"sums_kernel<{T}, {D}>"))
            for M in (0, 1, 2):
                for name in ("assign_kernel", "objectives_kernel", "pairwise_kernel", "point_costs_kernel"):
                    out.append(("kmeans.cu", f"{name}<{T}, {M}, {D}>"))
    for M in (0, 1, 2):
        for D in d_values:
            out.append(("silhouette.cu", f"silhouette_sums_kernel<{M}, {D}>"))
    return out
