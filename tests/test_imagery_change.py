"""Change between dates: class matching, grid checks, transitions, and the Aral article reproduced."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from gpukmeans.imagery import (
    GridMismatchError,
    ImageryError,
    Raster,
    aral,
    change,
    check_grids,
    compare,
    match_classes,
    read_image,
    segment,
    select_class,
)
from gpukmeans.imagery._classes import _hungarian, linear_assignment

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("n", [1, 2, 3, 6, 9, 25])
def test_linear_assignment_is_optimal(n):
    rng = np.random.default_rng(n)
    for trial in range(20):
        cost = rng.random((n, n)) * 100
        if trial % 2:
            cost = np.round(cost / 10)  # many ties
        rows, cols = linear_sum_assignment(cost)
        for match in (linear_assignment(cost), _hungarian(cost)):
            assert sorted(match) == list(range(n))
            assert cost[np.arange(n), match].sum() == pytest.approx(cost[rows, cols].sum())


def test_match_classes_follows_center_distance_not_label_numbers():
    before = np.array([[16.0, 48, 32], [120, 80, 56], [145, 118, 88]])
    after = np.array([[146.0, 119, 89], [18, 26, 20], [117, 83, 57]])
    np.testing.assert_array_equal(match_classes(before, after), [1, 2, 0])
    np.testing.assert_array_equal(match_classes(before, after, "chebyshev"), [1, 2, 0])
    with pytest.raises(ImageryError, match="same k"):
        match_classes(before, after[:2])


def test_select_class_rules():
    centers = np.array([[120.0, 20, 60], [16, 48, 32], [150, 120, 90]])
    assert select_class(centers) == 1  # darkest mean
    assert select_class(centers, "darkest:G", ["NIR", "G", "B"]) == 0
    assert select_class(centers, "brightest:0") == 2
    assert select_class(centers, "2") == 2 and select_class(centers, 0) == 0
    for bad, msg in (
        (3, "does not exist"),
        ("darkest:SWIR", "not found"),
        ("wettest", "not understood"),
        ("darkest:7", "does not exist"),
    ):
        with pytest.raises(ImageryError, match=msg):
            select_class(centers, bad, ["NIR", "G", "B"])


def _independent_lloyd(X, init, metric, max_iter=500):
    """Plain NumPy k-means as the article ran it: assign by ``metric``, update with the mean, until no change."""
    X = X.astype(np.float64)
    centers = init.astype(np.float64)
    labels = None
    for _ in range(max_iter):
        diff = np.abs(X[:, None, :] - centers[None])
        dist = (diff**2).sum(-1) if metric == "euclidean" else diff.sum(-1)
        new = dist.argmin(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centers = np.array([X[labels == j].mean(0) for j in range(len(centers))])
    return labels, centers


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_article_reproduced_to_the_pixel_and_by_an_independent_lloyd(metric):
    expected = {"euclidean": (68501, 7841), "manhattan": (64976, 8011)}[metric]
    for img, want, article_km2 in zip(aral.load(), expected, aral.ARTICLE[metric][:2]):
        seg = segment(
            img, 3, metric=metric, update="mean", init="random", n_init=1, tol=0, random_state=aral.ARTICLE_SEED
        )
        water = select_class(seg.cluster_centers, "darkest:NIR", aral.BAND_NAMES)
        assert seg.counts[water] == want
        assert seg.counts[water] * 0.25 == pytest.approx(article_km2, rel=0.01)  # the 1%
        # the same initial pixels, drawn as the engine draws them, fed to a plain NumPy Lloyd on all pixels
        X = img.data.reshape(-1, 3)
        values, counts = np.unique(X, axis=0, return_counts=True)
        idx = np.random.RandomState(aral.ARTICLE_SEED).choice(len(values), 3, replace=False, p=counts / counts.sum())
        labels, centers = _independent_lloyd(X, values[idx], metric)
        ref_water = int(np.argmin(centers[:, 0]))
        assert (labels == ref_water).sum() == want


def test_aral_change_with_matching():
    before, after = aral.load("300:460,100:300")
    report = change(before, after, 3, random_state=0, class_rule="darkest:NIR")
    assert report.class_of_interest == 0 and report.match[0] == 0  # water matched to water
    b, a = report.amounts()
    rows = report.rows()
    assert rows[0]["change_pct"] == pytest.approx(100 * (a[0] - b[0]) / b[0])
    assert rows[0]["change_pct"] < -50  # the sea shrank
    # transitions count pixels on the common grid, consistent with both label maps
    assert report.transitions.sum() == before.height * before.width
    np.testing.assert_array_equal(report.transitions.sum(axis=1), report.pixels_before)
    np.testing.assert_array_equal(report.transitions.sum(axis=0), report.pixels_after)
    m = report.interest_map()
    assert (m == 2).sum() == report.transitions[0, 1:].sum()  # lost water
    assert (m == 3).sum() == report.transitions[1:, 0].sum()  # gained water


def test_geographic_change_between_pucallpa_dates_keeps_nodata_out():
    d1 = read_image(os.path.join(DATA, "pucallpa_1985_crop.npy"), nodata=0)
    d2 = read_image(os.path.join(DATA, "pucallpa_2010_crop.npy"), nodata=0)
    report = change(d1, d2, 4, random_state=0, n_init=2)
    assert report.unit == "pixels"
    assert report.transitions.sum() == 70 * 150 - 5  # the 5 nodata pixels of 2010 are left out
    assert report.pixels_after.sum() == 70 * 150 - 5


def test_shapes_that_differ_without_georeferencing_are_refused():
    a = read_image(aral.image_path("MOD_01.jpg"), window="0:50,0:60")
    b = read_image(aral.image_path("MOD_24.jpg"), window="0:50,0:61")
    with pytest.raises(GridMismatchError, match="50x60 and 50x61"):
        check_grids(a, b)
    with pytest.raises(GridMismatchError, match="no georeferencing"):
        change(a, b, 2, resample="nearest")
    with pytest.raises(GridMismatchError, match="bands"):
        check_grids(a, Raster(np.zeros((50, 60, 4), np.uint8)))


def test_naip_grids_offset_by_one_metre_need_explicit_resampling():
    pytest.importorskip("rasterio")
    d1 = read_image(os.path.join(DATA, "naip_2009_crop.tif"))
    d2 = read_image(os.path.join(DATA, "naip_2020_crop.tif"))
    with pytest.raises(GridMismatchError, match=r"not on the same pixel grid.*\(-1, -1\).*resample"):
        change(d1, d2, 3, random_state=0)
    report = change(d1, d2, 3, random_state=0, resample="nearest")
    assert report.resampled
    # by hand: each 2009 pixel center lies 0.7 px right and 0.3 px down of the 2020 pixel with the same
    # index, i.e. inside it, so nearest-neighbour resampling is the identity here
    inverse = np.argsort(report.match)
    np.testing.assert_array_equal(report.after_labels, inverse[report.after.labels])
    water = report.class_of_interest
    assert report.area_after_km2[water] > report.area_before_km2[water]  # the lake grew
    assert report.area_before_km2.sum() == pytest.approx(100 * 128 * 25 / 1e6)


def test_different_crs_is_refused_even_with_resampling():
    a = Raster(np.zeros((4, 4, 1), np.uint8), crs="EPSG:4326", transform=(1, 0, 0, 0, -1, 0))
    b = Raster(np.zeros((4, 4, 1), np.uint8), crs="EPSG:3857", transform=(1, 0, 0, 0, -1, 0))
    with pytest.raises(GridMismatchError, match="different CRS"):
        check_grids(a, b, resample="nearest")
    assert check_grids(a, Raster(np.zeros((4, 4, 1), np.uint8), crs="EPSG:4326", transform=(1, 0, 0, 0, -1, 0)))


def test_compare_requires_same_k():
    a, b = aral.load("300:340,100:140")
    with pytest.raises(ImageryError, match="same k"):
        compare(segment(a, 3, random_state=0), segment(b, 2, random_state=0))
