"""Compute backends behind one interface (:class:`Backend`), chosen by name or by input type.

``"cpu"`` (alias ``"numba"``) is always available. ``"cuda"`` (aliases ``"gpu"``,
``"cupy"``) is the CuPy backend (:mod:`gpukmeans.backends.cuda`); asking for it
where CuPy or a GPU is missing raises :class:`CUDAUnavailableError` (a
``ValueError``) saying which. ``"auto"`` picks the backend that matches the
input: CuPy arrays go to ``"cuda"``, everything else to ``"cpu"``, so it never
fails on a machine without CUDA.
"""

from __future__ import annotations

from typing import Any

from ._base import Backend
from .cuda._runtime import CUDAUnavailableError

__all__ = ["Backend", "CUDAUnavailableError", "available_backends", "get_backend"]

_ALIASES = {"cpu": "cpu", "numba": "cpu", "cuda": "cuda", "gpu": "cuda", "cupy": "cuda"}


def _is_cupy_array(a: Any) -> bool:
    # Checked by module name so that CuPy is never imported just to look.
    return type(a).__module__.split(".")[0] == "cupy"


def available_backends() -> list[str]:
    """Names of the backends usable in this process (``"cuda"`` only where CuPy sees a GPU)."""
    try:
        from .cuda._runtime import load_cupy

        load_cupy()
    except CUDAUnavailableError:
        return ["cpu"]
    return ["cpu", "cuda"]


def get_backend(name: str, X: Any = None) -> Backend:
    """Return the backend called ``name`` (or the one matching ``X`` for ``"auto"``).

    Raises
    ------
    ValueError
        Unknown name, or CuPy input with ``backend="cpu"``.
    CUDAUnavailableError
        ``"cuda"`` asked for (or CuPy input given) where CuPy or a GPU is
        missing or the driver is too old; the message says which and what to do.
    """
    if not isinstance(name, str) or (name != "auto" and name.lower() not in _ALIASES):
        raise ValueError(f"Unknown backend {name!r}; expected 'auto' or one of {sorted(_ALIASES)}.")
    resolved = name.lower()
    if resolved == "auto":
        resolved = "cuda" if _is_cupy_array(X) else "cpu"
    resolved = _ALIASES[resolved]
    if resolved == "cuda":
        from .cuda import CUDABackend

        return CUDABackend()
    if _is_cupy_array(X):
        raise ValueError("CuPy input needs backend='cuda'; convert with cupy.asnumpy(X) for backend='cpu'.")
    from .cpu import CPUBackend

    return CPUBackend()
