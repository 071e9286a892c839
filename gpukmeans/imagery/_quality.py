"""Cluster quality of a segmentation: the silhouette on a random sample of pixels."""

from __future__ import annotations

import numpy as np

from ._segment import Segmentation


def segmentation_silhouette(seg: Segmentation, sample_size: int = 4000, random_state: int = 0) -> float | None:
    """Silhouette score, in the segmentation's metric, of ``sample_size`` random valid pixels.

    Computed on the pixel values only (the article also fed its distance
    columns to the score, which inflates it). Returns ``None`` when
    :mod:`gpukmeans.silhouette` is not available, or fewer than two classes are
    present in the sample.
    """
    try:
        from ..silhouette import silhouette_score
    except ImportError:  # pragma: no cover - the module ships with the package
        return None
    flat = seg.labels.reshape(-1)
    valid = np.flatnonzero(flat >= 0)
    rng = np.random.default_rng(random_state)
    if valid.size > sample_size:
        valid = np.sort(rng.choice(valid, size=sample_size, replace=False))
    rows, cols = np.divmod(valid, seg.labels.shape[1])
    X = np.asarray(seg.raster.data[rows, cols], dtype=np.float64)
    labels = flat[valid]
    if np.unique(labels).size < 2:
        return None
    return float(silhouette_score(X, labels, metric=seg.params.get("metric", "euclidean")))
