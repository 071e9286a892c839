"""CPU backend: NumPy arrays and the numba kernels of :mod:`._numba_kernels`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from . import _numba_kernels as k
from ._base import Bindable, means_from_sums


def _all_ones(a: np.ndarray) -> bool:
    return bool((a == 1).all())


_RUN_HISTOGRAM = "median histograms"  # key of the bound run's _RunHistogram
_RUN_BUCKETS = "median buckets"  # key of the bound run's _RunBuckets
_UPDATES = "sums updated"  # key of the bound run's count of assign calls given ``previous``
_RESUM_EVERY = 16  # of those, every 16th sums everything again
_JOURNAL = "label journal"  # key of the bound run's _Journal
_JOURNAL_SHARE = 16  # a journal has room for 1/16 of each chunk's samples,
_JOURNAL_MAX = 1 << 16  # and at most this many per chunk (768 KiB): huge data does not reserve 6% of X for it


@dataclass
class _Journal:
    """The label changes of a bound run's last assignment (see :meth:`CPUBackend.revert`)."""

    arrays: tuple  # k.new_journal's (index, old, count)
    labels: np.ndarray | None  # the labels array that assignment changed (None: nothing to revert)
    histogram: tuple | None  # the (hist, lo) it moved along


@dataclass
class _RunBuckets:
    """Unit-weight counts of the median bucket select, kept by a bound run (:meth:`CPUBackend._run_buckets`)."""

    count: np.ndarray  # (n_chunks, n_clusters, n_features, n_buckets) int64, from k.bucket_histograms
    counted: np.ndarray  # a copy of the labels they count


