"""Exact silhouette coefficients for euclidean, manhattan and chebyshev, in bounded memory.

For a sample ``i`` in cluster ``A`` (scikit-learn's definition)::

    a(i) = mean distance from i to the other members of A
    b(i) = min over clusters B != A of the mean distance from i to the members of B
    s(i) = (b(i) - a(i)) / max(a(i), b(i))

with ``s(i) = 0`` when ``A`` has a single member (and when ``a = b = 0``). The
silhouette score is the mean of ``s`` over the samples.

Everything reduces to the per-cluster sums of distances
``S[i, B] = sum_{j in B} d(i, j)``. They are computed exactly by one of three
paths and folded on the fly into the two numbers each sample needs (its
own-cluster sum and its smallest mean over the other clusters), so neither an
``n x n`` distance matrix nor the ``n x n_clusters`` matrix ``S`` is ever held:
memory is O(n d) for the (sorted) data plus O(tile) per thread.

``"brute"``
    All pairs, in tiles: a block of 64 query points sits transposed in an
    L1-resident buffer while the points of each cluster stream past, and each
    cluster's tile sum is reduced straight into the outputs. O(n² d) time.
``"dedup"``
    The brute-force kernel on the distinct ``(row, label)`` pairs only, each
    with its multiplicity as a weight (integer imagery repeats rows a lot: the
    179,400 pixels of the Aral crop hold ~22,000 distinct RGB vectors). A row's
    duplicates count in its cluster's size but add zero distance.
    O(m² d) for m distinct pairs.
``"sorted"`` (manhattan only)
    ``sum_j |x_f - y_jf|`` separates by band; for one band it is
    ``x W_< - P_< + P_> - x W_>`` with ``W``/``P`` the sums of weights / of
    weighted values below and above ``x``. Per (cluster, band): sorted distinct
    values and prefix sums; each sum is a binary search. O(n d k log n).
    Runs on the distinct pairs too.

The sums run on the CPU (numba) or, with ``backend="cuda"`` or CuPy input, on
the GPU (``backends/cuda/silhouette.cu`` for the pairwise paths, CuPy sorts and
binary searches for ``"sorted"``); validation, grouping and deduplication run on
the host in both cases.

``algorithm="auto"`` picks ``"sorted"`` for manhattan (unless the number of
clusters approaches ``n / log n``), otherwise ``"dedup"`` when some rows repeat
and ``"brute"`` when none do. Pass ``return_info=True`` to learn which ran.

Precision: every distance and every sum is computed in float64, whatever the
input dtype (float32 and integer input are widened exactly), so the result
equals scikit-learn's on a float64 copy of ``X`` to ~1e-12. (scikit-learn on
float32 input computes and sums distances in float32; its result then differs
from the exact one by ~1e-6 or more.)

Sample weights
--------------
A sample of weight ``w`` counts as ``w`` copies of itself: the result equals the
unweighted result on ``X`` with each row repeated ``w`` times (exactly what the
deduplicating path does with multiplicities). For sample ``i`` in cluster ``A``,
with ``W_B`` the total weight of cluster ``B``::

    a(i) = sum_{j in A} w_j d(i, j) / (W_A - 1)
    b(i) = min over B != A with W_B > 0 of sum_{j in B} w_j d(i, j) / W_B
    s(i) = (b - a) / max(a, b), and 0 when W_A <= 1 or a = b = 0

and the score is ``sum_i w_i s(i) / sum_i w_i``. The ``- 1`` excludes the copy
being scored, so weights are multiplicities (counts): multiplying every weight
by a constant changes the result, and a cluster of total weight <= 1 scores 0
like a singleton. Samples of weight 0 contribute nothing to any sum or to the
score (``silhouette_samples`` still reports their ``s``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._validation import check_array, check_distance_range, check_int, check_random_state, check_sample_weight
from .backends import _is_cupy_array, get_backend
from .metrics import get_metric

__all__ = ["silhouette_score", "silhouette_samples", "ALGORITHMS"]

#: Accepted values of ``algorithm``.
ALGORITHMS = ("auto", "brute", "dedup", "sorted")


# --------------------------------------------------------------------------- engines
class _CPUEngine:
    """The silhouette kernels of one backend (here numba on NumPy arrays).

    Both methods take the float64 points ``Y`` sorted by cluster with weights
    ``w``, cluster ``offsets`` (int64, k + 1), the cluster weights ``cluster_w``
    and the queries ``Xq`` with their clusters ``q_labels``, and return two
    float64 arrays over the queries: ``own``, the weighted sum of distances to
    the query's own cluster, and ``nearest``, the smallest mean distance to
    another cluster of positive weight. A CUDA engine implements the same two
    methods on CuPy arrays and registers itself in :data:`_ENGINES`.
    """

    name = "cpu"

    @staticmethod
    def pairwise_sums(Xq, q_labels, Y, w, offsets, cluster_w, metric: int):
        from .backends import _numba_silhouette as k

        return k.pairwise_cluster_sums(Xq, q_labels, Y, w, offsets, cluster_w, metric)

    @staticmethod
    def sorted_sums(Xq, q_labels, Y, w, offsets, cluster_w):
        from .backends import _numba_silhouette as k

        tables = k.build_sorted(Y, w, offsets)
        return k.sorted_cluster_sums(Xq, q_labels, cluster_w, *tables)


class _CUDAEngineProxy:
    """Loads the CUDA engine (and CuPy) only when it is used."""

    @staticmethod
    def pairwise_sums(*args):
        from .backends.cuda._silhouette import CUDAEngine

        return CUDAEngine.pairwise_sums(*args)

    @staticmethod
    def sorted_sums(*args):
        from .backends.cuda._silhouette import CUDAEngine

        return CUDAEngine.sorted_sums(*args)


#: Silhouette kernels per backend name (see :func:`gpukmeans.backends.get_backend`).
_ENGINES: dict[str, Any] = {"cpu": _CPUEngine, "cuda": _CUDAEngineProxy}


def _host(a: Any) -> Any:
    """A CuPy array copied to the host; anything else unchanged."""
    return a.get() if _is_cupy_array(a) else a


def _engine_for(backend: Any, X: Any):
    """(name of the backend that runs the kernels, its engine); raises the package's backend errors."""
    be = get_backend(backend, X)
    try:
        return be.name, _ENGINES[be.name]
    except KeyError:  # a backend without silhouette kernels
        raise ValueError(f"silhouette is not implemented for backend={be.name!r}; use backend='cpu'.") from None


