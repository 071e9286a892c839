"""numba kernels of the CPU backend.

Every kernel is defined once at module level with ``cache=True`` (a kernel built
by a factory at run time would miss numba's on-disk cache in a new process) and
takes the metric as an integer ``metric`` code (see :mod:`gpukmeans.metrics`):
the branch in :func:`_term` is loop-invariant, so LLVM unswitches it out of the
inner loops and each metric runs as its own vectorised loop.

Layout and precision conventions (the caller, :mod:`gpukmeans.backends.cpu`,
guarantees them so that each kernel compiles once per dtype):

- ``X`` is C-contiguous ``(n_samples, n_features)`` float32 or float64;
  ``centers`` has the same dtype, ``sample_weight`` too; ``labels`` is int32.
- Distances are computed in the dtype of ``X``; every sum over samples
  (objective, weighted sums of coordinates, weights) is accumulated in float64.
- Work over samples is split into at most ``_N_CHUNKS`` contiguous chunks whose
  bounds depend only on ``n_samples``; the per-chunk partial sums are reduced in
  chunk order, so results are bit-identical whatever the number of threads.
- Parallel loops only call serial ``*_range`` helpers: numba compiles a prange
  body moved into a serial helper into markedly faster code.
- Only the ``prange`` loops run on the thread pool (:data:`PRANGE_ONLY`): the
  array expressions around them (``np.zeros``, ``sums += partial[c]``) stay
  serial code.
- The assign kernel works on blocks of ``_BLOCK`` points transposed into an
  L1-resident buffer, and is compiled once per number of features up to
  :data:`MAX_UNROLLED_FEATURES` (the count is then a constant, so the loads,
  distances and argmin vectorise across points) plus once for any wider data.
  Its small per-block helpers (load, record, relabel) are inlined into the
  block loop (numba's ``inline="always"``): as calls, their dozens of array
  arguments cost as much as their work (1M x 3, k = 8: 0.1-0.15 ms less per
  assignment inlined; 1M x 13: 5.1 -> 3.6 ms). The argmin stays a call
  (inlined, it compiled slower at k = 32).
- The guarded update's candidate comparison (:func:`cluster_objectives`) measures
  each sample against the candidates of its own cluster, which LLVM does not
  vectorise from numba code; :mod:`._lanes` writes that step as vector code,
  one lane per candidate set (1M x 3, three sets, on all samples: 3.4 ->
  1.4 ms; the same values bit for bit).
- Ties in a distance go to the lowest center index.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ._base import SAMPLE_RUN
from ._lanes import LANES, add_terms

#: numba's parallel options for every parallel kernel: only the ``prange`` loops run on the thread pool.
#: With ``parallel=True``, numba also turns each array expression into a parallel loop of its own (in
#: ``assign_kernel``: its six ``np.zeros`` and the ``sums += partial[c]`` of every chunk, about 70 tiny
#: regions per call), each a round trip to the pool, and after a pause longer than the workers' short
#: spin-wait (see ``gpukmeans/__init__.py``) a wake-up of the sleeping workers. Measured on 2 cores: a
#: Lloyd iteration at 1M x 3, k = 8, 1.8-2.0 -> 1.3-1.5 ms; the Aral crop segmented with all three
#: metrics, 0.24 -> 0.15 s. Elementwise expressions give the same values serially; the one float sum
#: among them (the bucket weights in :func:`medians_from_buckets`) now adds in index order, whatever the
#: number of threads, where numba's parallel reduction split it by thread.
try:
    from numba.core.cpu_options import ParallelOptions  # numba's own type for the option (not public API)

    PRANGE_ONLY = ParallelOptions(
        {
            "prange": True,
            "comprehension": False,
            "reduction": False,
            "inplace_binop": False,
            "setitem": False,
            "numpy": False,
            "stencil": False,
            "fusion": False,
        }
    )
except ImportError:  # pragma: no cover - a numba that moved it: every array expression in parallel again
    PRANGE_ONLY = True

#: de Bruijn sequence and table for :func:`_lowest_bit_debruijn`
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DEBRUIJN_INDEX[((int(_DEBRUIJN) << _i) % 2**64) >> 58] = _i
_DEBRUIJN_INDEX.setflags(write=False)


@njit(inline="always")
def _lowest_bit_debruijn(mask):
    """Index of the lowest set bit of a nonzero uint64, by de Bruijn multiplication (portable)."""
    return _DEBRUIJN_INDEX[((mask & (~mask + np.uint64(1))) * _DEBRUIJN) >> np.uint64(58)]


try:  # numba's count-trailing-zeros intrinsic (one instruction); not public API, hence the fallback
    from numba.cpython.unsafe.numbers import trailing_zeros as _lowest_bit
except ImportError:  # pragma: no cover
    _lowest_bit = _lowest_bit_debruijn

_BLOCK = 64  # points per block: transposed into an L1-resident buffer
_N_CHUNKS = 64  # partial-sum slots; fixed, so results do not depend on threads
_MIN_CHUNK = 4096  # fewer points than this per chunk is not worth a thread


@njit(inline="always")
def _term(metric, acc, diff):
    """Fold one coordinate difference into a distance accumulator.

    metric 0 (euclidean): acc + diff**2 (squared distance);
    metric 1 (manhattan): acc + |diff|; metric 2 (chebyshev): max(acc, |diff|).
    """
    if metric == 0:
        return acc + diff * diff
    elif metric == 1:
        return acc + abs(diff)
    else:
        return max(acc, abs(diff))


@njit(cache=True)
def n_chunks_for(n_samples):
    """Number of sample chunks used by the reduction kernels."""
    return max(1, min(_N_CHUNKS, n_samples // _MIN_CHUNK))


@njit(inline="always")
def _chunk(n_samples, n_chunks, c):
    return c * n_samples // n_chunks, (c + 1) * n_samples // n_chunks


@njit(inline="always")
def _moved_mask(new, old, m):
    """Bit p set where ``new[p] != old[p]``, for ``p < m <= 64`` (vectorised; iterate with :func:`_pop_lowest`)."""
    mask = np.uint64(0)
    for p in range(m):
        mask |= np.uint64(new[p] != old[p]) << np.uint64(p)
    return mask


@njit(inline="always")
def _pop_lowest(mask):
    """(index of the lowest set bit, mask without it)."""
    return _lowest_bit(mask), mask & (mask - np.uint64(1))


@njit(nogil=True, cache=True)
def _block_distances(buf, centers, j, metric, d):
    """d[p] = objective term between buffered point p and ``centers[j]``."""
    n_features = buf.shape[0]
    for p in range(_BLOCK):
        d[p] = 0
    for f in range(n_features):
        c = centers[j, f]
        for p in range(_BLOCK):
            d[p] = _term(metric, d[p], c - buf[f, p])


#: Largest histogram cells x threads that :func:`assign` updates in its pass (16 MiB of float64 partials);
#: larger histograms are updated by :func:`histogram_moves`, a second pass (see :func:`moves_in_assign`).
MOVES_HISTOGRAM_CELLS = 1 << 21


def moves_in_assign(n_samples: int, n_cells: int, n_threads: int) -> bool:
    """Whether :func:`assign` should move the median histograms (``n_cells`` float64) in its own pass.

    The fused pass zeroes and adds one copy of the histograms per thread at
    every call; :func:`histogram_moves` instead compares the labels with a
    copy of them (a pass over 8 bytes per sample) and re-reads the moved rows
    of X. Fused while the copies have no more cells than there are samples
    (and within :data:`MOVES_HISTOGRAM_CELLS`). Measured on 2 cores with
    1M samples: 8 x 13 x 8,000 cells, 8.3 ms per median iteration through
    the second pass against 10.9 ms fused; 3 x 3 x 10,000 cells at 300k
    samples, 0.9 ms fused against 1.4 ms; uint8 pixels (8 x 3 x 256 cells)
    always fused.
    """
    cells = n_cells * n_threads
    return cells <= min(MOVES_HISTOGRAM_CELLS, n_samples)


#: Feature counts compiled with the count as a constant (pixels, RGBN, multispectral up to
#: Landsat's 11 and Sentinel-2's 13 bands); wider data runs the generic loops.
MAX_UNROLLED_FEATURES = 16


def feature_token(n_features: int) -> tuple:
    """``(0,) * n_features`` up to :data:`MAX_UNROLLED_FEATURES`, else ``()``.

    Passed to :func:`assign_kernel`, whose compiled instance is chosen by the
    token's type: its length is the number of features as a compile-time
    constant (0: any number, read from X).
    """
    return (0,) * n_features if n_features <= MAX_UNROLLED_FEATURES else ()


@njit(inline="always")
def _load_block_flat(xb, m, buf, dims):
    """Transpose the ``m`` rows of one block (``xb``: their values in C order) into ``buf`` (D, _BLOCK).

    With ``len(dims)`` a compile-time constant the loads vectorise (interleaved
    loads); columns ``m .. _BLOCK`` of a last, partial block are zero.
    """
    n_features = len(dims) if len(dims) else buf.shape[0]
    if m == _BLOCK:
        for p in range(_BLOCK):
            for f in range(n_features):
                buf[f, p] = xb[p * n_features + f]
    else:
        for p in range(m):
            for f in range(n_features):
                buf[f, p] = xb[p * n_features + f]
        for p in range(m, _BLOCK):
            for f in range(n_features):
                buf[f, p] = 0


def _masked_stores() -> bool:
    """Whether numba compiles for a CPU with AVX-512 (cheap masked vector stores; see :func:`_block_argmin`).

    Reads the features numba is told to target (``NUMBA_CPU_FEATURES``) or,
    by default, the host's. numba's on-disk cache is keyed by the target CPU
    and its features, so a cached kernel was compiled with this same answer.
    """
    from llvmlite import binding
    from numba.core import config

    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return "+avx512f" in (config.CPU_FEATURES or "").split(",")
    try:
        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except Exception:  # llvmlite cannot read the features on some hosts: the select form, correct everywhere
        return False


#: Compile the argmin's index update as a masked store (AVX-512) rather than a select (elsewhere: AVX2 masked
#: stores are slow on some cores, NEON has none); a compile-time constant in the kernels.
MASKED_STORES = _masked_stores()


@njit(nogil=True, cache=True)
def _block_argmin(buf, centers, metric, dims, best, best_j, d):
    """Nearest center of each buffered point: ``best`` (its term) and ``best_j`` (its index, lowest on ties).

    With a compile-time number of features each distance is summed in
    registers and compared at once, vectorised across the block's points;
    otherwise it is built feature by feature in the scratch row ``d`` (_BLOCK,).
    Branch-free once vectorised: the index is replaced where strictly closer
    (a masked store with :data:`MASKED_STORES`, else a select) and the term
    is the minimum (the same value as a select: equal terms are equal). The
    differences are taken as ``center - point`` so that the point's load folds
    into the subtraction; squares and absolute values are the same either
    way, bit for bit. Measured at 1M x 3, k = 8 on AVX-512: 0.15 ms less per
    assignment than selects on both and ``point - center``.
    """
    for p in range(_BLOCK):
        best[p] = np.inf
        best_j[p] = 0
    for j in range(centers.shape[0]):
        jj = np.int32(j)
        c = centers[j]
        if not len(dims):  # generic: the distances built feature by feature in d
            _block_distances(buf, centers, j, metric, d)
        for p in range(_BLOCK):
            if len(dims):  # compile-time constant: summed in registers
                acc = buf.dtype.type(0)
                for f in range(len(dims)):
                    acc = _term(metric, acc, c[f] - buf[f, p])
            else:
                acc = d[p]
            if MASKED_STORES:  # compile-time constant too
                if acc < best[p]:
                    best_j[p] = jj
            else:
                best_j[p] = jj if acc < best[p] else best_j[p]
            best[p] = min(acc, best[p])


@njit(inline="always")
def _block_record(w, unit_weight, labels, m, best, best_j, objective):
    """Add the block's weighted terms to per-lane totals; return the mask of its changed labels.

    ``w`` and ``labels`` are the block's slices (``labels`` still the previous
    ones); ``objective`` (_BLOCK,) float64 holds one running total per lane.
    Bit p of the returned uint64 is set where ``best_j[p] != labels[p]``.
    """
    mask = np.uint64(0)
    for p in range(m):  # vectorised
        term = np.float64(best[p])
        objective[p] += term if unit_weight else np.float64(w[p]) * term
        mask |= np.uint64(best_j[p] != labels[p]) << np.uint64(p)
    return mask


@njit(nogil=True, cache=True)
def _block_sums(buf, w, unit_weight, m, best_j, dims, sums):
    """Add the block's weighted coordinates and weights to ``sums[best_j[p]]`` (float64)."""
    n_features = len(dims) if len(dims) else buf.shape[0]
    for p in range(m):
        j = best_j[p]
        wi = 1.0 if unit_weight else np.float64(w[p])
        for f in range(n_features):
            sums[j, f] += np.float64(buf[f, p]) if unit_weight else wi * buf[f, p]
        sums[j, n_features] += wi


