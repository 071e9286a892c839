"""Pixel ground areas for projected, geographic and Web Mercator grids, against hand-computed values."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy.integrate import quad

from gpukmeans.imagery import ImageryError, Raster, aral, class_areas_km2, describe_crs, pixel_area, read_image, segment
from gpukmeans.imagery._georef import world_mercator_lat

DATA = os.path.join(os.path.dirname(__file__), "data")
A, F = 6378137.0, 1 / 298.257223563
E2 = F * (2 - F)


def _quad_cell_area(lat1, lat2, dlon_deg):
    """Independent reference: integrate M(phi) N(phi) cos(phi) dphi over the cell (WGS84)."""

    def element(phi):
        s2 = math.sin(phi) ** 2
        m = A * (1 - E2) / (1 - E2 * s2) ** 1.5
        n = A / math.sqrt(1 - E2 * s2)
        return m * n * math.cos(phi)

    lo, hi = sorted((math.radians(lat1), math.radians(lat2)))
    return quad(element, lo, hi, epsabs=0, epsrel=1e-13)[0] * math.radians(abs(dlon_deg))


def test_pixel_size_gives_uniform_areas():
    r = Raster(np.zeros((3, 4, 1), np.uint8), pixel_size=500)
    area = pixel_area(r)
    np.testing.assert_array_equal(area.per_row, [250000.0] * 3)
    labels = np.array([[0, 0, 1, -1]] * 3)
    np.testing.assert_allclose(class_areas_km2(labels, area, 2), [6 * 0.25, 3 * 0.25])


def test_no_georeferencing_no_area():
    assert pixel_area(Raster(np.zeros((3, 4, 1), np.uint8))) is None
    seg = segment(Raster(np.arange(12, dtype=np.uint8).reshape(3, 4)), 2, random_state=0)
    assert seg.areas_km2 is None and "area_km2" not in seg.to_dict()["classes"][0]


def test_projected_utm_grid_uses_the_transform():
    r = Raster(
        np.zeros((5, 5, 1), np.uint8),
        crs="EPSG:32618",
        transform=(300.0379266750948, 0, 185995.6, 0, -300.041782729805, 2820914.2),
    )
    area = pixel_area(r)
    assert area.uniform
    # by hand: 300.0379 * 300.0418 = 90000 + 300 * (0.0379 + 0.0418) + 0.0379 * 0.0418 = 90023.91 m²
    assert area.per_row[0] == pytest.approx(300.0379266750948 * 300.041782729805, rel=1e-15)
    assert area.per_row[0] == pytest.approx(90023.91, abs=0.01)


def test_projected_areas_on_the_real_utm_file():
    pytest.importorskip("rasterio")
    r = read_image(os.path.join(DATA, "rgb_byte_crop.tif"))
    seg = segment(r, 3, random_state=0)
    np.testing.assert_allclose(seg.areas_km2, seg.counts * 300.0379266750948 * 300.041782729805 / 1e6, rtol=1e-12)
    # total valid area: 17000 pixels minus the 3742-pixel collar
    assert seg.areas_km2.sum() == pytest.approx((100 * 170 - 3742) * 0.09002391, rel=1e-6)


def test_geographic_grid_rows_match_an_integral_and_a_hand_estimate():
    # the RMNP crop: 0.0015 degree pixels from 40.1697 N downwards
    transform = (0.0015000000000000128, 0, -105.5466005603556, 0, -0.0014999999999999996, 40.16968153576429)
    r = Raster(np.zeros((73, 145, 3), np.uint8), crs="EPSG:4326", transform=transform)
    area = pixel_area(r)
    for row in (0, 36, 72):
        lat1 = transform[5] + transform[4] * row
        lat2 = lat1 + transform[4]
        assert area.per_row[row] == pytest.approx(_quad_cell_area(lat1, lat2, transform[0]), rel=1e-9)
    # by hand, on a sphere of the authalic radius: (R dlat)(R dlon cos lat) ~ 166.5 m x 127.4 m at 40.1 N
    lat = transform[5] - 0.0015 * 0.5
    r_auth = 6371007.2
    hand = (r_auth * math.radians(0.0015)) ** 2 * math.cos(math.radians(lat))
    assert area.per_row[0] == pytest.approx(hand, rel=4e-3)
    assert area.per_row[72] > area.per_row[0]  # further south, bigger cells


def test_geographic_areas_on_the_real_pucallpa_file():
    pytest.importorskip("rasterio")
    r = read_image(os.path.join(DATA, "pucallpa_2010_crop.tif"))
    seg = segment(r, 4, random_state=0)
    area = pixel_area(r)
    total_grid = area.per_row.sum() * r.width / 1e6
    masked = (seg.labels < 0).sum(axis=1) @ area.per_row / 1e6
    assert seg.areas_km2.sum() + masked == pytest.approx(total_grid, rel=1e-12)
    # by hand near 8.46 S: a degree of longitude is ~111 320 cos(lat) m, of latitude ~110 590 m,
    # so a pixel is ~89.0 m x 89.4 m and the 10 500 pixels cover ~83.6 km²
    lon_m = 0.000808485 * 111_320 * math.cos(math.radians(8.464))
    lat_m = 0.000808485 * 110_590
    assert total_grid == pytest.approx(10500 * lon_m * lat_m / 1e6, rel=2e-3)


def test_web_mercator_rows_match_the_latitude_scaled_pixel():
    r = aral.load()[0]
    area = pixel_area(r)
    a, _, _, _, e, f = r.transform
    for row in (0, 230, 459):
        y1, y2 = f + e * row, f + e * (row + 1)
        lat1, lat2 = (math.degrees(math.atan(math.sinh(y / A))) for y in (y1, y2))
        exact = _quad_cell_area(lat1, lat2, math.degrees(a / A))
        assert area.per_row[row] == pytest.approx(exact, rel=1e-9)
        # by hand: the Mercator pixel scaled by cos(latitude), ~ (825.8 cos 45°)² = 583.9² m² mid-crop
        hand = (825.812 * math.cos(math.radians((lat1 + lat2) / 2))) ** 2
        assert area.per_row[row] == pytest.approx(hand, rel=3e-3)
    assert area.per_row[230] == pytest.approx(583.9**2, rel=5e-3)


def test_aral_water_area_with_the_real_geometry():
    imgs = aral.load()
    seg = segment(imgs[0], 3, metric="euclidean", update="mean", init="random", n_init=1, tol=0, random_state=3)
    water = int(np.argmin(seg.cluster_centers[:, 0]))
    assert seg.counts[water] == 68501
    # independent: weight each row's water pixels by (825.812 cos(lat))², the spherical scale
    rows_y = imgs[0].transform[5] + imgs[0].transform[4] * (np.arange(460) + 0.5)
    lat = np.arctan(np.sinh(rows_y / A))
    by_hand = ((seg.labels == water).sum(axis=1) * (825.812 * np.cos(lat)) ** 2).sum() / 1e6
    assert seg.areas_km2[water] == pytest.approx(by_hand, rel=3e-3)
    assert seg.areas_km2[water] == pytest.approx(23350, rel=3e-3)  # ../shared/data/SOURCES.md: "about 23 350"


def test_world_mercator_latitude_inverts_the_forward_formula():
    lat = np.radians(np.array([-70.0, -10.0, 0.0, 45.0, 80.0]))
    e = math.sqrt(E2)
    y = A * np.log(np.tan(np.pi / 4 + lat / 2) * ((1 - e * np.sin(lat)) / (1 + e * np.sin(lat))) ** (e / 2))
    np.testing.assert_allclose(world_mercator_lat(y), np.degrees(lat), atol=1e-10)


def test_crs_classification():
    assert describe_crs("EPSG:3857").kind == "webmercator"
    assert describe_crs("epsg:4326").kind == "geographic"
    assert describe_crs("EPSG:32618").kind == "projected"
    assert describe_crs("EPSG:3395").kind == "worldmercator"


def test_crs_from_wkt_and_feet_units():
    pytest.importorskip("rasterio")
    from rasterio.crs import CRS

    assert describe_crs(CRS.from_epsg(3857).to_wkt()).kind == "webmercator"
    feet = describe_crs("EPSG:2263")  # NAD83 / New York Long Island (ftUS)
    assert feet.kind == "projected" and feet.unit_m == pytest.approx(0.3048006096, rel=1e-9)
    r = Raster(np.zeros((2, 2, 1), np.uint8), crs="EPSG:2263", transform=(10, 0, 0, 0, -10, 0))
    assert pixel_area(r).per_row[0] == pytest.approx(100 * 0.3048006096**2, rel=1e-9)
    with pytest.raises(ImageryError, match="Mercator"):
        describe_crs("+proj=merc +lat_ts=30 +datum=WGS84")


def test_bad_geometry_is_refused():
    with pytest.raises(ImageryError, match="rotated"):
        pixel_area(Raster(np.zeros((2, 2, 1), np.uint8), crs="EPSG:4326", transform=(0.1, 0.01, 0, 0, -0.1, 10)))
    with pytest.raises(ImageryError, match="90"):
        pixel_area(Raster(np.zeros((20, 2, 1), np.uint8), crs="EPSG:4326", transform=(1, 0, 0, 0, -10, 80)))