@dataclass
class _RunHistogram:
    """Unit-weight median histograms kept by a bound run (see :meth:`CPUBackend._run_histogram`)."""

    hist: np.ndarray  # (n_clusters, n_features, n_bins) float64 counts of the values lo + b
    lo: float
    counts: np.ndarray | None  # the labels array whose current content ``hist`` counts (None: not followed)
    snapshot: np.ndarray | None  # or a copy of the labels it counts (large histograms)


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
        return self._assign(X, sample_weight, centers, metric, labels, accumulate, previous, False)

    def assign_revertible(self, X, sample_weight, centers, metric, labels, accumulate, previous=None):
        """:meth:`assign`, recording which labels change so that :meth:`revert` can undo it (bound runs)."""
        return self._assign(X, sample_weight, centers, metric, labels, accumulate, previous, True)

    def _assign(self, X, sample_weight, centers, metric, labels, accumulate, previous, revertible):
        # All-ones weights (the usual case), checked once per bound run: the products are skipped, and the
        # sums are updated from ``previous`` by the samples that change cluster only. Each cluster weight is
        # then an exact count, so a cluster that loses its last sample has weight exactly 0; its row is reset.
        unit = self._bound is not None and self._fact("unit_weight", sample_weight, _all_ones)
        previous = previous if unit and accumulate else None
        if previous is not None:  # every _RESUM_EVERY-th time, sum again: float rounding cannot pile up
            state = self._bound[2]
            state[_UPDATES] = state.get(_UPDATES, 0) + 1
            if state[_UPDATES] % _RESUM_EVERY == 0:
                previous = None
        histogram = None
        run_hist = self._bound[2].get(_RUN_HISTOGRAM) if self._bound is not None else None
        if run_hist is not None and run_hist.counts is labels:
            if unit and accumulate:  # the median histograms follow the same moves, in the same pass
                histogram = (run_hist.hist, run_hist.lo)
            else:  # these labels change without them: no longer theirs
                run_hist.counts = None
        journal = self._journal(X.shape[0], revertible)
        objective, n_changed, sums = k.assign(
            X,
            sample_weight,
            centers,
            metric,
            labels,
            accumulate,
            unit,
            previous,
            histogram,
            journal.arrays if revertible and journal is not None else None,
        )
        if journal is not None:  # what a revert would undo: this call's changes, or none
            journal.labels, journal.histogram = (labels, histogram) if revertible else (None, None)
        if previous is not None:
            sums[sums[:, -1] == 0] = 0.0
        return float(objective), int(n_changed), sums

    def _journal(self, n_samples: int, make: bool) -> _Journal | None:
        """The bound run's journal (made, if ``make``, at its first revertible assignment); None when unbound."""
        if self._bound is None:
            return None
        state = self._bound[2]
        if _JOURNAL not in state and make:
            cap = max(k._BLOCK, min(_JOURNAL_MAX, n_samples // k.n_chunks_for(n_samples) // _JOURNAL_SHARE))
            state[_JOURNAL] = _Journal(k.new_journal(n_samples, cap), None, None)
        return state.get(_JOURNAL)

    def revert(self, X, labels) -> bool:
        """Undo the label changes of the bound run's last assignment, made by :meth:`assign_revertible` on ``labels``.

        The labels (and the median histograms that followed them) return to
        what that assignment was given, from its journal of changes: no pass
        over X. Returns False, changing nothing, when that is not possible
        (unbound backend, another labels array, or more changes than the
        journal holds); the caller then assigns the previous centers again.
        """
        journal = self._bound[2].get(_JOURNAL) if self._bound is not None else None
        if journal is None or journal.labels is not labels or not k.journal_complete(journal.arrays):
            return False
        hist, lo = journal.histogram if journal.histogram is not None else (np.zeros((0, 0, 0)), 0.0)
        k.revert_assign(X, labels, *journal.arrays, float(lo), hist)
        journal.labels = None  # once
        return True

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
                    return k.medians_from_histogram(
                        self._run_histogram(X, sample_weight, labels, n_clusters, lo, n_bins), lo
                    )
                return k.weighted_median_hist(X, sample_weight, labels, n_clusters, lo, n_bins)
            if n_clusters * X.shape[1] <= k.MAX_BUCKET_CELLS:  # other data: a bucket select, then a quickselect
                lo, hi = self._fact("feature_ranges", X, k.feature_ranges)
                if self._bound is not None and self._fact("unit_weight", sample_weight, _all_ones):
                    return self._run_buckets(X, sample_weight, labels, n_clusters, lo, hi)
                return k.weighted_median_buckets(X, sample_weight, labels, n_clusters, lo, hi)
            return k.weighted_median(X, sample_weight, labels, n_clusters)
        raise ValueError(f"Unknown update rule {rule!r}.")

    def _run_histogram(self, X, sample_weight, labels, n_clusters, lo, n_bins):
        """Unit-weight histograms of ``labels``, kept by the bound run and moved with its relabelled samples.

        Small histograms follow one labels array (the last one passed here)
        through :meth:`assign`, which moves each relabelled sample's values
        while its block is in cache: then they are up to date here at no cost.
        Given another array (the relocated copy of an iteration that emptied a
        cluster, then the run's labels again), they are brought up to date by
        comparing it with a copy of the followed one, and follow it from then
        on. Larger histograms (each of the assign's threads would zero a copy)
        keep a snapshot of the labels they count and are compared with it at
        every call. Counts are integers: every path gives exactly
        :func:`k.histogram`'s result.
        """
        state = self._bound[2]
        shape = (n_clusters, X.shape[1], n_bins)
        run = state.get(_RUN_HISTOGRAM)
        if run is not None and run.hist.shape == shape and run.lo == lo:
            if run.counts is labels:
                return run.hist
            if run.snapshot is not None or run.counts is not None:
                counted = run.snapshot if run.snapshot is not None else run.counts.copy()
                k.histogram_moves(X, labels, counted, lo, run.hist)  # counted becomes a copy of labels
                if run.snapshot is None:
                    run.counts = labels  # followed from now on (the next assign on them moves them)
                return run.hist
        hist = k.histogram(X, sample_weight, labels, n_clusters, lo, n_bins)
        fused = k.moves_in_assign(X.shape[0], n_clusters * X.shape[1] * n_bins, numba.get_num_threads())
        state[_RUN_HISTOGRAM] = _RunHistogram(hist, lo, labels if fused else None, None if fused else labels.copy())
        return hist

    def _run_buckets(self, X, sample_weight, labels, n_clusters, lo, hi):
        """Unit-weight bucket-select medians, with the bucket counts kept by the bound run.

        The counts of the first call are kept with a copy of the labels they
        count; later calls move only the samples whose label differs from that
        copy (:func:`k.bucket_moves`) instead of counting every sample again.
        Counts are integers: every call gives exactly
        :func:`k.weighted_median_buckets`'s result.
        """
        state = self._bound[2]
        run = state.get(_RUN_BUCKETS)
        if run is None or run.count.shape[1] != n_clusters:
            _, count = k.bucket_histograms(X, sample_weight, labels, n_clusters, lo, hi)
            run = state[_RUN_BUCKETS] = _RunBuckets(count, labels.copy())
        else:
            k.bucket_moves(X, labels, run.counted, lo, hi, run.count)  # run.counted becomes a copy of labels
        return k.medians_from_buckets(
            X, sample_weight, labels, n_clusters, lo, hi, run.count.astype(np.float64), run.count
        )

    def objective(self, X, sample_weight, labels, candidates, metric, stride=1):
        candidates = np.ascontiguousarray(candidates, X.dtype)
        return k.cluster_objectives(X, sample_weight, labels, candidates, metric, stride)

    def pairwise(self, X, centers, metric):
        return k.pairwise(X, np.ascontiguousarray(centers, X.dtype), metric)

    def point_costs(self, X, centers, metric, labels):
        return k.point_costs(X, centers, metric, labels)

    def label_counts(self, labels, n_clusters):
        return k.label_counts(labels, n_clusters)