@njit(inline="always")
def _block_relabel(buf, w, unit_weight, mask, labels, best_j, moves, dims, sums, lo, hist):
    """Write the new labels of the block's changed samples (bits of ``mask``); count them.

    With ``moves``, also move each one's weighted coordinates and weight from
    the sums of its old cluster (none for label -1) to those of its new one;
    when ``hist`` (n_clusters, n_features, n_bins) has bins, move its unit
    counts of the integer values ``lo + b`` likewise: the block is still in
    the L1 buffer, so this costs no second read of X.
    """
    n_features = len(dims) if len(dims) else buf.shape[0]
    with_hist = hist.shape[2] > 0
    n_changed = 0
    while mask:  # visits the changed samples only, no per-sample branch
        p, mask = _pop_lowest(mask)
        new, old = best_j[p], labels[p]
        labels[p] = new
        n_changed += 1
        if moves:  # written out: a shared helper for the add and the subtract measured 40% slower here
            wi = 1.0 if unit_weight else np.float64(w[p])
            for f in range(n_features):
                sums[new, f] += np.float64(buf[f, p]) if unit_weight else wi * buf[f, p]
            sums[new, n_features] += wi
            if old >= 0:
                for f in range(n_features):
                    sums[old, f] -= np.float64(buf[f, p]) if unit_weight else wi * buf[f, p]
                sums[old, n_features] -= wi
        if with_hist:
            for f in range(n_features):
                b = np.int64(buf[f, p] - lo)
                hist[new, f, b] += 1.0
                if old >= 0:
                    hist[old, f, b] -= 1.0
    return n_changed


@njit(nogil=True, cache=True)
def _block_journal(mask, labels, b0, index, old, n_recorded):
    """Record the index (``b0 + p``) and previous label of the block's changed samples (bits of ``mask``).

    ``index`` and ``old`` (cap,) receive them while there is room; returns the
    count so far, above ``cap`` once a change found no room (the journal is
    then incomplete, and the caller stops recording).
    """
    cap = index.shape[0]
    while mask:
        p, mask = _pop_lowest(mask)
        if n_recorded < cap:
            index[n_recorded] = b0 + p
            old[n_recorded] = labels[p]
        n_recorded += 1
    return n_recorded


