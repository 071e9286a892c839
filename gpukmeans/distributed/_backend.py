"""A backend whose arrays are Dask arrays: the shared Lloyd driver runs on it unchanged.

:class:`DaskBackend` implements :class:`gpukmeans.backends.Backend` by mapping
the kernels over the row chunks of a Dask array (one task per chunk) and
reducing the small per-chunk statistics on the client, in chunk order: weighted
sums ``(k, d + 1)``, objectives, label-change counts, histograms. Only centers
and these statistics travel; the samples stay where Dask keeps them. Each task
runs the kernels of its chunk's array type (:mod:`._chunks`): numba for NumPy
chunks, the CUDA backend for CuPy chunks, whose labels, distances and costs
stay CuPy arrays on the GPU (per-sample Dask results have CuPy chunks then).

What the driver sees:

- ``X`` is a :class:`DaskData` (``shape``, float ``dtype``; the chunks keep the
  input dtype and are converted inside each task, so uint8 imagery is not
  held in memory as float32).
- ``sample_weight`` is a :class:`DaskWeights` (``None`` chunks mean ones).
- ``labels`` is a :class:`DaskLabels`, created by ``backend.xp.full``: one
  persisted Delayed block per chunk (None, "all -1", before the first
  assignment), each the :class:`ChunkLabels` an assignment task returned: its
  labels stay on the worker, its statistics are what the client gathers.
  :meth:`DaskBackend.assign` replaces the blocks in place, which is the
  driver's IN/OUT contract.
- ``backend.xp`` is NumPy for every small ``(n_clusters, ...)`` array; only
  ``full``, ``where`` and ``argsort`` (used on per-sample arrays when an empty
  cluster is relocated) are routed to Dask: ``argsort(...)[:m]`` is computed as
  an exact, stable distributed top-m.
"""

from __future__ import annotations

import itertools
import operator
import os
import sys
import threading
import uuid
from typing import Any

import dask
import dask.array as da
import numba
import numpy as np
from dask import delayed
from dask.array.utils import meta_from_array
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..backends import _numba_kernels as k
from ..backends._base import means_from_sums, sample_rows
from . import _kernels as rk
from ._chunks import full_labels, kernels_for, prep, prep_x
from ._chunks import host as _host

# ------------------------------------------------------------------ helpers run inside the tasks


def _limit_threads(threads_per_host):
    """Inside a distributed worker, share the host's cores between the tasks running on it.

    ``threads_per_host`` maps a host name to the number of Dask worker threads on
    it; each task then runs the numba kernels on ``cores // threads`` threads
    (numba's thread count is per calling thread), so Dask's parallelism and
    numba's do not oversubscribe the cores.
    """
    if not threads_per_host:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return

    host = worker.address.split("://")[-1].rsplit(":", 1)[0]
    total = threads_per_host.get(host) or getattr(worker, "nthreads", 1) or 1
    numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, (os.cpu_count() or 1) // total)))


