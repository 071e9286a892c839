"""Where one GPU Lloyd iteration spends its time: each backend call alone, against one read of X.

    python scripts/gpu_profile.py [n_samples]      (default 100,000,000 x 3 float32, k = 8)

Times (CUDA events, best of 10 after a warm-up) a CuPy sum over X (the read floor),
the fused assign kernel with and without the weighted sums, the median and
objective updates, and whole iterations of ``KMeans.fit`` for each metric/update
(marginal: fit with 12 minus fit with 2 iterations, divided by 10). Prints a table.
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    import cupy as cp

    from gpukmeans import KMeans
    from gpukmeans.backends.cuda import CUDABackend

    n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 100_000_000
    k, d = 8, 3
    rng = cp.random.default_rng(0)
    X = cp.floor(rng.random((n, d), dtype=cp.float32) * 256).astype(cp.float32)  # imagery-like integers
    w = cp.ones(n, dtype=cp.float32)
    # bound to (X, w) as in a fit: an unbound backend would check "all weights are 1" and "X is
    # integer-valued" at every call, a pass over w or X that a fit pays once
    be = CUDABackend().bind(X, w)
    C = X[cp.asarray(np.random.default_rng(0).choice(n, k, replace=False))].copy()
    labels = cp.full(n, -1, dtype=cp.int32)

    def best(fn, reps=10):
        fn()
        cp.cuda.Device().synchronize()
        times = []
        for _ in range(reps):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
        return min(times)

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    t_read = best(lambda: X.sum())
    gbs = X.nbytes / t_read / 1e9
    print(f"device {name}; X {n:,} x {d} float32 = {X.nbytes / 1e9:.2f} GB; read (CuPy sum) {t_read * 1e3:.3f} ms")
    print(f"read bandwidth {gbs:.0f} GB/s")
    rows = []
    be.assign(X, w, C, 0, labels, True)
    for metric in (0, 1, 2):
        rows.append((f"assign+sums metric {metric}", best(lambda m=metric: be.assign(X, w, C, m, labels, True))))
        rows.append((f"assign only metric {metric}", best(lambda m=metric: be.assign(X, w, C, m, labels, False))))
    rows.append(("update mean (separate sums)", best(lambda: be.update(X, w, labels, k, "mean"))))
    rows.append(("update median (histograms)", best(lambda: be.update(X, w, labels, k, "median"))))
    cand = cp.stack([C, C + 1, C - 1])
    rows.append(("objective of 3 candidate sets", best(lambda: be.objective(X, w, labels, cand, 2))))
    wf = rng.random(n, dtype=cp.float32)
    be_wf = CUDABackend().bind(X, wf)
    rows.append(("assign+sums, float weights", best(lambda: be_wf.assign(X, wf, C, 0, labels, True))))
    if n <= 20_000_000:
        Xf = X + 0.5
        be_xf = CUDABackend().bind(Xf, w)
        rows.append(("update median (sorting, float X)", best(lambda: be_xf.update(Xf, w, labels, k, "median"), 3)))
    init = cp.asnumpy(C)
    for metric, update in [
        ("euclidean", "mean"),
        ("manhattan", "mean"),
        ("chebyshev", "mean"),
        ("manhattan", "median"),
        ("chebyshev", "guarded"),
    ]:
        fits = {}
        for it in (2, 12):
            km = KMeans(k, metric=metric, update=update, init=init, n_init=1, max_iter=it, tol=0)
            fits[it] = best(lambda km=km: km.fit(X), 3)
        rows.append((f"fit iteration {metric}/{update}", (fits[12] - fits[2]) / 10))
    print(f"{'what':40s} {'ms':>9s} {'x read':>7s} {'GB/s of X':>10s}")
    for what, t in rows:
        print(f"{what:40s} {t * 1e3:9.3f} {t / t_read:7.2f} {X.nbytes / t / 1e9:10.0f}")


if __name__ == "__main__":
    main()
