"""The look-ahead of the mean update (``assign_ahead``, :mod:`gpukmeans.backends.cuda._ahead`), on the CPU.

The CUDA backend queues the assignment to the mean update of each
assignment's sums before the host has read them, overwriting the labels.
Its bookkeeping (:class:`Lookahead`) and the driver's side of the protocol
(settling the labels before reading them) run here with a NumPy stand-in for
the device that carries out every launch at once: a labels read the driver
forgot to settle sees the guessed assignment, and the fit then differs from
the plain CPU backend's. The GPU tests (``test_cuda.py``) run the real queue.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import METRICS, blobs, pick_init

from gpukmeans import KMeans
from gpukmeans._driver import lloyd
from gpukmeans.backends.cpu import CPUBackend
from gpukmeans.backends.cuda._ahead import Lookahead
from gpukmeans.metrics import get_metric


class _EagerDevice:
    """The device interface of :class:`Lookahead`, with each launch carried out when it is queued."""

    def __init__(self, X, sample_weight, metric, labels):
        self.run = (X, sample_weight, metric)
        self.labels = labels
        self.log: list[str] = []

    def upload(self, centers):
        return np.array(centers, copy=True)

    def launch(self, centers, gate):
        if gate is not None and gate["n_changed"] == 0:  # the device skips a gated group
            self.log.append("skip")
            return {"skipped": True}
        X, w, metric = self.run
        objective, n_changed, sums = CPUBackend().assign(X, w, centers, metric, self.labels, True)
        weights = sums[:, -1]
        means = sums[:, :-1] / np.where(weights > 0, weights, 1.0)[:, None]
        following = np.where((weights > 0)[:, None], means, centers).astype(centers.dtype)
        self.log.append("launch")
        return {"result": (objective, n_changed, sums, following), "n_changed": n_changed, "next": following}

    def next_centers(self, handle):
        return handle["next"]

    def wait(self, handle):
        assert "result" in handle, "waited for a group the device skipped"
        self.log.append("wait")
        return handle["result"]

    def restore(self, centers):
        X, w, metric = self.run
        CPUBackend().assign(X, w, centers, metric, self.labels, False)
        self.log.append("restore")


class _AheadCPUBackend(CPUBackend):
    """The CPU backend with the CUDA backend's ``assign_ahead`` / ``settle`` protocol, on :class:`_EagerDevice`."""

    def __init__(self, runs: list):
        super().__init__()
        self.runs = runs  # every Lookahead made, for the tests to inspect
        self._lookahead = None

    def bind(self, X, sample_weight):
        bound = super().bind(X, sample_weight)
        bound._lookahead = None
        return bound

    def _settle(self, labels, centers=None):
        lookahead = self._lookahead
        if lookahead is None or labels is not lookahead.labels:
            return None
        return lookahead.settle(centers)

    def settle(self, labels):
        self._settle(labels)
        if self._lookahead is not None and self._lookahead.labels is labels:
            self._lookahead = None  # as the CUDA backend: the queue is let go

    def assign_ahead(self, X, sample_weight, centers, metric, labels):
        lookahead = self._lookahead
        if lookahead is None or lookahead.labels is not labels:
            lookahead = self._lookahead = Lookahead(_EagerDevice(X, sample_weight, metric, labels), labels)
            self.runs.append(lookahead)
        return lookahead.assign(np.asarray(centers))

    def assign(self, X, sample_weight, centers, metric, labels, accumulate, previous=None):
        guessed = self._settle(labels, centers)
        if guessed is not None:
            objective, n_changed, sums = guessed
            return objective, n_changed, sums if accumulate else np.zeros_like(sums)
        return super().assign(X, sample_weight, centers, metric, labels, accumulate, previous)

    def assign_revertible(self, *args, **kwargs):  # the CUDA backend has no revert
        raise AssertionError("not used with the mean update")

    def point_costs(self, X, centers, metric, labels):
        self._settle(labels)
        return super().point_costs(X, centers, metric, labels)

    def update(self, X, sample_weight, labels, n_clusters, rule):
        self._settle(labels)
        return super().update(X, sample_weight, labels, n_clusters, rule)

    def label_counts(self, labels, n_clusters):
        self._settle(labels)
        return super().label_counts(labels, n_clusters)


def _runs(X, w, init, metric, max_iter, tol):
    """The same Lloyd run on the plain CPU backend and with the look-ahead; returns both and the Lookaheads."""
    runs: list = []
    kw = dict(metric=get_metric(metric), rule="mean", max_iter=max_iter, tol=tol)
    ref = lloyd(X, w, init, backend=CPUBackend(), **kw)
    got = lloyd(X, w, init, backend=_AheadCPUBackend(runs), **kw)
    return ref, got, runs


def _assert_same_run(ref, got):
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_array_equal(got.centers, ref.centers)
    assert got.objective == ref.objective and got.n_iter == ref.n_iter
    assert [h["n_changed"] for h in got.history] == [h["n_changed"] for h in ref.history]
    assert [h["objective"] for h in got.history] == [h["objective"] for h in ref.history]


def _integer_data(n, d, k, seed, dtype=np.float32):
    """Integer-valued data: every sum is exact, so the full sums equal the CPU backend's moved sums bit for bit."""
    return np.round(blobs(n, d, k, seed, spread=6.0) * 4).astype(dtype)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("max_iter, tol, stop", [(4, 0.0, "max_iter"), (300, 0.0, "strict"), (300, 50.0, "tol")])