class ChunkLabels:
    """What an assignment task returns for its chunk: statistics, plus the labels as a cache that never travels.

    Labels are a pure function of the chunk, the centers and the metric (nearest
    center, lowest index on ties), so they need not travel: pickling (a transfer
    to another worker or to the client, a spill to disk) keeps ``stats`` and
    ``centers`` only, and a task that finds the labels missing recomputes them,
    bit for bit, from its chunk (:func:`_lab`). Gathering these objects thus
    brings back the statistics alone, without one extra task per chunk.

    ``stats`` is ``(objective, n_changed, sums, hist)`` (see :func:`_assign_chunk`);
    ``sums`` (the chunk's ``(n_clusters, n_features + 1)`` weighted sums) and
    ``hist`` (its median histograms, or None) are those of ``labels``, so the
    chunk's next assignment can start from them and move only the samples that
    change cluster (unit weights). ``updated`` counts the assignments in a row
    whose sums were so moved rather than summed in full.
    """

    __slots__ = ("labels", "centers", "metric", "stats", "updated")

    def __init__(self, labels, centers, metric, stats, updated=0):
        self.labels = labels
        self.centers = centers
        self.metric = metric
        self.stats = stats
        self.updated = updated

    def __reduce__(self):
        return (ChunkLabels, (None, self.centers, self.metric, self.stats, self.updated))

    def __sizeof__(self):
        return 200 + self.centers.nbytes + (0 if self.labels is None else self.labels.nbytes)

    def __del__(self):
        # Dask released this result: its labels, if nothing else refers to them (no chunk of a labels array handed
        # out, no view, no running task; 3 = this slot, ``labels`` and getrefcount's argument), become the output
        # of a later assignment of a chunk of the same length, which then has no fresh pages to fault in.
        labels = self.labels
        try:
            if _EXACT_REFCOUNTS and type(labels) is np.ndarray and labels.base is None and sys.getrefcount(labels) == 3:
                _SPARE_LABELS.keep(labels)
        except (AttributeError, TypeError):  # interpreter shutdown: module globals already gone
            pass


class _SpareLabels:
    """Per-process pool of released NumPy labels arrays, by length, up to ``max_bytes`` in all."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.free: dict[int, list[np.ndarray]] = {}
        self.lock = threading.Lock()

    def keep(self, labels: np.ndarray) -> None:
        with self.lock:
            if self.nbytes + labels.nbytes <= self.max_bytes:
                self.free.setdefault(labels.shape[0], []).append(labels)
                self.nbytes += labels.nbytes

    def copy(self, labels: Any) -> Any:
        """A copy of ``labels`` (NumPy: into a spare array of the same length when there is one)."""
        spare = None
        if type(labels) is np.ndarray:
            with self.lock:
                free = self.free.get(labels.shape[0])
                if free:
                    spare = free.pop()
                    self.nbytes -= spare.nbytes
        if spare is None:
            return labels.copy()
        np.copyto(spare, labels)
        return spare


_SPARE_LABELS = _SpareLabels(1 << 27)  # 128 MiB per worker process, kept after a fit for the next one
#: Reference counts tell when nothing else holds an array (not so without the GIL: deferred reference counts).
_EXACT_REFCOUNTS = getattr(sys, "_is_gil_enabled", lambda: True)() and hasattr(sys, "getrefcount")


def _assign_labels(Xc, centers, metric):
    """Labels of a chunk for ``centers``, in the chunk's memory."""
    Xc, wc, kernels = prep(Xc, None, centers.dtype)
    labels = full_labels(kernels, Xc.shape[0])
    if Xc.shape[0]:
        kernels.assign(Xc, wc, centers, metric, labels, False)
    return labels


def _lab(labc, Xc):
    """Labels of a chunk (``labc``: a labels array or a :class:`ChunkLabels`) in the memory of ``Xc``, its chunk."""
    if isinstance(labc, ChunkLabels):
        if labc.labels is None:  # dropped in transit: recompute, identical
            labc.labels = _assign_labels(Xc, labc.centers, labc.metric)
        return labc.labels
    return kernels_for(Xc).asarray(labc, np.int32)


#: A chunk sums everything again after this many assignments in a row that moved its previous sums.
RESUM_EVERY = 16


def _previous_sums(labc, accumulate, unit_weight):
    """(sums of the labels in ``labc`` to move from, or None; their ``updated`` count).

    Only for unit weights (no weights chunk) and the sums of a previous
    assignment of this chunk with statistics: the labels of a
    :class:`ChunkLabels` are those its sums were computed for, even when they
    were dropped in transit and recomputed (bit for bit). Patched labels (an
    empty cluster relocated) are plain arrays: summed in full. Every
    :data:`RESUM_EVERY`-th time the chunk sums everything again, so float
    rounding cannot pile up.
    """
    if not (accumulate and unit_weight and isinstance(labc, ChunkLabels)):
        return None, 0
    sums = labc.stats[2]
    if sums.dtype == bool or labc.updated + 1 >= RESUM_EVERY:
        return None, 0
    return sums, labc.updated + 1


