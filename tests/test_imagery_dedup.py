"""Exact de-duplication: fitting the distinct pixel vectors weighted by their counts equals fitting every pixel."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gpukmeans import KMeans
from gpukmeans.imagery import ImageryError, Raster, read_image, segment, valid_mask
from gpukmeans.imagery._dedup import PixelCodec, count_distinct
from gpukmeans.imagery._mask import iter_blocks
from gpukmeans.imagery.aral import image_path

DATA = os.path.join(os.path.dirname(__file__), "data")
METRICS = ("euclidean", "manhattan", "chebyshev")


def _aral(window="300:420,150:290"):
    return read_image(image_path("MOD_01.jpg"), window=window)


def _images():
    return {
        "aral_rgb": _aral(),  # 8-bit, 3 bands: dense 24-bit keys
        "pucallpa_4band": read_image(os.path.join(DATA, "pucallpa_2010_crop.npy"), nodata=0),  # 32-bit keys, nodata
        "sentinel2_uint16": read_image(os.path.join(DATA, "sentinel2_crop.npy")),  # 16-bit, 4 bands
    }


def _distinct(raster, block_pixels=1 << 22, n_pixels=None):
    codec = PixelCodec.for_raster(raster, ((p, v) for _, _, p, v in iter_blocks(raster, "all", block_pixels)))
    blocks = ((p, v) for _, _, p, v in iter_blocks(raster, "all", block_pixels))
    return count_distinct(codec, blocks, 1, n_pixels or raster.height * raster.width)


@pytest.mark.parametrize("name", ["aral_rgb", "pucallpa_4band", "sentinel2_uint16"])
@pytest.mark.parametrize("table", [False, True])
def test_distinct_vectors_and_counts_equal_numpy_unique(name, table):
    r = _images()[name]
    pixels = r.data.reshape(-1, r.n_bands)[valid_mask(r).reshape(-1)]
    ref, ref_counts = np.unique(pixels, axis=0, return_counts=True)
    codec_bits = PixelCodec.for_raster(r, ((p, v) for _, _, p, v in iter_blocks(r, "all", 1 << 22))).bits
    n_pixels = (1 << codec_bits) if table else None  # force the dense table where the key is short enough
    d = _distinct(r, block_pixels=997, n_pixels=n_pixels)  # many small blocks: exercises the merge
    assert d.table == (table and codec_bits <= 24)
    np.testing.assert_array_equal(d.values(), ref)  # same lexicographic order as np.unique(axis=0)
    np.testing.assert_array_equal(d.counts, ref_counts)
    np.testing.assert_array_equal(d.index(d.codec.encode(ref[::7])), np.arange(0, len(ref), 7))


def test_codec_round_trips_signed_and_wide_values():
    data = np.array([[[-32768, 7, 65535 // 2]], [[32767, -7, 0]]], dtype=np.int32)
    r = Raster(data)
    codec = PixelCodec.for_raster(r, ((p, v) for _, _, p, v in iter_blocks(r, "all", 16)))
    keys = codec.encode(data.reshape(-1, 3))
    np.testing.assert_array_equal(codec.decode(keys), data.reshape(-1, 3))
    assert codec.bits == 16 + 4 + 15
    assert PixelCodec.for_raster(Raster(np.zeros((2, 2, 3), np.float32)), []) is None  # floats: no dedup


@pytest.mark.parametrize("name", ["aral_rgb", "pucallpa_4band", "sentinel2_uint16"])
@pytest.mark.parametrize("metric", METRICS)
def test_dedup_fit_equals_fit_on_every_pixel_from_the_same_init(name, metric):
    r = _images()[name]
    valid = valid_mask(r).reshape(-1)
    pixels = r.data.reshape(-1, r.n_bands)[valid]
    init = pixels[np.random.default_rng(7).choice(len(pixels), 4, replace=False)].astype(np.float32)
    seg = segment(r, 4, metric=metric, init=init, dedup=True)
    full = KMeans(4, metric=metric, init=init).fit(pixels)  # the reference: every pixel, no weights
    assert seg.dedup and seg.n_fit_samples == len(np.unique(pixels, axis=0)) < len(pixels) + 1
    np.testing.assert_array_equal(seg.cluster_centers, full.cluster_centers_[seg.order])
    rank = np.argsort(seg.order)
    np.testing.assert_array_equal(seg.labels.reshape(-1)[valid], rank[full.labels_])
    assert seg.estimator.n_iter_ == full.n_iter_
    assert seg.estimator.inertia_ == pytest.approx(full.inertia_, rel=1e-9)


def test_dedup_is_automatic_where_it_pays_and_skipped_where_it_does_not():
    aral = segment(_aral(), 3, random_state=0)
    assert aral.dedup and aral.n_fit_samples < 0.5 * aral.n_valid
    s2 = segment(_images()["sentinel2_uint16"], 3, random_state=0, n_init=1)  # every pixel distinct: no gain
    assert not s2.dedup and s2.n_fit_samples == 64 * 64
    floats = Raster(_aral().data.astype(np.float32))
    assert not segment(floats, 3, random_state=0, n_init=1).dedup
    with pytest.raises(ImageryError, match="integer"):
        segment(floats, 3, dedup=True)


def test_weighted_tolerance_is_the_threshold_of_the_full_data():
    """The engine's stopping threshold on (distinct vectors, counts) equals the one on every pixel."""
    from gpukmeans._estimator import _tolerance

    pixels = _aral().data.reshape(-1, 3).astype(np.float32)
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    full = _tolerance(pixels, np.ones(len(pixels), np.float32), 1e-4, np)
    assert full == pytest.approx(np.mean(pixels.astype(np.float64).var(axis=0)) * 1e-4, rel=1e-12)
    assert _tolerance(values, counts.astype(np.float32), 1e-4, np) == pytest.approx(full, rel=1e-9)


