"""Reading imagery: formats, windows, Pillow modes, and clear errors on bad files."""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from gpukmeans._progress import Progress
from gpukmeans.imagery import ImageryError, Raster, Window, read_image
from gpukmeans.imagery.aral import image_path

DATA = os.path.join(os.path.dirname(__file__), "data")
MOD_01 = image_path("MOD_01.jpg")


def _pillow_array(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_jpeg_reads_as_uint8_rgb_equal_to_pillow():
    r = read_image(MOD_01)
    assert r.data.shape == (768, 674, 3) and r.data.dtype == np.uint8
    np.testing.assert_array_equal(r.data, _pillow_array(MOD_01))
    assert r.crs is None and r.transform is None and r.nodata is None and r.mask is None


def test_window_is_numpy_slicing_and_shifts_the_transform():
    full = read_image(MOD_01, crs="EPSG:3857", transform=(825.812, 0, 6345210.98, 0, -825.812, 5946195.65))
    crop = read_image(
        MOD_01, window="140:600,110:500", crs="EPSG:3857", transform=(825.812, 0, 6345210.98, 0, -825.812, 5946195.65)
    )
    np.testing.assert_array_equal(crop.data, full.data[140:600, 110:500])
    a, b, c, d, e, f = crop.transform
    assert c == pytest.approx(6345210.98 + 110 * 825.812)
    assert f == pytest.approx(5946195.65 - 140 * 825.812)
    assert crop.crop((slice(10, 20), slice(5, 7))).data.shape == (10, 2, 3)


@pytest.mark.parametrize("text", ["140:600", "a:b,c:d", "1:2,3"])
def test_malformed_window_is_refused(text):
    with pytest.raises(ImageryError, match="ROW0:ROW1,COL0:COL1"):
        Window.parse(text)


@pytest.mark.parametrize("window, message", [("10:10,0:5", "empty"), ("0:800,0:5", "outside"), ("5:2,0:5", "empty")])
def test_empty_or_outside_window_is_refused(window, message):
    with pytest.raises(ImageryError, match=message):
        read_image(MOD_01, window=window)


def test_npy_band_first_is_detected_and_uint16_kept():
    r = read_image(os.path.join(DATA, "sentinel2_crop.npy"))
    raw = np.load(os.path.join(DATA, "sentinel2_crop.npy"))
    assert raw.shape == (4, 64, 64)
    assert r.data.shape == (64, 64, 4) and r.data.dtype == np.uint16
    np.testing.assert_array_equal(r.data[..., 3], raw[3])
    last = read_image(os.path.join(DATA, "pucallpa_1985_crop.npy"))
    assert last.data.shape == (70, 150, 4)


def test_palette_png_is_expanded_to_its_colours(tmp_path):
    rgb = Image.fromarray(read_image(MOD_01, window="200:264,200:264").data)
    pal = rgb.quantize(colors=16)
    pal.save(tmp_path / "p.png")
    r = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(r.data, np.asarray(pal.convert("RGB")))
    assert len(np.unique(r.data.reshape(-1, 3), axis=0)) <= 16


def test_alpha_channel_becomes_the_mask(tmp_path):
    rgb = read_image(MOD_01, window="200:264,200:264").data
    alpha = np.where(rgb[..., 0] > np.median(rgb[..., 0]), 255, 0).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "a.png")
    r = read_image(tmp_path / "a.png")
    assert r.n_bands == 3
    np.testing.assert_array_equal(r.data, rgb)
    np.testing.assert_array_equal(r.mask, alpha > 0)


def test_16bit_grey_png_keeps_16_bits(tmp_path):
    band = np.load(os.path.join(DATA, "sentinel2_crop.npy"))[3]
    Image.fromarray(band).save(tmp_path / "g16.png")
    r = read_image(tmp_path / "g16.png")
    assert r.data.dtype == np.uint16 and r.n_bands == 1
    np.testing.assert_array_equal(r.data[..., 0], band)


def _write_png16_rgb(path, arr):
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16bit_colour_png_is_refused_not_truncated(tmp_path):
    data = np.moveaxis(np.load(os.path.join(DATA, "sentinel2_crop.npy"))[:3], 0, -1)
    _write_png16_rgb(tmp_path / "rgb16.png", data)
    with Image.open(tmp_path / "rgb16.png") as im:  # what Pillow would silently do
        assert np.asarray(im).dtype == np.uint8
    with pytest.raises(ImageryError, match="16-bit colour PNG"):
        read_image(tmp_path / "rgb16.png")


