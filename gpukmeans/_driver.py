"""The one Lloyd loop shared by every backend: convergence, empty clusters, statistics.

The driver only calls the backend interface (:class:`gpukmeans.backends.Backend`).
Per-sample arrays (X, weights, labels, costs) stay in the backend's memory and
are touched only through ``backend.xp``; the small ``(n_clusters, ...)`` arrays
(centers, sums, weights, candidates) live on the host as NumPy arrays, so on a
GPU each iteration moves one small array each way (the centers down, the
objective, the labels changed and the cluster sums up) and the convergence test
costs no device round trip.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Backend
from .metrics import Metric

#: Relative margin by which a guarded-update candidate must beat the center it replaces.
_TIE_RTOL = 1e-10


@dataclass
class LloydResult:
    """Outcome of one Lloyd run (one initialisation)."""

    centers: Any  # (n_clusters, n_features) backend array, dtype of X
    labels: Any  # (n_samples,) int32 backend array, the nearest center of each sample
    objective: float  # weighted objective of ``centers`` and ``labels``
    n_iter: int
    history: list[dict] = field(default_factory=list)


def _relocate_empty_clusters(backend, X, sample_weight, centers, metric, labels, weights):
    """Move the samples farthest from their centers into the empty clusters.

    Returns a copy of ``labels`` in which, for each cluster of zero weight (in
    increasing index order), the farthest remaining sample of positive weight
    (measured to the center it was assigned with; ties to the lowest sample index)
    is given to that cluster. The caller's ``labels`` are left untouched.
    """
    xp = backend.xp
    empty = np.flatnonzero(weights <= 0)
    costs = backend.point_costs(X, centers, metric.code, labels).astype(xp.float64)
    costs = xp.where(sample_weight > 0, costs, -1.0)  # weightless samples move last
    far = xp.argsort(-costs, kind="stable")[: empty.shape[0]]
    relocated = labels.copy()
    relocated[far] = backend.asarray(empty[: far.shape[0]], labels.dtype)
    return relocated


def _candidate_centers(backend, X, sample_weight, labels, sums, centers, rule, metric):
    """Centers after one update step (float64 NumPy); clusters with no weight keep their center."""
    n_clusters, n_features = centers.shape
    old = centers.astype(np.float64)
    if rule in ("mean", "guarded"):
        if sums is not None:
            weights = sums[:, n_features]
            mean = sums[:, :n_features] / np.where(weights > 0, weights, 1.0)[:, None]
        else:
            mean, weights = backend.update(X, sample_weight, labels, n_clusters, "mean")
        mean = np.where((weights > 0)[:, None], mean, old)
        if rule == "mean":
            return mean
    median, weights = backend.update(X, sample_weight, labels, n_clusters, "median")
    median = np.where((weights > 0)[:, None], median, old)
    if rule == "median":
        return median
    # guarded: per cluster, the best of {current center, median, mean} for the
    # cluster's objective, so it never increases. The current center wins ties,
    # then the median: a candidate must be lower by more than _TIE_RTOL, since
    # exact ties are common (a weighted median on a flat stretch of the L1
    # objective) and backends summing in different orders round them differently.
    candidates = np.stack([old, median, mean]).astype(X.dtype)
    objectives = backend.objective(X, sample_weight, labels, candidates, metric.code)
    best = np.zeros(n_clusters, dtype=np.intp)
    best_objective = objectives[0].copy()
    for s in (1, 2):
        better = objectives[s] < best_objective - _TIE_RTOL * np.abs(best_objective)
        best[better] = s
        best_objective[better] = objectives[s][better]
    return candidates[best, np.arange(n_clusters)].astype(np.float64)


def lloyd(
    X: Any,
    sample_weight: Any,
    centers_init: Any,
    *,
    backend: Backend,
    metric: Metric,
    rule: str,
    max_iter: int,
    tol: float,
    verbose: bool = False,
) -> LloydResult:
    """Run Lloyd iterations from ``centers_init`` until convergence.

    Each iteration assigns every sample to its nearest center (fused kernel),
    relocates empty clusters to the farthest samples, and updates the centers
    with ``rule``. It stops when no label changed (strict convergence), when
    the squared center shift ``sum_j ||c_j^new - c_j||^2`` is at most ``tol``
    (already scaled by the caller), or after ``max_iter`` iterations. A final
    assignment makes the returned labels those of the returned centers.

    Parameters
    ----------
    X : (n_samples, n_features) backend array, float32 or float64
    sample_weight : (n_samples,) backend array, dtype of X
    centers_init : (n_clusters, n_features) backend array, dtype of X
    backend : Backend
    metric : Metric
    rule : {"mean", "median", "guarded"}
    max_iter : int
    tol : float
        Absolute tolerance on the squared center shift.
    verbose : bool
        Print one line per iteration.

    Returns
    -------
    LloydResult
    """
    backend = backend.bind(X, sample_weight)  # facts about X and the weights, checked once for the run
    xp = backend.xp
    n_samples, n_features = X.shape
    centers = np.array(backend.to_numpy(centers_init), dtype=X.dtype)  # small arrays live on the host
    labels = xp.full(n_samples, -1, dtype=xp.int32)
    history: list[dict] = []
    n_iter = 0
    label_sums = None  # the sums of ``labels`` (a backend may update them from the samples that move)
    for n_iter in range(1, max_iter + 1):
        t0 = time.perf_counter()
        objective, n_changed, sums = backend.assign(X, sample_weight, centers, metric.code, labels, True, label_sums)
        label_sums = sums
        weights = sums[:, n_features]
        update_labels = labels
        if bool(np.any(weights <= 0)):
            update_labels = _relocate_empty_clusters(backend, X, sample_weight, centers, metric, labels, weights)
            sums = None
        new = _candidate_centers(backend, X, sample_weight, update_labels, sums, centers, rule, metric).astype(X.dtype)
        shift = float(np.sum((new.astype(np.float64) - centers.astype(np.float64)) ** 2))
        centers = new
        elapsed = time.perf_counter() - t0
        history.append(
            {
                "iteration": n_iter,
                "objective": objective,
                "center_shift": shift,
                "n_changed": n_changed,
                "time": elapsed,
            }
        )
        if verbose:
            print(
                f"Iteration {n_iter}: objective {objective:.8g}, center shift {shift:.4g}, "
                f"labels changed {n_changed}, {elapsed * 1e3:.1f} ms"
            )
        if n_changed == 0:
            if verbose:
                print(f"Converged at iteration {n_iter}: strict convergence (no label changed).")
            break
        if shift <= tol:
            if verbose:
                print(f"Converged at iteration {n_iter}: center shift {shift:.4g} within tolerance {tol:.4g}.")
            break
    objective, _, _ = backend.assign(X, sample_weight, centers, metric.code, labels, False)
    return LloydResult(
        centers=backend.asarray(centers, X.dtype), labels=labels, objective=objective, n_iter=n_iter, history=history
    )
