"""Choosing a class of interest, and matching classes across dates."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np

from ._errors import ImageryError

#: The class-of-interest rule used when none is given.
DEFAULT_CLASS_RULE = "darkest"


def select_class(
    centers: np.ndarray, rule: int | str = DEFAULT_CLASS_RULE, band_names: Sequence[str] | None = None
) -> int:
    """Index of the class of interest among ``centers`` (n_clusters, bands).

    Parameters
    ----------
    centers : ndarray of shape (n_clusters, bands)
    rule : int or str, default="darkest"
        - an integer (or digit string): that class index;
        - ``"darkest"`` / ``"brightest"``: the center with the lowest / highest
          mean over all bands (the default, ``"darkest"``, picks water in most
          optical imagery);
        - ``"darkest:B"`` / ``"brightest:B"``: lowest / highest value in band
          ``B``, a 0-based index or a name from ``band_names`` (case-insensitive),
          e.g. ``"darkest:NIR"``: water absorbs near-infrared.
    band_names : sequence of str, optional

    Raises
    ------
    ImageryError
        Malformed rule, unknown band, or index out of range.

    Examples
    --------
    >>> import numpy as np
    >>> centers = np.array([[120.0, 80, 60], [16, 48, 32], [150, 120, 90]])
    >>> select_class(centers, "darkest:NIR", ["NIR", "G", "B"])
    1
    """
    n_clusters, n_bands = centers.shape
    if isinstance(rule, (int, np.integer)) or (isinstance(rule, str) and rule.strip().isdigit()):
        index = int(rule)
        if not 0 <= index < n_clusters:
            raise ImageryError(f"class {index} does not exist; classes are 0..{n_clusters - 1}.")
        return index
    m = re.fullmatch(r"\s*(darkest|brightest)\s*(?::\s*(\S+))?\s*", str(rule), flags=re.IGNORECASE)
    if not m:
        raise ImageryError(
            f"class rule {rule!r} not understood; use an index, 'darkest', 'brightest', 'darkest:BAND' "
            "or 'brightest:BAND'."
        )
    which, band = m.group(1).lower(), m.group(2)
    values = centers.mean(axis=1) if band is None else centers[:, _band_index(band, n_bands, band_names)]
    return int(np.argmin(values) if which == "darkest" else np.argmax(values))


def _band_index(band: str, n_bands: int, band_names: Sequence[str] | None) -> int:
    if band.isdigit():
        index = int(band)
        if index >= n_bands:
            raise ImageryError(f"band {index} does not exist; the image has bands 0..{n_bands - 1}.")
        return index
    names = [n.lower() for n in (band_names or [])]
    if band.lower() not in names:
        known = ", ".join(band_names) if band_names else "none (give band names, e.g. --band-names NIR,G,B)"
        raise ImageryError(f"band {band!r} not found; band names are: {known}.")
    return names.index(band.lower())


def center_distances(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """``(len(a), len(b))`` distances between two sets of centers in ``metric``."""
    from ..metrics import get_metric

    diff = np.abs(np.asarray(a, dtype=np.float64)[:, None, :] - np.asarray(b, dtype=np.float64)[None, :, :])
    name = get_metric(metric).name
    if name == "euclidean":
        return np.sqrt((diff**2).sum(axis=2))
    return diff.sum(axis=2) if name == "manhattan" else diff.max(axis=2)


def match_classes(centers_before: np.ndarray, centers_after: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """One-to-one matching of classes across dates minimising the summed center distance.

    Returns
    -------
    match : int ndarray of shape (n_clusters,)
        ``match[i]`` is the class of the second date matched to class ``i`` of the first.

    Raises
    ------
    ImageryError
        Different numbers of classes or bands.
    """
    if centers_before.shape != centers_after.shape:
        raise ImageryError(
            f"cannot match classes: centers have shapes {centers_before.shape} and {centers_after.shape} "
            "(same k and same bands needed)."
        )
    return linear_assignment(center_distances(centers_before, centers_after, metric))


def linear_assignment(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost perfect matching of a square cost matrix: ``col[i]`` for each row ``i``.

    Exhaustive for up to 7 classes, the Hungarian algorithm (O(n^3)) above.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n = cost.shape[0]
    if n <= 7:
        best = min(itertools.permutations(range(n)), key=lambda p: (cost[range(n), p].sum(), p))
        return np.array(best, dtype=np.int64)
    return _hungarian(cost)


def _hungarian(cost: np.ndarray) -> np.ndarray:
    """Kuhn-Munkres with potentials (rows and columns 1-based inside, 0 is a sentinel)."""
    n = cost.shape[0]
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=np.int64)  # p[j]: row matched to column j
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    match = np.empty(n, dtype=np.int64)
    match[p[1:] - 1] = np.arange(n)
    return match
