"""Ground area of pixels: from a pixel size, a projected grid, a geographic grid or a Mercator grid.

Projected grids (UTM, equal-area, ...) use the transform's pixel footprint
``|a*e - b*d|`` times the square of the CRS's linear unit in metres: the map
area, which for UTM is within 0.1% of the ground area. Geographic (degree)
grids and Mercator grids (Web Mercator EPSG:3857, World Mercator EPSG:3395)
have a ground area that depends on latitude: each row's cell is mapped back to
its latitude/longitude bounds and its exact area on the WGS84 ellipsoid is

    A = a^2 / 2 * dlon * (q(lat_north) - q(lat_south)),

with ``q`` the authalic-latitude function (Snyder 1987, eq. 3-12). These grids
must be north-up (no rotation terms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ._errors import ImageryError
from ._raster import Raster

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E = float(np.sqrt(WGS84_F * (2 - WGS84_F)))

_WEB_MERCATOR = {3857, 3785, 900913, 102100, 102113}
_WORLD_MERCATOR = {3395}
_GEOGRAPHIC = {4326, 4269, 4258, 4283, 4617, 4167, 4019, 4612, 6318, 7844, 4148, 4490}
_PROJECTED_METRE_RANGES = (
    (32601, 32660),
    (32701, 32760),
    (26901, 26923),
    (25828, 25838),
    (3035, 3035),
    (5070, 5070),
    (6933, 6933),
    (2154, 2154),
    (27700, 27700),
    (3413, 3413),
    (3031, 3031),
)


@dataclass(frozen=True)
class CRSInfo:
    """What the area computation needs to know about a CRS.

    Attributes
    ----------
    kind : {"projected", "geographic", "webmercator", "worldmercator"}
    unit_m : float
        Metres per linear unit (projected CRSs; 1 otherwise).
    name : str
    """

    kind: str
    unit_m: float
    name: str


def describe_crs(crs: str) -> CRSInfo:
    """Classify ``crs`` (``"EPSG:n"`` or WKT/PROJ text) for area computation.

    Common EPSG codes are recognised without rasterio; anything else needs
    rasterio (``gpukmeans[geo]``).

    Raises
    ------
    ImageryError
        Unknown CRS, or a Mercator variant whose ground areas cannot be computed.
    """
    m = re.fullmatch(r"\s*epsg:(\d+)\s*", str(crs), flags=re.IGNORECASE)
    code = int(m.group(1)) if m else None
    known = _classify_code(code) if code is not None else None
    if known is not None:
        return known
    try:
        from rasterio.crs import CRS
    except ImportError:
        raise ImageryError(
            f"CRS {str(crs)[:60]!r} is not one gpukmeans knows without rasterio; install gpukmeans[geo] "
            "or give --pixel-size."
        ) from None
    try:
        rio = CRS.from_user_input(crs)
    except Exception as exc:
        raise ImageryError(f"CRS {str(crs)[:60]!r} is not valid ({exc}).") from None
    epsg = rio.to_epsg()
    known = _classify_code(epsg) if epsg is not None else None
    if known is not None:
        return known
    wkt = rio.to_wkt()
    if "Pseudo-Mercator" in wkt or "Popular Visualisation" in wkt:
        return CRSInfo("webmercator", 1.0, f"EPSG:{epsg}" if epsg else "Web Mercator")
    if "Mercator" in wkt:
        raise ImageryError(
            "Mercator CRS other than EPSG:3857/3395: ground areas vary with latitude and are not supported; "
            "reproject the image or give --pixel-size."
        )
    if rio.is_geographic:
        return CRSInfo("geographic", 1.0, rio.to_string())
    if rio.is_projected:
        return CRSInfo("projected", float(rio.linear_units_factor[1]), rio.to_string())
    raise ImageryError(f"CRS {str(crs)[:60]!r} is neither projected nor geographic.")


def _classify_code(code: int) -> CRSInfo | None:
    if code in _WEB_MERCATOR:
        return CRSInfo("webmercator", 1.0, f"EPSG:{code} (Web Mercator)")
    if code in _WORLD_MERCATOR:
        return CRSInfo("worldmercator", 1.0, f"EPSG:{code} (World Mercator)")
    if code in _GEOGRAPHIC:
        return CRSInfo("geographic", 1.0, f"EPSG:{code}")
    if any(lo <= code <= hi for lo, hi in _PROJECTED_METRE_RANGES):
        return CRSInfo("projected", 1.0, f"EPSG:{code}")
    return None


def authalic_q(lat: np.ndarray, e: float = WGS84_E) -> np.ndarray:
    """Snyder's ``q(lat)`` (lat in radians): zone area is ``a^2/2 * dlon * (q2 - q1)``."""
    s = np.sin(lat)
    es = e * s
    return (1 - e * e) * (s / (1 - es * es) - np.log((1 - es) / (1 + es)) / (2 * e))


