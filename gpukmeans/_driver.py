"""The one Lloyd loop shared by every backend: convergence, empty clusters, statistics.

The driver only calls the backend interface (:class:`gpukmeans.backends.Backend`).
Per-sample arrays (X, weights, labels, costs) stay in the backend's memory and
are touched only through ``backend.xp``; the small ``(n_clusters, ...)`` arrays
(centers, sums, weights, candidates) live on the host as NumPy arrays, so on a
GPU each iteration moves one small array each way (the centers down, the
objective, the labels changed and the cluster sums up) and the convergence test
costs no device round trip. With the mean update, a backend that has
``assign_ahead`` (CUDA) queues the next assignment to the mean update it
expects before the host has run this loop's step, so the device does not wait
for the host; the driver's own update decides whether that assignment is used.
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


def _settle(backend, labels) -> None:
    """Make ``labels`` those of the last assignment returned, on a backend that may have queued the next one.

    A backend with ``assign_ahead`` may overwrite the labels with the
    assignment it expects to be asked for next; the driver calls this before
    it reads the labels itself (see :class:`gpukmeans.backends.Backend`).
    """
    settle = getattr(backend, "settle", None)
    if settle is not None:
        settle(labels)


def _relocate_empty_clusters(backend, X, sample_weight, centers, metric, labels, weights):
    """Move the samples farthest from their centers into the empty clusters.

    Returns a copy of ``labels`` in which, for each cluster of zero weight (in
    increasing index order), the farthest remaining sample of positive weight
    (measured to the center it was assigned with; ties to the lowest sample index)
    is given to that cluster. The caller's ``labels`` are left untouched.
    """
    xp = backend.xp
    _settle(backend, labels)
    empty = np.flatnonzero(weights <= 0)
    costs = backend.point_costs(X, centers, metric.code, labels).astype(xp.float64)
    costs = xp.where(sample_weight > 0, costs, -1.0)  # weightless samples move last
    far = _farthest(xp, costs, min(empty.shape[0], costs.shape[0]))
    relocated = labels.copy()
    relocated[far] = backend.asarray(empty[: far.shape[0]], labels.dtype)
    return relocated


def _farthest(xp, costs, count: int):
    """Indices of the ``count`` largest ``costs``, largest first, ties to the lowest index.

    The same as ``argsort(-costs, kind="stable")[:count]`` without sorting
    every sample: a partition finds the ``count``-th largest value, and only
    the samples above it, then the first of those equal to it, are ordered
    (1M samples: about 5 ms instead of 100). A lazy (Dask) vector goes to
    its backend's ``argsort(...)[:count]``, an exact, stable top-count per
    chunk (see :mod:`gpukmeans.distributed`): its values stay on the workers.
    """
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if not isinstance(costs, xp.ndarray):
        return xp.argsort(-costs, kind="stable")[:count]
    n = costs.shape[0]
    threshold = xp.partition(costs, n - count)[n - count]  # the count-th largest value
    above = xp.flatnonzero(costs > threshold)  # fewer than count, in index order
    at = xp.flatnonzero(costs == threshold)[: count - above.shape[0]]
    chosen = xp.concatenate([above, at])
    return chosen[xp.argsort(-costs[chosen], kind="stable")]


def _guarded_choice(objectives: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per cluster, the candidate of lowest objective (float64 centers).

    ``candidates`` (3, n_clusters, n_features) holds the current centers, the
    medians and the means; ``objectives`` (3, n_clusters) their cluster
    objectives. The current center wins ties, then the median: a candidate must
    be lower by more than ``_TIE_RTOL``, since exact ties are common (a weighted
    median on a flat stretch of the L1 objective) and backends summing in
    different orders round them differently.
    """
    n_clusters = candidates.shape[1]
    best = np.zeros(n_clusters, dtype=np.intp)
    best_objective = objectives[0].copy()
    for s in (1, 2):
        better = objectives[s] < best_objective - _TIE_RTOL * np.abs(best_objective)
        best[better] = s
        best_objective[better] = objectives[s][better]
    return candidates[best, np.arange(n_clusters)].astype(np.float64)


def _means(backend, X, sample_weight, labels, sums, old):
    """Weighted means (float64), from the assignment's ``sums`` when given; clusters of no weight keep ``old``."""
    n_clusters, n_features = old.shape
    if sums is not None:
        weights = sums[:, n_features]
        mean = sums[:, :n_features] / np.where(weights > 0, weights, 1.0)[:, None]
    else:
        mean, weights = backend.update(X, sample_weight, labels, n_clusters, "mean")
    return np.where((weights > 0)[:, None], mean, old)