@njit(nogil=True, cache=True)
def _assign_range(
    X,
    sample_weight,
    centers,
    metric,
    labels,
    start,
    stop,
    accumulate,
    unit_weight,
    dims,
    sums,
    lo=0.0,
    hist=None,
    journal=None,
):
    """Assign points ``start .. stop`` to their nearest center.

    IN: X, sample_weight, centers, metric, start, stop, unit_weight (every
    weight is 1: skip the products), dims (see :func:`feature_token`),
    accumulate (0: no sums, 1: sums of the new assignment, 2: their change
    from the previous one, see :func:`_block_relabel`).
    INOUT: labels (previous labels in, nearest-center labels out).
    OUT: sums (n_clusters, n_features + 1) float64: per-cluster weighted sums of
    coordinates and, in the last column, of weights (or their change); hist
    (n_clusters, n_features, n_bins) float64: the change of the unit-weight
    histograms of the integer values ``lo + b`` (optional); journal: optional
    ``(index, old, count)``, (cap,) int64 and int32 rows and a (1,) int64
    cell: the index and previous label of each sample whose label changes,
    and their number; above ``cap``: not all of them (see :func:`_block_journal`).
    Returns (weighted objective, number of labels that changed).
    """
    n_features = X.shape[1]
    if hist is None:
        hist = np.zeros((0, 0, 0))
    buf = np.empty((n_features, _BLOCK), dtype=X.dtype)
    d = np.empty(_BLOCK, dtype=X.dtype)
    best = np.empty(_BLOCK, dtype=X.dtype)
    best_j = np.empty(_BLOCK, dtype=np.int32)
    objective = np.zeros(_BLOCK)
    n_changed = 0
    n_recorded = 0
    flat = X.reshape(-1)
    for b0 in range(start, stop, _BLOCK):
        m = min(_BLOCK, stop - b0)
        _load_block_flat(flat[b0 * n_features : (b0 + m) * n_features], m, buf, dims)
        _block_argmin(buf, centers, metric, dims, best, best_j, d)
        w = sample_weight[b0 : b0 + m]
        block_labels = labels[b0 : b0 + m]
        if accumulate == 1:
            _block_sums(buf, w, unit_weight, m, best_j, dims, sums)
        mask = _block_record(w, unit_weight, block_labels, m, best, best_j, objective)
        if journal is not None and mask and n_recorded <= journal[0].shape[0]:  # once full, only marked so
            n_recorded = _block_journal(mask, block_labels, b0, journal[0], journal[1], n_recorded)
        n_changed += _block_relabel(
            buf, w, unit_weight, mask, block_labels, best_j, accumulate == 2, dims, sums, lo, hist
        )
    if journal is not None:
        journal[2][0] = n_recorded
    return objective.sum(), n_changed


@njit(parallel=PRANGE_ONLY, cache=True)
def assign_kernel(
    X, sample_weight, centers, metric, labels, accumulate, unit_weight, dims, lo, n_bins, n_slots, journal
):
    """Fused distance + argmin (+ weighted sums or their change: ``accumulate`` 1 or 2) over all samples.

    See :func:`assign`, which picks ``accumulate``, ``dims``, ``n_slots``
    (numba's thread count) and ``journal``: ``(index, old, count)``,
    (n_chunks, cap) int64 and int32 and (n_chunks,) int64 (see
    :func:`n_chunks_for`), one row per chunk, as in :func:`_assign_range`
    (cap 0: nothing recorded). With ``accumulate`` and ``n_bins`` > 0, also
    returns the change of the unit-weight histograms of the integer values
    ``lo .. lo + n_bins - 1`` (n_clusters, n_features, n_bins); else that
    array is empty.

    The chunks are split into ``n_slots`` contiguous groups, one parallel
    iteration each. Sums and objectives are kept per chunk and added in chunk
    order (float: the order matters); the histogram changes, integer counts
    exact in any order, per group, so that only ``n_slots`` copies are zeroed
    and added up however few samples move.
    """
    n_samples, n_features = X.shape
    n_clusters = centers.shape[0]
    n_chunks = n_chunks_for(n_samples)
    n_slots = max(1, min(n_slots, n_chunks))
    partial = np.zeros((n_chunks, n_clusters, n_features + 1))
    n_bins = n_bins if accumulate else 0
    partial_hist = np.zeros((n_slots, n_clusters, n_features, n_bins))
    objectives = np.zeros(n_chunks)
    changed = np.zeros(n_chunks, dtype=np.int64)
    for s in prange(n_slots):
        first, last = _chunk(n_chunks, n_slots, s)
        for c in range(first, last):
            start, stop = _chunk(n_samples, n_chunks, c)
            objectives[c], changed[c] = _assign_range(
                X,
                sample_weight,
                centers,
                metric,
                labels,
                start,
                stop,
                accumulate,
                unit_weight,
                dims,
                partial[c],
                lo,
                partial_hist[s],
                (journal[0][c], journal[1][c], journal[2][c : c + 1]),
            )
    sums = np.zeros((n_clusters, n_features + 1))
    hist = np.zeros((n_clusters, n_features, n_bins))
    objective = 0.0
    n_changed = 0
    for c in range(n_chunks):
        sums += partial[c]
        objective += objectives[c]
        n_changed += changed[c]
    for s in range(n_slots if n_bins else 0):
        hist += partial_hist[s]
    return objective, n_changed, sums, hist