def ellipsoid_cell_area(lat1_deg, lat2_deg, dlon_deg) -> np.ndarray:
    """Area in m^2 on the WGS84 ellipsoid of the cell between two latitudes spanning ``dlon_deg``."""
    q1 = authalic_q(np.radians(np.asarray(lat1_deg, dtype=np.float64)))
    q2 = authalic_q(np.radians(np.asarray(lat2_deg, dtype=np.float64)))
    return 0.5 * WGS84_A**2 * np.radians(abs(dlon_deg)) * np.abs(q2 - q1)


def web_mercator_lat(y: np.ndarray) -> np.ndarray:
    """Latitude (degrees) of Web Mercator northing ``y`` (metres)."""
    return np.degrees(np.arctan(np.sinh(np.asarray(y, dtype=np.float64) / WGS84_A)))


def world_mercator_lat(y: np.ndarray) -> np.ndarray:
    """Latitude (degrees) of ellipsoidal (World) Mercator northing ``y`` (metres), by fixed-point iteration."""
    t = np.exp(-np.asarray(y, dtype=np.float64) / WGS84_A)
    lat = np.pi / 2 - 2 * np.arctan(t)
    for _ in range(20):
        es = WGS84_E * np.sin(lat)
        lat = np.pi / 2 - 2 * np.arctan(t * ((1 - es) / (1 + es)) ** (WGS84_E / 2))
    return np.degrees(lat)


@dataclass(frozen=True)
class PixelArea:
    """Ground area of a raster's pixels.

    Attributes
    ----------
    per_row : ndarray of shape (rows,)
        Area in m^2 of one pixel of each row (all equal unless the grid is
        geographic or Mercator).
    method : str
        How it was obtained, for reports.
    """

    per_row: np.ndarray
    method: str

    @property
    def uniform(self) -> bool:
        return bool(np.all(self.per_row == self.per_row[0]))


def pixel_area(raster: Raster) -> PixelArea | None:
    """Ground area of each pixel of ``raster``, or ``None`` when nothing tells the pixel size.

    ``raster.pixel_size`` (metres) wins; otherwise ``crs`` and ``transform`` are used.

    Raises
    ------
    ImageryError
        A CRS without a transform, a rotated geographic/Mercator grid, or
        latitudes outside [-90, 90].
    """
    rows = raster.height
    if raster.pixel_size is not None:
        size = float(raster.pixel_size)
        return PixelArea(np.full(rows, size * size), f"pixel size {size:g} m")
    if raster.transform is None or raster.crs is None:
        return None
    info = describe_crs(raster.crs)
    a, b, c, d, e, f = raster.transform
    if info.kind == "projected":
        area = abs(a * e - b * d) * info.unit_m**2
        return PixelArea(np.full(rows, area), f"{info.name} transform ({abs(a):g} x {abs(e):g} units)")
    if b != 0 or d != 0:
        raise ImageryError(f"{raster.name}: rotated {info.kind} grids are not supported for areas.")
    edges = f + e * np.arange(rows + 1, dtype=np.float64)
    if info.kind == "geographic":
        lat, dlon = edges, a
    else:
        lat = web_mercator_lat(edges) if info.kind == "webmercator" else world_mercator_lat(edges)
        dlon = np.degrees(a / WGS84_A)
    if np.any(np.abs(lat) > 90):
        raise ImageryError(f"{raster.name}: grid rows reach latitudes beyond +-90 degrees; check the transform.")
    per_row = ellipsoid_cell_area(lat[:-1], lat[1:], dlon)
    return PixelArea(per_row, f"{info.name}: ground area per row on the WGS84 ellipsoid")


def class_areas_km2(labels: np.ndarray, area: PixelArea, n_classes: int, block_rows: int = 1024) -> np.ndarray:
    """Area in km^2 of each class of a ``(rows, cols)`` label map (negative labels are nodata)."""
    out = np.zeros(n_classes)
    for r0 in range(0, labels.shape[0], block_rows):
        lab = labels[r0 : r0 + block_rows]
        rows = np.broadcast_to(np.arange(lab.shape[0])[:, None], lab.shape)
        valid = lab >= 0
        counts = np.bincount(rows[valid] * n_classes + lab[valid], minlength=lab.shape[0] * n_classes)
        out += area.per_row[r0 : r0 + lab.shape[0]] @ counts.reshape(lab.shape[0], n_classes)
    return out / 1e6
