"""Segmentation speed: one Aral crop (three metrics) and a 100-million-pixel RGB image (pytest-benchmark).

Run::

    pytest benchmarks/bench_segmentation.py --benchmark-columns=min,mean,max,rounds

* ``test_aral_crop_three_metrics``: :func:`gpukmeans.imagery.segment` with the
  package defaults (k=3, k-means++ with 10 starts, the update that suits each
  metric, de-duplication) on the article's 460 x 390 crop of ``MOD_01.jpg``,
  for euclidean, manhattan and chebyshev in turn; numba kernels are compiled
  (or loaded from the cache) in a warm-up round first.
* ``test_100m_pixels``: a 10,000 x 10,000 x 3 uint8 image tiled from the two
  shipped MODIS images (both dates, flipped), segmented with the defaults
  (euclidean): count distinct colours, fit, label every pixel block by block.
  Peak memory allocated by the call (``tracemalloc``, which sees NumPy
  buffers) is recorded in ``extra_info``: it is the 200 MB int16 label map
  plus bounded working memory (the 128 MB colour table and 4 M-pixel blocks).
  Set ``GPUKMEANS_BENCH_SIDE`` to change the side (default 10000; the square
  root of ``GPUKMEANS_BENCH_N`` when that cap is set, as in CI's smoke pass).

Not part of the test suite (``testpaths = tests``).
"""

from __future__ import annotations

import math
import os
import tracemalloc

import numpy as np
import pytest

from gpukmeans.imagery import Raster, aral, segment

METRICS = ("euclidean", "manhattan", "chebyshev")
_CAP = os.environ.get("GPUKMEANS_BENCH_N")  # CI's smoke pass caps every case (see _common.py)
SIDE = int(os.environ.get("GPUKMEANS_BENCH_SIDE", math.isqrt(int(_CAP)) if _CAP else 10000))


def tiled_image(side: int) -> np.ndarray:
    """A ``(side, side, 3)`` uint8 image tiled from both shipped MODIS images (and their flips)."""
    a, b = (r.data for r in aral.load(window=None))
    tile = np.concatenate(
        [np.concatenate([a, b[:, ::-1]], axis=1), np.concatenate([b[::-1], a[::-1, ::-1]], axis=1)], axis=0
    )
    reps = (-(-side // tile.shape[0]), -(-side // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:side, :side])


def _three_metrics(raster):
    return [segment(raster, 3, metric=m, random_state=0) for m in METRICS]


def test_aral_crop_three_metrics(benchmark):
    raster = aral.load()[0]
    _three_metrics(raster)  # compile / load the kernels
    segs = benchmark.pedantic(_three_metrics, args=(raster,), rounds=10, warmup_rounds=1)
    benchmark.extra_info.update(
        n_pixels=raster.height * raster.width,
        n_distinct=segs[0].n_fit_samples,
        water_pixels={m: int(s.counts[0]) for m, s in zip(METRICS, segs)},
    )
    assert all(s.dedup for s in segs)


@pytest.fixture(scope="module")
def big():
    img = tiled_image(SIDE)
    segment(Raster(img[:64]), 3, random_state=0)  # compile / load the kernels
    return Raster(img, pixel_size=500.0)


def _traced(raster):
    tracemalloc.start()
    try:
        seg = segment(raster, 3, random_state=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seg, peak


def test_100m_pixels(benchmark, big):
    seg, peak = benchmark.pedantic(_traced, args=(big,), rounds=1, iterations=1)
    benchmark.extra_info.update(
        n_pixels=big.height * big.width,
        n_distinct=seg.n_fit_samples,
        peak_alloc_mb=round(peak / 2**20),
        image_mb=round(big.data.nbytes / 2**20),
        labels_mb=round(seg.labels.nbytes / 2**20),
        timings_s={k: round(v, 3) for k, v in seg.timings.items()},
    )
    assert seg.counts.sum() == big.height * big.width
