"""GeoTIFF segmentation through Dask: read in windows, cluster, write the class map block by block."""

from __future__ import annotations

import os
from typing import Any

import dask
import numpy as np
from dask import delayed

from ._backend import _stack_blocks
from ._scheduler import active_client, ensure_scheduler


def _open(path):
    try:
        import rasterio
    except ImportError:
        raise ImportError("Reading GeoTIFF needs rasterio: pip install 'gpukmeans[geo]'.") from None
    return rasterio.open(path)


def _read_strip(path, r0, r1, nodata, rule):
    """Pixels (n, bands) of rows r0..r1 (all columns) and their validity; NaN pixels are zeroed (weight 0)."""
    from rasterio.windows import Window

    from ..imagery._mask import valid_pixels

    with _open(path) as ds:
        data = ds.read(window=Window(0, r0, ds.width, r1 - r0))
    pixels = np.ascontiguousarray(np.moveaxis(data, 0, -1).reshape(-1, data.shape[0]))
    valid = valid_pixels(pixels, nodata, rule)
    if pixels.dtype.kind == "f" and not valid.all():
        pixels = np.where(valid[:, None], np.nan_to_num(pixels, nan=0.0, posinf=0.0, neginf=0.0), 0)
    return pixels, valid


def read_geotiff(path: str | os.PathLike, *, block_rows: int = 256, nodata_rule: str = "all"):
    """A GeoTIFF as a lazy Dask array of pixels, read in windows of ``block_rows`` full rows.

    Returns
    -------
    pixels : dask.array.Array of shape (rows * cols, bands), the file's dtype
        Row chunks are strips of ``block_rows`` image rows (``block_rows * cols`` pixels).
    valid : dask.array.Array of shape (rows * cols,) bool
        False for nodata pixels (see :mod:`gpukmeans.imagery._mask` for ``nodata_rule``).
    profile : dict
        The source's rasterio profile.
    """
    from ..imagery._mask import check_rule

    check_rule(nodata_rule)
    path = os.fspath(path)
    with _open(path) as ds:
        height, width, count, dtype = ds.height, ds.width, ds.count, np.dtype(ds.dtypes[0])
        nodatavals = ds.nodatavals
        profile = dict(ds.profile)
    nodata = None
    if any(v is not None for v in nodatavals):
        nodata = [float("nan") if v is None else float(v) for v in nodatavals]
    bounds = [(r, min(r + block_rows, height)) for r in range(0, height, block_rows)]
    parts = [delayed(_read_strip, nout=2, pure=True)(path, r0, r1, nodata, nodata_rule) for r0, r1 in bounds]
    chunks = tuple((r1 - r0) * width for r0, r1 in bounds)
    pixels = _stack_blocks(parts, chunks, dtype, ncols=count, item=0)
    valid = _stack_blocks(parts, chunks, bool, item=1)
    return pixels, valid, profile


def _class_strip(labels, valid, fill, dtype, rows, cols):
    out = np.where(valid, labels, fill).astype(dtype)
    return out.reshape(rows, cols)


def segment_geotiff(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    n_clusters: int = 8,
    *,
    block_rows: int = 256,
    nodata_rule: str = "all",
    kmeans: Any = None,
    **params: Any,
):
    """Segment a GeoTIFF on the Dask cluster and write its class map, block by block.

    The image is read in strips of ``block_rows`` rows by the workers (never as
    a whole), clustered with :class:`gpukmeans.KMeans` on the Dask array of
    valid pixels (nodata pixels get weight 0), and labelled strip by strip; each
    strip of the class map is written to ``dst`` as soon as it is computed, so
    the client holds one strip of labels at a time.

    Parameters
    ----------
    src, dst : path
        Input GeoTIFF; output single-band GeoTIFF (same grid, CRS and transform;
        uint8 classes ``0 .. n_clusters - 1``, nodata 255; uint16 with nodata
        65535 from 255 clusters on).
    n_clusters : int
    block_rows : int, default=256
        Image rows per Dask chunk (read window and written block).
    nodata_rule : {"all", "any", "none"}
    kmeans : KMeans, optional
        An estimator to use (fitted on this image, or already fitted: then it
        only predicts). Default ``KMeans(n_clusters, **params)``.
    **params
        Other :class:`gpukmeans.KMeans` parameters (``metric``, ``init``,
        ``random_state``, ...).

    Returns
    -------
    KMeans
        The fitted estimator.
    """
    from .._estimator import KMeans

    ensure_scheduler()
    pixels, valid, profile = read_geotiff(src, block_rows=block_rows, nodata_rule=nodata_rule)
    height, width = profile["height"], profile["width"]
    pixels, valid = dask.persist(pixels, valid)
    km = kmeans if kmeans is not None else KMeans(n_clusters, **params)
    if not hasattr(km, "cluster_centers_") or kmeans is None:
        km.fit(pixels, sample_weight=valid.astype(np.float32))
    labels = km.predict(pixels)
    k = km.cluster_centers_.shape[0]
    dtype, fill = (np.uint8, 255) if k < 255 else (np.uint16, 65535)
    out_profile = {
        key: value for key, value in profile.items() if key not in ("blockxsize", "blockysize", "tiled", "interleave")
    }
    out_profile.update(driver="GTiff", count=1, dtype=np.dtype(dtype).name, nodata=fill, compress="deflate")
    strips = [(r, min(r + block_rows, height)) for r in range(0, height, block_rows)]
    lab_blocks = list(labels.to_delayed().ravel())
    val_blocks = list(valid.to_delayed().ravel())
    tasks = [
        delayed(_class_strip)(lab, val, fill, dtype, r1 - r0, width)
        for lab, val, (r0, r1) in zip(lab_blocks, val_blocks, strips)
    ]
    from rasterio.windows import Window

    with _open_write(dst, out_profile) as out:
        client = active_client()
        if client is not None:
            from distributed import as_completed

            futures = client.compute(tasks)
            where = {f.key: i for i, f in enumerate(futures)}
            for future, block in as_completed(futures, with_results=True):
                r0, r1 = strips[where[future.key]]
                out.write(block, 1, window=Window(0, r0, width, r1 - r0))
                future.release()
        else:
            for (r0, r1), task in zip(strips, tasks):
                out.write(task.compute(), 1, window=Window(0, r0, width, r1 - r0))
    return km


def _open_write(path, profile):
    import rasterio

    return rasterio.open(os.fspath(path), "w", **profile)