# --------------------------------------------------------------------------- validation
def _check_labels(labels: Any, n_samples: int) -> np.ndarray:
    """Return ``labels`` as a 1-D NumPy array of length ``n_samples`` (no NaN)."""
    if hasattr(labels, "get") and type(labels).__module__.split(".")[0] == "cupy":
        labels = labels.get()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D; got an array of shape {tuple(labels.shape)}.")
    if labels.shape[0] != n_samples:
        raise ValueError(f"labels has {labels.shape[0]} entries but X has {n_samples} samples; they must match.")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError("labels contains NaN or infinity; every sample needs a cluster label.")
    if labels.dtype.kind == "c":
        raise TypeError("labels must not be complex.")
    return labels


def _encode(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels as codes 0 .. k-1 (sorted order of the distinct labels) and k."""
    try:
        classes, codes = np.unique(labels, return_inverse=True)
    except TypeError as exc:
        raise TypeError(f"labels could not be sorted (mixed types?): {exc}") from exc
    return codes.reshape(-1).astype(np.int64, copy=False), int(classes.shape[0])


def _check_n_labels(codes: np.ndarray, n_clusters: int, w: np.ndarray | None, subsampled: bool) -> None:
    where = " in the subsample (sample_size)" if subsampled else ""
    n = codes.shape[0]
    if w is None:
        if not 2 <= n_clusters <= n - 1:
            raise ValueError(
                f"Number of labels is {n_clusters}{where}; valid values are 2 to n_samples - 1 = {n - 1} "
                "(inclusive): the silhouette needs at least 2 clusters and at least one cluster with 2 members."
            )
        return
    cluster_w = np.bincount(codes, weights=w, minlength=n_clusters)
    n_pos = int((cluster_w > 0).sum())
    total = float(w.sum())
    if n_pos < 2:
        raise ValueError(
            f"Number of labels with positive sample_weight is {n_pos}{where}; the silhouette needs at least 2."
        )
    if not n_pos <= total - 1:
        raise ValueError(
            f"Number of labels with positive sample_weight is {n_pos}{where}; valid values are 2 to "
            f"n_samples - 1 = {total - 1:g}, where a sample of weight w counts as w samples (total weight {total:g})."
        )


def _check_algorithm(algorithm: Any, metric_code: int) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algorithm!r}; expected one of {list(ALGORITHMS)}.")
    if algorithm == "sorted" and metric_code != 1:
        raise ValueError("algorithm='sorted' (per-band prefix sums) is exact for metric='manhattan' only.")
    return algorithm


# --------------------------------------------------------------------------- core
def _group(Xc: np.ndarray, codes: np.ndarray, w: np.ndarray, n_clusters: int, dedup: bool):
    """Sort the samples by cluster (and merge equal (row, label) pairs if ``dedup``).

    Returns the float64 points ``Y`` sorted by cluster, their weights, their
    cluster codes, the cluster ``offsets`` and ``inverse`` (sample -> entry of Y).
    """
    n = Xc.shape[0]
    if dedup:
        # primary key: label, then the bands; equal rows of a cluster end up adjacent
        order = np.lexsort((*(Xc[:, f] for f in range(Xc.shape[1] - 1, -1, -1)), codes))
        Xs = Xc[order]
        cs = codes[order]
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = cs[1:] != cs[:-1]
        step = 1 << 16  # bounded temporaries for the row comparison
        for s in range(1, n, step):
            e = min(n, s + step)
            new[s:e] |= (Xs[s:e] != Xs[s - 1 : e - 1]).any(axis=1)
        starts = np.flatnonzero(new)
        Y = np.ascontiguousarray(Xs[starts], dtype=np.float64)
        wu = np.add.reduceat(w[order], starts)
        cu = cs[starts]
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.cumsum(new) - 1
    else:
        order = np.argsort(codes, kind="stable")
        Y = np.ascontiguousarray(Xc[order], dtype=np.float64)
        wu = np.ascontiguousarray(w[order])
        cu = codes[order]
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = np.arange(n)
    offsets = np.zeros(n_clusters + 1, dtype=np.int64)
    np.cumsum(np.bincount(cu, minlength=n_clusters), out=offsets[1:])
    return Y, wu, cu, offsets, inverse


def _scores(own: np.ndarray, nearest: np.ndarray, own_w: np.ndarray) -> np.ndarray:
    """Silhouette from the own-cluster sums, the nearest other-cluster means and the own-cluster weights."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = own / (own_w - 1.0)
        s = (nearest - a) / np.maximum(a, nearest)
    s[(own_w <= 1.0) | ~np.isfinite(s)] = 0.0  # singletons and a = b = 0, as scikit-learn
    return s


def _silhouette(X, labels, metric, sample_weight, sample_size, random_state, backend, algorithm):
    backend_name, engine = _engine_for(backend, X)
    # validation, grouping and deduplication run on the host (O(n)); the engine runs the O(n²) part
    X, sample_weight, be = _host(X), _host(sample_weight), get_backend("cpu")
    m = get_metric(metric)
    algorithm = _check_algorithm(algorithm, m.code)
    indices = None
    if sample_size is None:
        Xc, x_range = check_array(X, be, dtype=np.float64, return_range=True)  # exact for float32 and integers < 2**53
        n = Xc.shape[0]
        labels = _check_labels(labels, n)
        w = None if sample_weight is None else check_sample_weight(sample_weight, n, np.float64, be)
    else:
        # only the subset is converted (and checked for NaN): a huge X (or a memmap) is never copied whole
        sample_size = check_int(sample_size, "sample_size", 1)
        Xa = X if hasattr(X, "shape") and hasattr(X, "dtype") else np.asarray(X)
        if len(Xa.shape) != 2:
            check_array(Xa, be)  # raises its usual message
        n = Xa.shape[0]
        labels = _check_labels(labels, n)
        w = None if sample_weight is None else check_sample_weight(sample_weight, n, np.float64, be)
        indices = check_random_state(random_state).permutation(n)[:sample_size]  # scikit-learn's subsample
        Xc, x_range = check_array(Xa[np.sort(indices)], be, dtype=np.float64, return_range=True)
        Xc = Xc[np.argsort(np.argsort(indices))]
        labels = labels[indices]
        w = None if w is None else w[indices]
        n = Xc.shape[0]
    check_distance_range(x_range, Xc.shape[1], np.float64, m, n_samples=n)  # distances in float64, n per sum
    codes, n_clusters = _encode(labels)
    _check_n_labels(codes, n_clusters, w, indices is not None)
    weights = np.ones(n) if w is None else np.ascontiguousarray(w, dtype=np.float64)

    Y, wu, cu, offsets, inverse = _group(Xc, codes, weights, n_clusters, dedup=algorithm != "brute")
    n_unique = Y.shape[0]
    if algorithm == "auto":
        if m.code == 1 and n_clusters * max(1.0, math.log2(n_unique)) < n_unique:
            path = "sorted"
        else:
            path = "dedup" if n_unique < n else "brute"
    else:
        path = algorithm
    cluster_w = np.bincount(cu, weights=wu, minlength=n_clusters)
    if path == "sorted":
        own, nearest = engine.sorted_sums(Y, cu, Y, wu, offsets, cluster_w)
    else:
        own, nearest = engine.pairwise_sums(Y, cu, Y, wu, offsets, cluster_w, m.code)
    s_unique = _scores(own, nearest, cluster_w[cu])
    info = {
        "path": path,
        "metric": m.name,
        "backend": backend_name,
        "n_samples": n,
        "n_unique": n_unique,
        "n_clusters": n_clusters,
        "sample_indices": indices,
    }
    return s_unique, wu, inverse, info


def silhouette_samples(
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    sample_weight: Any = None,
    backend: str = "auto",
    algorithm: str = "auto",
    return_info: bool = False,
):
    """Exact silhouette coefficient of each sample; never builds an ``n x n`` matrix.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Float, integer (e.g. uint8 imagery) or bool; no NaN or infinity.
    labels : array-like of shape (n_samples,)
        Cluster of each sample (any sortable values, e.g. ``KMeans.labels_``).
        Between 2 and ``n_samples - 1`` distinct labels.
    metric : {"euclidean", "manhattan", "chebyshev"} or an alias, default="euclidean"
    sample_weight : array-like of shape (n_samples,), optional
        Multiplicities: a sample of weight ``w`` counts as ``w`` copies (see the
        module docstring). Default: every sample counts once.
    backend : {"auto", "cpu", "cuda"}, default="auto"
        As in :class:`gpukmeans.KMeans`: where the O(n²) kernels run. With
        ``"cuda"`` (or CuPy input) validation and grouping still run on the
        host, and the result is a NumPy array.
    algorithm : {"auto", "brute", "dedup", "sorted"}, default="auto"
        Which exact path computes the per-cluster sums of distances (see the
        module docstring); all give the same result up to rounding (~1e-12).
        ``"sorted"`` needs ``metric="manhattan"``.
    return_info : bool, default=False
        Also return a dict: ``path`` (the path that ran), ``metric``,
        ``backend``, ``n_samples``, ``n_unique`` (distinct (row, label) pairs the
        kernels ran on), ``n_clusters``, ``sample_indices`` (None here).

    Returns
    -------
    s : ndarray of shape (n_samples,), float64
        Silhouette of each sample, in [-1, 1]; 0 for members of singleton clusters.
    info : dict
        Only if ``return_info``.

    Raises
    ------
    ValueError
        NaN/infinity in X, labels of the wrong length or with NaN, fewer than 2
        or more than ``n_samples - 1`` distinct labels, unknown metric, backend
        or algorithm, bad sample_weight.
    """
    s_unique, _, inverse, info = _silhouette(X, labels, metric, sample_weight, None, None, backend, algorithm)
    s = s_unique[inverse]
    return (s, info) if return_info else s


def silhouette_score(
    X: Any,
    labels: Any,
    *,
    metric: str = "euclidean",
    sample_weight: Any = None,
    sample_size: int | None = None,
    random_state: Any = None,
    backend: str = "auto",
    algorithm: str = "auto",
    return_info: bool = False,
):
    """Exact mean silhouette coefficient (scikit-learn's ``silhouette_score``), fast and in bounded memory.

    Parameters
    ----------
    X, labels, metric, sample_weight, backend, algorithm
        As in :func:`silhouette_samples`.
    sample_size : int, optional
        Score a random subset of ``sample_size`` samples instead of all of them
        (an approximation, for very large inputs). The subset is
        ``check_random_state(random_state).permutation(n_samples)[:sample_size]``,
        the same as scikit-learn's, so the same ``random_state`` gives the same
        subset (and score) in both. Weights of the chosen samples are kept. The
        subset itself is scored exactly. Only the subset of ``X`` is converted
        and checked for NaN, so a huge array (or a memory map) is never copied
        whole.
    random_state : None, int or numpy.random.RandomState, optional
        Seeds the subset when ``sample_size`` is given; an int makes it reproducible.
    return_info : bool, default=False
        Also return the dict described in :func:`silhouette_samples`
        (``sample_indices`` holds the subset's indices when ``sample_size`` is given).

    Returns
    -------
    score : float
        ``sum_i w_i s(i) / sum_i w_i`` (the plain mean without weights), in [-1, 1].
    info : dict
        Only if ``return_info``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpukmeans.silhouette import silhouette_score
    >>> X = np.array([[0, 0], [0, 1], [10, 0], [10, 1]], dtype=np.float32)
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 6)
    0.900249
    """
    s_unique, wu, _, info = _silhouette(X, labels, metric, sample_weight, sample_size, random_state, backend, algorithm)
    score = float(np.dot(wu, s_unique) / wu.sum())
    return (score, info) if return_info else score
