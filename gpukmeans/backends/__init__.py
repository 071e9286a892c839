"""Compute backends behind one interface (:class:`Backend`), chosen by name or by input type.

``"cpu"`` (alias ``"numba"``) is always available. ``"cuda"`` (aliases ``"gpu"``,
``"cupy"``) is the CuPy backend; until it ships, asking for it raises a clear error.
``"auto"`` picks the backend that matches the input: CuPy arrays go to ``"cuda"``,
everything else to ``"cpu"``.
"""

from __future__ import annotations

from typing import Any

from ._base import Backend

__all__ = ["Backend", "available_backends", "get_backend"]

_ALIASES = {"cpu": "cpu", "numba": "cpu", "cuda": "cuda", "gpu": "cuda", "cupy": "cuda"}


def _is_cupy_array(a: Any) -> bool:
    # Checked by module name so that CuPy is never imported just to look.
    return type(a).__module__.split(".")[0] == "cupy"


def available_backends() -> list[str]:
    """Names of the backends usable in this process."""
    return ["cpu"]


def get_backend(name: str, X: Any = None) -> Backend:
    """Return the backend called ``name`` (or the one matching ``X`` for ``"auto"``).

    Raises
    ------
    ValueError
        Unknown name, or a backend that is not usable here (the message says why
        and what to install).
    """
    if not isinstance(name, str) or (name != "auto" and name.lower() not in _ALIASES):
        raise ValueError(f"Unknown backend {name!r}; expected 'auto' or one of {sorted(_ALIASES)}.")
    resolved = name.lower()
    if resolved == "auto":
        resolved = "cuda" if _is_cupy_array(X) else "cpu"
    resolved = _ALIASES[resolved]
    if resolved == "cuda":
        raise ValueError(
            "backend='cuda' is not available: this version of gpukmeans has no CUDA backend yet. "
            "Pass NumPy arrays (call cupy.asnumpy on CuPy input) and use backend='cpu'."
        )
    if _is_cupy_array(X):
        raise ValueError("CuPy input needs backend='cuda'; convert with cupy.asnumpy(X) for backend='cpu'.")
    from .cpu import CPUBackend

    return CPUBackend()