def test_lookahead_run_equals_plain_run(metric, weighted, max_iter, tol, stop):
    X = _integer_data(3_000, 3, 6, seed=2)
    w = np.random.default_rng(0).integers(1, 4, X.shape[0]).astype(X.dtype) if weighted else np.ones(len(X), X.dtype)
    ref, got, (run,) = _runs(X, w, pick_init(X, 6, 1), metric, max_iter, tol)
    _assert_same_run(ref, got)
    assert run.ahead is None  # settled before the labels were returned
    if stop == "max_iter":
        assert ref.n_iter == max_iter and ref.history[-1]["n_changed"] > 0
        assert run.hits == max_iter and run.misses == 0  # iterations 2.. and the final assignment were guesses
    elif stop == "strict":
        assert ref.history[-1]["n_changed"] == 0
        assert run.hits == ref.n_iter - 1 and run.misses == 1  # the last guess, known to repeat, is dropped
        assert run.device.log[-2:] == ["skip", "wait"] and "restore" not in run.device.log  # and never computed
    else:
        assert ref.history[-1]["n_changed"] > 0 and ref.history[-1]["center_shift"] <= tol
        assert run.hits == ref.n_iter and run.misses == 0  # the final assignment was the last guess


@pytest.mark.parametrize("metric", METRICS)
def test_lookahead_with_empty_clusters_restores_the_labels(metric):
    """A relocation reads the labels and moves centers: the guess is dropped and the labels put back first."""
    X = _integer_data(2_000, 2, 4, seed=5)
    init = np.concatenate([pick_init(X, 4, 3), X.max(axis=0, keepdims=True) + 1000, X[:1]]).astype(X.dtype)
    ref, got, runs = _runs(X, np.ones(len(X), X.dtype), init, metric, 30, 0.0)
    _assert_same_run(ref, got)
    # the first relocation dropped the guess, put the labels back and let the queue go; a new queue followed
    assert runs[0].misses == 1 and runs[0].device.log[-1] == "restore" and len(runs) >= 2
    assert all(run.ahead is None for run in runs)


def test_lookahead_float_data_matches_plain_run():
    """Float data, unit weights: the plain CPU backend moves its sums, the look-ahead sums everything."""
    X = blobs(4_000, 3, 5, seed=9, dtype=np.float64)
    ref, got, (run,) = _runs(X, np.ones(len(X)), pick_init(X, 5, 2), "euclidean", 50, 0.0)
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-12)
    assert got.n_iter == ref.n_iter and run.hits >= got.n_iter - 1


def test_lookahead_bookkeeping_by_hand():
    """Guess taken, guess dropped (labels put back), gated guess after no change, and a settle before a read."""
    X = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]], dtype=np.float32)
    w = np.ones(5, np.float32)
    labels = np.full(5, -1, np.int32)
    device = _EagerDevice(X, w, 0, labels)
    la = Lookahead(device, labels)
    c0 = np.array([[0.0], [12.0]], np.float32)
    objective, n_changed, sums = la.assign(c0)
    assert n_changed == 5 and device.log == ["launch", "launch", "wait"]
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 1])  # the guess (means 0.5, 11) assigned already
    c1 = np.array([[0.5], [11.0]], np.float32)
    objective, n_changed, sums = la.assign(c1)  # the guess: no new assignment, one more queued (gated)
    assert n_changed == 0 and la.hits == 1 and device.log[-2:] == ["skip", "wait"]
    np.testing.assert_array_equal(sums, [[1.0, 2.0], [33.0, 3.0]])
    # the next guess (the same centers) was skipped: taking it returns the same results, without a wait
    before = len(device.log)
    again = la.assign(c1, look_ahead=False)
    assert again[:2] == (objective, 0) and again[2] is sums and len(device.log) == before
    # other centers: a new assignment; then a settle that drops the guess puts the labels back
    c2 = np.array([[11.0], [0.0]], np.float32)
    la.assign(c2)
    np.testing.assert_array_equal(labels, [1, 1, 0, 0, 0])
    # other centers again: the guess (11, 0.5) is dropped and the labels put back before the new assignment
    la.assign(np.array([[0.0], [1.0]], np.float32))  # labels [0, 1, 1, 1, 1]; the guess moves center 1 to 8.5
    assert device.log[-4:] == ["restore", "launch", "launch", "wait"] and la.misses == 1
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 1])  # the guess (0, 8.5) is assigned already
    la.settle()
    assert device.log[-1] == "restore" and la.misses == 2
    np.testing.assert_array_equal(labels, [0, 1, 1, 1, 1])


def test_kmeans_fit_with_lookahead_backend_equals_cpu(monkeypatch):
    """Through the estimator (n_init > 1, k-means++): the same fit as the CPU backend."""
    X = _integer_data(2_500, 3, 5, seed=4)
    runs: list = []
    ref = KMeans(5, n_init=3, random_state=0, backend="cpu").fit(X)
    got = KMeans(5, n_init=3, random_state=0, backend="cpu")
    monkeypatch.setattr("gpukmeans._estimator.get_backend", lambda *a, **k: _AheadCPUBackend(runs))
    got.fit(X)
    assert len(runs) == 3
    np.testing.assert_array_equal(got.labels_, ref.labels_)
    np.testing.assert_array_equal(got.cluster_centers_, ref.cluster_centers_)
    assert got.inertia_ == ref.inertia_ and got.n_iter_ == ref.n_iter_
