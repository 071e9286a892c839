"""Input checks with errors that name the problem. Nothing here modifies the caller's arrays."""

from __future__ import annotations

import math
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


def check_array(X: Any, backend, *, name: str = "X", dtype: Any = None, return_range: bool = False):
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
    return_range : bool
        Also return ``(lo, hi)``, the least and greatest value of the array
        (found in the same pass as the finiteness check), for
        :func:`check_distance_range`.

    Returns
    -------
    X : (n_samples, n_features) backend array
    value_range : (float, float)
        Only with ``return_range``.

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
    if kind == "f" or return_range:  # integers are finite, but their range may still be asked for
        value_range = check_finite(out, backend, name)
        if return_range:
            return out, value_range
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


def check_finite(a: Any, backend, name: str) -> tuple[float, float]:
    """Raise ValueError if ``a`` holds NaN or infinity; return its least and greatest value.

    Checked chunk by chunk (bounded memory). With NumPy, a chunk's minimum and
    maximum are finite exactly when all its values are (NaN propagates through
    both), so the two reductions are the whole check; other array libraries
    (CuPy, whose reductions may drop NaN with cuTENSOR) also ask ``isfinite``.
    """
    xp = backend.xp
    flat = a.reshape(-1) if a.ndim > 1 else a
    lo, hi = math.inf, -math.inf
    for start in range(0, flat.shape[0], _CHUNK_ROWS * 4):
        part = flat[start : start + _CHUNK_ROWS * 4]
        finite = xp is np or bool(xp.isfinite(part).all())
        part_lo, part_hi = (float(part.min()), float(part.max())) if finite else (math.nan, math.nan)
        if not (math.isfinite(part_lo) and math.isfinite(part_hi)):
            what = "NaN" if bool(xp.isnan(part).any()) else "infinity"
            raise ValueError(f"{name} contains {what}; remove or impute those values first.")
        lo, hi = min(lo, part_lo), max(hi, part_hi)
    return lo, hi


def join_ranges(*ranges: tuple[float, float]) -> tuple[float, float]:
    """The smallest ``(lo, hi)`` holding every given ``(lo, hi)``."""
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def check_distance_range(
    value_range: tuple[float, float], n_features: int, dtype: Any, metric, *, name: str = "X", n_samples: int = 1
) -> None:
    """Raise ValueError where distances between values in ``value_range`` could overflow.

    Every center the engine makes lies within the range of the data (a mean,
    a median or a data point), so no coordinate difference exceeds
    ``hi - lo``, and no objective term exceeds ``n_features * (hi - lo)**2``
    (euclidean, squared), ``n_features * (hi - lo)`` (manhattan) or
    ``hi - lo`` (chebyshev). The terms are computed in ``dtype``: past its
    largest value (float32: 3.4e38, reached by squared differences of about
    1e19, a fill value of some rasters) they would become infinite and the
    labels silently wrong. The objective adds up ``n_samples`` terms in
    float64, which must hold that sum too, and the convergence test squares
    center shifts in float64 for every metric. A margin of 4 covers rounding.
    At the other end, a span so small that the largest term (or its float64
    square) is below ``tiny / eps`` of its dtype puts the differences of nearby
    points among the subnormal numbers or at zero: refused too (float32
    euclidean: a span below about 3e-16; manhattan and chebyshev: 1e-31).

    Parameters
    ----------
    value_range : (float, float)
        Least and greatest value of the data (and of any given centers).
    n_features : int
    dtype : dtype
        The dtype the distances are computed in.
    metric : Metric
    name : str
        Name used in the error message.
    n_samples : int
        Number of terms summed in the objective.
    """
    lo, hi = value_range
    span = float(hi) - float(lo)  # Python float: inf, not an error, past 1.8e308
    term = span * span if metric.squared_objective else span  # the largest term of one feature
    bound = term if metric.name == "chebyshev" else n_features * term  # chebyshev: the max over features
    what = f"{'squared ' if metric.squared_objective else ''}{metric.name} distances"
    dtype = np.dtype(dtype)
    largest = float(np.finfo(dtype).max)
    if not bound < largest / 4:
        reach = f"reach {bound:.3g}" if math.isfinite(bound) else "exceed any float"
        if dtype != np.float64 and bound < float(np.finfo(np.float64).max) / 4:
            remedy = f"Mask fill values (such as a nodata value of 1e20), rescale {name} or pass float64 data."
        else:
            remedy = f"Mask fill values (such as a nodata value of 1e20) or rescale {name}."
        raise ValueError(
            f"{name} holds values from {lo:.4g} to {hi:.4g}: {what} between such points {reach}, past the "
            f"largest {dtype} ({largest:.3g}), so they cannot be computed and the clusters would be wrong. {remedy}"
        )
    if not bound * max(1, n_samples) < float(np.finfo(np.float64).max) / 4:
        raise ValueError(
            f"{name} holds values from {lo:.4g} to {hi:.4g}: the objective, a sum of {n_samples} {what} of up "
            f"to {bound:.3g} each, could overflow float64. Rescale {name}."
        )
    squares = n_features * span * span
    if not squares < float(np.finfo(np.float64).max) / 4:
        raise ValueError(
            f"{name} holds values from {lo:.4g} to {hi:.4g}: the convergence test (squared center shifts and the "
            f"variance of {name}, in float64) would overflow. Rescale {name}."
        )
    if span > 0:  # the other end: differences so small that their terms leave the normal range
        tiny = float(np.finfo(dtype).tiny) / float(np.finfo(dtype).eps)
        tiny64 = float(np.finfo(np.float64).tiny) / float(np.finfo(np.float64).eps)
        if term < tiny or span * span < tiny64:
            raise ValueError(
                f"{name} holds values from {lo:.4g} to {hi:.4g}: differences this small underflow "
                f"({what} in {dtype}, or the squared center shifts of the convergence test in float64), so "
                f"nearby points would be at distance 0 and the clusters would be wrong. Rescale {name} "
                "(multiply it by a power of 10)."
            )


def check_sample_weight(sample_weight: Any, n_samples: int, dtype, backend):
    """Return sample weights as a backend array of ``dtype``; ones if None.

    Raises
    ------
    ValueError
        Wrong shape, NaN/inf, negative values, all weights zero, or a total
        weight past a quarter of the largest value of ``dtype``.
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
    lo, hi = check_finite(w, backend, "sample_weight")
    if lo < 0:
        raise ValueError("sample_weight contains negative values; weights must be >= 0.")
    if not hi > 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight.")
    check_total_weight(float(w.sum(dtype=xp.float64)), dtype)
    return w


def check_total_weight(total: float, dtype: Any) -> None:
    """Raise ValueError when the weights' sum passes a quarter of the largest ``dtype`` (k-means++ sums them there)."""
    largest = float(np.finfo(dtype).max)
    if not total < largest / 4:
        raise ValueError(
            f"sample_weight sums to {total:.3g}, past what {np.dtype(dtype)} holds ({largest:.3g}); only the ratios "
            "of the weights matter: divide them by a constant."
        )


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
