"""The kernels one Dask task runs on its chunk, picked from the chunk's array type.

A NumPy chunk runs the numba kernels (:class:`HostKernels`); a CuPy chunk runs
the CUDA backend (:class:`DeviceKernels`, one instance per thread and device,
since the backend remembers facts about the arrays it was last given). Both
expose the Backend interface (``assign``, ``objective``, ``pairwise``,
``point_costs``) and the per-chunk statistics the Dask backend reduces on the
client: weighted sums, histograms of integer values, radix-select digits and
the midpoint minimum. Statistics come back as NumPy; per-sample results
(labels, distances, costs) stay in the chunk's memory.

On the GPU, the median of integer-valued data with integer weights (imagery)
uses the CUDA histogram kernel, exact because sums of integers do not depend on
the order of the atomic adds. The other median statistics (fractional weights,
or data that are not integer-valued: the radix select and its midpoint
minimum) are computed on the host from a copy of the chunk's values, weights
and labels, one copy per statistic. Besides that and the statistics, nothing
crosses to the host.
"""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np

from ..backends import _numba_kernels as k
from ..backends.cpu import CPUBackend
from ..backends.cuda import CUDABackend
from . import _kernels as rk

_RADIX = 256  # bins of one radix digit


def is_cupy(a: Any) -> bool:
    """True for a CuPy array (checked by module name: CuPy is never imported just to look)."""
    return type(a).__module__.split(".")[0] == "cupy"


def host(a: Any) -> Any:
    """NumPy view of an array (CuPy arrays are copied to the host); None stays None."""
    if a is None:
        return None
    if is_cupy(a):
        return a.get()
    return np.asarray(a)


_HOST_ONES: dict = {}


class HostKernels(CPUBackend):
    """numba kernels on a NumPy chunk (serial when the task has one numba thread)."""

    def asarray(self, a: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(host(a), dtype=dtype)

    def ones(self, n: int, dtype: Any) -> np.ndarray:
        """Unit weights, kept per (length, dtype): not refilled at every iteration.

        Never written (kernels only read weights); left writeable so that the kernels see the same array type
        as in memory (a read-only array is another numba signature, compiled again).
        """
        return _cached_ones(_HOST_ONES, n, dtype, np.ones)

    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None, histogram=None):
        """As :meth:`CPUBackend.assign`; ``previous`` (the sums of ``labels``) is used for the shared unit weights.

        The chunk's task decides when its previous sums are still to be trusted
        (see ``_assign_chunk``). With ``accumulate``, ``histogram`` ``(hist, lo)``:
        on return ``hist`` (n_clusters, n_features, n_bins) float64 holds the
        weights of the integer values ``lo + b`` per cluster for the new labels.
        With unit weights, ``hist`` must hold the counts of the labels passed in
        and the relabelled samples are moved in it (in the assignment's pass, or
        in a second pass over the labels when one copy per thread would have more
        cells than the chunk has samples, as in :class:`CPUBackend`); otherwise
        it is counted again.
        """
        # the shared ones of a chunk without weights (see ``ones``): the kernels skip the products
        unit = _HOST_ONES.get((X.shape[0], np.dtype(X.dtype).str)) is sample_weight
        previous = previous if unit and accumulate else None
        moving = histogram if unit and accumulate else None
        threads = numba.get_num_threads()
        counted = None  # the labels the histogram counts, when it is moved in a second pass
        if moving is not None and threads > 1 and not k.moves_in_assign(X.shape[0], moving[0].size, threads):
            counted, moving = labels.copy(), None  # too large for one copy per thread (CPUBackend's rule)
        if threads > 1:
            objective, n_changed, sums = k.assign(
                X, sample_weight, centers, metric, labels, accumulate, unit, previous, moving
            )
        else:
            # one thread for this task: the serial kernel, which releases the GIL (the worker's event loop
            # keeps serving messages while it runs) and skips the parallel launch
            objective, n_changed, sums = k.assign_serial(
                X, sample_weight, centers, metric, labels, accumulate, unit, previous, moving
            )
        if counted is not None:  # the relabelled samples' values moved in place (a pass over the labels)
            hist, lo = histogram
            k.histogram_moves(X, labels, counted, float(lo), hist)
        elif histogram is not None and moving is None:  # weighted: counted again
            hist, lo = histogram
            hist[...] = self.histogram(X, sample_weight, labels, hist.shape[0], lo, hist.shape[2])
        if previous is not None:  # exact counts: a cluster that lost its last sample has weight 0; reset its row
            sums[sums[:, -1] == 0] = 0.0
        return float(objective), int(n_changed), sums

    def weighted_sums(self, X, sample_weight, labels, n_clusters: int) -> np.ndarray:
        """``(n_clusters, n_features + 1)`` float64 weighted coordinate sums, cluster weights last."""
        return k.weighted_sums(X, sample_weight, labels, n_clusters)

    def integer_range(self, X: np.ndarray) -> tuple[bool, float, float]:
        """(True, min, max) when every value is an integer, else (False, 0, 0)."""
        return k.integer_range(X)

    def histogram(self, X, sample_weight, labels, n_clusters: int, lo: float, n_bins: int) -> np.ndarray:
        """``(n_clusters, n_features, n_bins)`` float64 member weights of the integer values ``lo + b``."""
        hist = np.zeros((n_clusters, X.shape[1], n_bins))
        k._hist_range(X, sample_weight, labels, lo, 0, X.shape[0], hist)
        return hist

    def radix_hist(self, X, sample_weight, labels, n_clusters: int, shift: int, prefix: np.ndarray) -> np.ndarray:
        """``(n_clusters, n_features, 256)`` weights of one radix digit (see :func:`._kernels.radix_hist`)."""
        hist = np.zeros((n_clusters, X.shape[1], _RADIX))
        U = X.view(np.uint32 if X.dtype == np.float32 else np.uint64)
        rk.radix_hist(U, sample_weight, labels, 8 * X.dtype.itemsize, shift, prefix, hist)
        return hist

    def min_above(self, X, sample_weight, labels, values: np.ndarray) -> np.ndarray:
        """Per (cluster, feature), the smallest member value above ``values`` (inf where none)."""
        out = np.full(values.shape, np.inf)
        rk.min_above(X, sample_weight, labels, values, out)
        return out