def _starting_histogram(labc, spec, shape, unit_weight):
    """The median histogram to move the relabelled samples in (a copy), or None to count the new labels in full.

    Only with unit weights (the kernels move counts of 1): zeros before the
    first assignment (every label -1), else a copy of the histogram of the
    labels in ``labc`` for ``spec`` ``(lo, n_bins)`` when it has one (the
    labels of a :class:`ChunkLabels` are those its histogram counts, see
    :func:`_previous_sums`).
    """
    if not unit_weight:
        return None
    if labc is None:
        return np.zeros(shape)
    if not isinstance(labc, ChunkLabels) or labc.stats[3] is None:
        return None
    lo, hist = labc.stats[3]
    return hist.copy() if lo == spec[0] and hist.shape == shape else None


def _assign_chunk(Xc, wc, labc, centers, metric, accumulate, dtype, threads, hist_spec=None):
    """Assignment task of one chunk: a :class:`ChunkLabels` with ``stats`` ``(objective, n_changed, sums, hist)``.

    With ``accumulate`` and ``hist_spec`` ``(lo, n_bins)`` (the median update
    of this run uses histograms of the integer values ``lo + b``), ``hist`` is
    ``(lo, (n_clusters, n_features, n_bins) float64 weights)`` of the new labels:
    moved from the previous ones with the relabelled samples when it can be,
    else counted in the same task, so the median update needs no pass of its
    own. Otherwise ``hist`` is None.
    """
    _limit_threads(threads)
    unit = wc is None
    previous, updated = _previous_sums(labc, accumulate, unit)
    spec = hist_spec if accumulate else None
    Xc, wc, kernels = prep(Xc, wc, dtype)
    n, n_clusters = Xc.shape[0], centers.shape[0]
    shape = None if spec is None else (n_clusters, Xc.shape[1], int(spec[1]))
    start = None if spec is None else _starting_histogram(labc, spec, shape, unit)
    # copy: the kernel writes the labels, and a task must never modify its input
    labels = full_labels(kernels, n) if labc is None else _SPARE_LABELS.copy(_lab(labc, Xc))
    if n == 0:
        empty = np.zeros((n_clusters, centers.shape[1] + 1)) if accumulate else np.zeros(n_clusters, bool)
        hist = None if spec is None else (spec[0], np.zeros(shape))
        return ChunkLabels(labels, centers, metric, (0.0, 0, empty, hist), updated)
    moving = None if start is None else (start, spec[0])
    objective, n_changed, sums = kernels.assign(Xc, wc, centers, metric, labels, accumulate, previous, moving)
    hist = None
    if spec is not None:
        counts = start if start is not None else kernels.histogram(Xc, wc, labels, n_clusters, spec[0], shape[2])
        hist = (spec[0], counts)
    if not accumulate:  # the final assignment: which clusters have members (n_distinct of the fit)
        sums = kernels.label_counts(labels, n_clusters) > 0
    return ChunkLabels(labels, centers, metric, (float(objective), int(n_changed), sums, hist), updated)


def _sum_assign_stats(parts):
    """Objective, labels changed, sums and histograms (or None) of the chunks, added in chunk order."""
    objective, n_changed, sums, hist = 0.0, 0, None, None
    for obj, changed, s, h in parts:  # chunk order: the result does not depend on scheduling
        objective += obj
        n_changed += changed
        sums = s.copy() if sums is None else (sums | s if s.dtype == bool else sums + s)
        if h is not None:
            hist = h[1].copy() if hist is None else hist + h[1]
    return objective, n_changed, sums, hist


def _sums_chunk(Xc, wc, labc, n_clusters, dtype, threads):
    _limit_threads(threads)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros((n_clusters, Xc.shape[1] + 1))
    return kernels.weighted_sums(Xc, wc, _lab(labc, Xc), n_clusters)


