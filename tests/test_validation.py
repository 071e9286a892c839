"""Input validation: every bad input raises an error that names the problem; inputs are never modified."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse
from conftest import METRICS, blobs
from numpy.testing import assert_array_equal

import gpukmeans
from gpukmeans import KMeans, NotFittedError, kmeans


@pytest.fixture
def X():
    return blobs(60, 3, 3, 0, np.float64)


@pytest.fixture
def fitted(X):
    return KMeans(3, random_state=0).fit(X)


# ---------------------------------------------------------------------- X
@pytest.mark.parametrize("dtype", (np.float32, np.float64, np.float16))
@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
def test_non_finite_X(X, dtype, value, word):
    bad = X.astype(dtype)
    bad[7, 1] = value
    with pytest.raises(ValueError, match=f"X contains {word}"):
        KMeans(3).fit(bad)


def test_nan_and_inf_reports_nan(X):
    bad = X.copy()
    bad[0, 0] = np.inf
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(3).fit(bad)


# ------------------------------------------------ values whose distances overflow
def test_float32_fill_value_is_refused_for_euclidean(X):
    """A float32 fill value of 1e20 left in X: its squared distances are infinite, the labels would be wrong."""
    bad = X.astype(np.float32)
    bad[3] = 1e20
    with pytest.raises(ValueError, match=r"past the largest float32.*1e20\), rescale X or pass float64 data"):
        KMeans(3).fit(bad)
    with pytest.raises(ValueError, match="squared euclidean"):
        kmeans(bad, 3)
    KMeans(3, random_state=0).fit(bad.astype(np.float64))  # float64 holds their squares


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("end", ("large", "small"))
def test_values_near_each_end_of_the_range_cluster_like_unscaled_ones(X, metric, dtype, end):
    """Values as large (or small) as each metric allows in the dtype: the clustering of X scaled by a power of 2."""
    huge = {
        ("large", "float32"): {"euclidean": 2.0**58, "manhattan": 2.0**120, "chebyshev": 2.0**122},
        ("large", "float64"): {"euclidean": 2.0**500, "manhattan": 2.0**500, "chebyshev": 2.0**500},
        ("small", "float32"): {"euclidean": 2.0**-40, "manhattan": 2.0**-96, "chebyshev": 2.0**-96},
        ("small", "float64"): {"euclidean": 2.0**-400, "manhattan": 2.0**-400, "chebyshev": 2.0**-400},
    }[end, np.dtype(dtype).name][metric]
    small = X.astype(dtype)
    init = small[[0, 20, 40]]
    ref = KMeans(3, metric=metric, init=init).fit(small)
    km = KMeans(3, metric=metric, init=init * dtype(huge)).fit(small * dtype(huge))
    assert_array_equal(km.labels_, ref.labels_)
    assert km.n_iter_ == ref.n_iter_
    assert np.isfinite(km.inertia_) and np.isfinite(km.transform(small * dtype(huge))).all()


@pytest.mark.parametrize(
    ("metric", "dtype", "scale"),
    [
        ("euclidean", np.float32, 2.0**64),  # squares reach 2**128 > float32's 3.4e38
        ("manhattan", np.float32, 2.0**126),
        ("chebyshev", np.float32, 2.0**126),  # differences of values within +-2**126 reach 2**127, past max / 4
        ("euclidean", np.float64, 2.0**512),
        ("manhattan", np.float64, 2.0**1000),  # in range, but the squared center shifts are not
        ("chebyshev", np.float64, 2.0**1000),
    ],
)
def test_values_past_each_metric_range_are_refused(X, metric, dtype, scale):
    centered = X - X.mean(axis=0)
    big = (centered / np.abs(centered).max() * scale).astype(dtype)  # largest magnitude: ``scale``
    with pytest.raises(ValueError, match="(?i)rescale X"):
        KMeans(3, metric=metric).fit(big)


@pytest.mark.parametrize(
    ("metric", "dtype", "scale"),
    [
        ("euclidean", np.float64, 1e-310),  # subnormal values: squared differences are 0
        ("euclidean", np.float32, 1e-20),  # squared differences of 1e-40: subnormal float32
        ("manhattan", np.float32, 1e-40),
        ("chebyshev", np.float32, 1e-40),
        ("manhattan", np.float64, 1e-160),  # in float64 range, but the squared center shifts are not
    ],
)
def test_values_so_close_that_differences_underflow_are_refused(X, metric, dtype, scale):
    with pytest.raises(ValueError, match="underflow.*multiply it by a power of 10"):
        KMeans(3, metric=metric).fit((X * scale).astype(dtype))


@pytest.mark.parametrize(("dtype", "weight"), [(np.float64, 1e306), (np.float32, 1e37)])
def test_weights_whose_sum_overflows_are_refused(X, dtype, weight):
    with pytest.raises(ValueError, match="only the ratios of the weights matter"):
        KMeans(3).fit(X.astype(dtype), sample_weight=np.full(len(X), weight))
    scaled = KMeans(3, random_state=0).fit(X.astype(dtype), sample_weight=np.full(len(X), weight / 1e3))
    assert_array_equal(scaled.labels_, KMeans(3, random_state=0).fit(X.astype(dtype)).labels_)


def test_objective_sum_overflow_is_refused():
    """Each term fits in float64, their sum over the samples does not."""
    X = np.zeros((1000, 1))
    X[::2] = 2.0**510  # squared distances up to 2**1020: 1000 of them pass float64's 1.8e308
    with pytest.raises(ValueError, match="objective, a sum of 1000"):
        KMeans(2).fit(X)


def test_init_far_from_X_is_refused(X):
    init = np.array([[0.0, 0.0, 0.0], [1e200, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="X with init"):
        KMeans(3, init=init).fit(X)
    with pytest.raises(ValueError, match="X with init"):
        KMeans(3, init=lambda X, k, rs: init).fit(X)


def test_predict_far_from_fitted_centers_is_refused(fitted):
    far = np.full((4, 3), 1e20, dtype=np.float32)
    fitted32 = KMeans(3, random_state=0).fit(fitted.cluster_centers_.astype(np.float32).repeat(5, axis=0))
    for method in (fitted32.predict, fitted32.transform, fitted32.score):
        with pytest.raises(ValueError, match="X with the fitted centers"):
            method(far)
    assert_array_equal(fitted.predict(far.astype(np.float64)), fitted.predict(far.astype(np.float64)))


def test_silhouette_values_past_float64_are_refused():
    X = np.r_[np.zeros((5, 2)), np.full((5, 2), 1e160)]
    with pytest.raises(ValueError, match="past the largest float64"):
        gpukmeans.silhouette_score(X, np.r_[np.zeros(5, int), np.ones(5, int)])


def test_check_distance_range_bounds():
    from gpukmeans._validation import check_distance_range
    from gpukmeans.metrics import get_metric

    largest = float(np.finfo(np.float32).max)
    cheb = get_metric("chebyshev")
    check_distance_range((0.0, largest / 4 * 0.999), 5, np.float32, cheb)
    with pytest.raises(ValueError, match="chebyshev distances"):
        check_distance_range((0.0, largest / 4), 5, np.float32, cheb)
    with pytest.raises(ValueError, match="chebyshev distances"):  # the span counts, not the magnitudes
        check_distance_range((-largest / 8, largest / 8), 5, np.float32, cheb)
    check_distance_range((1e30, 1e30 + 1e28), 5, np.float32, cheb)  # far from 0 but a narrow span
    man = get_metric("manhattan")
    check_distance_range((0.0, largest / 4 / 10 * 0.999), 10, np.float32, man)
    with pytest.raises(ValueError, match="manhattan distances"):
        check_distance_range((0.0, largest / 4 / 10 * 1.001), 10, np.float32, man)


@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (0, 0)])
def test_empty_X(shape):
    with pytest.raises(ValueError, match="empty"):
        KMeans(1).fit(np.empty(shape))


@pytest.mark.parametrize("data", [np.arange(10.0), np.zeros((4, 3, 2)), np.float64(3.0)])
def test_X_not_2d(data):
    with pytest.raises(ValueError, match="2-D"):
        KMeans(1).fit(data)


def test_1d_X_message_suggests_reshape():
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        KMeans(1).fit(np.arange(10.0))


def test_sparse_X(X):
    with pytest.raises(TypeError, match="sparse"):
        KMeans(3).fit(scipy.sparse.csr_matrix(X))


def test_complex_X(X):
    with pytest.raises((TypeError, ValueError), match="[Cc]omplex"):
        KMeans(3).fit(X.astype(np.complex128))


def test_string_X():
    with pytest.raises(TypeError, match="real numbers"):
        KMeans(1).fit(np.array([["a", "b"], ["c", "d"]]))


def test_ragged_X():
    with pytest.raises(ValueError, match="could not be converted"):
        KMeans(1).fit([[1.0, 2.0], [3.0]])


def test_object_X_with_none_is_nan():
    with pytest.raises(ValueError, match="NaN"):
        KMeans(1).fit(np.array([[1.0, None], [2.0, 3.0]], dtype=object))


def test_object_X_of_numbers_is_accepted():
    km = KMeans(2, random_state=0).fit(np.array([[1, 2.5], [3, 4], [10, 11]], dtype=object))
    assert km.cluster_centers_.shape == (2, 2)


# ---------------------------------------------------------------- n_clusters
@pytest.mark.parametrize("n_clusters", [0, -1])
def test_n_clusters_below_one(X, n_clusters):
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(n_clusters).fit(X)


@pytest.mark.parametrize("n_clusters", [2.0, "3", None, True])
def test_n_clusters_not_integer(X, n_clusters):
    with pytest.raises(TypeError, match="n_clusters must be an integer"):
        KMeans(n_clusters).fit(X)


def test_n_clusters_numpy_integer_ok(X):
    assert KMeans(np.int64(3), random_state=0).fit(X).cluster_centers_.shape == (3, 3)


def test_n_clusters_more_than_samples(X):
    with pytest.raises(ValueError, match=r"n_clusters=61 is larger than the number of samples \(60\)"):
        KMeans(61).fit(X)
    KMeans(60, random_state=0).fit(X)  # exactly n_samples is fine


def test_n_clusters_more_than_positive_weights(X):
    w = np.zeros(60)
    w[:2] = 1
    with pytest.raises(ValueError, match="positive weight"):
        KMeans(3).fit(X, sample_weight=w)


# ------------------------------------------------------- metric/update/init
@pytest.mark.parametrize("metric", ["cosine", "minkowski", "", None, 2])
def test_unknown_metric(X, metric):
    with pytest.raises(ValueError, match="Unknown metric"):
        KMeans(3, metric=metric).fit(X)


@pytest.mark.parametrize("update", ["medoid", "k-medians", "", None])
def test_unknown_update(X, update):
    with pytest.raises(ValueError, match="Unknown update"):
        KMeans(3, update=update).fit(X)


@pytest.mark.parametrize("init", ["kmeans++", "k-means||", "farthest"])
def test_unknown_init_string(X, init):
    with pytest.raises(ValueError, match="Unknown init"):
        KMeans(3, init=init).fit(X)


@pytest.mark.parametrize("init", [5, 2.5, None])
def test_init_of_wrong_type(X, init):
    with pytest.raises(TypeError, match="init must be"):
        KMeans(3, init=init).fit(X)


@pytest.mark.parametrize("shape", [(2, 3), (4, 3), (3, 2), (3, 4)])
def test_init_array_wrong_shape(X, shape):
    with pytest.raises(ValueError, match=r"init has shape"):
        KMeans(3, init=np.zeros(shape)).fit(X)


def test_init_array_not_2d(X):
    with pytest.raises(ValueError, match="init must be 2-D"):
        KMeans(3, init=np.zeros(9)).fit(X)


def test_init_array_with_nan(X):
    init = X[:3].copy()
    init[1, 1] = np.nan
    with pytest.raises(ValueError, match="init contains NaN"):
        KMeans(3, init=init).fit(X)


def test_callable_init_returning_wrong_shape(X):
    with pytest.raises(ValueError, match="init has shape"):
        KMeans(3, init=lambda data, k, rs: data[: k + 1]).fit(X)


def test_init_array_with_n_init_warns(X):
    with pytest.warns(RuntimeWarning, match="n_init"):
        km = KMeans(3, init=X[:3], n_init=4).fit(X)
    assert km.n_iter_ >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(3, init=X[:3]).fit(X)
        KMeans(3, init=X[:3], n_init=1).fit(X)
        KMeans(3, init=lambda data, k, rs: data[:k], n_init=3).fit(X)


# --------------------------------------------------------------- backend
@pytest.mark.parametrize("backend", ["cuda", "gpu", "cupy", "CUDA"])
def test_cuda_backend_unavailable(X, backend):
    from gpukmeans import available_backends

    if "cuda" in available_backends():
        pytest.skip("a CUDA GPU is usable here (tests/test_cuda.py covers the errors with a simulated CuPy)")
    with pytest.raises(ValueError, match="backend='cuda'"):
        KMeans(3, backend=backend).fit(X)


@pytest.mark.parametrize("backend", ["opencl", "", None, "tpu"])
def test_unknown_backend(X, backend):
    with pytest.raises(ValueError, match="Unknown backend"):
        KMeans(3, backend=backend).fit(X)


# ------------------------------------------------------------ sample_weight
@pytest.mark.parametrize("w", [np.ones(59), np.ones(61), np.ones((60, 1)), np.ones((60, 2)), [1.0, 2.0]])
def test_sample_weight_wrong_shape(X, w):
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(60,\)"):
        KMeans(3).fit(X, sample_weight=w)


def test_sample_weight_negative(X):
    w = np.ones(60)
    w[3] = -0.5
    with pytest.raises(ValueError, match="negative"):
        KMeans(3).fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="negative"):
        KMeans(3).fit(X, sample_weight=-1.0)


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_sample_weight_not_finite(X, value, word):
    w = np.ones(60)
    w[10] = value
    with pytest.raises(ValueError, match=f"sample_weight contains {word}"):
        KMeans(3).fit(X, sample_weight=w)


def test_sample_weight_all_zero(X):
    with pytest.raises(ValueError, match="zero"):
        KMeans(1).fit(X, sample_weight=np.zeros(60))


def test_sample_weight_strings(X):
    with pytest.raises(TypeError, match="sample_weight must hold real numbers"):
        KMeans(3).fit(X, sample_weight=np.array(["1"] * 60))


def test_sample_weight_scalar_and_int(X):
    a = KMeans(3, random_state=0).fit(X)
    b = KMeans(3, random_state=0).fit(X, sample_weight=2)
    c = KMeans(3, random_state=0).fit(X, sample_weight=np.full(60, 2, dtype=np.int64))
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert_array_equal(b.cluster_centers_, c.cluster_centers_)
    assert b.inertia_ == pytest.approx(2 * a.inertia_, rel=1e-12)


def test_score_sample_weight_validated(fitted, X):
    with pytest.raises(ValueError, match="sample_weight"):
        fitted.score(X, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="negative"):
        fitted.score(X, sample_weight=-np.ones(60))


# ------------------------------------------------- n_init, max_iter, tol, ...
@pytest.mark.parametrize(("n_init", "exc"), [(0, ValueError), (-2, ValueError), ("many", ValueError), (1.5, TypeError)])
def test_bad_n_init(X, n_init, exc):
    with pytest.raises(exc, match="n_init"):
        KMeans(3, n_init=n_init).fit(X)


@pytest.mark.parametrize(("max_iter", "exc"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("10", TypeError)])
def test_bad_max_iter(X, max_iter, exc):
    with pytest.raises(exc, match="max_iter"):
        KMeans(3, max_iter=max_iter).fit(X)


@pytest.mark.parametrize("tol", [-1e-4, np.nan, "0.1", None, True])
def test_bad_tol(X, tol):
    with pytest.raises(ValueError, match="tol"):
        KMeans(3, tol=tol).fit(X)


@pytest.mark.parametrize("random_state", ["seed", 1.5, np.random.default_rng(0)])
def test_bad_random_state(X, random_state):
    with pytest.raises(ValueError, match="random_state"):
        KMeans(3, random_state=random_state).fit(X)


def test_params_are_validated_in_fit_not_init(X):
    km = KMeans(
        n_clusters=-3, metric="bogus", update="bogus", init="bogus", n_init=0, max_iter=0, tol=-1, backend="bogus"
    )
    assert km.n_clusters == -3 and km.metric == "bogus"  # stored as given
    with pytest.raises(ValueError):
        km.fit(X)
    km.set_params(n_clusters=3, metric="l1", update="auto", init="random", n_init=2, max_iter=10, tol=0, backend="cpu")
    km.fit(X)
    assert km.cluster_centers_.shape == (3, 3)


def test_set_params_unknown_name():
    with pytest.raises(ValueError, match="Invalid parameter 'k'"):
        KMeans().set_params(k=3)


def test_function_form_validates(X):
    with pytest.raises(ValueError, match="Unknown metric"):
        kmeans(X, 3, metric="hamming")
    with pytest.raises(TypeError):
        kmeans(X, 3, n_cluster=4)


# ----------------------------------------------------------- fitted checks
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_not_fitted(X, method):
    km = KMeans(3)
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(km, method)(X)
    with pytest.raises(ValueError):  # NotFittedError is a ValueError
        getattr(km, method)(X)


def test_not_fitted_error_class():
    assert issubclass(NotFittedError, ValueError)
    assert gpukmeans.NotFittedError is NotFittedError


def test_sklearn_check_is_fitted(X):
    from sklearn.exceptions import NotFittedError as SkNotFittedError
    from sklearn.utils.validation import check_is_fitted

    km = KMeans(3, random_state=0)
    with pytest.raises(SkNotFittedError):
        check_is_fitted(km)
    check_is_fitted(km.fit(X))


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
@pytest.mark.parametrize("n_features", [2, 4])
def test_wrong_number_of_features(fitted, X, method, n_features):
    other = np.ones((5, n_features))
    with pytest.raises(ValueError, match=f"X has {n_features} features.*3"):
        getattr(fitted, method)(other)


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_predict_side_inputs_validated(fitted, method):
    bad = np.ones((4, 3))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        getattr(fitted, method)(bad)
    with pytest.raises(ValueError, match="2-D"):
        getattr(fitted, method)(np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        getattr(fitted, method)(np.ones((0, 3)))


def test_failed_refit_keeps_previous_model_consistent(X):
    # A fit that raises must not leave a half-updated estimator: transform and
    # predict keep computing what the last successful fit computed.
    km = KMeans(3, random_state=0).fit(X)
    before_transform = km.transform(X[:5])
    before_labels = km.predict(X[:5])
    bad = X.copy()
    bad[0, 0] = np.nan
    km.set_params(metric="chebyshev")
    with pytest.raises(ValueError, match="NaN"):
        km.fit(bad)
    assert_array_equal(km.transform(X[:5]), before_transform)
    assert_array_equal(km.predict(X[:5]), before_labels)
    assert km.update_ == "mean"


def test_set_params_after_fit_does_not_change_fitted_metric(X):
    km = KMeans(3, random_state=0).fit(X)
    before = km.transform(X[:5])
    km.set_params(metric="manhattan")
    assert_array_equal(km.transform(X[:5]), before)


# -------------------------------------------------------- inputs unchanged
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_inputs_are_never_modified(metric, dtype, order):
    rng = np.random.default_rng(1)
    X = np.asarray((blobs(200, 3, 4, 1, np.float64, spread=40, std=8) + 80).astype(dtype), order=order)
    w = rng.uniform(0.0, 2.0, 200)
    w[::10] = 0
    init = np.asarray(X[[0, 50, 100, 150]], order=order)
    Y = np.asarray(X[::3] + 1, order=order)
    copies = {name: a.copy(order="K") for name, a in {"X": X, "w": w, "init": init, "Y": Y}.items()}

    km = KMeans(4, metric=metric, init=init).fit(X, sample_weight=w)
    km.predict(Y)
    km.transform(Y)
    km.score(Y, sample_weight=w[: Y.shape[0]])
    km.fit_predict(X, sample_weight=w)
    km.fit_transform(X, sample_weight=w)
    KMeans(4, metric=metric, random_state=0).fit(X, sample_weight=w)
    KMeans(4, metric=metric, init="random", random_state=0).fit(X, sample_weight=w)
    kmeans(X, 4, sample_weight=w, metric=metric, init=init)

    for name, original in {"X": X, "w": w, "init": init, "Y": Y}.items():
        assert_array_equal(original, copies[name], err_msg=name)
        assert original.dtype == copies[name].dtype
    # fitted attributes are not views of the caller's arrays
    assert not np.shares_memory(km.cluster_centers_, init)
    assert not np.shares_memory(km.cluster_centers_, X)


def test_list_inputs_are_not_modified():
    X = [[0.0, 1.0], [2.0, 3.0], [10.0, 10.0], [11.0, 12.0]]
    w = [1.0, 2.0, 1.0, 1.0]
    init = [[0.0, 0.0], [10.0, 10.0]]
    X0, w0, init0 = [r[:] for r in X], w[:], [r[:] for r in init]
    KMeans(2, init=init).fit(X, sample_weight=w)
    assert X == X0 and w == w0 and init == init0


@pytest.mark.parametrize("library", ["numpy", "other"])
def test_check_finite_returns_the_range_and_names_the_problem(library):
    """NumPy's check is its min and max (NaN propagates); other array libraries also ask isfinite."""
    import types

    from gpukmeans._validation import check_finite

    xp = np if library == "numpy" else types.SimpleNamespace(isfinite=np.isfinite, isnan=np.isnan)
    backend = types.SimpleNamespace(xp=xp)
    a = np.random.default_rng(0).standard_normal((1000, 3)).astype(np.float32)
    assert check_finite(a, backend, "X") == (float(a.min()), float(a.max()))
    for value, word in ((np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")):
        bad = a.copy()
        bad[500, 1] = value
        with pytest.raises(ValueError, match=f"X contains {word}"):
            check_finite(bad, backend, "X")