def new_journal(n_samples: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An empty journal for :func:`assign` on ``n_samples``: room for ``cap`` changed labels per chunk."""
    n_chunks = n_chunks_for(n_samples)
    return (
        np.empty((n_chunks, cap), dtype=np.int64),
        np.empty((n_chunks, cap), dtype=np.int32),
        np.zeros(n_chunks, dtype=np.int64),
    )


def journal_complete(journal) -> bool:
    """Whether every label change of the last :func:`assign` given ``journal`` is recorded in it."""
    return bool((journal[2] <= journal[0].shape[1]).all())


@njit(nogil=True, cache=True)
def revert_assign(X, labels, index, old, count, lo, hist):
    """Undo the label changes recorded in a complete journal of :func:`assign`: ``labels[index] = old``.

    ``hist`` (n_clusters, n_features, n_bins), when it has bins, gets the
    unit counts of the integer values ``lo + b`` of those samples moved back
    too (as :func:`assign` moved them given ``histogram``).
    """
    with_hist = hist.shape[2] > 0
    for c in range(index.shape[0]):
        for e in range(count[c]):
            i = index[c, e]
            new, previous = labels[i], old[c, e]
            labels[i] = previous
            if with_hist:
                for f in range(X.shape[1]):
                    b = np.int64(X[i, f] - lo)
                    hist[new, f, b] -= 1.0
                    if previous >= 0:
                        hist[previous, f, b] += 1.0


def assign(
    X,
    sample_weight,
    centers,
    metric,
    labels,
    accumulate,
    unit_weight=False,
    previous=None,
    histogram=None,
    journal=None,
):
    """Fused distance + argmin (+ weighted sums) over all samples; no n x k matrix.

    Parameters
    ----------
    X : (n_samples, n_features) float array
    sample_weight : (n_samples,) array, dtype of X
    centers : (n_clusters, n_features) array, dtype of X
    metric : int
    labels : (n_samples,) int32, INOUT
    accumulate : bool
        Also return the weighted per-cluster sums of the new assignment.
    unit_weight : bool
        The caller knows every weight is 1 (the products are skipped; same results).
    previous : (n_clusters, n_features + 1) float64 array, optional
        The sums of the labels passed in (with ``accumulate``). The kernel then
        only visits the samples whose label changes, moving their coordinates
        and weights from the old cluster's sums to the new one's, and returns
        ``previous`` plus that change: equal to the full sums in exact
        arithmetic, and bit for bit when every partial sum is an integer below
        2**53 (integer data, unit or integer weights).
    histogram : (hist, lo), optional
        With ``accumulate`` and unit weights: ``hist`` (n_clusters, n_features,
        n_bins) float64 counts the integer values ``lo + b`` of X per cluster
        for the labels passed in; the relabelled samples are moved in it too,
        in place, so it counts the new labels on return (exact: integer counts).
        Its cells times numba's thread count should stay within
        :data:`MOVES_HISTOGRAM_CELLS` (each thread zeroes its own); see
        :func:`moves_in_assign`.
    journal : tuple, optional
        From :func:`new_journal` for ``n_samples``: records the index and
        previous label of the samples whose label changes (per chunk, while
        there is room), so that :func:`revert_assign` can undo this call when
        :func:`journal_complete` says so.

    Returns
    -------
    objective : float
    n_changed : int
    sums : (n_clusters, n_features + 1) float64
        Weighted coordinate sums and, in the last column, the cluster weights
        (zeros if not ``accumulate``).
    """
    token = feature_token(X.shape[1])
    if journal is None:
        journal = new_journal(X.shape[0], 0)
    elif journal[2].shape[0] != n_chunks_for(X.shape[0]):
        raise ValueError("The journal was made for another number of samples (see new_journal).")
    mode = 0 if not accumulate else (1 if previous is None else 2)
    hist, lo = (None, 0.0) if histogram is None or mode == 0 or not unit_weight else histogram
    n_bins = 0 if hist is None else hist.shape[2]
    objective, n_changed, sums, delta = assign_kernel(
        X,
        sample_weight,
        centers,
        metric,
        labels,
        mode,
        unit_weight,
        token,
        float(lo),
        n_bins,
        numba.get_num_threads(),
        journal,
    )
    if mode == 2:
        sums += previous
    if n_bins:
        hist += delta
    return objective, n_changed, sums


def assign_serial(
    X, sample_weight, centers, metric, labels, accumulate, unit_weight=False, previous=None, histogram=None
):
    """:func:`assign` on the calling thread only (no parallel launch; releases the GIL).

    ``histogram`` is moved in place as in :func:`assign`, with no limit on its size.
    """
    sums = np.zeros((centers.shape[0], X.shape[1] + 1))
    token = feature_token(X.shape[1])
    mode = 0 if not accumulate else (1 if previous is None else 2)
    if histogram is None or mode == 0 or not unit_weight:
        objective, n_changed = _assign_range(
            X, sample_weight, centers, metric, labels, 0, X.shape[0], mode, unit_weight, token, sums
        )
    else:
        hist, lo = histogram
        objective, n_changed = _assign_range(
            X, sample_weight, centers, metric, labels, 0, X.shape[0], mode, unit_weight, token, sums, float(lo), hist
        )
    if mode == 2:
        sums += previous
    return objective, n_changed, sums


@njit(nogil=True, cache=True)
def _pairwise_range(X, centers, metric, start, stop, out):
    n_features = X.shape[1]
    buf = np.empty((n_features, _BLOCK), dtype=X.dtype)
    d = np.empty(_BLOCK, dtype=X.dtype)
    flat = X.reshape(-1)
    for b0 in range(start, stop, _BLOCK):
        m = min(_BLOCK, stop - b0)
        _load_block_flat(flat[b0 * n_features : (b0 + m) * n_features], m, buf, ())
        for j in range(centers.shape[0]):
            _block_distances(buf, centers, j, metric, d)
            for p in range(m):
                out[b0 + p, j] = d[p]


@njit(parallel=PRANGE_ONLY, cache=True)
def pairwise(X, centers, metric):
    """Objective term between every sample and every center.

    Returns
    -------
    out : (n_samples, n_centers) array, dtype of X
        Squared distances for euclidean, distances otherwise.
    """
    n_samples = X.shape[0]
    out = np.empty((n_samples, centers.shape[0]), dtype=X.dtype)
    n_parts = max(1, min(4 * _N_CHUNKS, n_samples // 1024))
    for c in prange(n_parts):
        start, stop = _chunk(n_samples, n_parts, c)
        _pairwise_range(X, centers, metric, start, stop, out)
    return out


@njit(nogil=True, cache=True)
def _point_costs_range(X, centers, metric, labels, start, stop, dims, out):
    """``out[i]`` = term between ``X[i]`` and ``centers[labels[i]]`` for ``start <= i < stop``."""
    n_features = len(dims) if len(dims) else X.shape[1]
    for i in range(start, stop):
        j = labels[i]
        acc = X.dtype.type(0)
        for f in range(n_features):
            acc = _term(metric, acc, X[i, f] - centers[j, f])
        out[i] = acc


@njit(parallel=PRANGE_ONLY, cache=True)
def point_costs_kernel(X, centers, metric, labels, dims):
    """See :func:`point_costs`; ``dims`` from :func:`feature_token`."""
    n_samples = X.shape[0]
    out = np.empty(n_samples, dtype=X.dtype)
    n_chunks = n_chunks_for(n_samples)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _point_costs_range(X, centers, metric, labels, start, stop, dims, out)
    return out


def point_costs(X, centers, metric, labels):
    """Objective term between each sample and its own center ``centers[labels[i]]``.

    Returns
    -------
    out : (n_samples,) array, dtype of X
    """
    return point_costs_kernel(X, centers, metric, labels, feature_token(X.shape[1]))


_SLOTS = 4  # accumulators per (cluster, set): consecutive samples of one cluster add to different ones


@njit(nogil=True, cache=True)
def _objectives_range(X, sample_weight, labels, lanes, metric, start, stop, stride, dims, out):
    """Add ``w_i * term(X[i], lanes[labels[i], :, s])`` to ``out[labels[i], i % _SLOTS, s]`` for every lane s.

    Visits the samples of the runs ``r * stride`` (``start <= r < stop``) of
    ``SAMPLE_RUN`` samples; ``stride`` 1: the samples ``start .. stop``. The
    candidate sets are the vector lanes of :func:`._lanes.add_terms`. Imagery
    has long runs of one label: rotating over ``_SLOTS`` accumulators keeps
    each addition from waiting for the previous one.
    """
    if stride == 1:
        for i in range(start, stop):
            add_terms(metric, X, i, np.float64(sample_weight[i]), lanes, labels[i], i & (_SLOTS - 1), out, dims)
        return
    for r in range(start, stop):
        first = r * stride * SAMPLE_RUN
        for i in range(first, min(first + SAMPLE_RUN, X.shape[0])):
            add_terms(metric, X, i, np.float64(sample_weight[i]), lanes, labels[i], i & (_SLOTS - 1), out, dims)


@njit(parallel=PRANGE_ONLY, cache=True)
def cluster_objectives_kernel(X, sample_weight, labels, candidates, metric, stride, dims):
    """See :func:`cluster_objectives`; at most :data:`LANES` candidate sets."""
    run = 1 if stride == 1 else SAMPLE_RUN
    n_runs = (X.shape[0] + run * stride - 1) // (run * stride)  # the runs that start below n_samples
    n_sets, n_clusters, n_features = candidates.shape
    lanes = np.zeros((n_clusters, n_features, LANES), dtype=X.dtype)  # lanes[j, f, s] = candidates[s, j, f]
    for s in range(n_sets):
        for j in range(n_clusters):
            for f in range(n_features):
                lanes[j, f, s] = candidates[s, j, f]
    n_chunks = n_chunks_for(n_runs * run)
    partial = np.zeros((n_chunks, n_clusters, _SLOTS, LANES))
    for c in prange(n_chunks):
        start, stop = _chunk(n_runs, n_chunks, c)
        _objectives_range(X, sample_weight, labels, lanes, metric, start, stop, stride, dims, partial[c])
    out = np.zeros((n_sets, n_clusters))
    for c in range(n_chunks):
        for s in range(n_sets):
            for j in range(n_clusters):
                for slot in range(_SLOTS):
                    out[s, j] += partial[c, j, slot, s]
    return out


def cluster_objectives(X, sample_weight, labels, candidates, metric, stride=1):
    """Per-cluster weighted objective of several candidate center sets, in one pass per :data:`LANES` sets.

    The sets are the vector lanes of one pass (see :mod:`._lanes`): the
    guarded update's three cost one pass, each coordinate loaded once. A set
    equal to another gets the same value, bit for bit: its terms are added in
    the same order.

    Parameters
    ----------
    X : (n_samples, n_features) array
    sample_weight : (n_samples,) array
    labels : (n_samples,) int32
    candidates : (n_sets, n_clusters, n_features) array
        Converted to X's dtype (the terms are computed in it).
    metric : int
    stride : int, default=1
        Sum over the systematic sample of every ``stride``-th run of
        :data:`SAMPLE_RUN` consecutive samples only: the samples ``i`` with
        ``(i // SAMPLE_RUN) % stride == 0`` (1: all of them).

    Returns
    -------
    out : (n_sets, n_clusters) float64
        ``out[s, j] = sum_{i in sample, labels[i] == j} w_i * term(X[i], candidates[s, j])``.
    """
    candidates = np.ascontiguousarray(candidates, dtype=X.dtype)  # the terms are computed in X's dtype
    stride, token = max(1, int(stride)), feature_token(X.shape[1])
    out = np.zeros(candidates.shape[:2])
    for g in range(0, candidates.shape[0], LANES):
        out[g : g + LANES] = cluster_objectives_kernel(
            X, sample_weight, labels, candidates[g : g + LANES], metric, stride, token
        )
    return out


@njit(parallel=PRANGE_ONLY, cache=True)
def label_counts(labels, n_clusters):
    """(n_clusters,) int64: the number of samples with each label (labels outside ``[0, n_clusters)`` not counted).

    Up to 32 clusters, each block of 1024 labels is compared with every label
    in turn (vector compares, no scatter); beyond, each label is counted into
    one of ``_SLOTS`` rows in turn, so that long runs of one label (imagery) do
    not make every increment wait for the previous one.
    """
    n_samples = labels.shape[0]
    n_chunks = n_chunks_for(n_samples)
    partial = np.zeros((n_chunks, _SLOTS, n_clusters), dtype=np.int64)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        counts = partial[c]
        if n_clusters <= 32:
            for b0 in range(start, stop, 1024):
                block = labels[b0 : min(b0 + 1024, stop)]
                for j in range(n_clusters):
                    same = 0
                    for p in range(block.shape[0]):
                        same += np.int32(block[p] == j)
                    counts[0, j] += same
        else:
            for i in range(start, stop):
                j = labels[i]
                if j >= 0 and j < n_clusters:
                    counts[i % _SLOTS, j] += 1
    out = np.zeros(n_clusters, dtype=np.int64)
    for c in range(n_chunks):
        for slot in range(_SLOTS):
            out += partial[c, slot]
    return out


@njit(nogil=True, cache=True)
def _sums_range(X, sample_weight, labels, start, stop, sums):
    n_features = X.shape[1]
    for i in range(start, stop):
        j = labels[i]
        wi = np.float64(sample_weight[i])
        for f in range(n_features):
            sums[j, f] += wi * X[i, f]
        sums[j, n_features] += wi


@njit(parallel=PRANGE_ONLY, cache=True)
def weighted_sums(X, sample_weight, labels, n_clusters):
    """Per-cluster weighted coordinate sums and weights.

    Returns
    -------
    sums : (n_clusters, n_features + 1) float64
        Last column: total weight of each cluster.
    """
    n_samples, n_features = X.shape
    n_chunks = n_chunks_for(n_samples)
    partial = np.zeros((n_chunks, n_clusters, n_features + 1))
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _sums_range(X, sample_weight, labels, start, stop, partial[c])
    sums = np.zeros((n_clusters, n_features + 1))
    for c in range(n_chunks):
        sums += partial[c]
    return sums


@njit(nogil=True, cache=True)
def _weighted_median_1d(values, weights):
    """Weighted median of ``values`` with positive ``weights`` (both float64, reordered in place).

    With the values sorted and S_i their cumulative weight, the median is the
    first v_i with S_i >= W / 2; when S_i == W / 2 exactly, the midpoint of v_i
    and the next larger value (so unit weights give :func:`numpy.median`).
    Weighted quickselect: expected O(m), three-way partitions around a
    median-of-three pivot, so runs of equal values (imagery) cost one pass.
    """
    return _weighted_select(values, weights, 0.0, 0.5 * weights.sum(), np.inf)


@njit(nogil=True, cache=True)
def _weighted_select(values, weights, below, half, next_above):
    """The weighted median rule of :func:`_weighted_median_1d` applied to a slice of a sorted order.

    ``values`` (reordered in place) are the members lying between the
    ``below`` weight of smaller ones and larger ones whose smallest value is
    ``next_above`` (inf if none); ``half`` is half the total weight.
    """
    lo, hi = 0, values.shape[0]
    while True:
        if lo >= hi:  # only by rounding of weights summed in other orders: the largest value seen
            return values[hi - 1] if hi > 0 else next_above
        a, b, c = values[lo], values[(lo + hi) // 2], values[hi - 1]
        pivot = max(min(a, b), min(max(a, b), c))
        # three-way partition of [lo, hi): [lo, lt) < pivot, [lt, gt) == pivot, [gt, hi) > pivot
        lt, i, gt = lo, lo, hi
        w_less = 0.0
        w_equal = 0.0
        while i < gt:
            v = values[i]
            if v < pivot:
                w_less += weights[i]
                values[i], values[lt] = values[lt], v
                weights[i], weights[lt] = weights[lt], weights[i]
                lt += 1
                i += 1
            elif v > pivot:
                gt -= 1
                values[i], values[gt] = values[gt], v
                weights[i], weights[gt] = weights[gt], weights[i]
            else:
                w_equal += weights[i]
                i += 1
        if below + w_less >= half and lt > lo:
            hi = lt
            next_above = pivot
        elif below + w_less + w_equal >= half:
            if below + w_less + w_equal == half:
                upper = next_above
                for r in range(gt, hi):
                    upper = min(upper, values[r])
                if upper < np.inf:
                    return 0.5 * (pivot + upper)
            return pivot
        else:
            below += w_less + w_equal
            lo = gt


@njit(parallel=PRANGE_ONLY, cache=True)
def weighted_median(X, sample_weight, labels, n_clusters):
    """Per-cluster weighted coordinate-wise median (samples with weight 0 ignored).

    Returns
    -------
    medians : (n_clusters, n_features) float64
        NaN for a cluster with no positive weight.
    weights : (n_clusters,) float64
        Total weight of each cluster.
    """
    n_samples, n_features = X.shape
    counts = np.zeros(n_clusters + 1, dtype=np.int64)
    weights = np.zeros(n_clusters)
    for i in range(n_samples):
        if sample_weight[i] > 0:
            counts[labels[i] + 1] += 1
            weights[labels[i]] += sample_weight[i]
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    order = np.empty(offsets[-1], dtype=np.int64)
    for i in range(n_samples):  # counting sort of the samples by cluster
        if sample_weight[i] > 0:
            j = labels[i]
            order[fill[j]] = i
            fill[j] += 1
    medians = np.full((n_clusters, n_features), np.nan)
    for t in prange(n_clusters * n_features):
        j = t // n_features
        f = t % n_features
        lo, hi = offsets[j], offsets[j + 1]
        if hi > lo:
            idx = order[lo:hi]
            values = np.empty(hi - lo)
            ws = np.empty(hi - lo)
            for r in range(hi - lo):
                values[r] = X[idx[r], f]
                ws[r] = sample_weight[idx[r]]
            medians[j, f] = _weighted_median_1d(values, ws)
    return medians, weights


_MAX_BUCKETS = 2048  # value buckets per (cluster, feature) of :func:`weighted_median_buckets`, at most
_BUCKET_BYTES = 1 << 20  # float64 weights + int64 counts of one chunk's buckets: about an L2 cache
_BUCKET_CHUNKS = 4  # fixed sample chunks (results do not depend on threads), each with its own histograms
#: Largest clusters x features for :func:`weighted_median_buckets` (at 64 buckets, 4 chunks of 4 MiB of
#: histograms); more use :func:`weighted_median`.
MAX_BUCKET_CELLS = 1 << 12


@njit(inline="always")
def _bucket(v, lo, scale, n_buckets):
    """Bucket of value ``v``: non-decreasing in ``v`` (so a higher bucket holds only larger values)."""
    return min(np.int64((np.float64(v) - lo) * scale), n_buckets - 1)


@njit(nogil=True, cache=True)
def _range_of_features(X, start, stop, lo, hi):
    """``lo``/``hi`` (n_features,) float64: the least and greatest value of each feature in samples ``start .. stop``.

    Accumulated in local arrays and written once: the chunks' rows of the
    caller's arrays share cache lines.
    """
    low = np.full(X.shape[1], np.inf)
    high = np.full(X.shape[1], -np.inf)
    for i in range(start, stop):
        for f in range(X.shape[1]):
            v = np.float64(X[i, f])
            low[f] = min(low[f], v)
            high[f] = max(high[f], v)
    lo[:] = low
    hi[:] = high


@njit(nogil=True, cache=True)
def _bucket_hist_range(X, sample_weight, labels, lo, scale, start, stop, hist, count):
    """Weights and counts of the members of each (cluster, feature) per value bucket, samples ``start .. stop``."""
    for i in range(start, stop):
        wi = np.float64(sample_weight[i])
        if wi > 0:
            j = labels[i]
            for f in range(X.shape[1]):
                b = _bucket(X[i, f], lo[f], scale[f], hist.shape[2])
                hist[j, f, b] += wi
                count[j, f, b] += 1


@njit(nogil=True, cache=True)
def _bucket_collect_range(
    X, sample_weight, labels, lo, scale, n_buckets, start, stop, target, following, pos, values, weights, above
):
    """Copy the members lying in the median's bucket of their (cluster, feature); the smallest value above it.

    ``pos[j, f]`` is where this chunk writes its next member of (j, f) in
    ``values``/``weights``; ``above[j, f]`` receives the smallest member value
    of a higher bucket, which lies in the first higher bucket with members,
    ``following[j, f]`` (-1: none). Both tests are rarely true, so the
    branches are predicted well (a test on every higher member was not: half
    the values). Worked on in local copies (the chunks' rows share cache lines).
    """
    caller_above = above
    pos = pos.copy()
    above = above.copy()
    for i in range(start, stop):
        wi = np.float64(sample_weight[i])
        if wi > 0:
            j = labels[i]
            for f in range(X.shape[1]):
                v = np.float64(X[i, f])
                b = _bucket(v, lo[f], scale[f], n_buckets)
                if b == target[j, f]:
                    p = pos[j, f]
                    values[p] = v
                    weights[p] = wi
                    pos[j, f] = p + 1
                elif b == following[j, f] and v < above[j, f]:
                    above[j, f] = v
    caller_above[...] = above


@njit(parallel=PRANGE_ONLY, cache=True)
def feature_ranges(X):
    """(lo, hi): (n_features,) float64 least and greatest value of each feature."""
    n_samples, n_features = X.shape
    n_chunks = max(1, min(_BUCKET_CHUNKS, n_samples // _MIN_CHUNK))
    lows = np.full((n_chunks, n_features), np.inf)
    highs = np.full((n_chunks, n_features), -np.inf)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _range_of_features(X, start, stop, lows[c], highs[c])
    lo = np.empty(n_features)
    hi = np.empty(n_features)
    for f in range(n_features):
        lo[f] = lows[:, f].min()
        hi[f] = highs[:, f].max()
    return lo, hi


@njit(cache=True)
def _bucket_layout(n_samples, n_clusters, n_features, lo, hi):
    """(n_chunks, n_buckets, scale) of the bucket select: fixed by the sizes and the feature ranges."""
    n_chunks = max(1, min(_BUCKET_CHUNKS, n_samples // _MIN_CHUNK))
    n_buckets = _MAX_BUCKETS  # fewer for many clusters x features, so that a chunk's buckets stay in cache
    while n_buckets > 64 and n_clusters * n_features * n_buckets * 16 > _BUCKET_BYTES:
        n_buckets //= 2
    scale = np.zeros(n_features)
    for f in range(n_features):
        width = hi[f] - lo[f]
        if width > 0 and np.isfinite(width):
            scale[f] = n_buckets / width
    return n_chunks, n_buckets, scale


@njit(parallel=PRANGE_ONLY, cache=True)
def bucket_histograms(X, sample_weight, labels, n_clusters, lo, hi):
    """Pass 1 of :func:`weighted_median_buckets`: per sample chunk, the weight and count of each bucket.

    Returns
    -------
    hist : (n_chunks, n_clusters, n_features, n_buckets) float64
    count : (n_chunks, n_clusters, n_features, n_buckets) int64
        Members of positive weight of each (cluster, feature) per value bucket.
    """
    n_samples, n_features = X.shape
    n_chunks, n_buckets, scale = _bucket_layout(n_samples, n_clusters, n_features, lo, hi)
    hist = np.zeros((n_chunks, n_clusters, n_features, n_buckets))
    count = np.zeros((n_chunks, n_clusters, n_features, n_buckets), dtype=np.int64)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _bucket_hist_range(X, sample_weight, labels, lo, scale, start, stop, hist[c], count[c])
    return hist, count


@njit(parallel=PRANGE_ONLY, cache=True)
def _bucket_moves(X, labels, previous, lo, hi, count):
    n_samples, n_features = X.shape
    n_chunks, n_buckets, scale = _bucket_layout(n_samples, count.shape[1], n_features, lo, hi)
    if count.shape[0] != n_chunks or count.shape[3] != n_buckets:
        raise ValueError("count was made for another bucket layout (see bucket_histograms)")
    index, old, moved = moved_samples(labels, previous, n_chunks)
    for f in prange(n_features):  # each feature's cells belong to one thread
        for c in range(n_chunks):
            start = _chunk(n_samples, n_chunks, c)[0]
            for m in range(start, start + moved[c]):
                i = index[m]
                b = _bucket(X[i, f], lo[f], scale[f], n_buckets)
                count[c, labels[i], f, b] += 1
                if old[m] >= 0:
                    count[c, old[m], f, b] -= 1


def bucket_moves(X, labels, previous, lo, hi, count):
    """Bring the unit-weight bucket counts of the labels ``previous`` up to date with ``labels``.

    IN: X, labels, lo, hi (as given to :func:`bucket_histograms`).
    INOUT: previous (n_samples,) int32, the labels ``count`` counts, set to
    ``labels``; count (n_chunks, n_clusters, n_features, n_buckets) int64 from
    :func:`bucket_histograms` (every weight 1), each relabelled sample moved
    from its old cluster's buckets to its new one's. Counts are integers: the
    result equals :func:`bucket_histograms`'s exactly.
    """
    _bucket_moves(X, labels, previous, lo, hi, count)


@njit(parallel=PRANGE_ONLY, cache=True)
def medians_from_buckets(X, sample_weight, labels, n_clusters, lo, hi, hist, count):
    """Pass 2 and the selects of :func:`weighted_median_buckets`, from pass 1's ``hist`` and ``count``.

    ``hist``/``count``: from :func:`bucket_histograms` (or kept up to date by
    :func:`bucket_moves`, with ``hist`` the counts as float64, for unit
    weights). Returns ``(medians, weights)`` as :func:`weighted_median`.
    """
    n_samples, n_features = X.shape
    n_chunks, n_buckets, scale = _bucket_layout(n_samples, n_clusters, n_features, lo, hi)
    if hist.shape != (n_chunks, n_clusters, n_features, n_buckets) or count.shape != hist.shape:
        raise ValueError("hist and count were made for another bucket layout (see bucket_histograms)")
    total = hist[0].copy()
    for c in range(1, n_chunks):
        total += hist[c]
    weights = np.zeros(n_clusters)
    for j in range(n_clusters):
        weights[j] = total[j, 0].sum()
    # the bucket holding each median, the weight below it, and where its members go
    target = np.zeros((n_clusters, n_features), dtype=np.int64)
    below = np.zeros((n_clusters, n_features))
    start_of = np.zeros((n_clusters, n_features), dtype=np.int64)
    size = np.zeros((n_clusters, n_features), dtype=np.int64)
    following = np.full((n_clusters, n_features), -1, dtype=np.int64)
    n_kept = 0
    for j in range(n_clusters):
        half = 0.5 * weights[j]
        for f in range(n_features):
            cum = 0.0
            chosen = -1
            last = 0
            last_cum = 0.0
            for b in range(n_buckets):
                h = total[j, f, b]
                if h > 0:
                    last, last_cum = b, cum
                    if cum + h >= half:
                        chosen = b
                        break
                    cum += h
            if chosen < 0:  # only by rounding: the highest bucket with members
                chosen, cum = last, last_cum
            target[j, f] = chosen
            below[j, f] = cum
            start_of[j, f] = n_kept
            for c in range(n_chunks):
                size[j, f] += count[c, j, f, chosen]
            n_kept += size[j, f]
            for b in range(chosen + 1, n_buckets):  # the first higher bucket with members holds the next value
                members = 0
                for c in range(n_chunks):
                    members += count[c, j, f, b]
                if members > 0:
                    following[j, f] = b
                    break
    pos = np.zeros((n_chunks, n_clusters, n_features), dtype=np.int64)
    for j in range(n_clusters):
        for f in range(n_features):
            p = start_of[j, f]
            for c in range(n_chunks):
                pos[c, j, f] = p
                p += count[c, j, f, target[j, f]]
    values = np.empty(n_kept)
    member_weights = np.empty(n_kept)
    above = np.full((n_chunks, n_clusters, n_features), np.inf)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _bucket_collect_range(
            X,
            sample_weight,
            labels,
            lo,
            scale,
            n_buckets,
            start,
            stop,
            target,
            following,
            pos[c],
            values,
            member_weights,
            above[c],
        )
    medians = np.full((n_clusters, n_features), np.nan)
    for t in prange(n_clusters * n_features):
        j = t // n_features
        f = t % n_features
        if weights[j] > 0:
            a = start_of[j, f]
            z = a + size[j, f]
            next_above = above[:, j, f].min()
            medians[j, f] = _weighted_select(
                values[a:z], member_weights[a:z], below[j, f], 0.5 * weights[j], next_above
            )
    return medians, weights


@njit(cache=True)
def weighted_median_buckets(X, sample_weight, labels, n_clusters, lo, hi):
    """:func:`weighted_median` by a bucket select: a few passes over X, whatever the values.

    Each feature's range is cut into equal buckets (up to 2048, fewer when
    there are many clusters x features). Pass 1 (:func:`bucket_histograms`)
    adds each member's weight to its bucket, per (cluster, feature); the
    bucket where the cumulative weight reaches half holds the median. Pass 2
    (:func:`medians_from_buckets`) copies the members of that bucket only (and
    finds the smallest value above it, for the midpoint rule), and a weighted
    quickselect finishes there. Same rule and result as
    :func:`weighted_median` (exactly, for integer or unit weights; fractional
    weights are summed in another order). Meant for up to
    :data:`MAX_BUCKET_CELLS` clusters x features. ``lo``/``hi`` (n_features,)
    float64 bound every feature's values (:func:`feature_ranges`).
    """
    hist, count = bucket_histograms(X, sample_weight, labels, n_clusters, lo, hi)
    return medians_from_buckets(X, sample_weight, labels, n_clusters, lo, hi, hist, count)


_MAX_HIST_BINS = 1 << 16  # integer-valued data with a wider range (or too many cells) uses the quickselect
#: Bin limit of the other backends' histogram medians (GPU kernel, Dask chunk histograms sent to the client):
#: wider integer ranges take their exact sort / radix-select paths there.
HIST_BINS_SHIPPED = 4096
_HIST_BUDGET = 1 << 23  # float64 cells of one histogram (64 MiB): larger ones use the quickselect
_HIST_CHUNK_CELLS = 1 << 21  # float64 cells over all per-chunk histograms (16 MiB), at least 2 chunks


def histogram_bins(
    is_integer: bool, lo: float, hi: float, n_clusters: int, n_features: int, max_bins: int = _MAX_HIST_BINS
) -> int:
    """Bins for :func:`weighted_median_hist` on integer-valued data spanning ``[lo, hi]``; 0: use the quickselect.

    Up to ``max_bins`` bins (65,536 here: uint16 imagery) and ``_HIST_BUDGET`` cells in one histogram.
    """
    if not is_integer or hi - lo >= max_bins:
        return 0
    n_bins = int(hi - lo) + 1
    return n_bins if n_clusters * n_features * n_bins <= _HIST_BUDGET else 0


@njit(nogil=True, cache=True)
def _integer_range_range(X, start, stop):
    lo = np.inf
    hi = -np.inf
    for i in range(start, stop):
        for f in range(X.shape[1]):
            v = X[i, f]
            if v != np.floor(v):
                return False, 0.0, 0.0
            lo = min(lo, v)
            hi = max(hi, v)
    return True, float(lo), float(hi)


@njit(parallel=PRANGE_ONLY, cache=True)
def integer_range(X):
    """(True, min, max) if every value of X is an integer, else (False, 0, 0).

    Each chunk stops at its first non-integer, so float data costs almost nothing.
    """
    n_samples = X.shape[0]
    n_chunks = n_chunks_for(n_samples)
    ok = np.zeros(n_chunks, dtype=np.bool_)
    los = np.empty(n_chunks)
    his = np.empty(n_chunks)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        ok[c], los[c], his[c] = _integer_range_range(X, start, stop)
    if not ok.all():
        return False, 0.0, 0.0
    return True, los.min(), his.max()


@njit(cache=True)
def hist_chunks_for(n_samples, n_cells):
    """Chunks of the histogram median: as for sums, within ``_HIST_CHUNK_CELLS`` cells in all but at least 2.

    Each chunk zeroes and adds its own histogram, so wide histograms (uint16
    imagery: thousands of bins) get few chunks; the count depends only on the
    sizes, never on the thread count.
    """
    return max(1, min(n_chunks_for(n_samples), max(2, _HIST_CHUNK_CELLS // max(1, n_cells))))


@njit(nogil=True, cache=True)
def _hist_range(X, sample_weight, labels, lo, start, stop, hist):
    n_features = X.shape[1]
    for i in range(start, stop):
        wi = np.float64(sample_weight[i])
        if wi > 0:
            j = labels[i]
            for f in range(n_features):
                hist[j, f, np.int64(X[i, f] - lo)] += wi


@njit(nogil=True, cache=True)
def _hist_feature(X, sample_weight, labels, lo, f, hist):
    """Feature ``f`` of every sample into ``hist`` (its own loop: :func:`_hist_range` given a one-feature range
    compiled 2.5x slower here)."""
    for i in range(X.shape[0]):
        wi = np.float64(sample_weight[i])
        if wi > 0:
            hist[labels[i], f, np.int64(X[i, f] - lo)] += wi


@njit(parallel=PRANGE_ONLY, cache=True)
def histogram(X, sample_weight, labels, n_clusters, lo, n_bins):
    """Per-cluster, per-feature weighted histograms of integer-valued X (values ``lo .. lo + n_bins - 1``).

    Narrow histograms are counted per chunk of samples and added in chunk
    order; wide ones (fewer chunks than :func:`n_chunks_for` would give, see
    :func:`hist_chunks_for`) one feature per parallel iteration, in sample
    order, straight into the result: no per-chunk copy is zeroed and added,
    and each thread's increments stay within its features' cells (1M x 13
    uint16-like values, k = 32: 48 -> 19 ms). Either way the order of the
    additions depends only on the sizes, never on the thread count.

    Returns
    -------
    hist : (n_clusters, n_features, n_bins) float64
        Total weight of the members of each cluster with each value (samples
        of weight 0 ignored).
    """
    n_samples, n_features = X.shape
    n_chunks = hist_chunks_for(n_samples, n_clusters * n_features * n_bins)
    if n_features > 1 and n_chunks < n_chunks_for(n_samples):
        hist = np.zeros((n_clusters, n_features, n_bins))
        for f in prange(n_features):
            _hist_feature(X, sample_weight, labels, lo, f, hist)
        return hist
    partial = np.zeros((n_chunks, n_clusters, n_features, n_bins))
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        _hist_range(X, sample_weight, labels, lo, start, stop, partial[c])
    hist = partial[0].copy()
    for c in range(1, n_chunks):
        hist += partial[c]
    return hist


@njit(nogil=True, cache=True)
def _collect_moves_range(labels, previous, start, stop, index, old):
    """Record the samples ``start .. stop`` whose label differs from ``previous``; set ``previous`` to ``labels``.

    Their indices and previous labels go to ``index[start:]`` and
    ``old[start:]`` (one slot per sample of the range, so chunks never
    overlap); returns how many there are.
    """
    n_moved = 0
    for b0 in range(start, stop, _BLOCK):
        b1 = min(b0 + _BLOCK, stop)
        mask = _moved_mask(labels[b0:b1], previous[b0:b1], b1 - b0)
        while mask:
            p, mask = _pop_lowest(mask)
            i = b0 + p
            index[start + n_moved] = i
            old[start + n_moved] = previous[i]
            previous[i] = labels[i]
            n_moved += 1
    return n_moved


@njit(parallel=PRANGE_ONLY, cache=True)
def moved_samples(labels, previous, n_chunks):
    """The samples whose label differs from ``previous``, found chunk by chunk; ``previous`` set to ``labels``.

    Returns ``(index, old, counts)``: chunk ``c`` (of ``n_chunks``, see
    :func:`_chunk`) lists its ``counts[c]`` samples from its first sample's
    slot, their indices in ``index`` (n_samples,) int64 and previous labels in
    ``old`` (n_samples,) int32, in sample order. Shared by the in-place moves
    of the median histograms and of the bucket counts.
    """
    n_samples = labels.shape[0]
    index = np.empty(n_samples, dtype=np.int64)
    old = np.empty(n_samples, dtype=np.int32)
    counts = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        start, stop = _chunk(n_samples, n_chunks, c)
        counts[c] = _collect_moves_range(labels, previous, start, stop, index, old)
    return index, old, counts


@njit(parallel=PRANGE_ONLY, cache=True)
def _histogram_moves(X, labels, previous, lo, hist):
    n_samples, n_features = X.shape
    n_chunks = n_chunks_for(n_samples)
    index, old, counts = moved_samples(labels, previous, n_chunks)
    for f in prange(n_features):  # each feature's cells belong to one thread: no copies, no races
        for c in range(n_chunks):
            start = _chunk(n_samples, n_chunks, c)[0]
            for m in range(start, start + counts[c]):
                i = index[m]
                b = np.int64(X[i, f] - lo)
                hist[labels[i], f, b] += 1.0
                if old[m] >= 0:
                    hist[old[m], f, b] -= 1.0


def histogram_moves(X, labels, previous, lo, hist):
    """Bring unit-weight histograms of the labels ``previous`` up to date with ``labels``.

    IN: X (integer-valued), labels, lo.
    INOUT: previous (n_samples,) int32, the labels ``hist`` counts (-1: not
    counted), set to ``labels``; hist (n_clusters, n_features, n_bins) float64,
    each relabelled sample's values moved from its old cluster to its new one.

    A parallel pass over the labels lists the relabelled samples; their
    values are then moved in place, one feature per parallel iteration (each
    feature's cells are written by one thread), so no histogram is copied or
    zeroed however wide it is. Counts are integers, so the result equals
    :func:`histogram` exactly.
    """
    _histogram_moves(X, labels, previous, lo, hist)


@njit(nogil=True, cache=True)
def _median_of_bins(counts, half, lo):
    """The weighted median of one histogram row ``counts`` (n_bins,) of total weight ``2 * half`` > 0."""
    acc = 0.0
    n_bins = counts.shape[0]
    for b in range(n_bins):
        acc += counts[b]
        if acc >= half and counts[b] > 0:
            if acc == half:
                for b2 in range(b + 1, n_bins):
                    if counts[b2] > 0:
                        return lo + 0.5 * (b + b2)
            return lo + b
    return np.nan


@njit(nogil=True, cache=True)
def _histogram_weights(hist):
    """(n_clusters,) float64: each cluster's total weight (its first feature's row), summed in bin order."""
    weights = np.zeros(hist.shape[0])
    for j in range(hist.shape[0]):
        weights[j] = hist[j, 0].sum()
    return weights


@njit(nogil=True, cache=True)
def _medians_rows(hist, lo, weights, first, last, medians):
    """``medians[j, f]`` of the (cluster, feature) rows ``first .. last`` (row ``j * n_features + f``)."""
    n_features = hist.shape[1]
    for r in range(first, last):
        j, f = r // n_features, r % n_features
        if weights[j] > 0:
            medians[j, f] = _median_of_bins(hist[j, f], 0.5 * weights[j], lo)


@njit(cache=True)
def _medians_serial(hist, lo, weights, medians):
    _medians_rows(hist, lo, weights, 0, hist.shape[0] * hist.shape[1], medians)


@njit(parallel=PRANGE_ONLY, cache=True)
def _medians_parallel(hist, lo, weights, medians):
    for r in prange(hist.shape[0] * hist.shape[1]):
        _medians_rows(hist, lo, weights, r, r + 1, medians)


#: Histogram cells from which :func:`medians_from_histogram` scans its rows in parallel (below, the launch
#: costs more than it saves: 16 us against 3 us for 8 x 3 x 256 cells).
PARALLEL_MEDIAN_CELLS = 1 << 16


def medians_from_histogram(hist, lo):
    """Weighted medians from :func:`histogram` (definition of :func:`weighted_median`).

    Each (cluster, feature) row is scanned in bin order; wide histograms (at
    least :data:`PARALLEL_MEDIAN_CELLS` cells: uint16 bands, up to 24 MB read
    at 1M x 13, k = 32) one row per parallel iteration. The same result either
    way, whatever the thread count.

    Returns
    -------
    medians : (n_clusters, n_features) float64, NaN for clusters of no weight
    weights : (n_clusters,) float64
    """
    weights = _histogram_weights(hist)
    medians = np.full(hist.shape[:2], np.nan)
    scan = _medians_parallel if hist.size >= PARALLEL_MEDIAN_CELLS else _medians_serial
    scan(hist, float(lo), weights, medians)
    return medians, weights


def weighted_median_hist(X, sample_weight, labels, n_clusters, lo, n_bins):
    """Weighted coordinate-wise median of integer-valued X from per-cluster histograms, O(n).

    Same definition and result as :func:`weighted_median` (first value whose
    cumulative weight reaches half; midpoint on an exact half), for X whose
    values are integers in ``[lo, lo + n_bins)``.

    Returns
    -------
    medians : (n_clusters, n_features) float64, NaN for clusters of no weight
    weights : (n_clusters,) float64
    """
    return medians_from_histogram(histogram(X, sample_weight, labels, n_clusters, lo, n_bins), lo)
