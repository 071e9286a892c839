"""The backend interface the shared driver dispatches to.

A backend owns the arrays (NumPy for ``cpu``, CuPy for ``cuda``) and the
compiled kernels; the driver (:mod:`gpukmeans._driver`) owns everything else.
Per-sample arrays passed to these methods have already been converted by
:meth:`Backend.asarray`: ``X`` C-contiguous float32 or float64 of shape
``(n_samples, n_features)``, ``sample_weight`` of the same dtype, ``labels``
int32. Small per-cluster arrays cross the interface as host NumPy arrays:
``centers`` and ``candidates`` come in as NumPy (or backend) arrays of X's
dtype and the backend moves them if it must; the sums, medians, weights and
objectives it returns are NumPy float64 arrays (one small copy per call on a
GPU). ``metric`` is the integer code of :class:`gpukmeans.metrics.Metric`.
Every sum over samples is accumulated in float64, and the result of every
method depends only on its inputs (never on thread count or scheduling).

Optional pair (the CPU backend has it): ``assign_revertible`` (the signature
and results of :meth:`Backend.assign`, on a bound backend also recording
which labels change) and ``revert(X, labels) -> bool``, which puts those
labels back and returns True, or returns False and changes nothing. The
driver uses them to undo a guarded choice without assigning again.

Optional pair (the CUDA backend has it): ``assign_ahead(X, sample_weight,
centers, metric, labels)``, the results of :meth:`Backend.assign` with
``accumulate``, which may also queue the assignment to the mean update of its
sums (each cluster of positive weight at its weighted mean, rounded to X's
dtype; the others unchanged) so that the device works while the host runs
the driver; it overwrites ``labels``. The next assignment to exactly those
centers returns that one's results; ``settle(labels)`` (and every other use of
the labels on that backend) first puts the labels back. The driver uses it
with the mean update and settles before it reads the labels itself.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

Array = Any  # numpy.ndarray or cupy.ndarray

#: ``Backend.objective`` with ``stride`` > 1 sums over every ``stride``-th run of this many consecutive samples.
SAMPLE_RUN = 64


def sample_rows(n_samples: int, stride: int, offset: int = 0, xp: Any = np) -> Any:
    """Indices ``i < n_samples`` of the sample of ``Backend.objective(..., stride)`` (``xp`` int64 array).

    The samples ``i`` with ``((offset + i) // SAMPLE_RUN) % stride == 0``, in
    increasing order; ``offset`` is the global index of sample 0 (a chunk of a
    larger array). Built from the runs only (no array of ``n_samples``).
    """
    if stride <= 1:
        return xp.arange(n_samples, dtype=xp.int64)
    period = stride * SAMPLE_RUN  # sampled global indices: m * period + t, 0 <= t < SAMPLE_RUN
    starts = xp.arange(offset // period, (offset + n_samples) // period + 1, dtype=xp.int64) * period - offset
    rows = (starts[:, None] + xp.arange(SAMPLE_RUN, dtype=xp.int64)[None, :]).ravel()
    return rows[(rows >= 0) & (rows < n_samples)]


class Bindable:
    """Per-run facts about X and sample_weight, computed at most once (see :meth:`Backend.bind`).

    An unbound backend computes every fact it needs (is X integer-valued? are
    all weights 1?) from the arrays of each call, so its results depend only on
    its inputs. :meth:`bind` returns a copy that remembers such facts about the
    two arrays of one Lloyd run (it holds them, so their identities cannot be
    reused); the driver never modifies them while the run lasts.
    """

    _bound: tuple[Any, Any, dict] | None = None

    def bind(self, X: Any, sample_weight: Any):
        bound = copy.copy(self)
        bound._bound = (X, sample_weight, {})
        return bound

    def _fact(self, name: str, a: Any, compute: Callable[[Any], Any]) -> Any:
        """``compute(a)``, remembered for the run when ``a`` is the bound X or sample_weight."""
        bound = self._bound
        if bound is None or (a is not bound[0] and a is not bound[1]):
            return compute(a)
        key = (name, a is bound[0])
        if key not in bound[2]:
            bound[2][key] = compute(a)
        return bound[2][key]


def means_from_sums(sums: Any) -> tuple[Any, Any]:
    """``(n_clusters, n_features + 1)`` weighted sums -> (means, NaN for clusters of no weight; weights).

    The ``update(..., "mean")`` result every host-side backend returns.
    """
    weights = sums[:, -1]
    positive = weights > 0
    centers = sums[:, :-1] / (weights + ~positive)[:, None]  # no 0/0: those rows become NaN below
    centers[~positive] = float("nan")
    return centers, weights


class Backend(Protocol):
    """What a backend implements (see the module docstring for conventions)."""

    #: Name used by ``KMeans(backend=...)``.
    name: str
    #: Array namespace of the backend (``numpy`` or ``cupy``).
    xp: Any

    def bind(self, X: Array, sample_weight: Array) -> Backend:
        """A backend for one Lloyd run on these arrays (see :class:`Bindable`); may return ``self``."""

    def asarray(self, a: Any, dtype: Any) -> Array:
        """Return ``a`` as a C-contiguous backend array of ``dtype``, copying only if needed.

        Kernels never write to it, so the caller's data is never modified.
        """

    def to_numpy(self, a: Array) -> Any:
        """Return a host NumPy copy (or view) of a backend array."""

    def assign(
        self,
        X: Array,
        sample_weight: Array,
        centers: Array,
        metric: int,
        labels: Array,
        accumulate: bool,
        previous: Any = None,
    ) -> tuple[float, int, Array]:
        """Fused distance + argmin; no ``(n_samples, n_clusters)`` matrix.

        ``labels`` (IN/OUT) holds the previous labels and receives the index of
        the nearest center (lowest index on ties). Returns the weighted objective,
        the number of labels that changed, and, if ``accumulate``, the
        ``(n_clusters, n_features + 1)`` float64 NumPy weighted coordinate sums
        with the cluster weights in the last column (zeros otherwise).

        ``previous``, when given, holds the sums of the labels passed in. A
        backend may then update them from the samples that change cluster only
        (the CPU backend does, with unit weights) instead of summing everything
        again; the result equals the full sums up to float64 rounding, exactly
        on integer data, and a cluster left with no samples gets weight 0.
        """

    def update(self, X: Array, sample_weight: Array, labels: Array, n_clusters: int, rule: str) -> tuple[Array, Array]:
        """New centers from an assignment.

        ``rule`` is ``"mean"`` (weighted mean) or ``"median"`` (weighted
        coordinate-wise median, samples of weight 0 ignored). Returns
        ``(n_clusters, n_features)`` float64 NumPy centers, NaN for clusters of
        no weight, and the ``(n_clusters,)`` float64 NumPy cluster weights.
        """

    def objective(
        self, X: Array, sample_weight: Array, labels: Array, candidates: Array, metric: int, stride: int = 1
    ) -> Array:
        """Per-cluster weighted objective of ``(n_sets, n_clusters, n_features)`` candidate centers.

        Returns ``(n_sets, n_clusters)`` float64 NumPy, in one pass over ``X`` (for the guarded update's three sets):
        ``out[s, j]`` sums ``w_i * term(X[i], candidates[s, j])`` over the samples
        ``i`` labelled ``j`` of the systematic sample :func:`sample_rows` (every
        ``stride``-th run of :data:`SAMPLE_RUN` samples; 1: all of them).
        """

    def pairwise(self, X: Array, centers: Array, metric: int) -> Array:
        """``(n_samples, n_centers)`` backend array of objective terms (squared distance for euclidean)."""

    def point_costs(self, X: Array, centers: Array, metric: int, labels: Array) -> Array:
        """``(n_samples,)`` backend array: objective term of each sample to its own center."""

    def label_counts(self, labels: Array, n_clusters: int) -> Any:
        """``(n_clusters,)`` int64 NumPy: how many samples carry each label (whatever their weight)."""