def _medians(backend, X, sample_weight, labels, old):
    """Weighted coordinate-wise medians (float64); clusters of no weight keep ``old``."""
    median, weights = backend.update(X, sample_weight, labels, old.shape[0], "median")
    return np.where((weights > 0)[:, None], median, old)


def _updated_centers(backend, X, sample_weight, labels, sums, centers, rule):
    """Centers after one ``"mean"`` or ``"median"`` step (float64 NumPy)."""
    old = centers.astype(np.float64)
    if rule == "mean":
        return _means(backend, X, sample_weight, labels, sums, old)
    return _medians(backend, X, sample_weight, labels, old)


def _guarded_candidates(backend, X, sample_weight, labels, sums, centers):
    """The ``(3, n_clusters, n_features)`` candidates of the guarded update, in X's dtype.

    The current centers, the medians and the means of ``labels``; the driver
    chooses among them with :func:`_guarded_step`.
    """
    old = centers.astype(np.float64)
    mean = _means(backend, X, sample_weight, labels, sums, old)
    median = _medians(backend, X, sample_weight, labels, old)
    return np.stack([old, median, mean]).astype(X.dtype)


#: The guarded update estimates its cluster objectives on a systematic sample of at least this many samples
#: (and ``_SAMPLE_PER_CLUSTER`` per cluster); smaller data is evaluated whole.
GUARD_SAMPLE = 32768
_SAMPLE_PER_CLUSTER = 512
_WIDEN = 8  # a sample that keeps every center is tried again this many times larger