def _objectives_chunk(Xc, wc, labc, candidates, metric, dtype, threads, stride=1, offset=0):
    """Per-cluster objectives over the chunk (global index of its first sample: ``offset``), or its sampled part."""
    _limit_threads(threads)
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros(candidates.shape[:2])
    labels = _lab(labc, Xc)
    if stride > 1:  # the chunk's part of the sample (see sample_rows), copied: a small fraction of it
        rows = sample_rows(Xc.shape[0], stride, offset, xp=kernels.xp)
        if rows.shape[0] == 0:  # no run of the sample starts in this chunk
            return np.zeros(candidates.shape[:2])
        Xc, wc, labels = Xc[rows], wc[rows], labels[rows]
    return kernels.objective(Xc, wc, labels, candidates, metric)


def _hist_chunk(Xc, wc, labc, n_clusters, lo, n_bins, dtype):
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros((n_clusters, Xc.shape[1], n_bins))
    return kernels.histogram(Xc, wc, _lab(labc, Xc), n_clusters, lo, n_bins)


def _radix_chunk(Xc, wc, labc, n_clusters, shift, prefix, dtype):
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.zeros((n_clusters, Xc.shape[1], 256))
    return kernels.radix_hist(Xc, wc, _lab(labc, Xc), n_clusters, shift, prefix)


def _min_above_chunk(Xc, wc, labc, values, dtype):
    Xc, wc, kernels = prep(Xc, wc, dtype)
    if Xc.shape[0] == 0:
        return np.full(values.shape, np.inf)
    return kernels.min_above(Xc, wc, _lab(labc, Xc), values)


def _sum_in_order(parts):
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


def _min_in_order(parts):
    total = parts[0].copy()
    for p in parts[1:]:
        np.minimum(total, p, out=total)
    return total


def _pairwise_chunk(Xc, centers, metric, dtype, threads):
    _limit_threads(threads)
    Xc, kernels = prep_x(Xc, dtype)
    if Xc.shape[0] == 0:
        return kernels.xp.empty((0, centers.shape[0]), dtype=dtype)
    return kernels.pairwise(Xc, centers, metric)


def _point_costs_chunk(Xc, labc, centers, metric, dtype, threads):
    _limit_threads(threads)
    Xc, kernels = prep_x(Xc, dtype)
    if Xc.shape[0] == 0:
        return kernels.xp.empty(0, dtype=dtype)
    return kernels.point_costs(Xc, centers, metric, _lab(labc, Xc))


def _label_counts_chunk(Xc, labc, n_clusters):
    return kernels_for(Xc).label_counts(_lab(labc, Xc), n_clusters)


def _topk_chunk(values, m, offset):
    """The ``m`` smallest values of a chunk (NumPy), stably (lowest index first on ties), with global indices."""
    xp = kernels_for(values).xp
    values = values + 0.0  # -0.0 -> +0.0: equal for every sort, NumPy's and the GPU's radix sort alike
    order = xp.argsort(values, kind="stable")[:m]
    return _host(values[order]), _host(order).astype(np.int64) + offset


def _patch_chunk(Xc, labc, index, values, start):
    """Copy of a labels chunk with ``labels[index - start] = values`` for the global indices inside it."""
    labc = _lab(labc, Xc)
    xp = kernels_for(labc).xp
    inside = (index >= start) & (index < start + labc.shape[0])
    out = labc.copy()
    out[xp.asarray(index[inside] - start)] = xp.asarray(values[inside])
    return out


def _where_chunk(cond, a, b):
    """``where(cond, a, b)`` on one chunk, in the memory of ``a`` (``cond`` may be a NumPy chunk)."""
    kernels = kernels_for(a)
    return kernels.xp.where(kernels.asarray(cond, bool), a, b)


# ------------------------------------------------------------------ driver-facing objects
_RUN = uuid.uuid4().hex[:12]
_COUNTER = itertools.count()


