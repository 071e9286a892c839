"""Initial centers: greedy k-means++ and random samples, written once against the backend interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from .backends import Backend
from .metrics import Metric


def _weighted_choice(xp, sample_weight, random_state: np.random.RandomState) -> int:
    """One index drawn with probability ``sample_weight / sum``.

    Replicates ``random_state.choice(n, p=sample_weight / sample_weight.sum())``
    step for step (so the same seed draws the same sample as scikit-learn), but
    runs on the backend's arrays.
    """
    p = (sample_weight / sample_weight.sum()).astype(xp.float64)
    cdf = xp.cumsum(p)
    cdf /= cdf[-1]
    u = random_state.random_sample()
    return int(xp.searchsorted(cdf, xp.asarray([u]), side="right")[0])


def kmeans_plusplus(
    X: Any,
    sample_weight: Any,
    n_clusters: int,
    *,
    backend: Backend,
    metric: Metric,
    random_state: np.random.RandomState,
    n_local_trials: int | None = None,
) -> tuple[Any, np.ndarray]:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007) in the chosen metric.

    The first center is a sample drawn with probability proportional to its
    weight; each next one is the best of ``n_local_trials`` samples drawn with
    probability proportional to ``w_i * D(x_i)``, where ``D`` is the objective term
    to the nearest chosen center (squared distance for euclidean, the distance
    itself for manhattan and chebyshev), keeping the candidate that most reduces
    the weighted potential ``sum_i w_i D(x_i)``. For euclidean it draws the same
    random numbers in the same order as scikit-learn's ``kmeans_plusplus``.

    Parameters
    ----------
    X : (n_samples, n_features) backend array
    sample_weight : (n_samples,) backend array
    n_clusters : int
    backend, metric
    random_state : numpy.random.RandomState
    n_local_trials : int, optional
        Default ``2 + int(log(n_clusters))``.

    Returns
    -------
    centers : (n_clusters, n_features) backend array, dtype of X
    indices : (n_clusters,) int64 NumPy array
        The samples chosen as centers.
    """
    xp = backend.xp
    n_samples, n_features = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    indices = np.empty(n_clusters, dtype=np.int64)
    w64 = sample_weight.astype(xp.float64)
    indices[0] = _weighted_choice(xp, sample_weight, random_state)
    closest = backend.pairwise(X, X[indices[0] : indices[0] + 1], metric.code)[:, 0].astype(xp.float64)
    potential = float(closest @ w64)
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * potential
        cumulative = xp.cumsum(w64 * closest)
        candidate_ids = xp.searchsorted(cumulative, xp.asarray(rand_vals))
        candidate_ids = xp.minimum(candidate_ids, n_samples - 1)
        distances = backend.pairwise(X, X[candidate_ids], metric.code).astype(xp.float64)
        distances = xp.minimum(distances, closest[:, None])  # (n_samples, n_local_trials)
        potentials = w64 @ distances
        best = int(xp.argmin(potentials))
        potential = float(potentials[best])
        closest = xp.ascontiguousarray(distances[:, best])
        indices[c] = int(candidate_ids[best])
    return X[xp.asarray(indices)].copy(), indices


def random_init(
    X: Any, sample_weight: Any, n_clusters: int, *, backend: Backend, random_state: np.random.RandomState
) -> tuple[Any, np.ndarray]:
    """``n_clusters`` distinct samples drawn without replacement, with probability proportional to weight.

    Same draw as scikit-learn's ``init="random"`` for the same seed.

    Returns
    -------
    centers : (n_clusters, n_features) backend array
    indices : (n_clusters,) int64 NumPy array
    """
    w = np.asarray(backend.to_numpy(sample_weight), dtype=np.float64)
    indices = random_state.choice(X.shape[0], size=n_clusters, replace=False, p=w / w.sum())
    return X[backend.xp.asarray(indices)].copy(), indices
