"""The scikit-learn-compatible :class:`KMeans` estimator and the :func:`kmeans` function."""

from __future__ import annotations

import inspect
import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np

from . import _init
from ._driver import LloydResult, lloyd
from ._validation import (
    NotFittedError,
    check_array,
    check_distance_range,
    check_int,
    check_random_state,
    check_sample_weight,
    join_ranges,
)
from .backends import _is_cupy_array, get_backend
from .metrics import get_metric, resolve_update

_INITS = ("k-means++", "random")


def _is_dask(X: Any) -> bool:
    # Checked by module name so that Dask is never imported just to look.
    return type(X).__module__.startswith("dask")


def _dask_impl():
    """The Dask implementation (:mod:`gpukmeans.distributed`), or a clear error without Dask."""
    try:
        from .distributed import _fit
    except ImportError as exc:
        raise ImportError(f"X is a Dask array: {exc}") from exc
    return _fit


class _ParamsMixin:
    """get_params / set_params / repr in scikit-learn's conventions, without importing it."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of this estimator, as passed to ``__init__``."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any):
        """Set parameters (validated at the next ``fit``); returns ``self``."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}; valid ones: {valid}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name)
            same = value is default or (
                not isinstance(value, np.ndarray) and not isinstance(default, np.ndarray) and value == default
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type="clusterer",
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
        )


class _FitConfig(NamedTuple):
    """Validated parameters of one fit."""

    backend: Any
    metric: Any
    rule: str
    n_init: int


