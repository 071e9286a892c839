"""CPU backend: NumPy arrays and the numba kernels of :mod:`._numba_kernels`."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _numba_kernels as k
from ._base import Bindable, means_from_sums


def _all_ones(a: np.ndarray) -> bool:
    return bool((a == 1).all())


class CPUBackend(Bindable):
    """numba-JIT CPU backend (``backend="cpu"``); see :class:`gpukmeans.backends.Backend`.

    Kernels run in parallel on numba's thread pool (``NUMBA_NUM_THREADS``) and
    are cached on disk after their first compilation. Bound to a run
    (:meth:`Bindable.bind`), it checks once whether X is integer-valued (instead
    of at every median update) and whether every weight is 1. With unit weights
    a bound run also keeps its sums and median histograms from one iteration to
    the next, moving only the samples that change cluster.
    """

    name = "cpu"
    xp = np

    def asarray(self, a: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None):
        # All-ones weights (the usual case), checked once per bound run: the products are skipped, and the
        # sums are updated from ``previous`` by the samples that change cluster only. Each cluster weight is
        # then an exact count, so a cluster that loses its last sample has weight exactly 0; its row is reset.
        unit = self._bound is not None and self._fact("unit_weight", sample_weight, _all_ones)
        previous = previous if unit and accumulate else None
        objective, n_changed, sums = k.assign(X, sample_weight, centers, metric, labels, accumulate, unit, previous)
        if previous is not None:
            sums[sums[:, -1] == 0] = 0.0
        return float(objective), int(n_changed), sums

    def update(self, X, sample_weight, labels, n_clusters, rule):
        if rule == "mean":
            sums = k.weighted_sums(X, sample_weight, labels, n_clusters)
            return means_from_sums(sums)
        if rule == "median":
            # integer-valued data (imagery) with a small range: per-cluster histograms, O(n)
            is_integer, lo, hi = self._fact("integer_range", X, k.integer_range)
            n_bins = k.histogram_bins(is_integer, lo, hi, n_clusters, X.shape[1])
            if n_bins:
                if self._bound is not None and self._fact("unit_weight", sample_weight, _all_ones):
                    return k.medians_from_histogram(self._run_histogram(X, labels, n_clusters, lo, n_bins), lo)
                return k.weighted_median_hist(X, sample_weight, labels, n_clusters, lo, n_bins)
            return k.weighted_median(X, sample_weight, labels, n_clusters)
        raise ValueError(f"Unknown update rule {rule!r}.")

    def _run_histogram(self, X, labels, n_clusters, lo, n_bins):
        """The run's unit-weight histograms of ``labels``, updated from the samples relabelled since the last call.

        The bound run keeps the histograms and a copy of the labels they count;
        each call compares ``labels`` with that copy and moves only the samples
        that changed cluster (counts are integers: exact).
        """
        state = self._bound[2]
        kept = state.get("histogram")
        if kept is None or kept[0].shape != (n_clusters, X.shape[1], n_bins) or kept[2] != lo:
            kept = (np.zeros((n_clusters, X.shape[1], n_bins)), np.full(X.shape[0], -1, np.int32), lo)
            state["histogram"] = kept
        hist, counted, _ = kept
        k.histogram_moves(X, labels, counted, lo, hist)
        return hist

    def objective(self, X, sample_weight, labels, candidates, metric):
        return k.cluster_objectives(X, sample_weight, labels, np.ascontiguousarray(candidates, X.dtype), metric)

    def pairwise(self, X, centers, metric):
        return k.pairwise(X, np.ascontiguousarray(centers, X.dtype), metric)

    def point_costs(self, X, centers, metric, labels):
        return k.point_costs(X, centers, metric, labels)
