"""Nodata handling on the files whose pitfalls ../shared/data/SOURCES.md lists.

Pucallpa: nodata is 0 but SWIR1 is legitimately 0 over water, so only pixels 0
in *every* band are nodata. RGB.byte: a rotated footprint in a collar of zeros,
plus valid pixels with a 0 in some band. RMNP: nodata 255 along the right edge.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from gpukmeans.imagery import NODATA_LABEL, ImageryError, Raster, read_image, segment, valid_mask
from gpukmeans.imagery._mask import valid_pixels

DATA = os.path.join(os.path.dirname(__file__), "data")


def _npy(name, nodata):
    return read_image(os.path.join(DATA, f"{name}.npy"), nodata=nodata)


def test_pucallpa_1985_water_with_swir_zero_survives_the_default_rule():
    r = _npy("pucallpa_1985_crop", 0)
    swir_zero = r.data[..., 0] == 0
    assert swir_zero.sum() == 9 and not (r.data == 0).all(axis=-1).any()  # the pitfall, as documented
    assert valid_mask(r).all()  # rule "all": nothing masked
    assert (~valid_mask(r, "any")).sum() == 9  # rule "any" would drop the water pixels
    seg = segment(r, 4, random_state=0)
    assert seg.n_masked == 0 and (seg.labels[swir_zero] >= 0).all()
    # those pixels are dark water: they land in the class whose center is darkest in NIR (band 1)
    water = int(np.argmin(seg.cluster_centers[:, 1]))
    assert (seg.labels[swir_zero] == water).mean() >= 0.8


def test_pucallpa_2010_only_all_zero_pixels_are_nodata():
    r = _npy("pucallpa_2010_crop", 0)
    all_zero = (r.data == 0).all(axis=-1)
    some_zero = (r.data == 0).any(axis=-1) & ~all_zero
    assert all_zero.sum() == 5 and some_zero.sum() == 8
    seg = segment(r, 4, random_state=0, n_init=2)
    np.testing.assert_array_equal(seg.labels == NODATA_LABEL, all_zero)
    assert seg.n_masked == 5 and seg.counts.sum() == r.height * r.width - 5
    assert (seg.labels[some_zero] >= 0).all()


def test_rgb_byte_collar_is_masked_and_left_out_of_the_fit():
    r = _npy("rgb_byte_crop", 0)
    seg = segment(r, 3, random_state=0, tol=0)  # tol=0: run to the fixed point, centers = means of their pixels
    assert seg.n_masked == 3742
    assert (~valid_mask(r, "any")).sum() == 3884  # 142 valid pixels have a 0 in some band
    # the darkest center is the mean of valid dark (ocean) pixels only: check it by hand
    valid = ~(r.data == 0).all(axis=-1)
    dark = valid & (seg.labels == 0)
    np.testing.assert_allclose(seg.cluster_centers[0], r.data[dark].mean(axis=0), rtol=1e-5)
    unmasked = segment(r, 3, random_state=0, nodata_rule="none")
    assert unmasked.n_masked == 0 and (unmasked.labels[~valid] == 0).all()
    # counting the 3742 black collar pixels drags the darkest center towards (0, 0, 0)
    assert unmasked.cluster_centers[0].sum() < seg.cluster_centers[0].sum() - 10


def test_nodata_rule_matches_gdal_dataset_mask():
    rasterio = pytest.importorskip("rasterio")
    for name, count in (("rgb_byte_crop", 3742), ("rmnp_crop", 1459), ("pucallpa_2010_crop", 5)):
        path = os.path.join(DATA, f"{name}.tif")
        r = read_image(path)
        with rasterio.open(path) as ds:
            gdal_valid = ds.dataset_mask() > 0
        np.testing.assert_array_equal(valid_mask(r), gdal_valid)
        assert (~gdal_valid).sum() == count


def test_geotiff_and_npy_agree_on_pucallpa():
    pytest.importorskip("rasterio")
    tif = read_image(os.path.join(DATA, "pucallpa_1985_crop.tif"))
    npy = _npy("pucallpa_1985_crop", 0)
    assert tif.nodata == 0.0 and tif.crs == "EPSG:4326"
    np.testing.assert_array_equal(tif.data, npy.data)
    a, b = segment(tif, 4, random_state=1, n_init=2), segment(npy, 4, random_state=1, n_init=2)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_per_band_nodata_and_unrepresentable_values():
    block = np.array([[0, 5, 0], [0, 0, 0], [1, 5, 9]], dtype=np.uint8)
    np.testing.assert_array_equal(valid_pixels(block, (0, 5, 0)), [False, True, True])
    np.testing.assert_array_equal(valid_pixels(block, (0, 5, 0), "any"), [False, False, False])
    np.testing.assert_array_equal(valid_pixels(block, (0, np.nan, 0)), [True, True, True])  # band 1 has none
    np.testing.assert_array_equal(valid_pixels(block, -9999), [True, True, True])  # cannot occur in uint8
    floats = np.array([[np.nan, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(valid_pixels(floats, None), [False, True])  # NaN is always nodata


def test_all_nodata_image_is_a_clear_error():
    with pytest.raises(ImageryError, match="no valid pixel"):
        segment(Raster(np.zeros((4, 5, 3), np.uint8), nodata=0), 2)
    with pytest.raises(ImageryError, match="nodata rule"):
        valid_mask(Raster(np.zeros((4, 5, 3), np.uint8)), "some")
