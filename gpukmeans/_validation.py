"""Input checks with errors that name the problem. Nothing here modifies the caller's arrays."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

_CHUNK_ROWS = 1 << 20


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator (like scikit-learn's NotFittedError)."""


def float_dtype_for(a: Any) -> np.dtype:
    """float64 stays float64; every other real dtype (ints, uint8 imagery, float16, float32) becomes float32."""
    dtype = np.dtype(a.dtype)
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def check_array(X: Any, backend, *, name: str = "X", dtype: Any = None):
    """Validate a 2-D sample matrix and return it as a C-contiguous float backend array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Real numbers: float, integer or bool arrays (lists and pandas frames too).
    backend : Backend
    name : str
        Name used in error messages.
    dtype : dtype, optional
        Target float dtype; default float64 for float64 input and float32 otherwise.

    Raises
    ------
    TypeError
        Sparse, complex, object or string input.
    ValueError
        Not 2-D, no samples or no features, NaN or infinity.
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; gpukmeans needs a dense array (call X.toarray()).")
    if not hasattr(X, "dtype") or not hasattr(X, "shape"):
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    kind = np.dtype(X.dtype).kind
    if kind == "O":  # e.g. a list mixing ints and floats, or a frame of mixed columns
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold real numbers; got dtype object that does not convert: {exc}") from exc
        kind = "f"
    check_kind_and_shape(X, name)
    target = np.dtype(dtype) if dtype is not None else float_dtype_for(X)
    out = backend.asarray(X, target)
    if kind == "f":
        check_finite(out, backend, name)
    return out


def check_kind_and_shape(X: Any, name: str = "X") -> None:
    """Raise if ``X`` (any array with ``dtype``, ``ndim`` and ``shape``) is not a non-empty 2-D real array."""
    kind = np.dtype(X.dtype).kind
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} must hold real numbers.")
    if kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got {X.ndim}-D array of shape {tuple(X.shape)}. "
            "Reshape your data: X.reshape(-1, 1) for a single feature, img.reshape(-1, n_bands) for an image."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        what = "0 sample(s)" if X.shape[0] == 0 else "0 feature(s)"
        raise ValueError(
            f"{name} is empty: found array with {what} (shape={tuple(X.shape)}) while a minimum of 1 is required."
        )


def check_finite(a: Any, backend, name: str) -> None:
    """Raise ValueError if ``a`` holds NaN or infinity (checked chunk by chunk: bounded memory)."""
    xp = backend.xp
    flat = a.reshape(-1) if a.ndim > 1 else a
    for start in range(0, flat.shape[0], _CHUNK_ROWS * 4):
        part = flat[start : start + _CHUNK_ROWS * 4]
        if not bool(xp.isfinite(part).all()):
            what = "NaN" if bool(xp.isnan(part).any()) else "infinity"
            raise ValueError(f"{name} contains {what}; remove or impute those values first.")


def check_sample_weight(sample_weight: Any, n_samples: int, dtype, backend):
    """Return sample weights as a backend array of ``dtype``; ones if None.

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf, negative values, or all weights zero.
    """
    xp = backend.xp
    if sample_weight is None:
        return xp.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    if not hasattr(sample_weight, "shape"):
        sample_weight = np.asarray(sample_weight)
    if np.dtype(sample_weight.dtype).kind not in "fiub":
        raise TypeError(f"sample_weight must hold real numbers; got dtype {sample_weight.dtype}.")
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        raise ValueError(f"sample_weight must have shape ({n_samples},) to match X; got {tuple(sample_weight.shape)}.")
    w = backend.asarray(sample_weight, dtype)
    check_finite(w, backend, "sample_weight")
    if bool((w < 0).any()):
        raise ValueError("sample_weight contains negative values; weights must be >= 0.")
    if not bool((w > 0).any()):
        raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight.")
    return w


def check_int(value: Any, name: str, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum``; TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def check_random_state(seed: Any) -> np.random.RandomState:
    """Turn None, an int or a RandomState into a RandomState (scikit-learn's semantics)."""
    if seed is None:
        return np.random.RandomState()
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState; got {seed!r}.")