def _task(func, *args):
    """``delayed(func)(*args)`` with a cheap unique key (no tokenizing of the arguments, no uuid per task)."""
    return delayed(func, pure=False)(*args, dask_key_name=f"{func.__name__.lstrip('_')}-{_RUN}-{next(_COUNTER)}")


def _identity(a):
    return a


def _offsets(chunks):
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _stack_blocks(blocks, chunks, dtype, ncols=None, item=None, like=None):
    """One Dask array whose chunks are the given per-chunk Delayed blocks (lengths ``chunks``, empty ones kept).

    With ``item``, chunk ``i`` is ``blocks[i][item]`` (one task, no intermediate key). ``like``: an array of
    the chunks' type (e.g. the meta of X, a CuPy array for CuPy chunks); NumPy if None.
    """
    name = "gpukmeans-" + tokenize(*[b.key for b in blocks], chunks, ncols, item)
    index = (lambda i: (name, i)) if ncols is None else (lambda i: (name, i, 0))
    # Blocks must be Delayed tasks of their own (not chunks of a persisted collection): the layer refers to them
    # by key.
    if item is None:
        layer = {index(i): (_identity, b.key) for i, b in enumerate(blocks)}
    else:
        layer = {index(i): (operator.getitem, b.key, item) for i, b in enumerate(blocks)}
    shape_chunks = (tuple(chunks),) if ncols is None else (tuple(chunks), (ncols,))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=blocks)
    ndim = len(shape_chunks)
    meta = np.empty((0,) * ndim, dtype) if like is None else meta_from_array(like, ndim=ndim, dtype=dtype)
    return da.Array(graph, name, chunks=shape_chunks, dtype=dtype, meta=meta)


class DaskData:
    """Samples of a Dask fit: a row-chunked Dask array (one column chunk) and the float dtype of the fit.

    ``meta`` is the array's meta (a NumPy or CuPy array): per-sample results get chunks of that type.
    """

    def __init__(self, array, dtype):
        self.array = array
        self.meta = array._meta
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in array.shape)
        self.ndim = 2
        self.chunks = tuple(int(c) for c in array.chunks[0])
        self.blocks = list(array.to_delayed().ravel())


class DaskWeights:
    """Sample weights of a Dask fit: a Dask array with the row chunks of X, or None for unit weights."""

    def __init__(self, array, dtype, chunks):
        self.array = array
        self.dtype = np.dtype(dtype)
        self.chunks = chunks
        self.shape = (int(sum(chunks)),)
        self.blocks = [None] * len(chunks) if array is None else list(array.to_delayed().ravel())

    def __gt__(self, other):
        if self.array is None:
            return da.full(self.shape, 1 > other, dtype=bool, chunks=(self.chunks,))
        return self.array > other


class DaskLabels:
    """Per-sample int32 labels, as one Delayed block per row chunk of ``data`` (None before the first assignment).

    A block is a labels chunk or the :class:`ChunkLabels` result of the
    assignment task that produced it. :attr:`array` is the Dask array view.
    """

    dtype = np.dtype(np.int32)

    def __init__(self, data, blocks=None):
        self.data = data
        self.chunks = data.chunks
        self.shape = (int(sum(self.chunks)),)
        self.blocks = [None] * len(self.chunks) if blocks is None else list(blocks)
        self.present = None  # (n_clusters,) bool after an assignment without statistics
        self.histogram = None  # ((lo, n_bins), summed median histograms of these labels) after an assignment

    @property
    def array(self):
        """The labels as a Dask array with the row chunks of X (empty chunks kept)."""
        blocks = [delayed(_lab, pure=True)(b, x) for b, x in zip(self.blocks, self.data.blocks)]
        return _stack_blocks(blocks, self.chunks, np.int32, like=self.data.meta)

    def copy(self):
        return DaskLabels(self.data, self.blocks)  # blocks are immutable: sharing them is copying

    def __setitem__(self, index, values):
        self.histogram = None
        index = np.asarray(index, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(values, dtype=np.int32), index.shape).copy()
        offsets = _offsets(self.chunks)
        for i in range(len(self.blocks)):
            inside = (index >= offsets[i]) & (index < offsets[i + 1])
            if inside.any():
                self.blocks[i] = delayed(_patch_chunk, pure=False)(
                    self.data.blocks[i], self.blocks[i], index[inside], values[inside], int(offsets[i])
                )


