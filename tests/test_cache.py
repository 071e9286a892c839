"""numba's on-disk cache must really hit in a new process, for every kernel a fit uses.

Checked with numba's own counters (cache hits / misses per dispatcher), not with
timings: the first subprocess compiles whatever is not cached yet, the second must
load every kernel from disk and compile nothing.
"""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from gpukmeans import KMeans
    from gpukmeans.backends import _numba_kernels as kernels

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        X = rng.random((3000, 3)).astype(dtype)
        for metric in ("euclidean", "manhattan", "chebyshev"):
            for update in ("mean", "median", "guarded"):
                km = KMeans(4, metric=metric, update=update, random_state=0).fit(X)
                km.predict(X)
                km.transform(X)
        # integer-valued imagery takes the histogram median
        Xint = (X * 255).astype(np.uint8).astype(dtype)
        KMeans(4, metric="manhattan", random_state=0).fit(Xint)
        KMeans(4, metric="manhattan", random_state=0).fit(Xint, sample_weight=np.full(len(X), 2.0))
        # float data with weights: the bucket select counted afresh (unit weights keep and move its counts)
        KMeans(4, metric="manhattan", random_state=0).fit(X, sample_weight=np.full(len(X), 2.0))
        # duplicates force empty-cluster relocation (point_costs, weighted_sums)
        KMeans(5, random_state=0).fit(np.repeat(X[:3], 50, axis=0))
        # the median histograms' second-pass update (relocated copies, wide histograms)
        labels = km.predict(Xint)
        kernels.histogram_moves(Xint, labels, np.zeros_like(labels), 0.0, np.zeros((4, 3, 256)))
        # wide histograms (uint16 bands): medians scanned in parallel
        kernels.medians_from_histogram(np.ones((4, 3, 1 << 13)), 0.0)
        # the quickselect median (float data with more clusters x features than the bucket select takes)
        kernels.weighted_median(X, np.ones(len(X), dtype), labels, 4)
    stats = {}
    for name in dir(kernels):
        obj = getattr(kernels, name)
        if hasattr(obj, "stats") and hasattr(obj, "py_func"):
            stats[name] = [sum(obj.stats.cache_hits.values()), sum(obj.stats.cache_misses.values())]
    print(json.dumps(stats))
    """
)


def _run() -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_every_kernel_from_disk():
    _run()  # compiles (or already hits) and writes the cache
    stats = _run()
    used = {name: hm for name, hm in stats.items() if hm[0] + hm[1] > 0}
    # the parallel kernels a fit needs must be among those used
    for name in (
        "assign_kernel",
        "pairwise",
        "point_costs_kernel",
        "cluster_objectives_kernel",
        "weighted_sums",
        "weighted_median",
        "weighted_median_buckets",
        "bucket_histograms",
        "medians_from_buckets",
        "_bucket_moves",
        "feature_ranges",
        "label_counts",
        "histogram",
        "_medians_serial",
        "_histogram_weights",
        "_medians_parallel",
        "_histogram_moves",
        "integer_range",
    ):
        assert name in used, f"kernel {name} was not exercised"
    misses = {name: hm[1] for name, hm in used.items() if hm[1]}
    assert not misses, f"kernels compiled again in a new process (cache misses): {misses}"
