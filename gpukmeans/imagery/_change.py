"""Change between two dates: grid checks, class matching, per-class areas and transitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._classes import DEFAULT_CLASS_RULE, match_classes, select_class
from ._errors import GridMismatchError, ImageryError
from ._raster import Raster
from ._segment import NODATA_LABEL, Segmentation, segment

RESAMPLING = (None, "nearest")


def _same_crs(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    try:
        from rasterio.crs import CRS

        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:
        return False


def check_grids(before: Raster, after: Raster, *, resample: str | None = None) -> bool:
    """Check that two dates can be compared pixel by pixel.

    Returns
    -------
    aligned : bool
        True when the grids are identical; False when they differ but
        ``resample="nearest"`` can map the second onto the first.

    Raises
    ------
    GridMismatchError
        Different bands, CRS or georeferencing; or different grids without
        ``resample`` (the message says how they differ).
    """
    if resample not in RESAMPLING:
        raise ImageryError(f"resample must be None or 'nearest'; got {resample!r}.")
    names = f"{before.name} and {after.name}"
    if before.n_bands != after.n_bands:
        raise GridMismatchError(f"{names} have {before.n_bands} and {after.n_bands} bands; they must match.")
    if (before.transform is None) != (after.transform is None):
        raise GridMismatchError(f"{names}: only one of them is georeferenced; give both the same --crs/--transform.")
    if before.transform is None:
        if before.data.shape[:2] != after.data.shape[:2]:
            raise GridMismatchError(
                f"{names} have shapes {before.height}x{before.width} and "
                f"{after.height}x{after.width} (rows x cols) and no georeferencing to align them; crop both "
                "to the same window."
            )
        return True
    if not _same_crs(before.crs, after.crs):
        raise GridMismatchError(f"{names} are in different CRSs ({before.crs} vs {after.crs}); reproject one first.")
    tb, ta = np.array(before.transform), np.array(after.transform)
    pixel = max(abs(tb[0]), abs(tb[4]), 1e-300)
    same = before.data.shape[:2] == after.data.shape[:2] and np.all(np.abs(tb - ta) <= 1e-6 * pixel)
    if same:
        return True
    if resample is None:
        dx, dy = ta[2] - tb[2], ta[5] - tb[5]
        raise GridMismatchError(
            f"{names} are not on the same pixel grid (shapes {before.height}x{before.width} and "
            f"{after.height}x{after.width}, origins differ by ({dx:g}, {dy:g}) CRS units, pixel sizes "
            f"{tb[0]:g}x{tb[4]:g} and {ta[0]:g}x{ta[4]:g}); pass resample='nearest' (--resample nearest) to "
            "resample the second onto the first."
        )
    if tb[1] or tb[3] or ta[1] or ta[3]:
        raise GridMismatchError(f"{names}: resampling rotated grids is not supported.")
    return False


def resample_nearest(labels: np.ndarray, src_transform, dst_shape: tuple[int, int], dst_transform) -> np.ndarray:
    """Nearest-neighbour resampling of a label map onto another north-up grid of the same CRS.

    Each destination pixel takes the label of the source pixel containing its
    center; destination pixels outside the source get :data:`NODATA_LABEL`.
    """
    sa, _, sc, _, se, sf = src_transform
    da, _, dc, _, de, df = dst_transform
    x = dc + da * (np.arange(dst_shape[1]) + 0.5)
    y = df + de * (np.arange(dst_shape[0]) + 0.5)
    cols = np.floor((x - sc) / sa).astype(np.int64)
    rows = np.floor((y - sf) / se).astype(np.int64)
    ok_c = (cols >= 0) & (cols < labels.shape[1])
    ok_r = (rows >= 0) & (rows < labels.shape[0])
    out = labels[np.clip(rows, 0, labels.shape[0] - 1)[:, None], np.clip(cols, 0, labels.shape[1] - 1)[None, :]]
    out[~ok_r, :] = NODATA_LABEL
    out[:, ~ok_c] = NODATA_LABEL
    return out


@dataclass
class ChangeReport:
    """Per-class change between two dates (returned by :func:`compare`).

    Class numbers are those of the first date; ``match[i]`` is the class of
    the second date matched to class ``i``.

    Attributes
    ----------
    before, after : Segmentation
    match : int ndarray of shape (n_clusters,)
    pixels_before, pixels_after : int ndarray of shape (n_clusters,)
    area_before_km2, area_after_km2 : ndarray or None
        Each date's areas on its own grid (None when the pixel size is unknown).
    transitions : int ndarray of shape (n_clusters, n_clusters)
        Pixels of class ``i`` at the first date and ``j`` at the second, over
        pixels valid at both (on the first date's grid).
    after_labels : ndarray of shape (rows, cols)
        Second date's classes in first-date numbering, on the first date's grid.
    class_of_interest : int
    class_rule : str
    resampled : bool
    """

    before: Segmentation
    after: Segmentation
    match: np.ndarray
    pixels_before: np.ndarray
    pixels_after: np.ndarray
    area_before_km2: np.ndarray | None
    area_after_km2: np.ndarray | None
    transitions: np.ndarray
    after_labels: np.ndarray
    class_of_interest: int
    class_rule: str
    resampled: bool

    @property
    def unit(self) -> str:
        return "km2" if self.area_before_km2 is not None else "pixels"

    def amounts(self) -> tuple[np.ndarray, np.ndarray]:
        """(before, after) per class, in km^2 when known, else in pixels."""
        if self.area_before_km2 is not None and self.area_after_km2 is not None:
            return self.area_before_km2, self.area_after_km2
        return self.pixels_before.astype(float), self.pixels_after.astype(float)

    def rows(self) -> list[dict]:
        """One dict per class: center before/after, amount before/after, change and change %."""
        b, a = self.amounts()
        out = []
        for i in range(len(self.match)):
            change = a[i] - b[i]
            out.append(
                {
                    "class": i,
                    "matched_class_after": int(self.match[i]),
                    "center_before": [round(float(v), 3) for v in self.before.cluster_centers[i]],
                    "center_after": [round(float(v), 3) for v in self.after.cluster_centers[self.match[i]]],
                    "pixels_before": int(self.pixels_before[i]),
                    "pixels_after": int(self.pixels_after[i]),
                    f"before_{self.unit}": float(b[i]),
                    f"after_{self.unit}": float(a[i]),
                    f"change_{self.unit}": float(change),
                    "change_pct": float(100 * change / b[i]) if b[i] else None,
                    "class_of_interest": i == self.class_of_interest,
                }
            )
        return out

    def interest_map(self) -> np.ndarray:
        """Class-of-interest change map on the first grid: 0 absent, 1 stable, 2 lost, 3 gained, 255 nodata."""
        c = self.class_of_interest
        lb, la = self.before.labels, self.after_labels
        out = np.full(lb.shape, 255, dtype=np.uint8)
        ok = (lb >= 0) & (la >= 0)
        was, now = lb == c, la == c
        out[ok] = 0
        out[ok & was & now] = 1
        out[ok & was & ~now] = 2
        out[ok & ~was & now] = 3
        return out

    def to_dict(self) -> dict:
        return {
            "unit": self.unit,
            "class_of_interest": self.class_of_interest,
            "class_rule": self.class_rule,
            "resampled": self.resampled,
            "match": [int(m) for m in self.match],
            "classes": self.rows(),
            "transitions_pixels": self.transitions.tolist(),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def compare(
    before: Segmentation,
    after: Segmentation,
    *,
    metric: str | None = None,
    resample: str | None = None,
    class_rule: int | str = DEFAULT_CLASS_RULE,
) -> ChangeReport:
    """Match the classes of two segmentations and measure what changed.

    Parameters
    ----------
    before, after : Segmentation
        Same number of classes and bands.
    metric : str, optional
        Distance used to match centers (default: the segmentation's metric).
    resample : None or "nearest"
        Needed when the grids differ (see :func:`check_grids`).
    class_rule : int or str
        Class of interest, chosen on the first date (see :func:`select_class`).

    Raises
    ------
    GridMismatchError, ImageryError
    """
    aligned = check_grids(before.raster, after.raster, resample=resample)
    metric = metric or before.params.get("metric", "euclidean")
    match = match_classes(before.cluster_centers, after.cluster_centers, metric)
    inverse = np.empty_like(match)
    inverse[match] = np.arange(len(match))
    remap = np.append(inverse, NODATA_LABEL).astype(np.int16)  # index -1 -> nodata
    after_labels = remap[after.labels]
    if not aligned:
        after_labels = resample_nearest(
            after_labels, after.raster.transform, before.labels.shape, before.raster.transform
        )
    k = len(match)
    ok = (before.labels >= 0) & (after_labels >= 0)
    transitions = np.bincount(before.labels[ok].astype(np.int64) * k + after_labels[ok], minlength=k * k)
    interest = select_class(before.cluster_centers, class_rule, before.raster.band_names)
    both_areas = before.areas_km2 is not None and after.areas_km2 is not None
    return ChangeReport(
        before=before,
        after=after,
        match=match,
        pixels_before=before.counts,
        pixels_after=after.counts[match],
        area_before_km2=before.areas_km2 if both_areas else None,
        area_after_km2=after.areas_km2[match] if both_areas else None,
        transitions=transitions.reshape(k, k),
        after_labels=after_labels,
        class_of_interest=interest,
        class_rule=str(class_rule),
        resampled=not aligned,
    )


def change(
    before: Raster,
    after: Raster,
    n_clusters: int = 3,
    *,
    resample: str | None = None,
    class_rule: int | str = DEFAULT_CLASS_RULE,
    **segment_params: Any,
) -> ChangeReport:
    """Segment two dates separately (same parameters) and :func:`compare` them.

    The grids are checked before any clustering, so a mismatch fails fast.
    """
    check_grids(before, after, resample=resample)
    seg_b = segment(before, n_clusters, **segment_params)
    seg_a = segment(after, n_clusters, **segment_params)
    return compare(seg_b, seg_a, resample=resample, class_rule=class_rule)