def test_dedup_fit_stops_where_the_full_fit_stops():
    """Same init, tol > 0: the weighted fit on distinct vectors does the same iterations as on every pixel."""
    from gpukmeans import KMeans

    pixels = _aral().data.reshape(-1, 3)
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    # seed 4, tol 1e-3: an unweighted variance (scikit-learn's rule) would stop the weighted fit one iteration late
    init = pixels[np.random.default_rng(4).choice(len(pixels), 3, replace=False)].astype(np.float32)
    full = KMeans(3, init=init, tol=1e-3).fit(pixels)
    dedup = KMeans(3, init=init, tol=1e-3).fit(values, sample_weight=counts)
    assert dedup.n_iter_ == full.n_iter_
    np.testing.assert_allclose(dedup.cluster_centers_, full.cluster_centers_, rtol=1e-5)


def test_k_larger_than_distinct_values_is_a_clear_error():
    r = _aral("300:302,150:152")  # 4 pixels
    n_distinct = len(np.unique(r.data.reshape(-1, 3), axis=0))
    with pytest.raises(
        ImageryError, match=rf"k=5 is larger than the number of distinct valid pixel values \({n_distinct}\)"
    ):
        segment(r, 5)
    with pytest.raises(ImageryError, match="distinct"):
        segment(r, 5, dedup=False)


def test_blockwise_labelling_does_not_depend_on_block_size():
    r = _aral()
    a = segment(r, 3, random_state=0, n_init=2)
    for block in (1, 37, 1000):
        b = segment(r, 3, random_state=0, n_init=2, block_pixels=block)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.cluster_centers, b.cluster_centers)


def test_sample_size_fits_on_a_sample_and_labels_every_pixel():
    r = _aral()
    seg = segment(r, 3, random_state=0, sample_size=2000)
    assert seg.sample_size == 2000 and seg.n_fit_samples <= 2000
    assert seg.counts.sum() == r.height * r.width and (seg.labels >= 0).all()
    # every pixel carries the label of its nearest center (checked by brute force)
    X = r.data.reshape(-1, 3).astype(np.float64)
    d = ((X[:, None, :] - seg.cluster_centers[None].astype(np.float32).astype(np.float64)) ** 2).sum(-1)
    nearest = np.argmin(d, axis=1)
    assert (nearest == seg.labels.reshape(-1)).mean() > 0.999  # float32 ties aside
    again = segment(r, 3, random_state=0, sample_size=2000)
    np.testing.assert_array_equal(seg.labels, again.labels)  # seeded: reproducible
    floats = segment(Raster(r.data.astype(np.float32)), 3, random_state=0, sample_size=2000)
    assert not floats.dedup and floats.counts.sum() == r.height * r.width


def test_classes_are_numbered_by_brightness():
    seg = segment(_aral(), 4, random_state=3)
    means = seg.cluster_centers.mean(axis=1)
    assert np.all(np.diff(means) > 0)
    np.testing.assert_array_equal(seg.counts, np.bincount(seg.labels.reshape(-1), minlength=4))
