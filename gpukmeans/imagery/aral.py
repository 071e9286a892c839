"""The Aral Sea study: the two MODIS images shipped with the package and the article's procedure.

The article ("Semantic Segmentation of Remote Sensing Imagery using k-Means",
Towards Data Science, 2024-03-14) cropped ``img[140:600, 110:500]`` of two
false-colour (NIR, green, blue) MODIS renders of 2000-08-01 and 2023-08-01, ran
k-means with k=3 (random pixels as initial centers, mean update) and counted
the water class at 500 m per pixel. Its figures, water area before -> after:

========== =========== ========== ======
metric     2000 (km²)  2023 (km²) change
========== =========== ========== ======
euclidean  17125       1960       -89%
manhattan  16244       2003       -88%
========== =========== ========== ======

:func:`reproduce` re-runs that procedure deterministically: ``init="random"``,
``update="mean"``, one start, ``tol=0`` (run to the fixed point) and
``random_state=3``, which lands on the article's fixed points for both metrics
and both dates (other seeds reach neighbouring fixed points within 0.1%, or
poor ones). The water class is the center darkest in near-infrared (band 0).
Beside it, it runs the package defaults (k-means++, ten starts, the update
that suits each metric, a true Chebyshev distance) and measures areas with the
images' real geometry: they are Web Mercator (EPSG:3857) renders whose pixel is
825.81 m on the map, i.e. about 583 m on the ground at 45° N, not 500 m.

The article's "chebyshev" was the max of *signed* differences (not a
distance) and is not emulated; it reported no area for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from ._change import compare
from ._classes import select_class
from ._georef import class_areas_km2, pixel_area
from ._quality import segmentation_silhouette
from ._raster import Raster
from ._read import read_image
from ._segment import Segmentation, segment

DATES = ("2000-08-01", "2023-08-01")
FILES = ("MOD_01.jpg", "MOD_24.jpg")
WINDOW = "140:600,110:500"
BAND_NAMES = ("NIR", "G", "B")
WATER_RULE = "darkest:NIR"
ARTICLE_PIXEL_SIZE = 500.0
ARTICLE_SEED = 3
#: Inferred georeferencing of the full 674 x 768 JPEGs (see gpukmeans/data/SOURCES.md).
CRS = "EPSG:3857"
TRANSFORM = (825.812, 0.0, 6345210.98, 0.0, -825.812, 5946195.65)
#: The article's water areas: metric -> (2000 km², 2023 km², change %).
ARTICLE = {"euclidean": (17125.0, 1960.0, -89.0), "manhattan": (16244.0, 2003.0, -88.0)}
METRICS = ("euclidean", "manhattan", "chebyshev")


def image_path(name: str) -> str:
    """Path of a shipped Aral image (``"MOD_01.jpg"`` or ``"MOD_24.jpg"``)."""
    return str(resources.files("gpukmeans") / "data" / "aral" / name)


def load(window: str | None = WINDOW) -> list[Raster]:
    """The two shipped images (2000, 2023), cropped as in the article, in EPSG:3857."""
    return [
        read_image(image_path(f), window=window, band_names=BAND_NAMES, crs=CRS, transform=TRANSFORM) for f in FILES
    ]


@dataclass
class Row:
    """One line of the reproduction table: the water class on both dates for one method."""

    method: str
    metric: str
    pixels: tuple[int, int]
    km2_500m: tuple[float, float]
    km2_mercator: tuple[float, float]
    silhouette: tuple[float | None, float | None] = (None, None)
    article: tuple[float, float, float] | None = None
    segmentations: list[Segmentation] = field(default_factory=list, repr=False)

    @staticmethod
    def _pct(before: float, after: float) -> float:
        return 100.0 * (after - before) / before

    @property
    def change_pct(self) -> float:
        return self._pct(*self.km2_500m)

    @property
    def change_pct_mercator(self) -> float:
        return self._pct(*self.km2_mercator)

    def deviation_pct(self) -> tuple[float, float] | None:
        """Relative difference (%) of the 500 m areas from the article's."""
        if self.article is None:
            return None
        return tuple(100.0 * (m - a) / a for m, a in zip(self.km2_500m, self.article[:2]))

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "metric": self.metric,
            "water_pixels": list(self.pixels),
            "water_km2_500m": list(self.km2_500m),
            "change_pct_500m": self.change_pct,
            "water_km2_web_mercator": list(self.km2_mercator),
            "change_pct_web_mercator": self.change_pct_mercator,
            "silhouette": list(self.silhouette),
        }
        if self.article is not None:
            out["article_km2"] = list(self.article[:2])
            out["article_change_pct"] = self.article[2]
            out["deviation_from_article_pct"] = list(self.deviation_pct())
        return out