class _TopK:
    """``argsort(values, kind="stable")`` of a Dask vector, evaluated only as ``[:m]`` (exact top-m)."""

    def __init__(self, values, chunks):
        self.values = values
        self.chunks = chunks

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.start not in (None, 0) or key.step not in (None, 1) or key.stop is None:
            raise NotImplementedError("Only argsort(...)[:m] is supported on Dask vectors.")
        m = int(key.stop)
        offsets = _offsets(self.chunks)
        blocks = list(self.values.rechunk((self.chunks,)).to_delayed().ravel())
        parts = dask.compute(*[delayed(_topk_chunk)(b, m, int(offsets[i])) for i, b in enumerate(blocks)])
        values = np.concatenate([p[0] for p in parts])
        index = np.concatenate([p[1] for p in parts])  # chunk order: ascending global index on ties
        return index[np.argsort(values, kind="stable")[:m]]


class _Namespace:
    """NumPy, except that ``full``/``where``/``argsort`` build Dask objects for per-sample arrays."""

    def __init__(self, data):
        self._data = data
        self._chunks = data.chunks

    def __getattr__(self, name):
        return getattr(np, name)

    def full(self, shape, fill_value, dtype=None):
        n = shape[0] if isinstance(shape, tuple) else shape
        if n == sum(self._chunks) and fill_value == -1 and np.dtype(dtype) == np.int32:
            return DaskLabels(self._data)
        return np.full(shape, fill_value, dtype=dtype)

    def where(self, cond, a, b):
        if isinstance(cond, da.Array) and isinstance(a, da.Array) and np.isscalar(b):  # per chunk, in a's memory
            dtype = np.result_type(a.dtype, b)
            return da.map_blocks(_where_chunk, cond, a, b, dtype=dtype, meta=meta_from_array(a, dtype=dtype))
        if any(isinstance(x, da.Array) for x in (cond, a, b)):
            return da.where(cond, a, b)
        return np.where(cond, a, b)

    def argsort(self, a, kind=None, **kwargs):
        if isinstance(a, da.Array):
            return _TopK(a, self._chunks)
        return np.argsort(a, kind=kind, **kwargs)