def test_cmyk_is_refused(tmp_path):
    Image.fromarray(read_image(MOD_01, window="0:32,0:32").data).convert("CMYK").save(tmp_path / "c.jpg")
    with pytest.raises(ImageryError, match="CMYK"):
        read_image(tmp_path / "c.jpg")


def test_truncated_jpeg_is_refused(tmp_path):
    blob = open(MOD_01, "rb").read()
    (tmp_path / "t.jpg").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ImageryError, match="truncated or corrupt"):
        read_image(tmp_path / "t.jpg")


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"not an image at all\n" * 10, "not a recognised"), (b"\x93NUMPY\x01\x00garbage", "npy")],
)
def test_corrupt_or_empty_files_are_refused(tmp_path, content, message):
    (tmp_path / "bad.bin").write_bytes(content)
    with pytest.raises(ImageryError, match=message):
        read_image(tmp_path / "bad.bin")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ImageryError, match="no such file"):
        read_image(tmp_path / "nope.jpg")


def test_raster_validates_band_names_and_pixel_size():
    with pytest.raises(ImageryError, match="band names"):
        Raster(np.zeros((2, 2, 3), np.uint8), band_names=("a", "b"))
    with pytest.raises(ImageryError, match="pixel size"):
        Raster(np.zeros((2, 2, 3), np.uint8), pixel_size=-1)
    with pytest.raises(ImageryError, match="not supported"):
        Raster(np.zeros((2, 2), dtype=complex))


def test_geotiff_keeps_crs_transform_nodata_and_reads_windows():
    rasterio = pytest.importorskip("rasterio")
    path = os.path.join(DATA, "rgb_byte_crop.tif")
    r = read_image(path)
    with rasterio.open(path) as ds:
        ref = np.moveaxis(ds.read(), 0, -1)
        a, b, c, d, e, f = tuple(ds.transform)[:6]
        ref_transform = (a, b, c + 30 * a, d, e, f + 10 * e)  # window rows 10:30, cols 30:70, by hand
        crs = ds.crs
    np.testing.assert_array_equal(r.data, ref)
    assert r.crs == "EPSG:32618" and rasterio.crs.CRS.from_user_input(r.crs) == crs
    assert r.nodata == 0.0
    assert r.transform == pytest.approx(
        (300.0379266750948, 0, 185995.61946902654, 0, -300.041782729805, 2820914.164345404)
    )
    w = read_image(path, window="10:30,30:70")
    np.testing.assert_array_equal(w.data, ref[10:30, 30:70])
    assert w.transform == pytest.approx(ref_transform)


def test_four_band_geotiff_with_nodata_keeps_all_bands():
    pytest.importorskip("rasterio")
    r = read_image(os.path.join(DATA, "naip_2009_crop.tif"))
    assert r.n_bands == 4 and r.mask is None and r.crs == "EPSG:26914"
    np.testing.assert_array_equal(
        r.data, read_image(os.path.join(DATA, "naip_2009_crop.tif"), window="0:100,0:128").data
    )


def test_truncated_geotiff_is_refused(tmp_path):
    pytest.importorskip("rasterio")
    blob = open(os.path.join(DATA, "naip_2009_crop.tif"), "rb").read()
    (tmp_path / "t.tif").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ImageryError, match="truncated or corrupt"):
        read_image(tmp_path / "t.tif")


def test_progress_bar_draws_only_when_enabled():
    buf = io.StringIO()
    with Progress(3, "work", enabled=True, stream=buf, min_interval=0) as bar:
        for _ in range(3):
            bar.update()
    assert buf.getvalue().count("\r") == 3 and "3/3" in buf.getvalue() and buf.getvalue().endswith("\n")
    quiet = io.StringIO()
    with Progress(3, "work", stream=quiet) as bar:  # StringIO is not a terminal
        bar.update(3)
    assert quiet.getvalue() == ""


def test_geotiff_without_rasterio_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)  # as if the geo extra were not installed
    with pytest.raises(ImageryError, match=r"needs rasterio; install it with pip install 'gpukmeans\[geo\]'"):
        read_image(os.path.join(DATA, "rmnp_crop.tif"))