def _water(seg: Segmentation) -> tuple[int, float, float]:
    """(pixels, km² at 500 m, km² with the Web Mercator geometry) of the darkest-NIR class."""
    c = select_class(seg.cluster_centers, WATER_RULE, BAND_NAMES)
    k = seg.n_clusters
    mercator = class_areas_km2(seg.labels, pixel_area(seg.raster), k)[c]
    return int(seg.counts[c]), float(seg.counts[c]) * ARTICLE_PIXEL_SIZE**2 / 1e6, float(mercator)


def _row(method: str, metric: str, segs: list[Segmentation], silhouette_size: int, article=None) -> Row:
    water = [_water(s) for s in segs]
    sil = tuple(segmentation_silhouette(s, silhouette_size) if silhouette_size else None for s in segs)
    return Row(
        method,
        metric,
        (water[0][0], water[1][0]),
        (water[0][1], water[1][1]),
        (water[0][2], water[1][2]),
        sil,
        article,
        segs,
    )


def reproduce(
    *,
    seed: int = 0,
    backend: str = "auto",
    silhouette_size: int = 0,
    window: str | None = WINDOW,
    progress: bool | None = None,
) -> list[Row]:
    """The article's two rows, reproduced, then the package defaults for three metrics.

    Parameters
    ----------
    seed : int
        ``random_state`` of the package-default runs (the reproduction always
        uses :data:`ARTICLE_SEED`).
    backend : str
    silhouette_size : int
        Pixels sampled for the silhouette (0: skip it).
    window : str, optional
        Crop (the article's by default; other crops do not reproduce its numbers).

    Returns
    -------
    rows : list of Row
    """
    images = load(window)
    rows = []
    for metric, article in ARTICLE.items():
        segs = [
            segment(
                r,
                3,
                metric=metric,
                update="mean",
                init="random",
                n_init=1,
                tol=0,
                random_state=ARTICLE_SEED,
                backend=backend,
                progress=progress,
            )
            for r in images
        ]
        rows.append(_row("article (random init, mean)", metric, segs, silhouette_size, article))
    for metric in METRICS:
        segs = [segment(r, 3, metric=metric, random_state=seed, backend=backend, progress=progress) for r in images]
        row = _row("package default", metric, segs, silhouette_size)
        report = compare(segs[0], segs[1], class_rule=WATER_RULE)
        if report.match[report.class_of_interest] != select_class(segs[1].cluster_centers, WATER_RULE, BAND_NAMES):
            row.method += " (matched water != darkest NIR in 2023)"
        rows.append(row)
    return rows


def format_table(rows: list[Row]) -> str:
    """The reproduction table as aligned text."""
    head = (
        f"{'method':<30} {'metric':<10} {'2000 km²':>9} {'2023 km²':>9} {'change':>7} {'vs article':>15} "
        f"| {'2000 km²':>9} {'2023 km²':>9} {'change':>7} | {'silhouette':>11}"
    )
    sub = f"{'':<30} {'':<10} {'500 m pixel (article geometry)':^51} | {'Web Mercator ground area':^27} |"
    lines = [sub, head, "-" * len(head)]
    for metric, (a0, a1, ch) in ARTICLE.items():
        lines.append(
            f"{'article (reported)':<30} {metric:<10} {a0:>9.0f} {a1:>9.0f} {ch:>6.0f}% {'':>15} | "
            f"{'':>9} {'':>9} {'':>7} |"
        )
    for r in rows:
        dev = r.deviation_pct()
        dev_s = f"{dev[0]:+.2f}%/{dev[1]:+.2f}%" if dev else ""
        sil = "/".join("n/a" if s is None else f"{s:.2f}" for s in r.silhouette)
        lines.append(
            f"{r.method[:30]:<30} {r.metric:<10} {r.km2_500m[0]:>9.1f} {r.km2_500m[1]:>9.1f} {r.change_pct:>6.1f}% "
            f"{dev_s:>15} | {r.km2_mercator[0]:>9.1f} {r.km2_mercator[1]:>9.1f} {r.change_pct_mercator:>6.1f}% | "
            f"{sil:>11}"
        )
    return "\n".join(lines)


def summary(rows: list[Row]) -> dict:
    """JSON-ready summary of :func:`reproduce`."""
    return {
        "images": [image_path(f) for f in FILES],
        "dates": list(DATES),
        "window": WINDOW,
        "band_names": list(BAND_NAMES),
        "water_rule": WATER_RULE,
        "article_seed": ARTICLE_SEED,
        "crs": CRS,
        "transform": list(TRANSFORM),
        "rows": [r.to_dict() for r in rows],
        "n_pixels": int(np.prod(rows[0].segmentations[0].labels.shape)),
    }