class DaskBackend:
    """The Backend interface over Dask arrays (see the module docstring).

    Parameters
    ----------
    data : DaskData
        The samples of this fit.
    threads_per_host : dict, optional
        Dask worker threads per host name (to size numba's threads in each task).
    """

    name = "dask"

    def __init__(self, data, threads_per_host=None):
        self.chunks = data.chunks
        self.xp = _Namespace(data)
        self.threads = dict(threads_per_host or {})
        self._integer_info: dict[str, tuple[bool, float, float]] = {}
        # (lo, n_bins) once a median update of this fit counts histograms: the assignment tasks then keep them
        self._hist_spec: tuple[float, int] | None = None

    def bind(self, X, sample_weight) -> DaskBackend:
        """This backend: its facts about X are keyed by the Dask array's name (its content), never stale."""
        return self

    def asarray(self, a: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    def to_numpy(self, a):
        return np.asarray(a)

    # ---------------------------------------------------------------- interface
    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None):
        # ``previous`` is not used: each chunk moves its own previous sums (and median histograms), which
        # stay with its labels on the worker (see _assign_chunk)
        centers = np.ascontiguousarray(centers, dtype=X.dtype)
        spec = self._hist_spec if accumulate else None
        outs = [
            _task(_assign_chunk, x, w, lab, centers, metric, accumulate, X.dtype, self.threads, spec)
            for x, w, lab in zip(X.blocks, sample_weight.blocks, labels.blocks)
        ]
        # The results stay on the workers; gathering them brings back their statistics only (see ChunkLabels).
        outs = dask.persist(*outs)
        parts = [p.stats for p in dask.compute(*outs)]
        objective, n_changed, sums, hist = _sum_assign_stats(parts)
        labels.blocks = list(outs)
        labels.histogram = None if hist is None else (spec, hist)
        if not accumulate:  # the driver's contract: zeros; which clusters have members is kept on the labels
            labels.present = sums
            sums = np.zeros((centers.shape[0], centers.shape[1] + 1))
        return float(objective), int(n_changed), sums

    def update(self, X, sample_weight, labels, n_clusters, rule):
        if rule == "mean":
            sums = self._reduce(_sums_chunk, X, sample_weight, labels, n_clusters, X.dtype, self.threads)
            return means_from_sums(sums)
        if rule == "median":
            is_integer, lo, hi = self.integer_info(X)
            n_bins = k.histogram_bins(is_integer, lo, hi, n_clusters, X.shape[1], k.HIST_BINS_SHIPPED)
            shipped = n_clusters * X.shape[1] * n_bins <= 1 << 16  # small: each chunk's histogram comes back
            if n_bins and shipped:
                spec = (lo, n_bins)
                self._hist_spec = spec  # from now on, the assignment tasks keep the histograms of their labels
                if labels.histogram is not None and labels.histogram[0] == spec:
                    return median_from_hist(labels.histogram[1], lo)
            if n_bins:
                hist = self._reduce(
                    _hist_chunk,
                    X,
                    sample_weight,
                    labels,
                    n_clusters,
                    lo,
                    n_bins,
                    X.dtype,
                    on_workers=not shipped,
                )
                return median_from_hist(hist, lo)
            return self._radix_median(X, sample_weight, labels, n_clusters)
        raise ValueError(f"Unknown update rule {rule!r}.")

    def objective(self, X, sample_weight, labels, candidates, metric, stride=1):
        candidates = np.ascontiguousarray(candidates, dtype=X.dtype)
        offsets = [int(o) for o in _offsets(X.chunks)[:-1]]  # each chunk's part of the global sample
        args = (candidates, metric, X.dtype, self.threads, stride)
        return self._reduce(_objectives_chunk, X, sample_weight, labels, *args, per_chunk=offsets)

    def pairwise(self, X, centers, metric):
        centers = np.ascontiguousarray(centers, dtype=X.dtype)
        blocks = [_task(_pairwise_chunk, x, centers, metric, X.dtype, self.threads) for x in X.blocks]
        return _stack_blocks(blocks, X.chunks, X.dtype, ncols=centers.shape[0], like=X.meta)

    def label_counts(self, labels, n_clusters):
        parts = [_task(_label_counts_chunk, x, lab, n_clusters) for x, lab in zip(labels.data.blocks, labels.blocks)]
        return _sum_in_order(list(dask.compute(*parts)))

    def point_costs(self, X, centers, metric, labels):
        centers = np.ascontiguousarray(centers, dtype=X.dtype)
        blocks = [
            _task(_point_costs_chunk, x, lab, centers, metric, X.dtype, self.threads)
            for x, lab in zip(X.blocks, labels.blocks)
        ]
        return _stack_blocks(blocks, X.chunks, X.dtype, like=X.meta)

    # ---------------------------------------------------------------- internals
    def _reduce(self, func, X, sample_weight, labels, *args, combine=_sum_in_order, on_workers=False, per_chunk=None):
        """Map ``func`` over the chunks and combine the parts in chunk order (on the client, or in a task).

        ``per_chunk``: one more argument per chunk, passed after ``args``.
        """
        blocks = zip(X.blocks, sample_weight.blocks, labels.blocks)
        if per_chunk is None:
            parts = [_task(func, x, w, lab, *args) for x, w, lab in blocks]
        else:
            parts = [_task(func, x, w, lab, *args, extra) for (x, w, lab), extra in zip(blocks, per_chunk, strict=True)]
        if on_workers:  # large parts (wide histograms): combine next to the data, bring back one
            return _task(combine, parts).compute()
        return combine(list(dask.compute(*parts)))

    def integer_info(self, X):
        """(all values integers, min, max) of X, computed once per data set."""
        key = X.array.name
        if key not in self._integer_info:
            parts = dask.compute(*[delayed(_integer_range_chunk)(x, X.dtype, self.threads) for x in X.blocks])
            parts = [p for p in parts if p is not None]
            if not parts or not all(p[0] for p in parts):
                self._integer_info[key] = (False, 0.0, 0.0)
            else:
                self._integer_info[key] = (True, min(p[1] for p in parts), max(p[2] for p in parts))
        return self._integer_info[key]

    def _radix_median(self, X, sample_weight, labels, n_clusters):
        """Exact weighted coordinate-wise median by a distributed radix select (one pass per byte)."""
        n_features = X.shape[1]
        nbits = 8 * X.dtype.itemsize
        prefix = np.zeros((n_clusters, n_features), dtype=np.uint64)
        below = np.zeros((n_clusters, n_features))
        weights = half = None
        last = None
        for shift in range(nbits - 8, -1, -8):
            hist = self._reduce(_radix_chunk, X, sample_weight, labels, n_clusters, shift, prefix, X.dtype)
            if weights is None:
                weights = hist[:, 0, :].sum(axis=1)
                half = 0.5 * weights
            cum = below[:, :, None] + np.cumsum(hist, axis=2)
            hit = (cum >= half[:, None, None]) & (hist > 0)
            digit = np.where(hit.any(axis=2), np.argmax(hit, axis=2), 255 - np.argmax(hist[:, :, ::-1] > 0, axis=2))
            take = np.take_along_axis
            below = take(cum, digit[:, :, None], axis=2)[:, :, 0] - take(hist, digit[:, :, None], axis=2)[:, :, 0]
            last = take(cum, digit[:, :, None], axis=2)[:, :, 0]
            prefix = (prefix << np.uint64(8)) | digit.astype(np.uint64)
        medians = rk.key_to_value(prefix, nbits).reshape(n_clusters, n_features)
        exact_half = (last == half[:, None]) & (weights[:, None] > 0)
        if exact_half.any():
            upper = self._reduce(_min_above_chunk, X, sample_weight, labels, medians, X.dtype, combine=_min_in_order)
            mid = exact_half & np.isfinite(upper)
            medians[mid] = 0.5 * (medians[mid] + upper[mid])
        medians[weights <= 0] = np.nan
        return medians, weights


def _integer_range_chunk(Xc, dtype, threads):
    _limit_threads(threads)
    Xc, kernels = prep_x(Xc, dtype)
    if Xc.shape[0] == 0:
        return None
    return kernels.integer_range(Xc)


def median_from_hist(hist, lo):
    """Weighted medians from (k, d, n_bins) histograms of integer values ``lo + bin`` (same rule as the kernels)."""
    n_clusters, n_features, _ = hist.shape
    medians = np.full((n_clusters, n_features), np.nan)
    weights = hist[:, 0, :].sum(axis=1)
    for j in range(n_clusters):
        if weights[j] <= 0:
            continue
        half = 0.5 * weights[j]
        for f in range(n_features):
            h = hist[j, f]
            cum = np.cumsum(h)
            b = int(np.argmax((cum >= half) & (h > 0)))
            medians[j, f] = lo + b
            if cum[b] == half:
                nxt = np.flatnonzero(h[b + 1 :] > 0)
                if nxt.size:
                    medians[j, f] = lo + 0.5 * (b + b + 1 + nxt[0])
    return medians, weights
