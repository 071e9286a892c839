"""Cluster the pixels of a raster into a class map: :func:`segment`."""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import Progress
from .._validation import check_random_state
from ..metrics import get_metric, resolve_update
from ._dedup import DistinctPixels, PixelCodec, count_distinct
from ._errors import ImageryError
from ._georef import PixelArea, class_areas_km2, pixel_area
from ._mask import check_rule, iter_blocks
from ._raster import Raster, as_raster

#: Label of masked (nodata) pixels in :attr:`Segmentation.labels`.
NODATA_LABEL = -1
#: ``dedup="auto"`` de-duplicates when distinct vectors are at most this fraction of the pixels.
DEDUP_MAX_FRACTION = 0.5
#: ``n_init="auto"`` with k-means++: this many starts (scikit-learn's classic default) when the fit has at most
#: :data:`AUTO_N_INIT_MAX_ROWS` rows (distinct colours or a sample), else 1.
AUTO_N_INIT = 10
AUTO_N_INIT_MAX_ROWS = 1_000_000


@dataclass
class Segmentation:
    """A class map and what produced it (returned by :func:`segment`).

    Classes are numbered by increasing mean center value over the bands
    (class 0 is the darkest), so class numbers do not depend on the seed.

    Attributes
    ----------
    labels : int16 ndarray of shape (rows, cols)
        Class of each pixel; :data:`NODATA_LABEL` (-1) where masked.
    cluster_centers : ndarray of shape (n_clusters, bands)
        Center of each class, in pixel units.
    counts : int64 ndarray of shape (n_clusters,)
        Pixels in each class.
    areas_km2 : ndarray of shape (n_clusters,) or None
        Ground area of each class (None when the pixel size is unknown).
    pixel_area : PixelArea or None
    raster : Raster
        The segmented image (metadata and data).
    estimator : KMeans
        The fitted estimator (its labels follow its own numbering; see ``order``).
    order : ndarray of shape (n_clusters,)
        ``order[c]`` is the estimator's label of class ``c``.
    n_valid, n_masked : int
        Pixels used / masked.
    n_fit_samples : int
        Rows given to :meth:`KMeans.fit` (distinct vectors when ``dedup``).
    dedup : bool
        Whether the fit ran on distinct pixel vectors weighted by their counts.
    sample_size : int or None
    params : dict
        Parameters of the run (for reports).
    timings : dict
        Seconds spent counting, fitting and assigning.
    """

    labels: np.ndarray
    cluster_centers: np.ndarray
    counts: np.ndarray
    areas_km2: np.ndarray | None
    pixel_area: PixelArea | None
    raster: Raster
    estimator: Any
    order: np.ndarray
    n_valid: int
    n_masked: int
    n_fit_samples: int
    dedup: bool
    sample_size: int | None
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_centers.shape[0])

    def to_dict(self) -> dict:
        """JSON-ready summary: parameters, per-class centers, pixels and areas, and timings."""
        r = self.raster
        classes = []
        for c in range(self.n_clusters):
            entry = {
                "class": c,
                "center": [round(float(v), 4) for v in self.cluster_centers[c]],
                "pixels": int(self.counts[c]),
                "fraction": float(self.counts[c] / max(self.n_valid, 1)),
            }
            if self.areas_km2 is not None:
                entry["area_km2"] = float(self.areas_km2[c])
            classes.append(entry)
        return {
            "source": r.source,
            "shape": [r.height, r.width, r.n_bands],
            "dtype": str(r.data.dtype),
            "band_names": list(r.band_names) if r.band_names else None,
            "crs": r.crs,
            "transform": list(r.transform) if r.transform else None,
            "pixel_area": None if self.pixel_area is None else self.pixel_area.method,
            "n_valid": self.n_valid,
            "n_masked": self.n_masked,
            "dedup": self.dedup,
            "n_fit_samples": self.n_fit_samples,
            "sample_size": self.sample_size,
            "n_iter": int(self.estimator.n_iter_),
            "inertia": float(self.estimator.inertia_),
            "params": self.params,
            "classes": classes,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def segment(
    image: Any,
    n_clusters: int = 3,
    *,
    metric: str = "euclidean",
    update: str = "auto",
    init: Any = "k-means++",
    n_init: int | str = "auto",
    max_iter: int = 300,
    tol: float = 1e-4,
    random_state: Any = None,
    backend: str = "auto",
    dedup: bool | str = "auto",
    sample_size: int | None = None,
    nodata_rule: str = "all",
    block_pixels: int = 1 << 22,
    progress: bool | None = None,
) -> Segmentation:
    """Cluster the valid pixels of an image and label every pixel.

    Parameters
    ----------
    image : Raster or ndarray of shape (rows, cols[, bands])
    n_clusters : int, default=3
    metric, update, init, max_iter, tol, random_state, backend
        As in :class:`gpukmeans.KMeans`.
    n_init : "auto" or int, default="auto"
        Starts; the one with the lowest objective is kept. ``"auto"`` with
        k-means++ runs :data:`AUTO_N_INIT` (10) starts when the fit has at most
        a million rows (de-duplication and sampling make that the usual case),
        else 1; with ``init="random"`` it runs 10, as :class:`~gpukmeans.KMeans`
        does. One start is not enough for imagery: on the Aral crops a single
        k-means++ start ends in a markedly worse local optimum for 8 to 11 of
        20 seeds (depending on metric and date); with 10 starts, 10 seeds out
        of 10 reached the lowest-objective family of solutions.
    dedup : "auto", True or False, default="auto"
        Fit on the distinct pixel vectors weighted by their counts (exact: the
        same labels and centers as fitting every pixel from the same initial
        centers). ``"auto"`` does so for integer imagery when the distinct
        vectors are at most half the pixels. (KMeans weights its ``tol`` by
        ``sample_weight``, so the stopping rule sees the variance of the pixels.)
    sample_size : int, optional
        Fit on this many valid pixels drawn at random (then de-duplicated if it
        pays) instead of all; every pixel is still labelled.
    nodata_rule : {"all", "any", "none"}, default="all"
        See :mod:`gpukmeans.imagery._mask`.
    block_pixels : int
        Pixels per block when scanning and labelling (bounds the memory used).
    progress : bool, optional
        Draw progress bars on stderr (default: when stderr is a terminal).

    Returns
    -------
    Segmentation

    Raises
    ------
    ImageryError
        No valid pixel, or ``n_clusters`` larger than the number of distinct
        valid pixel vectors.
    """
    raster = as_raster(image)
    check_rule(nodata_rule)
    if dedup not in ("auto", True, False):
        raise ImageryError(f"dedup must be 'auto', True or False; got {dedup!r}.")
    if sample_size is not None and (
        isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral) or sample_size < 1
    ):
        raise ImageryError(f"sample_size must be a positive integer; got {sample_size!r}.")
    metric_obj = get_metric(metric)
    rng = check_random_state(random_state)
    area = pixel_area(raster)  # fails fast on an unusable CRS, before any clustering
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def blocks():
        return ((p, v) for _, _, p, v in iter_blocks(raster, nodata_rule, block_pixels))

    n_blocks = -(-raster.height // max(1, block_pixels // raster.width))
    codec = None if dedup is False else PixelCodec.for_raster(raster, blocks())
    if dedup is True and codec is None:
        raise ImageryError(f"{raster.name}: dedup needs integer pixel values ({raster.data.dtype} given).")
    distinct = None
    if codec is not None:
        limit = None if dedup is True else int(DEDUP_MAX_FRACTION * raster.height * raster.width)
        distinct = count_distinct(
            codec, blocks(), n_blocks, raster.height * raster.width, max_distinct=limit, progress=progress
        )
    times["count"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    X, weight, fit_is_distinct = _fit_input(raster, distinct, codec, dedup, sample_size, nodata_rule, rng, blocks)
    n_distinct_fit = X.shape[0] if weight is not None else _n_distinct_rows(X)
    if X.shape[0] == 0:
        raise ImageryError(f"{raster.name}: no valid pixel (all are nodata or masked).")
    if n_distinct_fit is not None and n_clusters > n_distinct_fit:
        raise ImageryError(
            f"{raster.name}: k={n_clusters} is larger than the number of distinct valid pixel values "
            f"({n_distinct_fit}); use a smaller k."
        )
    from .. import KMeans

    if n_init == "auto" and isinstance(init, str) and init == "k-means++":
        n_init = AUTO_N_INIT if X.shape[0] <= AUTO_N_INIT_MAX_ROWS else 1
    km = KMeans(
        n_clusters,
        metric=metric,
        update=update,
        init=init,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        random_state=rng,
        backend=backend,
    ).fit(X, sample_weight=weight)
    times["fit"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    centers = np.asarray(km.cluster_centers_, dtype=np.float64)
    order = np.lexsort((np.arange(n_clusters), centers.mean(axis=1)))
    rank = np.empty(n_clusters, dtype=np.int16)
    rank[order] = np.arange(n_clusters, dtype=np.int16)
    fitted = km.labels_ if (weight is None and sample_size is None) else None  # X was every valid pixel, in order
    labels, counts = _label_all(
        raster, km, rank, distinct, fit_is_distinct, fitted, nodata_rule, block_pixels, progress, n_blocks
    )
    n_valid = int(counts.sum())
    if area is None:
        areas = None
    elif area.uniform:
        areas = counts * area.per_row[0] / 1e6
    else:
        areas = class_areas_km2(labels, area, n_clusters)
    times["assign"] = time.perf_counter() - t2
    times["total"] = time.perf_counter() - t0
    params = {
        "n_clusters": n_clusters,
        "metric": metric_obj.name,
        "update": resolve_update(update, metric_obj),
        "init": init if isinstance(init, str) else "array",
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "random_state": random_state if isinstance(random_state, (int, type(None))) else "RandomState",
        "nodata_rule": nodata_rule,
        "backend": backend,
    }
    return Segmentation(
        labels=labels,
        cluster_centers=centers[order],
        counts=counts,
        areas_km2=areas,
        pixel_area=area,
        raster=raster,
        estimator=km,
        order=order,
        n_valid=n_valid,
        n_masked=raster.height * raster.width - n_valid,
        n_fit_samples=int(X.shape[0]),
        dedup=weight is not None,
        sample_size=sample_size,
        params=params,
        timings=times,
    )


def _n_distinct_rows(X: np.ndarray, limit: int = 1 << 20) -> int | None:
    """Distinct rows of a small X (None when X is too large to check cheaply)."""
    return int(np.unique(X, axis=0).shape[0]) if X.shape[0] <= limit else None


def _fit_input(raster, distinct: DistinctPixels | None, codec, dedup, sample_size, rule, rng, blocks):
    """The rows to fit, their weights (or None) and whether they are ``distinct``'s vectors."""
    if sample_size is None:
        if distinct is not None:
            return distinct.values(), distinct.counts, True
        return np.concatenate([p[v] for p, v in blocks()]), None, False
    sample = draw_sample(raster, sample_size, rule, rng)
    if codec is not None and dedup is not False:
        keys, counts = np.unique(codec.encode(sample), return_counts=True)
        if dedup is True or keys.shape[0] <= DEDUP_MAX_FRACTION * sample.shape[0]:
            return codec.decode(keys), counts, False
    return sample, None, False


def draw_sample(raster: Raster, size: int, rule: str, rng: np.random.RandomState) -> np.ndarray:
    """``size`` valid pixels drawn uniformly without replacement (all valid pixels if fewer)."""
    from ._mask import valid_pixels

    n = raster.height * raster.width
    gen = np.random.default_rng(rng.randint(0, 2**31 - 1))
    want = min(n, 2 * size + 1024)
    while True:
        idx = gen.choice(n, size=want, replace=False) if want < n else np.arange(n)
        rows, cols = np.divmod(idx, raster.width)
        pixels = np.asarray(raster.data[rows, cols])
        valid = valid_pixels(pixels, raster.nodata, rule)
        if raster.mask is not None:
            valid &= raster.mask[rows, cols]
        if valid.sum() >= size or want >= n:
            return pixels[valid][:size]
        want = min(n, want * 4)


def _label_all(raster, km, rank, distinct, fit_is_distinct, fitted, rule, block_pixels, progress, n_blocks):
    """Class of every pixel, block by block (-1 where masked), and the pixel count of each class.

    ``fitted``: the estimator's labels of every valid pixel in block order, when
    the fit ran on exactly those (reused instead of predicting again).
    """
    labels = np.full((raster.height, raster.width), NODATA_LABEL, dtype=np.int16)
    counts = np.zeros(len(rank), dtype=np.int64)
    if distinct is not None:
        est = km.labels_ if fit_is_distinct else km.predict(distinct.values())
        lookup = distinct.label_lookup(rank[np.asarray(est)])
    offset = 0
    with Progress(n_blocks, "label pixels", enabled=progress) as bar:
        for r0, r1, pixels, valid in iter_blocks(raster, rule, block_pixels):
            out = labels[r0:r1].reshape(-1)
            every = bool(valid.all())
            if distinct is not None:
                block = lookup(distinct.codec.encode(pixels if every else pixels[valid]))
            elif fitted is not None:
                n = int(valid.sum())
                block = rank[np.asarray(fitted[offset : offset + n])]
                offset += n
            else:
                block = rank[np.asarray(km.predict(pixels if every else pixels[valid]))] if valid.any() else rank[:0]
            if every:
                out[:] = block
            else:
                out[valid] = block
            counts += np.bincount(block, minlength=len(rank))
            bar.update()
    return labels, counts