def guard_stride(n_samples: int, n_clusters: int) -> int:
    """Stride of the systematic sample on which the guarded update compares its candidates (1: all samples)."""
    return max(1, n_samples // max(GUARD_SAMPLE, _SAMPLE_PER_CLUSTER * n_clusters))


def _guarded_step(backend, X, sample_weight, labels, candidates, metric, stride, exact):
    """The guarded choice among ``candidates``: ``(centers float64, made on a sample)``.

    The cluster objectives are estimated on the systematic sample of
    ``stride``; a sample that would keep every center (the run would stop) is
    widened ``_WIDEN`` times, then the choice is made on all samples. With
    ``exact``, it is made on all samples at once.
    """
    while stride > 1 and not exact:
        new = _guarded_choice(backend.objective(X, sample_weight, labels, candidates, metric.code, stride), candidates)
        if not np.array_equal(new, candidates[0]):
            return new, True
        stride //= _WIDEN
    return _guarded_choice(backend.objective(X, sample_weight, labels, candidates, metric.code), candidates), False


@dataclass
class _Pending:
    """A guarded choice made on a sample, checked by the next assignment (see :func:`lloyd`)."""

    objective: float  # objective of ``centers`` and the labels the candidates were computed from
    centers: np.ndarray  # the centers before the choice
    candidates: np.ndarray  # (3, n_clusters, n_features): current centers, medians, means
    sums: Any  # the sums of those labels, as the driver held them


def _checked_assign(backend, X, sample_weight, centers, metric, labels, accumulate, label_sums, pending, redo=True):
    """``backend.assign``, then the check of a guarded choice made on a sample (``pending``).

    If the new objective exceeds the one before the choice, the choice is
    undone. The previous labels are restored exactly: by the backend's
    ``revert`` where it has one (from the changes that its
    ``assign_revertible`` recorded), or else by an assignment to the previous
    centers (the argmin is deterministic). The cluster objectives of the same
    candidates are computed over all samples, and the exact choice, which
    cannot increase the objective, is assigned instead. When that choice
    keeps every center, the restored labels are already its assignment: no
    label changed from before the choice, and no further pass is made.
    Without ``redo`` (the run's final assignment: nothing would be iterated
    on the new choice), the undone state is the answer: the centers before
    the choice and their labels, with no comparison on all samples.

    Returns ``(objective, n_changed, sums, centers)``.
    """
    revertible = getattr(backend, "assign_revertible", None) if pending is not None else None
    assign = backend.assign if revertible is None else revertible
    objective, n_changed, sums = assign(X, sample_weight, centers, metric.code, labels, accumulate, label_sums)
    if pending is None or objective <= pending.objective:
        return objective, n_changed, sums, centers
    if revertible is not None and backend.revert(X, labels):
        # the labels, their objective and sums of before the choice (the same kernel computed them)
        restored = (pending.objective, 0, pending.sums)
    else:
        restored = backend.assign(X, sample_weight, pending.centers, metric.code, labels, accumulate, sums)
    if not redo:
        return restored[0], 0, restored[2], pending.centers
    objectives = backend.objective(X, sample_weight, labels, pending.candidates, metric.code)
    centers = _guarded_choice(objectives, pending.candidates).astype(X.dtype)
    if np.array_equal(centers, pending.centers):  # every center stays: the restoring assignment is the answer
        return restored[0], 0, restored[2], centers
    objective, n_changed, sums = backend.assign(
        X, sample_weight, centers, metric.code, labels, accumulate, pending.sums if accumulate else None
    )
    return objective, n_changed, sums, centers


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
    assignment makes the returned labels those of the returned centers (none
    is needed when the last update kept every center bit for bit); it also
    checks a last guarded choice made on a sample, and when that choice
    raised the objective, the centers before it are returned instead.

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
    n_clusters = centers.shape[0]
    labels = xp.full(n_samples, -1, dtype=xp.int32)
    history: list[dict] = []
    n_iter = 0
    label_sums = None  # the sums of ``labels`` (a backend may update them from the samples that move)
    pending = None  # a guarded choice made on a sample, to be checked by the next assignment
    stride = guard_stride(n_samples, n_clusters) if rule == "guarded" else 1
    assigned = None  # the centers whose assignment ``labels`` (and ``objective``) are
    # the mean update needs nothing but the sums: a backend may queue the next assignment before the host is done
    ahead = rule == "mean" and hasattr(backend, "assign_ahead")
    for n_iter in range(1, max_iter + 1):
        t0 = time.perf_counter()
        chosen = centers
        if ahead:  # the mean update: no sums to move, no choice to check
            objective, n_changed, sums = backend.assign_ahead(X, sample_weight, centers, metric.code, labels)
        else:
            objective, n_changed, sums, centers = _checked_assign(
                backend, X, sample_weight, centers, metric, labels, True, label_sums, pending
            )
        assigned = centers
        undone = centers is not chosen
        if verbose and undone:
            print(f"Iteration {n_iter}: the choice made on a sample raised the objective; made again on all samples.")
        label_sums, pending = sums, None
        weights = sums[:, n_features]
        update_labels = labels
        relocated = bool(np.any(weights <= 0))
        if relocated:
            update_labels = _relocate_empty_clusters(backend, X, sample_weight, centers, metric, labels, weights)
            sums = None
        if undone and n_changed == 0 and not relocated:
            # the exact choice was just made from these very labels and candidates: nothing is left to update
            new = centers
        elif rule == "guarded":
            candidates = _guarded_candidates(backend, X, sample_weight, update_labels, sums, centers)
            # on all samples when empty clusters were relocated (the labels are not the assigned ones) and
            # when no label changed (the run stops here: on an exact choice, with nothing left to check)
            new, sampled = _guarded_step(
                backend, X, sample_weight, update_labels, candidates, metric, stride, relocated or n_changed == 0
            )
            if sampled:
                pending = _Pending(objective, centers, candidates, label_sums)
        else:
            new = _updated_centers(backend, X, sample_weight, update_labels, sums, centers, rule)
        new = new.astype(X.dtype)
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
    if pending is None and assigned is not None and np.array_equal(centers, assigned):
        # the last update kept every center bit for bit (no label changed): the labels are already theirs
        _settle(backend, labels)
        return LloydResult(
            centers=backend.asarray(centers, X.dtype),
            labels=labels,
            objective=objective,
            n_iter=n_iter,
            history=history,
        )
    # a sampled choice left by tol or max_iter is checked here; if it raised the objective, the run ends on
    # the centers and labels before it (its exact replacement would be one more step, never iterated on)
    chosen = centers
    objective, _, _, centers = _checked_assign(
        backend, X, sample_weight, centers, metric, labels, False, None, pending, redo=False
    )
    if verbose and centers is not chosen:
        print("The last choice, made on a sample, raised the objective: the centers before it are kept.")
    _settle(backend, labels)
    return LloydResult(
        centers=backend.asarray(centers, X.dtype), labels=labels, objective=objective, n_iter=n_iter, history=history
    )
