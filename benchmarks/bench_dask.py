"""k-means on Dask arrays: overhead against the in-memory fit, and weak scaling on a LocalCluster.

Cases (k = 8, float32 pixel-like data with 3 features, integer-valued; euclidean,
and manhattan with its median update, whose histograms ride with the
assignment tasks; explicit initial centers, ``tol=0`` and a fixed iteration
count, so every run does the same work):

- ``in-memory``: ``KMeans(backend="cpu").fit(X)`` on a NumPy array of ``n``
  samples, numba on 2 threads.
- ``dask-Nw``: the same fit on a Dask array of the same ``n`` samples (chunks of
  2.5M rows, 30 MB; ``GPUKMEANS_BENCH_CHUNK`` sets another size) already
  persisted on a ``LocalCluster`` of ``N`` worker processes with 1 thread each
  and ``NUMBA_NUM_THREADS=1`` (one core per worker). Cluster start-up and the
  persist are not timed; the fit's own validation pass, tolerance pass and
  final assignment are.
- Weak scaling (euclidean): ``n / 2`` samples on 1 worker against ``n``
  samples on 2 workers (same data per worker; ideal: same time).
- ``round trip``: two trivial tasks submitted and gathered, Dask's own latency.
  Each Lloyd iteration makes at least one round trip, so the in-memory
  iteration plus this time is a floor under the Dask iteration.

Each is timed at a short and a long iteration count; the marginal time of one
Lloyd iteration is ``(t_long - t_short) / (it_long - it_short)``.
``GPUKMEANS_BENCH_N`` caps ``n`` (default 10,000,000).

Run::

    pytest benchmarks/bench_dask.py --benchmark-json=benchmarks/results/dask.json
    python benchmarks/bench_dask.py          # prints a markdown table
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

N = int(os.environ.get("GPUKMEANS_BENCH_N") or 10_000_000)
K = 8
ITERATIONS = (5, 25)
CHUNK = int(os.environ.get("GPUKMEANS_BENCH_CHUNK") or 2_500_000)
ROUNDS = int(os.environ.get("GPUKMEANS_BENCH_ROUNDS", "3"))


def make_chunk(start, stop):
    """Rows ``start .. stop`` of the pixel-like data set: 3 features, 16 blobs, integers stored as float32."""
    centers = np.random.default_rng(0).uniform(0, 255, size=(16, 3))
    rng = np.random.default_rng([1, start])
    X = centers[rng.integers(0, 16, stop - start)] + rng.normal(scale=12.0, size=(stop - start, 3))
    return np.clip(np.round(X), 0, 255).astype(np.float32)


def bounds(n):
    return [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]


def make_data(n):
    """The whole data set in memory (the same rows the workers generate chunk by chunk)."""
    return np.concatenate([make_chunk(a, b) for a, b in bounds(n)])


def initial_centers(X, k=K):
    return X[np.random.default_rng(1).choice(X.shape[0], k, replace=False)].copy()


METRICS = ("euclidean", "manhattan")


def fit(X, init, n_iter, metric="euclidean"):
    from gpukmeans import KMeans

    return KMeans(K, metric=metric, init=init, n_init=1, max_iter=n_iter, tol=0).fit(X)


class Cluster:
    """A LocalCluster of ``n_workers`` processes x 1 thread, its client the default one."""

    def __init__(self, n_workers):
        import distributed

        # One core per worker (numba too), so that 1 worker vs 2 is a weak-scaling comparison on 2 cores.
        # ``env`` is applied in each worker process after it re-imports the main module: this one does not import
        # numba at module level (a main module that does would make the workers fail their first compilation).
        # Not ``distributed.nanny.pre-spawn-environ``: that one is also left set in this process.
        self.cluster = distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"NUMBA_NUM_THREADS": "1"},
        )
        self.client = distributed.Client(self.cluster)
        self.client.wait_for_workers(n_workers)

    def persist(self, n):
        """The first ``n`` rows of the data set as a Dask array, generated and kept on the workers."""
        import dask
        import dask.array as da

        parts = [
            da.from_delayed(dask.delayed(make_chunk)(a, b), shape=(b - a, 3), dtype=np.float32) for a, b in bounds(n)
        ]
        Xd = da.concatenate(parts).persist()
        distributed_wait(Xd)
        return Xd

    def close(self):
        self.client.close()
        self.cluster.close()


def distributed_wait(x):
    import distributed

    distributed.wait(x)


def _identity(x):
    return x


def round_trip(client, n_tasks=2):
    """One Dask round trip: ``n_tasks`` trivial tasks submitted, run on the workers, and gathered.

    Every Lloyd iteration on Dask makes at least one (the new centers need all
    chunks' statistics), so the in-memory iteration plus this time bounds the
    Dask iteration from below, whatever the kernels do.
    """
    client.gather([client.submit(_identity, i, pure=False) for i in range(n_tasks)])


def _time(fn, rounds=ROUNDS):
    fn()  # warm-up: numba cache load in the workers, thread pools up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


# ------------------------------------------------------------------ pytest-benchmark entry points
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def data():
    X = make_data(N)
    return X, initial_centers(X)


@pytest.fixture(scope="module", params=[1, 2], ids=["1w", "2w"])
def cluster(request):
    c = Cluster(request.param)
    c.n_workers = request.param
    yield c
    c.close()


@pytest.mark.parametrize("n_iter", ITERATIONS)
@pytest.mark.parametrize("metric", METRICS)
def test_in_memory(benchmark, data, metric, n_iter):
    X, init = data
    benchmark.group = f"dask overhead, {metric}"
    km = benchmark.pedantic(lambda: fit(X, init, n_iter, metric), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(library="in-memory", n=X.shape[0], n_iter=km.n_iter_, workers=0, metric=metric)


@pytest.mark.parametrize("n_iter", ITERATIONS)
@pytest.mark.parametrize("metric", METRICS)
def test_dask(benchmark, data, cluster, metric, n_iter):
    X, init = data
    if cluster.n_workers == 1 and metric != "euclidean":
        pytest.skip("weak scaling is measured for euclidean only")
    n = N // 2 if cluster.n_workers == 1 else N  # weak scaling: the same samples per worker
    Xd = cluster.persist(n)
    benchmark.group = f"dask overhead, {metric}" if cluster.n_workers == 2 else "dask weak scaling"
    km = benchmark.pedantic(lambda: fit(Xd, init, n_iter, metric), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(library="dask", n=n, n_iter=km.n_iter_, workers=cluster.n_workers, metric=metric)


def test_round_trip(benchmark, cluster):
    """Dask's own latency: the floor under the per-iteration overhead of a Dask fit."""
    benchmark.group = "dask round trip"
    round_trip(cluster.client)  # connections up
    benchmark.pedantic(lambda: round_trip(cluster.client), rounds=30, iterations=1, warmup_rounds=3)
    benchmark.extra_info.update(library="dask", workers=cluster.n_workers, tasks=2)


# ------------------------------------------------------------------ standalone: a markdown table
def main():
    X = make_data(N)
    init = initial_centers(X)
    res, iters, ref_labels, same, trips = {}, {}, {}, {}, {}
    for metric in METRICS:
        for n_iter in ITERATIONS:
            t, km = _time(lambda n_iter=n_iter, metric=metric: fit(X, init, n_iter, metric))
            res[("in-memory", metric, N, n_iter)] = t
            iters[("in-memory", metric, N, n_iter)] = km.n_iter_
            ref_labels[metric] = km.labels_
    for workers, n in ((1, N // 2), (2, N)):
        c = Cluster(workers)
        try:
            Xd = c.persist(n)
            round_trip(c.client)
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                round_trip(c.client)
                times.append(time.perf_counter() - t0)
            trips[workers] = (float(np.median(times)), min(times))
            for metric in METRICS if workers == 2 else METRICS[:1]:
                for n_iter in ITERATIONS:
                    t, km = _time(lambda n_iter=n_iter, Xd=Xd, metric=metric: fit(Xd, init, n_iter, metric))
                    res[(f"dask {workers}w", metric, n, n_iter)] = t
                    iters[(f"dask {workers}w", metric, n, n_iter)] = km.n_iter_
                if n == N:
                    same[metric] = bool(np.array_equal(km.labels_.compute(), ref_labels[metric]))
        finally:
            c.close()
    a, b = ITERATIONS
    print(f"n = {N:,} x 3 float32, k = {K}, {a} and {b} iterations, best of {ROUNDS}; labels equal: {same}")
    print("| run | metric | samples | fit, long (s) | fit, short (s) | iterations | per iteration (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, metric, n, n_iter), t in res.items():
        if n_iter == b:
            short = res[(name, metric, n, a)]
            i_long, i_short = iters[(name, metric, n, n_iter)], iters[(name, metric, n, a)]
            marginal = (t - short) / max(i_long - i_short, 1)  # the iterations run (a fit may converge early)
            print(
                f"| {name} | {metric} | {n:,} | {t:.2f} | {short:.2f} | {i_long} and {i_short} | {marginal * 1e3:.1f} |"
            )
    for workers, (median, best) in trips.items():
        print(f"round trip, 2 trivial tasks, {workers} worker(s): median {median * 1e3:.1f}, best {best * 1e3:.1f} ms")
    for metric in METRICS:
        base = res[("in-memory", metric, N, b)]
        print(f"overhead dask 2w / in-memory, {metric}, {b} iterations: {res[('dask 2w', metric, N, b)] / base:.2f}x")
        per_iter = (base - res[("in-memory", metric, N, a)]) / max(
            iters[("in-memory", metric, N, b)] - iters[("in-memory", metric, N, a)], 1
        )
        floor = (per_iter + trips[2][1]) / per_iter
        print(f"  floor from one best round trip per iteration ({per_iter * 1e3:.1f} ms in memory): {floor:.2f}x")
    print(
        f"weak scaling (2w at n / 1w at n/2), euclidean, {b} iterations: "
        f"{res[('dask 2w', 'euclidean', N, b)] / res[('dask 1w', 'euclidean', N // 2, b)]:.2f}x (ideal 1.0)"
    )


if __name__ == "__main__":
    main()
