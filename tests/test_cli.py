"""The ``gpukmeans`` command line, end to end in temporary folders."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

from gpukmeans.cli import main
from gpukmeans.imagery import aral, outputs, read_image, segment

DATA = os.path.join(os.path.dirname(__file__), "data")
MOD_01, MOD_24 = aral.image_path("MOD_01.jpg"), aral.image_path("MOD_24.jpg")
SMALL = "300:400,150:270"


def _files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_segment_writes_maps_tables_figure_and_json(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "segment",
            MOD_01,
            "--window",
            SMALL,
            "--k",
            "3",
            "--metric",
            "manhattan",
            "--seed",
            "1",
            "--pixel-size",
            "500",
            "--band-names",
            "NIR,G,B",
            "--class",
            "darkest:NIR",
            "--out",
            str(out),
            "--json",
            "--silhouette",
            "500",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert _files(out) == ["MOD_01_classes.csv", "MOD_01_classes.png", "figure.png", "segment.json"]
    info = summary["images"][0]
    assert info["shape"] == [100, 120, 3] and info["params"]["metric"] == "manhattan" and info["dedup"]
    # the same run through the Python API gives the same classes
    seg = segment(read_image(MOD_01, window=SMALL, pixel_size=500), 3, metric="manhattan", random_state=1)
    png = np.asarray(Image.open(out / "MOD_01_classes.png"))
    np.testing.assert_array_equal(png, seg.labels)
    assert Image.open(out / "MOD_01_classes.png").mode == "P"
    counts = [c["pixels"] for c in info["classes"]]
    np.testing.assert_array_equal(counts, seg.counts)
    assert [c["area_km2"] for c in info["classes"]] == pytest.approx(seg.counts * 0.25)
    with open(out / "MOD_01_classes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["pixels"]) for r in rows] == counts and float(rows[0]["area_km2"]) == pytest.approx(counts[0] / 4)
    water = int(np.argmin(seg.cluster_centers[:, 0]))
    assert info["class_of_interest"] == water
    assert -1 <= info["silhouette"] <= 1
    assert json.loads((out / "segment.json").read_text())["images"][0]["classes"] == info["classes"]


def test_segment_human_output_and_two_dates(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["segment", MOD_01, MOD_24, "--window", SMALL, "--out", str(out), "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert "<- class of interest" in text and f"wrote 5 files to {out}" in text
    assert "MOD_24_classes.png" in _files(out) and "figure.png" not in _files(out)


def test_change_reports_per_class_change(tmp_path, capsys):
    out = tmp_path / "c"
    code = main(
        [
            "change",
            MOD_01,
            MOD_24,
            "--window",
            "140:600,110:500",
            "--pixel-size",
            "500",
            "--band-names",
            "NIR,G,B",
            "--class",
            "darkest:NIR",
            "--update",
            "mean",
            "--init",
            "random",
            "--n-init",
            "1",
            "--tol",
            "0",
            "--seed",
            str(aral.ARTICLE_SEED),
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    water = report["classes"][report["class_of_interest"]]
    assert water["before_km2"] == pytest.approx(17125.25) and water["after_km2"] == pytest.approx(1960.25)
    assert water["change_pct"] == pytest.approx(100 * (1960.25 - 17125.25) / 17125.25)
    assert {"change.csv", "change.json", "figure.png", "MOD_01_classes.png", "MOD_24_classes.png"} <= set(_files(out))
    with open(out / "change.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert float(rows[report["class_of_interest"]]["change_km2"]) == pytest.approx(1960.25 - 17125.25)


@pytest.fixture(scope="module")
def demo_run():
    """``gpukmeans demo`` with no arguments, run once in a subprocess: (stdout, output folder)."""
    proc = subprocess.run([sys.executable, "-m", "gpukmeans.cli", "demo"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    folder = proc.stdout.strip().split(" to ")[-1]
    yield proc.stdout, folder
    shutil.rmtree(folder, ignore_errors=True)


def test_demo_prints_the_reproduction_table(demo_run):
    text, folder = demo_run
    assert folder.startswith(tempfile.gettempdir()) and "gpukmeans-demo-" in folder
    assert "article (reported)" in text and "17125" in text and "Web Mercator" in text and "chebyshev" in text
    assert "Note: with chebyshev" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("article (random init, mean)    euclidean"))
    assert "17125.2" in line and "1960.2" in line and "+0.00%/+0.01%" in line  # vs 17125 and 1960 km²
    assert {"aral_figure.png", "aral_demo.json", "aral_table.csv", "aral_2000_euclidean.png"} <= set(_files(folder))


def test_demo_results_reproduce_the_article_within_one_percent(demo_run):
    with open(os.path.join(demo_run[1], "aral_demo.json")) as fh:
        summary = json.load(fh)
    rows = {(r["method"], r["metric"]): r for r in summary["rows"]}
    for metric, (a2000, a2023, pct) in aral.ARTICLE.items():
        row = rows[("article (random init, mean)", metric)]
        assert row["water_km2_500m"] == pytest.approx([a2000, a2023], rel=0.01)
        assert row["deviation_from_article_pct"] == pytest.approx([0, 0], abs=1.0)
        assert row["change_pct_500m"] == pytest.approx(pct, abs=1.0)
        # real geometry: ~1.36x the 500 m areas, same relative change
        assert row["water_km2_web_mercator"][0] / row["water_km2_500m"][0] == pytest.approx(1.36, abs=0.01)
        assert row["change_pct_web_mercator"] == pytest.approx(row["change_pct_500m"], abs=0.2)
    for metric in ("euclidean", "manhattan"):
        row = rows[("package default", metric)]
        assert row["change_pct_500m"] == pytest.approx(-89, abs=1.5)
        assert all(-1 <= s <= 1 for s in row["silhouette"])
    # true chebyshev splits the 2000 sea into deep and turbid water: its darkest class is the deep basin only
    cheb, eucl = rows[("package default", "chebyshev")], rows[("package default", "euclidean")]
    assert cheb["water_pixels"][0] < 0.5 * eucl["water_pixels"][0]
    assert cheb["water_pixels"][1] == pytest.approx(eucl["water_pixels"][1], rel=0.15)
    with open(os.path.join(demo_run[1], "aral_table.csv")) as fh:
        assert len(list(csv.DictReader(fh))) == 5


def test_demo_json_flag(tmp_path, capsys, monkeypatch):
    original = aral.reproduce
    monkeypatch.setattr(aral, "reproduce", lambda **kw: original(**kw, window="300:380,150:250"))
    assert main(["demo", "--out", str(tmp_path), "--json", "--silhouette", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["rows"]) == 5 and summary["n_pixels"] == 80 * 100
    assert sorted(os.path.basename(p) for p in summary["outputs"]) == sorted(_files(tmp_path))


@pytest.mark.parametrize(
    "args, message",
    [
        (["segment", MOD_01, "--window", "10:10,0:5"], "empty"),
        (["segment", MOD_01, "--window", "300:302,150:152", "--k", "5"], "larger than the number of distinct"),
        (["change", MOD_01, MOD_24, "--window", "0:50,0:60"], None),  # sanity: this one works
        (["segment", MOD_01, "--class", "darkest:SWIR", "--window", SMALL], "not found"),
        (["segment", MOD_01, "--crs", "EPSG:3857", "--transform", "1,2,3", "--window", SMALL], "6"),
        (["segment", MOD_01, "--k", "300", "--window", SMALL], "255"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2
    assert err.startswith("gpukmeans: error: ") and err.count("\n") == 1 and message in err
    assert _files(out) == []


def test_undeclared_float32_fill_value_is_refused_and_nodata_masks_it(tmp_path, capsys):
    """1e20 in a float32 image: euclidean distances overflow; the error says so, and --nodata 1e20 fixes it."""
    img = read_image(MOD_01, window=SMALL).data.astype(np.float32)
    img[:10, :10] = 1e20
    path = tmp_path / "fill.npy"
    np.save(path, img)
    out = tmp_path / "out"
    assert main(["segment", str(path), "--out", str(out), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "past the largest float32" in err and "--nodata VALUE" in err
    assert _files(out) == []
    assert main(["segment", str(path), "--out", str(out), "--json", "--nodata", "1e20"]) == 0
    info = json.loads(capsys.readouterr().out)["images"][0]
    assert info["n_valid"] == img.shape[0] * img.shape[1] - 100


def test_truncated_file_and_mismatched_dates(tmp_path, capsys):
    blob = open(MOD_01, "rb").read()
    (tmp_path / "t.jpg").write_bytes(blob[: len(blob) // 2])
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "t.jpg"), "--out", str(out)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err and _files(out) == []
    assert main(["change", MOD_01, MOD_24, "--out", str(out)] + ["--window", "0:50,0:60"]) == 0
    capsys.readouterr()
    small = tmp_path / "small.npy"
    np.save(small, read_image(MOD_24, window="0:40,0:60").data)
    before = set(_files(out))
    assert main(["change", MOD_01, str(small), "--out", str(out)]) == 2
    assert "shapes" in capsys.readouterr().err and set(_files(out)) == before  # nothing new, nothing half-way


def test_a_failure_while_writing_leaves_no_partial_output(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("gpukmeans.cli.write_figure", boom)
    out = tmp_path / "out"
    assert main(["segment", MOD_01, "--window", SMALL, "--out", str(out)]) == 2
    assert "disk full" in capsys.readouterr().err
    assert os.listdir(out) == []  # the PNG and CSV written before the failure were removed, staging too


def test_geotiff_output_keeps_crs_transform_and_nodata(tmp_path, capsys):
    rasterio = pytest.importorskip("rasterio")
    src = os.path.join(DATA, "rmnp_crop.tif")
    out = tmp_path / "g"
    assert main(["segment", src, "--k", "4", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["images"][0]
    with rasterio.open(out / "rmnp_crop_classes.tif") as ds, rasterio.open(src) as ref:
        assert ds.crs == ref.crs and ds.transform == ref.transform and ds.nodata == 255
        labels = ds.read(1)
        assert ds.colormap(1)[0][:3] == outputs.palette(4)[0]
    seg = segment(read_image(src), 4, random_state=0)
    np.testing.assert_array_equal(labels, np.where(seg.labels < 0, 255, seg.labels))
    assert (labels == 255).sum() == 1459 == info["n_masked"]
    assert sum(c["area_km2"] for c in info["classes"]) == pytest.approx(seg.areas_km2.sum())


def test_console_script_entry_point_reports_errors_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gpukmeans.cli", "segment", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"gpukmeans: error: {tmp_path / 'missing.jpg'}: no such file."
    usage = subprocess.run(
        [sys.executable, "-m", "gpukmeans.cli", "segment", MOD_01, "--metric", "cosine"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
