"""JIT compile time of the CPU backend, measured apart from the run time.

Each case runs fresh Python processes that fit a small problem three times in
a row (euclidean/mean, then manhattan/median, then chebyshev/guarded), each
fit twice: the first fit of a step pays for compiling (or loading from numba's
on-disk cache) the kernels that step needs beyond the earlier ones, the second
runs them compiled. ``cold`` uses an empty ``NUMBA_CACHE_DIR`` (what the first
use after installation costs), ``cached`` then reuses that directory in a new
process (every later use). The import of gpukmeans is timed too.
``bench_gpu.py`` runs the same script with ``backend="cuda"`` (NVRTC, CuPy's
kernel cache).

The smoke pass (``GPUKMEANS_BENCH_N`` set) measures only the ``cached`` case
against the default cache location, which the test suite has filled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
from _common import SMOKE

SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from gpukmeans import KMeans
out = {"import_s": time.perf_counter() - t0, "steps": {}}
dtype, backend = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (20000, 3)).astype(dtype)
sync = lambda: None
if backend == "cuda":  # the data on the device; every fit ends with a synchronisation
    import cupy
    X = cupy.asarray(X)
    sync = cupy.cuda.Device().synchronize
for metric, update in (("euclidean", "mean"), ("manhattan", "median"), ("chebyshev", "guarded")):
    times = []
    for _ in range(2):
        t = time.perf_counter()
        KMeans(8, metric=metric, update=update, init=X[:8], n_init=1, max_iter=3, tol=0, backend=backend).fit(X)
        sync()
        times.append(time.perf_counter() - t)
    out["steps"][f"{metric}/{update}"] = {"first_s": times[0], "second_s": times[1], "compile_s": times[0] - times[1]}
out["total_compile_s"] = sum(s["compile_s"] for s in out["steps"].values())
print(json.dumps(out))
"""

#: The environment variable that moves each backend's on-disk kernel cache.
CACHE_VARIABLE = {"cpu": "NUMBA_CACHE_DIR", "cuda": "CUPY_CACHE_DIR"}


def run_steps(dtype: str, cache_dir: str | None, backend: str = "cpu") -> dict:
    """The three steps of ``SCRIPT`` in a fresh process, with ``cache_dir`` as the backend's kernel cache."""
    env = dict(os.environ)
    if cache_dir is not None:
        env[CACHE_VARIABLE[backend]] = cache_dir
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, dtype, backend],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dtype", ["float32"] if SMOKE else ["float32", "float64"])
def test_compile_time(benchmark, dtype):
    benchmark.group = "compile"
    if SMOKE:
        cached = benchmark.pedantic(run_steps, args=(dtype, None), rounds=1, iterations=1)
        benchmark.extra_info.update(kind="compile", dtype=dtype, cold=None, cached=cached)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cold = benchmark.pedantic(run_steps, args=(dtype, tmp), rounds=1, iterations=1)
        cached = run_steps(dtype, tmp)
    benchmark.extra_info.update(kind="compile", dtype=dtype, cold=cold, cached=cached)
