"""CUDA backend: CuPy arrays and the templated CUDA kernels of ``kmeans.cu``.

Implements :class:`gpukmeans.backends.Backend` on the GPU. X, its weights and
labels stay on the device during a fit; each Lloyd iteration copies the centers
down and one small array up (objective, labels changed and the per-cluster
sums, from :meth:`CUDABackend.assign`). Sums over samples are accumulated in
float64 per thread and reduced in a fixed order (see the header of
``kmeans.cu``), so results are bit-identical run after run.

With the mean update, a bound run's assignments go through
:meth:`CUDABackend.assign_ahead`: the device computes the mean update of each
assignment's sums itself and starts the next assignment before the host has
read them (see :mod:`._ahead`), so the GPU does not wait for the driver.

Workspace is O(n_blocks x n_clusters x (n_features + 1)) besides X, its labels
and weights; ``pairwise`` returns the ``(n_samples, n_centers)`` matrix its
callers ask for.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .._base import Bindable, means_from_sums, sample_rows
from .._numba_kernels import HIST_BINS_SHIPPED, histogram_bins
from ._ahead import Lookahead
from ._runtime import CUDAUnavailableError, kernel, load_cupy

__all__ = ["CUDABackend", "CUDAUnavailableError"]

_THREADS = 128  # threads per block of the accumulating kernels (a power of two)
_BLOCKS_PER_SM = 8  # at most this many blocks per multiprocessor in the grid of the accumulating kernels
_MAX_D_TEMPLATE = 8  # up to this many features the kernels are specialised on n_features
_CENTERS_SHARED = 32 * 1024  # centers up to this size are staged in shared memory by assign
_HIST_BLOCKS = 528  # histogram median: blocks of 512 threads (4 per SM with 48 KiB of counts each)
_SUM_WARPS = 4  # sum_rows_kernel: warps per block, one column each


def _dtype_name(dtype: Any) -> str:
    return "float" if np.dtype(dtype) == np.float32 else "double"


def _grid(n: int, max_blocks: int) -> int:
    return max(1, min(max_blocks, -(-n // _THREADS)))


def _slot_bytes(n_slots: int) -> int:
    """Shared memory of per-thread float64 slots (odd stride) plus the reduction buffer."""
    return 8 * _THREADS * ((n_slots | 1) + 1)


class CUDABackend(Bindable):
    """CuPy backend (``backend="cuda"``); see :class:`gpukmeans.backends.Backend`.

    Raises :class:`CUDAUnavailableError` when CuPy or a GPU is missing. Kernels
    do not read weights that are all ones, and the median uses histograms when
    X is integer-valued; bound to a run (:meth:`Bindable.bind`), the backend
    checks those facts once instead of at every call.
    """

    name = "cuda"
    _lookahead: Lookahead | None = None  # a bound run's queued assignments (see assign_ahead)

    def __init__(self) -> None:
        self.xp = cp = load_cupy()
        device = cp.cuda.Device()
        attributes = device.attributes
        self._smem_max = int(attributes.get("MaxSharedMemoryPerBlockOptin", 48 * 1024)) - 1024
        self._smem_sm = int(attributes.get("MaxSharedMemoryPerMultiprocessor", 64 * 1024))
        self._n_sm = int(attributes.get("MultiProcessorCount", 1))
        self._regs_sm = int(attributes.get("MaxRegistersPerMultiprocessor", 65536))

    # ------------------------------------------------------------------ arrays
    def asarray(self, a: Any, dtype: Any) -> Any:
        cp = self.xp
        dtype = np.dtype(dtype)
        if isinstance(a, cp.ndarray):
            return cp.ascontiguousarray(a, dtype=dtype)
        a = np.asarray(a)
        need = a.size * max(a.dtype.itemsize, dtype.itemsize)
        if need < 1 << 26:  # small arrays (centers every iteration): no memory check
            return cp.ascontiguousarray(cp.asarray(a), dtype=dtype)
        free, total = cp.cuda.runtime.memGetInfo()
        free += cp.get_default_memory_pool().free_bytes()
        if need > free:
            raise MemoryError(
                f"An array of shape {a.shape} needs {need / 1e9:.2f} GB on the GPU as {dtype}, but only "
                f"{free / 1e9:.2f} GB of the device's {total / 1e9:.2f} GB are free. Use backend='cpu', a "
                "sample of the data, or a Dask array (gpukmeans.distributed)."
            )
        try:  # copy in the caller's dtype (uint8 imagery moves 4x fewer bytes), convert on the device
            return cp.ascontiguousarray(cp.asarray(a), dtype=dtype)
        except cp.cuda.memory.OutOfMemoryError as exc:
            raise MemoryError(f"An array of shape {a.shape} ({dtype}) does not fit in GPU memory: {exc}") from None

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    # ------------------------------------------------------------------ helpers
    def _weights(self, w: Any) -> tuple[Any, int]:
        """(w, has_weight): has_weight is 0 when every weight is 1 (then kernels do not read w)."""
        unit = self._fact("unit_weights", w, lambda a: bool((a == 1).all()))
        return w, 0 if unit else 1

    def _integer_weights(self, w: Any) -> bool:
        """True when every weight is an integer and their sum is exact in float64 (histogram median)."""
        cp = self.xp

        def compute(a):
            return bool((a == cp.floor(a)).all()) and float(a.astype(cp.float64).sum()) < 2.0**52

        return self._fact("integer_weights", w, compute)

    def _integer_range(self, X: Any) -> tuple[bool, float, float]:
        """(True, min, max) when every value of X is an integer, else (False, 0, 0)."""
        cp = self.xp

        def compute(a):
            if bool((a == cp.floor(a)).all()):
                return True, float(a.min()), float(a.max())
            return False, 0.0, 0.0

        return self._fact("integer_range", X, compute)

    def _blocks(self, n: int, shared: int, regs: int = 0) -> int:
        """Grid of an accumulating kernel using ``shared`` bytes and ``regs`` registers per thread: one wave.

        Each block takes a grid-stride share of the samples, so a grid larger than
        what the multiprocessors hold at once would run a second, partial wave
        (per-thread float64 slots, or registers, limit the resident blocks). The
        grid depends on n, the kernel and the device only, so results are
        bit-identical run after run on one device.
        """
        resident = self._smem_sm // (shared + 1024)  # the driver reserves 1 KiB per block
        if regs:  # registers are given to warps in steps of 8 per thread
            resident = min(resident, self._regs_sm // (_THREADS * (-(-regs // 8) * 8)))
        return _grid(n, self._n_sm * max(1, min(_BLOCKS_PER_SM, resident)))

    @staticmethod
    def _d_template(d: int) -> int:
        return d if d <= _MAX_D_TEMPLATE else 0

    def _kernel(self, file: str, expression: str, shared: int = 0) -> Any:
        if shared > self._smem_max:
            raise MemoryError(f"internal: {shared} bytes of shared memory asked, {self._smem_max} available")
        return kernel(self.xp, file, expression, shared)

    def _launch(self, file: str, expression: str, grid: int, threads: int, args: tuple, shared: int = 0) -> None:
        self._kernel(file, expression, shared)((grid,), (threads,), args, shared_mem=shared)

    def _one(self) -> Any:
        """A device array holding 1.0: the gate of a kernel launch that always runs."""
        one = self.__dict__.get("_one_array")
        if one is None:
            one = self._one_array = self.xp.ones(1, dtype=self.xp.float64)
        return one

    def _sum_rows_into(self, rows: Any, out: Any, gate: Any = None) -> None:
        """Queue ``out[:width] =`` the column sums of a ``(n_rows, width)`` float64 device array, in row order."""
        args = (rows, np.int32(rows.shape[0]), np.int32(rows.shape[1]), out, self._one() if gate is None else gate)
        self._launch("kmeans.cu", "sum_rows_kernel", -(-rows.shape[1] // _SUM_WARPS), 32 * _SUM_WARPS, args)

    def _sum_rows(self, rows: Any) -> np.ndarray:
        """Column sums of a ``(n_rows, width)`` float64 device array, in row order, as NumPy (one small copy)."""
        out = self.xp.empty(rows.shape[1], dtype=self.xp.float64)
        self._sum_rows_into(rows, out)
        return out.get()

    def _cluster_ranges(self, n_clusters: int, slots_per_cluster: int) -> list[tuple[int, int]]:
        """Split clusters into ranges whose float64 slots fit in shared memory."""
        per = max(1, (self._smem_max // (8 * _THREADS) - 2) // slots_per_cluster)
        return [(j0, min(n_clusters, j0 + per)) for j0 in range(0, n_clusters, per)]

    def _weighted_sums(self, X, w, has_w, labels, n_clusters: int) -> Any:
        """(n_clusters, n_features + 1) float64 weighted sums of coordinates and weights."""
        cp = self.xp
        n, d = X.shape
        if (d + 1) * 8 * _THREADS * 2 > self._smem_max:  # wide data: sums of feature ranges
            return self._weighted_sums_wide(X, w, has_w, labels, n_clusters)
        out = []
        T, D = _dtype_name(X.dtype), self._d_template(d)
        for j0, j1 in self._cluster_ranges(n_clusters, d + 1):
            n_slots = (j1 - j0) * (d + 1)
            grid = self._blocks(n, _slot_bytes(n_slots))
            block = cp.empty((grid, n_slots), dtype=cp.float64)
            args = (X, w, np.int32(has_w), labels, np.int64(n), np.int32(d), np.int32(j0), np.int32(j1), block)
            self._launch("kmeans.cu", f"sums_kernel<{T}, {D}>", grid, _THREADS, args, _slot_bytes(n_slots))
            out.append(block.sum(axis=0).reshape(j1 - j0, d + 1))
        return cp.concatenate(out, axis=0)

    def _weighted_sums_wide(self, X, w, has_w, labels, n_clusters: int) -> Any:
        """Weighted sums for many features: feature blocks of contiguous copies (rare path)."""
        cp = self.xp
        d = X.shape[1]
        step = max(1, self._smem_max // (8 * _THREADS * 2) - 2)
        parts = []
        weights = None
        for f0 in range(0, d, step):
            Xf = cp.ascontiguousarray(X[:, f0 : f0 + step])
            s = self._weighted_sums(Xf, w, has_w, labels, n_clusters)
            parts.append(s[:, :-1])
            weights = s[:, -1:]
        return cp.concatenate([*parts, weights], axis=1)

    def _fused(self, n_features: int, n_clusters: int) -> bool:
        """Whether assign accumulates the sums itself (their per-thread slots fit in shared memory)."""
        return _slot_bytes(n_clusters * (n_features + 1)) <= self._smem_max

    def _assign_launch(self, X, w, has_w, centers, metric, labels, accumulate, gate=None) -> tuple[Any, bool]:
        """Queue assign_kernel on device ``centers``; returns its ``(n_blocks, 2 [+ n_slots])`` rows and ``fused``."""
        cp = self.xp
        n, d = X.shape
        k = centers.shape[0]
        n_slots = k * (d + 1)
        fused = bool(accumulate) and self._fused(d, k)
        shared = _slot_bytes(n_slots) if fused else 8 * _THREADS
        c_bytes = k * d * X.dtype.itemsize
        c_shared = c_bytes <= _CENTERS_SHARED and shared + c_bytes <= self._smem_max
        if c_shared:
            shared += c_bytes
        T, D = _dtype_name(X.dtype), self._d_template(d)
        fn = self._kernel("kmeans.cu", f"assign_kernel<{T}, {metric}, {D}>", shared)
        grid = self._blocks(n, shared, fn.num_regs)
        block_out = cp.empty((grid, 2 + (n_slots if fused else 0)), dtype=cp.float64)
        # consecutive samples per thread, read as 16-byte vectors, where the kernel is specialised on d
        grouped = D > 0 and X.data.ptr % 16 == 0 and labels.data.ptr % 16 == 0
        args = (X, w, np.int32(has_w), centers, np.int64(n), np.int32(d), np.int32(k), labels)
        args += (np.int32(fused), np.int32(c_shared), np.int32(grouped), block_out)
        args += (self._one() if gate is None else gate,)
        fn((grid,), (_THREADS,), args, shared_mem=shared)
        return block_out, fused

    def _settle(self, labels: Any, centers: Any = None) -> tuple | None:
        """Settle a bound run's queued guess on ``labels`` (see :meth:`settle`); its results when it is ``centers``."""
        lookahead = self._lookahead
        if lookahead is None or labels is not lookahead.labels:
            return None
        return lookahead.settle(centers)

    # ------------------------------------------------------------------ interface
    def settle(self, labels: Any) -> None:
        """Make ``labels`` those of the last assignment returned (see :meth:`assign_ahead`); the driver's hook.

        The run's queue is let go (with its buffers and its hold on the labels): the next
        :meth:`assign_ahead` starts a new one.
        """
        self._settle(labels)
        if self._lookahead is not None and self._lookahead.labels is labels:
            self._lookahead = None

    def assign_ahead(self, X, sample_weight, centers, metric, labels):
        """:meth:`assign` with ``accumulate``, queuing the assignment to the mean update of its sums.

        On a bound backend (one Lloyd run, fused sums), the assignment to the
        centers the driver's mean update will give (each cluster of positive
        weight at its weighted mean, in X's dtype; the others unchanged) is
        queued before this returns: the device overwrites ``labels`` with it
        while the host works. The next call with exactly those centers returns
        its results; any other use of ``labels`` on this backend first puts
        them back (:meth:`settle`, which the driver calls before it reads the
        labels itself). See :mod:`gpukmeans.backends.cuda._ahead`.
        """
        centers = np.asarray(centers, dtype=X.dtype) if isinstance(centers, np.ndarray) else centers
        if self._bound is None or not isinstance(centers, np.ndarray) or not self._fused(X.shape[1], centers.shape[0]):
            return self.assign(X, sample_weight, centers, metric, labels, True)
        lookahead = self._lookahead
        if lookahead is None or not lookahead.device.runs(X, sample_weight, metric, labels):
            if lookahead is not None:
                lookahead.settle()
            lookahead = self._lookahead = Lookahead(_Queue(self, X, sample_weight, metric, labels), labels)
        return lookahead.assign(centers)

    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None):
        # ``previous`` is a hint this backend does not use: its sums are always recomputed in full (moving them
        # with the relabelled samples was no faster on an H200 with 2.5-9% of the labels changing)
        guessed = self._settle(labels, centers)
        if guessed is not None:  # the queued guess of assign_ahead was these very centers
            objective, n_changed, sums = guessed
            return objective, n_changed, sums if accumulate else np.zeros_like(sums)
        centers = self.asarray(centers, X.dtype)
        d = X.shape[1]
        k = centers.shape[0]
        w, has_w = self._weights(sample_weight)
        block_out, fused = self._assign_launch(X, w, has_w, centers, metric, labels, accumulate)
        host = self._sum_rows(block_out)  # objective, labels changed, sums: one reduction, one copy
        objective, n_changed = float(host[0]), int(host[1])
        if fused:
            sums = host[2:].reshape(k, d + 1)
        elif accumulate:
            sums = self._weighted_sums(X, w, has_w, labels, k).get()
        else:
            sums = np.zeros((k, d + 1))
        return objective, n_changed, sums

    def update(self, X, sample_weight, labels, n_clusters, rule):
        self._settle(labels)
        w, has_w = self._weights(sample_weight)
        if rule == "mean":
            return means_from_sums(self._weighted_sums(X, w, has_w, labels, n_clusters).get())
        if rule == "median":
            is_integer, lo, hi = self._integer_range(X)
            n_bins = histogram_bins(is_integer, lo, hi, n_clusters, X.shape[1], HIST_BINS_SHIPPED)
            if n_bins and self._integer_weights(sample_weight):
                return self._median_histogram(X, sample_weight, labels, n_clusters, lo, n_bins)
            medians, weights = median_by_sorting(self.xp, X, sample_weight, labels, n_clusters)
            return medians.get(), weights.get()
        raise ValueError(f"Unknown update rule {rule!r}.")

    def _median_histogram(self, X, sample_weight, labels, n_clusters, lo, n_bins):
        """Weighted median of integer-valued X with integer weights: per-cluster histograms, O(n)."""
        return median_from_histogram(np, self.histogram(X, sample_weight, labels, n_clusters, lo, n_bins), lo)

    def objective(self, X, sample_weight, labels, candidates, metric, stride=1):
        self._settle(labels)
        cp = self.xp
        candidates = self.asarray(candidates, X.dtype)
        w, has_w = self._weights(sample_weight)
        if stride > 1:  # the systematic sample, copied: a small fraction of X
            rows = sample_rows(X.shape[0], stride, xp=cp)
            X, labels = X[rows], labels[rows]
            w = w[rows] if has_w else w
        n_sets, k, _ = candidates.shape
        n, d = X.shape
        T, D = _dtype_name(X.dtype), self._d_template(d)
        out = []
        for j0, j1 in self._cluster_ranges(k, n_sets):
            n_slots = n_sets * (j1 - j0)
            grid = self._blocks(n, _slot_bytes(n_slots))
            block = cp.empty((grid, n_slots), dtype=cp.float64)
            args = (X, w, np.int32(has_w), labels, candidates, np.int64(n), np.int32(d), np.int32(k))
            args += (np.int32(n_sets), np.int32(j0), np.int32(j1), block)
            expr = f"objectives_kernel<{T}, {metric}, {D}>"
            self._launch("kmeans.cu", expr, grid, _THREADS, args, _slot_bytes(n_slots))
            out.append(block.sum(axis=0).reshape(n_sets, j1 - j0))
        return cp.concatenate(out, axis=1).get()

    def pairwise(self, X, centers, metric):
        cp = self.xp
        centers = self.asarray(centers, X.dtype)
        n, d = X.shape
        k = centers.shape[0]
        out = cp.empty((n, k), dtype=X.dtype)
        if n:
            T, D = _dtype_name(X.dtype), self._d_template(d)
            args = (X, centers, np.int64(n), np.int32(d), np.int32(k), out)
            self._launch("kmeans.cu", f"pairwise_kernel<{T}, {metric}, {D}>", _grid(n, 4096), _THREADS, args)
        return out

    def label_counts(self, labels, n_clusters):
        self._settle(labels)
        return self.xp.bincount(labels, minlength=n_clusters)[:n_clusters].get().astype(np.int64)

    def point_costs(self, X, centers, metric, labels):
        self._settle(labels)
        cp = self.xp
        centers = self.asarray(centers, X.dtype)
        n, d = X.shape
        out = cp.empty(n, dtype=X.dtype)
        if n:
            T, D = _dtype_name(X.dtype), self._d_template(d)
            args = (X, centers, labels, np.int64(n), np.int32(d), out)
            self._launch("kmeans.cu", f"point_costs_kernel<{T}, {metric}, {D}>", _grid(n, 4096), _THREADS, args)
        return out

    def histogram(self, X, sample_weight, labels, n_clusters: int, lo: float, n_bins: int) -> np.ndarray:
        """``(n_clusters, n_features, n_bins)`` float64 NumPy weights of the integer values ``lo + b`` per cluster.

        For integer-valued X in ``[lo, lo + n_bins)`` and integer weights (counted exactly, in uint64, whatever
        the order of the atomic adds); samples of weight 0 are ignored. Per-chunk histograms of a Dask fit are
        summed on the host and finished by :func:`median_from_histogram`.
        """
        self._settle(labels)
        cp = self.xp
        n, d = X.shape
        w, has_w = self._weights(sample_weight)
        hist = cp.zeros((n_clusters, d, n_bins), dtype=cp.uint64)
        use_shared = hist.size * 8 <= self._smem_max
        args = (X, w, np.int32(has_w), labels, np.int64(n), np.int32(d), np.int32(n_clusters))
        args += (np.float64(lo), np.int32(n_bins), np.int32(use_shared), hist)
        grid = max(1, min(_HIST_BLOCKS, -(-n // 512)))
        shared = hist.size * 8 if use_shared else 0
        self._launch("kmeans.cu", f"histogram_kernel<{_dtype_name(X.dtype)}>", grid, 512, args, shared)
        return hist.get().astype(np.float64)


class _Queue:
    """The device side of a :class:`Lookahead`: one run's assignments on the current CuPy stream.

    Each group is four launches and a copy: assign_kernel (fused sums),
    sum_rows_kernel, means_kernel, then one asynchronous copy of the
    objective, labels changed, sums and updated centers into page-locked
    host memory, followed by an event the host waits on. The two host
    buffers alternate: a group's copy may run while the host reads the one
    before. Device buffers come from CuPy's pool, which orders their reuse on
    the stream.
    """

    def __init__(self, backend: CUDABackend, X: Any, sample_weight: Any, metric: int, labels: Any) -> None:
        self.backend = weakref.proxy(backend)  # the backend holds this queue: no reference cycle
        self.run = (X, sample_weight, metric)
        self.labels = labels
        self.w, self.has_w = backend._weights(sample_weight)
        self.host: list[np.ndarray] = []
        self.n_launched = 0

    def runs(self, X: Any, sample_weight: Any, metric: int, labels: Any) -> bool:
        """Whether these are the arrays (the very objects) and metric of this queue's run."""
        run = self.run
        return run[0] is X and run[1] is sample_weight and run[2] == metric and self.labels is labels

    def _host_buffer(self, size: int) -> np.ndarray:
        cp = self.backend.xp
        slot = self.n_launched % 2
        while len(self.host) <= slot:
            self.host.append(np.empty(0))
        if self.host[slot].size != size:
            memory = cp.cuda.alloc_pinned_memory(8 * size)
            self.host[slot] = np.frombuffer(memory, dtype=np.float64, count=size)
        return self.host[slot]

    def upload(self, centers: np.ndarray) -> Any:
        return self.backend.asarray(centers, self.run[0].dtype)

    def launch(self, centers: Any, gate: Any) -> tuple:
        cp = self.backend.xp
        X, _, metric = self.run
        k, d = centers.shape
        gate = gate[0][1:2] if gate is not None else self.backend._one()  # the labels changed by the group before
        block_out, _ = self.backend._assign_launch(X, self.w, self.has_w, centers, metric, self.labels, True, gate)
        width = block_out.shape[1]
        res = cp.empty(width + k * d, dtype=cp.float64)
        self.backend._sum_rows_into(block_out, res, gate)
        following = cp.empty_like(centers)
        args = (res, centers, np.int32(k), np.int32(d), following, gate)
        self.backend._launch("kmeans.cu", f"means_kernel<{_dtype_name(X.dtype)}>", 1, _THREADS, args)
        host = self._host_buffer(res.size)
        res.get(out=host, blocking=False)  # page-locked: an asynchronous copy
        event = cp.cuda.Event(disable_timing=True)
        event.record()
        self.n_launched += 1
        return res, following, host, event, width

    def next_centers(self, handle: tuple) -> Any:
        return handle[1]

    def wait(self, handle: tuple) -> tuple[float, int, np.ndarray, np.ndarray]:
        _, following, host, event, width = handle
        event.synchronize()
        values = host.copy()  # the buffer serves again two groups later
        k, d = following.shape
        sums = values[2:width].reshape(k, d + 1)
        return float(values[0]), int(values[1]), sums, values[width:].astype(following.dtype).reshape(k, d)

    def restore(self, centers: Any) -> None:
        X, _, metric = self.run
        self.backend._assign_launch(X, self.w, self.has_w, centers, metric, self.labels, False)


# ---------------------------------------------------------------------- array-API helpers
# Written against any NumPy-like namespace ``xp`` (CuPy here; the CPU tests run them with NumPy).


def median_from_histogram(xp: Any, hist: Any, lo: float) -> tuple[Any, Any]:
    """Weighted medians from ``(n_clusters, n_features, n_bins)`` histograms of integer values ``lo + b``.

    Same rule as the CPU kernels: the first value whose cumulative weight
    reaches half of the cluster's weight; on an exact half, the midpoint with the
    next occupied value. Returns float64 medians (NaN for clusters of no weight)
    and the ``(n_clusters,)`` cluster weights.
    """
    n_bins = hist.shape[2]
    weights = hist[:, 0, :].sum(axis=1)
    cum = xp.cumsum(hist, axis=2)
    half = 0.5 * weights[:, None]
    occupied = hist > 0
    first = xp.argmax((cum >= half[:, :, None]) & occupied, axis=2)
    at_half = xp.take_along_axis(cum, first[:, :, None], axis=2)[:, :, 0] == half
    later = occupied & (xp.arange(n_bins)[None, None, :] > first[:, :, None])
    has_later = later.any(axis=2)
    second = xp.argmax(later, axis=2)
    medians = lo + first.astype(xp.float64)
    medians = xp.where(at_half & has_later, lo + 0.5 * (first + second), medians)
    medians[weights <= 0] = xp.nan
    return medians, weights


def median_by_sorting(xp: Any, X: Any, sample_weight: Any, labels: Any, n_clusters: int) -> tuple[Any, Any]:
    """Weighted coordinate-wise medians by sorting each feature by (cluster, value).

    Samples of weight 0 are ignored; same rule as :func:`median_from_histogram`.
    O(n log n) per feature (radix sorts on the GPU), for data that are not
    integer-valued or have non-integer weights.
    """
    n, d = X.shape
    keep = xp.flatnonzero(sample_weight > 0)
    lab = labels[keep]
    by_label = xp.argsort(lab, kind="stable")
    lab = lab[by_label]
    ws = sample_weight[keep].astype(xp.float64)[by_label]
    counts = xp.bincount(lab, minlength=n_clusters)[:n_clusters]
    ends = xp.cumsum(counts)
    starts = ends - counts
    last = max(int(lab.shape[0]) - 1, 0)
    medians = xp.empty((n_clusters, d), dtype=xp.float64)
    weights = xp.zeros(n_clusters, dtype=xp.float64)
    for f in range(d):
        values = X[keep, f][by_label].astype(xp.float64)
        order = xp.argsort(values, kind="stable")
        order = order[xp.argsort(lab[order], kind="stable")]  # by cluster, then by value
        v = values[order]
        cum = xp.cumsum(ws[order])
        base = xp.where(starts > 0, cum[xp.maximum(starts - 1, 0)], 0.0)
        total = xp.where(counts > 0, cum[xp.maximum(ends - 1, 0)] - base, 0.0)
        if f == 0:
            weights = total
        half = 0.5 * total
        below = (cum - base[lab]) < half[lab]  # lab[order] == lab: order keeps the clusters in place
        pos = xp.minimum(starts + xp.bincount(lab[below], minlength=n_clusters)[:n_clusters], last)
        med = v[pos]
        nxt = v[xp.minimum(pos + 1, last)]
        at_half = (cum[pos] - base) == half
        med = xp.where(at_half & (pos + 1 < ends) & (nxt > med), 0.5 * (med + nxt), med)
        medians[:, f] = xp.where(counts > 0, med, xp.nan)
    return medians, weights