class DeviceKernels(CUDABackend):
    """The CUDA backend on a CuPy chunk, with the per-chunk statistics of the Dask backend."""

    def __init__(self) -> None:
        super().__init__()
        self._ones: dict = {}

    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None, histogram=None):
        """As :meth:`CUDABackend.assign`; ``histogram`` ``(hist, lo)`` is counted again for the new labels."""
        out = super().assign(X, sample_weight, centers, metric, labels, accumulate, previous)
        if histogram is not None:
            hist, lo = histogram
            hist[...] = self.histogram(X, sample_weight, labels, hist.shape[0], lo, hist.shape[2])
        return out

    def ones(self, n: int, dtype: Any) -> Any:
        """Unit weights on the device, kept per (length, dtype) (the backend then skips reading them)."""
        return _cached_ones(self._ones, n, dtype, self.xp.ones)

    def weighted_sums(self, X: Any, sample_weight: Any, labels: Any, n_clusters: int) -> np.ndarray:
        """``(n_clusters, n_features + 1)`` float64 NumPy weighted coordinate sums, cluster weights last."""
        w, has_w = self._weights(sample_weight)
        return self._weighted_sums(X, w, has_w, labels, n_clusters).get()

    def integer_range(self, X: Any) -> tuple[bool, float, float]:
        """(True, min, max) when every value is an integer, else (False, 0, 0)."""
        return self._integer_range(X)

    def histogram(self, X, sample_weight, labels, n_clusters: int, lo: float, n_bins: int) -> np.ndarray:
        """As :meth:`HostKernels.histogram`: the GPU histogram kernel for integer weights, else on the host."""
        if not self._integer_weights(sample_weight):
            return HOST.histogram(*self._on_host(X, sample_weight, labels), n_clusters, lo, n_bins)
        return super().histogram(X, sample_weight, labels, n_clusters, lo, n_bins)

    def radix_hist(self, X, sample_weight, labels, n_clusters: int, shift: int, prefix: np.ndarray) -> np.ndarray:
        """As :meth:`HostKernels.radix_hist`, on a host copy of the chunk."""
        return HOST.radix_hist(*self._on_host(X, sample_weight, labels), n_clusters, shift, prefix)

    def min_above(self, X, sample_weight, labels, values: np.ndarray) -> np.ndarray:
        """As :meth:`HostKernels.min_above`, on a host copy of the chunk."""
        return HOST.min_above(*self._on_host(X, sample_weight, labels), values)

    def _on_host(self, X: Any, sample_weight: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return X.get(), sample_weight.get(), labels.get()


def _cached_ones(cache: dict, n: int, dtype: Any, make) -> Any:
    key = (n, np.dtype(dtype).str)
    ones = cache.get(key)
    if ones is None:
        if len(cache) > 64:
            cache.clear()
        ones = make(n, dtype=dtype)
        cache[key] = ones
    return ones


HOST = HostKernels()
_LOCAL = threading.local()


def kernels_for(a: Any) -> HostKernels | DeviceKernels:
    """The kernels for a chunk: the CUDA backend of its device for a CuPy array, else the numba kernels."""
    if not is_cupy(a):
        return HOST
    per_device = _LOCAL.__dict__.setdefault("device_kernels", {})
    kernels = per_device.get(a.device.id)
    if kernels is None:
        with a.device:
            kernels = per_device[a.device.id] = DeviceKernels()
    return kernels


def prep_x(Xc: Any, dtype: Any) -> tuple[Any, HostKernels | DeviceKernels]:
    """(chunk as a C-contiguous array of ``dtype`` in its own memory, its kernels)."""
    kernels = kernels_for(Xc)
    return kernels.asarray(Xc, dtype), kernels


def prep(Xc: Any, wc: Any, dtype: Any) -> tuple[Any, Any, HostKernels | DeviceKernels]:
    """As :func:`prep_x`, with the weights chunk moved next to it (None: unit weights)."""
    Xc, kernels = prep_x(Xc, dtype)
    wc = kernels.ones(Xc.shape[0], dtype) if wc is None else kernels.asarray(wc, dtype)
    return Xc, wc, kernels


def full_labels(kernels: HostKernels | DeviceKernels, n: int) -> Any:
    """int32 labels of -1 in the kernels' memory."""
    return kernels.xp.full(n, -1, dtype=kernels.xp.int32)