class KMeans(_ParamsMixin):
    """k-means clustering with euclidean, manhattan or chebyshev distance, on CPU or GPU.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters ``k``.
    metric : {"euclidean", "manhattan", "chebyshev"}, default="euclidean"
        Distance used to assign samples to centers. Aliases: ``"l2"``;
        ``"l1"``, ``"cityblock"``; ``"linf"``, ``"chessboard"``. Chebyshev is
        ``max_f |x_f - c_f|``. The objective is ``sum_i w_i d(x_i, c_{l_i})^2``
        for euclidean (scikit-learn's inertia) and ``sum_i w_i d(x_i, c_{l_i})``
        for manhattan and chebyshev.
    update : {"auto", "mean", "median", "guarded"}, default="auto"
        How centers are recomputed from an assignment. ``"auto"`` picks
        ``"mean"`` for euclidean, ``"median"`` for manhattan and ``"guarded"``
        for chebyshev, the rule that never increases that metric's objective:

        - ``"mean"``: ``c_j = sum_{i in j} w_i x_i / sum_{i in j} w_i``. Minimises
          the euclidean objective of each cluster exactly. With another metric it
          is the classic "assign with metric X, average the members" algorithm,
          which can increase that metric's objective.
        - ``"median"``: coordinate-wise weighted median, ``c_jf`` = the first
          sorted value whose cumulative weight reaches half the cluster's weight
          (the midpoint when it is reached exactly, so unit weights give
          :func:`numpy.median`). Minimises the manhattan objective of each
          cluster exactly (k-medians): that objective never increases.
        - ``"guarded"``: for each cluster, whichever of {its current center, its
          weighted median, its weighted mean} has the lowest objective over the
          cluster's members in the chosen metric (the current center wins ties).
          No closed form minimises the chebyshev objective; this rule checks the
          objective at every step, so it never increases, and usually decreases.
          Beyond 32,768 samples (and 512 per cluster) the candidates are compared
          on a systematic sample (every ``s``-th run of 64 samples,
          ``s = n_samples // max(32768, 512 * n_clusters)``), and the next
          assignment checks the whole objective: a choice that raised it is
          undone (previous labels restored) and made again on every sample. A
          run that converges stops on a choice made on every sample; one stopped
          by ``tol`` or ``max_iter`` right after a sampled choice that raised the
          objective ends on the centers before that choice (and their labels).
    init : {"k-means++", "random"}, array of shape (n_clusters, n_features) or callable, default="k-means++"
        ``"k-means++"``: greedy k-means++ weighted by ``sample_weight``, with
        distances in the chosen metric (see :func:`gpukmeans._init.kmeans_plusplus`).
        ``"random"``: ``n_clusters`` distinct samples. An array gives the initial
        centers; a callable is called as ``init(X, n_clusters, random_state)``.
        ``"k-means||"`` (scalable k-means++): Dask input only, see :mod:`gpukmeans.distributed`.
    n_init : "auto" or int, default="auto"
        Number of initialisations; the run with the lowest objective is kept.
        ``"auto"``: 1 for k-means++ or an explicit array, 10 for random.
    max_iter : int, default=300
        Maximum number of Lloyd iterations per run.
    tol : float, default=1e-4
        Convergence when the squared center shift ``sum_j ||c_j^new - c_j||^2`` is
        at most ``tol`` times the mean per-feature variance of X (scikit-learn's
        rule; the variance is weighted by ``sample_weight``, so that weights act
        as repeated samples), or when no label changes.
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds the initialisation; the same value gives the same result.
    backend : {"auto", "cpu", "cuda"}, default="auto"
        Where the kernels run. ``"auto"`` follows the input array's library
        (CuPy arrays run on the GPU, everything else on the CPU). ``"cuda"``
        with NumPy input copies X to the GPU once and returns NumPy results;
        CuPy input gives CuPy results.
    verbose : bool, default=False
        Print one line per iteration.

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) array
        Centers, in the dtype of the (converted) input: float64 stays float64,
        everything else (uint8/uint16 imagery, ints, float32) is float32.
    labels_ : (n_samples,) int32 array
        Index of the nearest center of each training sample (lowest index on ties).
    inertia_ : float
        Weighted objective of the fitted centers on the training data.
    n_iter_ : int
        Lloyd iterations of the kept run.
    n_features_in_ : int
    history_ : list of dict
        One entry per iteration of the kept run: ``iteration``, ``objective``
        (of the centers going into the iteration and the labels it assigned),
        ``center_shift`` (squared), ``n_changed`` (labels that changed) and
        ``time`` (seconds).
    update_ : str
        The update rule that ran (``"auto"`` resolved).

    Examples
    --------
    >>> import numpy as np
    >>> from gpukmeans import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=np.float32)
    >>> km = KMeans(n_clusters=2, metric="manhattan", random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        metric: str = "euclidean",
        update: str = "auto",
        init: Any = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: Any = None,
        backend: str = "auto",
        verbose: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.metric = metric
        self.update = update
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self, X: Any) -> _FitConfig:
        """Validate the parameters; nothing on ``self`` changes until a fit succeeds."""
        backend = get_backend(self.backend, X)
        metric = get_metric(self.metric)
        rule = resolve_update(self.update, metric)
        check_int(self.n_clusters, "n_clusters", 1)
        check_int(self.max_iter, "max_iter", 1)
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a non-negative number; got {self.tol!r}.")
        if isinstance(self.init, str):
            if self.init not in _INITS:
                raise ValueError(f"Unknown init {self.init!r}; expected one of {list(_INITS)}, an array or a callable.")
        elif not callable(self.init) and not hasattr(self.init, "__len__"):
            raise TypeError(f"init must be 'k-means++', 'random', an array or a callable; got {self.init!r}.")
        if isinstance(self.n_init, str):
            if self.n_init != "auto":
                raise ValueError(f"n_init must be 'auto' or a positive integer; got {self.n_init!r}.")
            n_init = 10 if (isinstance(self.init, str) and self.init == "random") else 1
        else:
            n_init = check_int(self.n_init, "n_init", 1)
        if not isinstance(self.init, str) and not callable(self.init) and n_init != 1:
            warnings.warn(
                f"Explicit initial centers were given; running 1 initialisation instead of n_init={n_init}.",
                RuntimeWarning,
                stacklevel=3,
            )
            n_init = 1
        return _FitConfig(backend, metric, rule, n_init)

    def _initial_centers(self, X, sample_weight, random_state, config: _FitConfig, x_range: tuple[float, float]):
        backend, n_clusters = config.backend, self.n_clusters
        if isinstance(self.init, str) and self.init == "k-means++":
            centers, _ = _init.kmeans_plusplus(
                X, sample_weight, n_clusters, backend=backend, metric=config.metric, random_state=random_state
            )
            return centers
        if isinstance(self.init, str):  # "random"
            centers, _ = _init.random_init(X, sample_weight, n_clusters, backend=backend, random_state=random_state)
            return centers
        given = self.init(X, n_clusters, random_state) if callable(self.init) else self.init
        return self._check_init_array(given, X, backend, x_range, config.metric)

    def _check_init_array(self, init: Any, X, backend, x_range: tuple[float, float] | None = None, metric=None):
        """``init`` as a backend array of X's dtype; with ``x_range``, also checks that X and init are in range."""
        centers, init_range = check_array(init, backend, name="init", dtype=X.dtype, return_range=True)
        if centers.shape != (self.n_clusters, X.shape[1]):
            raise ValueError(
                f"init has shape {tuple(centers.shape)}; expected (n_clusters, n_features) = "
                f"({self.n_clusters}, {X.shape[1]})."
            )
        if x_range is not None:
            check_distance_range(
                join_ranges(x_range, init_range), X.shape[1], X.dtype, metric, name="X with init", n_samples=X.shape[0]
            )
        return centers.copy()

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> KMeans:
        """Compute the clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples: float, integer (uint8/uint16 imagery) or bool.
            Never modified. A ``dask.array.Array`` is clustered on Dask's
            scheduler (see :mod:`gpukmeans.distributed`).
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each sample (default 1). A sample of weight
            ``w`` counts as ``w`` copies of itself.

        Returns
        -------
        self : KMeans
        """
        if _is_dask(X):
            return _dask_impl().fit(self, X, sample_weight)
        config = self._check_params(X)
        backend, xp = config.backend, config.backend.xp
        on_host = not _is_cupy_array(X)
        X, x_range = check_array(X, backend, return_range=True)
        n_samples = X.shape[0]
        check_distance_range(x_range, X.shape[1], X.dtype, config.metric, n_samples=n_samples)
        if self.n_clusters > n_samples:
            raise ValueError(f"n_clusters={self.n_clusters} is larger than the number of samples ({n_samples}).")
        unit_weights = sample_weight is None
        sample_weight = check_sample_weight(sample_weight, n_samples, X.dtype, backend)
        n_positive = n_samples if unit_weights else int((sample_weight > 0).sum())
        if self.n_clusters > n_positive:
            raise ValueError(
                f"n_clusters={self.n_clusters} is larger than the number of samples with positive weight "
                f"({n_positive})."
            )
        if not isinstance(self.init, str) and not callable(self.init):
            self._check_init_array(self.init, X, backend, x_range, config.metric)  # fail before any work
        random_state = check_random_state(self.random_state)
        tol = _tolerance(X, sample_weight, self.tol, xp)

        best: LloydResult | None = None
        for _ in range(config.n_init):
            centers = self._initial_centers(X, sample_weight, random_state, config, x_range)
            if self.verbose:
                print("Initialization complete")
            result = lloyd(
                X,
                sample_weight,
                centers,
                backend=backend,
                metric=config.metric,
                rule=config.rule,
                max_iter=self.max_iter,
                tol=tol,
                verbose=bool(self.verbose),
            )
            if best is None or result.objective < best.objective:
                best = result

        n_distinct = int(np.count_nonzero(backend.label_counts(best.labels, self.n_clusters)))
        if n_distinct < self.n_clusters:
            warnings.warn(
                f"Number of distinct clusters ({n_distinct}) found smaller than n_clusters "
                f"({self.n_clusters}). Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.cluster_centers_ = self._output(best.centers, backend, on_host)
        self.labels_ = self._output(best.labels, backend, on_host)
        self.inertia_ = float(best.objective)
        self.n_iter_ = best.n_iter
        self.history_ = best.history
        self.update_ = config.rule
        self.n_features_in_ = X.shape[1]
        self._backend, self._metric = backend, config.metric
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None):
        """Fit and return ``labels_`` ((n_samples,) int32)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None):
        """Fit and return the distances of X to every center ((n_samples, n_clusters))."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # ------------------------------------------------------------- predict
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    @staticmethod
    def _output(a: Any, backend, on_host: bool):
        """Results go back to the input's library: NumPy input gives NumPy, CuPy input gives CuPy."""
        return backend.to_numpy(a) if on_host and backend.name != "cpu" else a

    def _check_fitted_X(self, X: Any):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call fit first.")
        backend = get_backend(self.backend, X)
        X, x_range = check_array(X, backend, dtype=self.cluster_centers_.dtype, return_range=True)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features "
                "as input (the number it was fitted with)."
            )
        centers = self.cluster_centers_
        if backend.name == "cpu" and _is_cupy_array(centers):  # fitted on the GPU, NumPy input now
            centers = centers.get()
        value_range = join_ranges(x_range, (float(centers.min()), float(centers.max())))
        check_distance_range(
            value_range, X.shape[1], X.dtype, self._metric, name="X with the fitted centers", n_samples=X.shape[0]
        )
        return X, backend, centers

    def predict(self, X: Any):
        """Index of the nearest center of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : (n_samples,) int32 array
            A lazy Dask array (the input's row chunks) for Dask input.
        """
        if _is_dask(X):
            return _dask_impl().predict(self, X)
        on_host = not _is_cupy_array(X)
        X, backend, centers = self._check_fitted_X(X)
        labels = backend.xp.full(X.shape[0], -1, dtype=backend.xp.int32)
        weight = backend.xp.ones(X.shape[0], dtype=X.dtype)
        backend.assign(X, weight, centers, self._metric.code, labels, False)
        return self._output(labels, backend, on_host)

    def transform(self, X: Any):
        """Distance, in the fitted metric, from each sample to every center.

        Returns
        -------
        distances : (n_samples, n_clusters) array, dtype of ``cluster_centers_``
            Euclidean distances are not squared (as in scikit-learn). A lazy Dask
            array for Dask input.
        """
        if _is_dask(X):
            return _dask_impl().transform(self, X)
        on_host = not _is_cupy_array(X)
        X, backend, centers = self._check_fitted_X(X)
        terms = backend.pairwise(X, centers, self._metric.code)
        return self._output(backend.xp.sqrt(terms) if self._metric.squared_objective else terms, backend, on_host)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the weighted objective of X on the fitted centers (higher is better)."""
        if _is_dask(X):
            return _dask_impl().score(self, X, sample_weight)
        X, backend, centers = self._check_fitted_X(X)
        w = check_sample_weight(sample_weight, X.shape[0], X.dtype, backend)
        labels = backend.xp.full(X.shape[0], -1, dtype=backend.xp.int32)
        objective, _, _ = backend.assign(X, w, centers, self._metric.code, labels, False)
        return -float(objective)


class ConvergenceWarning(UserWarning):
    """The fit found fewer distinct clusters than asked for (duplicate points)."""


def _tolerance(X, sample_weight, tol: float, xp) -> float:
    """``tol`` times the mean per-feature variance of X, weighted by ``sample_weight``.

    With unit weights this is scikit-learn's rule; with weights it is the
    variance of the data the weights stand for (a sample of weight ``w`` counts
    as ``w`` copies), so a weighted fit stops where the fit on repeated rows
    does. Computed chunk by chunk, in float64, in bounded memory.
    """
    if tol == 0:
        return 0.0
    step = 1 << 20
    chunks = [slice(s, s + step) for s in range(0, X.shape[0], step)]
    w = sample_weight.astype(xp.float64)
    total = float(w.sum())
    mean = sum(w[c] @ X[c].astype(xp.float64) for c in chunks) / total
    sq = sum(w[c] @ (X[c].astype(xp.float64) - mean) ** 2 for c in chunks) / total
    return float(xp.mean(sq)) * float(tol)


class KMeansResult(NamedTuple):
    """What :func:`kmeans` returns."""

    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    history: list


def kmeans(X: Any, n_clusters: int, *, sample_weight: Any = None, **params: Any) -> KMeansResult:
    """k-means in one call, for those who do not want an estimator object.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : array-like of shape (n_samples,), optional
    **params
        Any other :class:`KMeans` parameter (``metric``, ``update``, ``init``,
        ``n_init``, ``max_iter``, ``tol``, ``random_state``, ``backend``, ``verbose``).

    Returns
    -------
    KMeansResult
        Named tuple ``(centers, labels, inertia, n_iter, history)``.

    Examples
    --------
    >>> import numpy as np
    >>> from gpukmeans import kmeans
    >>> X = np.array([[0.0], [0.5], [10.0], [10.5]])
    >>> centers, labels, inertia, n_iter, history = kmeans(X, 2, random_state=0)
    >>> sorted(centers.ravel().tolist()), inertia
    ([0.25, 10.25], 0.25)
    """
    km = KMeans(n_clusters, **params).fit(X, sample_weight=sample_weight)
    return KMeansResult(km.cluster_centers_, km.labels_, km.inertia_, km.n_iter_, km.history_)
