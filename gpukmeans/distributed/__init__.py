"""k-means on Dask arrays, on Dask's own scheduler (``pip install "gpukmeans[dask]"``).

:class:`gpukmeans.KMeans` dispatches here when ``X`` is a ``dask.array.Array``
(detected by type, without importing Dask): ``fit``, ``fit_predict``,
``predict``, ``transform``, ``fit_transform`` and ``score`` accept one. Nothing
else changes: same parameters, same attributes, same answer.

How a fit runs
--------------
- The data are persisted once (in the input dtype, one chunk along features);
  each Lloyd iteration maps the kernels over the row chunks, one task per
  chunk (NumPy chunks: the numba CPU kernels; CuPy chunks: the CUDA
  backend), and only per-chunk statistics come back: ``(k, d + 1)`` weighted
  sums and weights, the objective and the number of changed labels. The client
  reduces them in chunk order and the next centers travel with the next tasks.
  The samples never leave the workers.
- The Lloyd loop is the in-memory one (:func:`gpukmeans._driver.lloyd`), run on
  a Dask backend (:class:`gpukmeans.distributed._backend.DaskBackend`): same
  convergence rule (no label changed, or squared center shift within
  ``tol`` x weighted mean variance), same relocation of empty clusters to the
  farthest samples (an exact, stable distributed top-m), same final
  assignment. From the same initial centers it gives the in-memory answer
  (identical labels on tie-free data, centers equal up to float64 summation
  order), whatever the chunking.
- Median updates (manhattan, and the guarded rule of chebyshev) are exact:
  integer-valued data (imagery) use per-chunk histograms (one pass, as the
  in-memory histogram kernel); other data use a distributed radix select on the
  bit patterns of the values: one pass per byte (4 for float32, 8 for float64),
  plus one pass when a cluster's cumulative weight hits exactly half (the
  midpoint rule). Same definition and result as the in-memory median.
- ``labels_`` is a persisted Dask array (int32, the input's row chunks);
  ``predict`` and ``transform`` return lazy Dask arrays with the input's row
  chunks, of the input's chunk type (CuPy chunks give CuPy chunks);
  ``cluster_centers_`` is a NumPy array, so the fitted estimator also
  predicts on NumPy input.

Initialisation
--------------
- ``"k-means++"`` and ``"random"`` run on a sample: with at most
  :data:`INIT_SAMPLE_SIZE` (131072, or 64 x n_clusters if larger) samples, the
  sample is the whole data set and the draw is exactly that of the in-memory
  fit for the same ``random_state``; beyond, a uniform sample of that many
  distinct rows (with their weights) is gathered and seeded in memory.
- ``"k-means||"`` (Bahmani et al. 2012, scalable k-means++), for Dask input
  only: 5 rounds, each sampling about ``2 x n_clusters`` candidates with
  probability ``min(1, l w_i D(x_i) / phi)`` (two passes per round), then the
  candidates, weighted by the weight of the samples nearest to them, are reduced
  to ``n_clusters`` centers by weighted k-means++ in memory. Its result depends
  on the chunking (one random stream per chunk).
- An explicit array or a callable, as for in-memory input.

Scheduler
---------
An active ``distributed.Client`` is used as is (a ``LocalCluster``, a
``dask-cuda`` cluster, a remote one); a scheduler set with
``dask.config.set(scheduler=...)`` is honoured; otherwise the first fit starts
a ``LocalCluster`` and makes its client the default. Inside each task the numba
kernels use ``cores // (Dask threads on the host)`` threads.

CuPy chunks
-----------
A Dask array whose chunks are CuPy arrays (``da.from_array(cupy_array)``,
``X.map_blocks(cupy.asarray)``, or a ``dask-cuda`` cluster) is clustered on the
GPU: each task runs the CUDA backend (:mod:`gpukmeans.backends.cuda`) on its
chunk, and only the small statistics come to the host, where they are reduced
in chunk order as for NumPy chunks, so the fit equals the in-memory one.
Median updates use the GPU histogram kernel (integer-valued data) or a radix
select counted on the GPU; a chunk with non-integer weights has those counts
made on the host from a copy of the chunk. A task runs on its thread's current
GPU, which must hold its chunk: one GPU per worker, as ``dask-cuda`` sets up,
or the threaded scheduler on a single GPU.

A worker lost during a fit is handled by Dask: its tasks are retried and lost
chunks recomputed from their lineage, so the fit finishes with the same
result, or Dask raises (e.g. ``KilledWorker``) - never a silently wrong result.
"""

from __future__ import annotations

try:
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides Dask
    raise ImportError(
        "k-means on Dask arrays needs dask[array] and distributed: pip install 'gpukmeans[dask]' "
        f"(import failed: {exc})."
    ) from exc

from ._fit import INIT_SAMPLE_SIZE, fit, predict, score, transform
from ._raster import segment_geotiff

__all__ = ["INIT_SAMPLE_SIZE", "fit", "predict", "transform", "score", "segment_geotiff"]
