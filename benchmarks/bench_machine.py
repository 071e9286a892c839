"""The machine's limits, measured in the same run as the Lloyd benchmarks.

- Memory read bandwidth: a parallel numba sum (all threads, vectorised) over a
  float32 array, best of several passes, at several array sizes: the small
  ones fit in a cache, the largest measures DRAM. The report divides the bytes
  of X by the bandwidth measured at the nearest size to get the time floor of
  one Lloyd iteration (X must be read once per iteration).
- Peak FLOP/s: square ``matmul`` through NumPy's BLAS (all its threads), in
  float32 and float64; ``2 n k d`` / peak is the arithmetic floor of one
  iteration.

The figures are in each benchmark's ``extra_info`` (``gb_per_s``, ``gflop_per_s``).
"""

from __future__ import annotations

import pytest
from _common import SMOKE
from _machine import peak_flops, read_bandwidth

MIB = 2**20
#: Powers of 4 from 4 MiB to 1 GiB, and the size of X in the headline cases (pixels, 3 float32 features,
#: 100k to 30M samples), so that their floors use the bandwidth measured at their own size: the host's
#: shared L3 makes 64 MiB read far faster than 120 MB at times.
_HEADLINE = tuple(n * 3 * 4 for n in (100_000, 1_000_000, 3_000_000, 10_000_000, 30_000_000))
SIZES = (1 * MIB, 4 * MIB) if SMOKE else tuple(sorted({4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB, *_HEADLINE}))


@pytest.mark.parametrize("n_bytes", SIZES, ids=[f"{s // MIB}MiB" if s % MIB == 0 else f"{s / 1e6:g}MB" for s in SIZES])
def test_read_bandwidth(benchmark, n_bytes):
    benchmark.group = "machine: memory read bandwidth"
    result = benchmark.pedantic(read_bandwidth, args=(n_bytes,), rounds=1, iterations=1)
    benchmark.extra_info.update(kind="read_bandwidth", **result)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_peak_flops(benchmark, dtype):
    benchmark.group = "machine: GEMM peak"
    size = 256 if SMOKE else 2048
    result = benchmark.pedantic(peak_flops, args=(dtype, size), rounds=1, iterations=1)
    benchmark.extra_info.update(kind="peak_flops", **result)
