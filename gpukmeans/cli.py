"""The ``gpukmeans`` command line: ``segment``, ``change`` and ``demo``.

Exit status: 0 on success, 2 on bad input or usage (one line on stderr:
``gpukmeans: error: ...``), 1 on an unexpected internal error (set
``GPUKMEANS_DEBUG=1`` for the traceback). Outputs are written atomically: a
failed run leaves no partial files behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from . import _progress
from .imagery import ImageryError, Raster, read_image, segment
from .imagery._change import check_grids, compare
from .imagery._classes import DEFAULT_CLASS_RULE, select_class
from .imagery._mask import NODATA_RULES
from .imagery._quality import segmentation_silhouette
from .imagery._segment import Segmentation
from .imagery.outputs import (
    CHANGE_COLOURS,
    atomic_outputs,
    colorize,
    display_rgb,
    palette,
    write_csv,
    write_figure,
    write_json,
    write_label_geotiff,
    write_label_png,
)
from .metrics import METRICS, UPDATES

_EPILOG = (
    "Class of interest (--class): an index, 'darkest'/'brightest' (lowest/highest mean over bands; default "
    f"'{DEFAULT_CLASS_RULE}'), or 'darkest:BAND'/'brightest:BAND' with a band index or name, e.g. darkest:NIR. "
    "Classes are numbered by increasing brightness (class 0 is the darkest)."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _n_init(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clustering")
    g.add_argument("--k", type=_positive_int, default=3, help="number of classes (default 3)")
    g.add_argument(
        "--metric",
        default="euclidean",
        choices=sorted(METRICS),
        metavar="METRIC",
        help="euclidean (default), manhattan or chebyshev (aliases: l2, l1, cityblock, linf, chessboard)",
    )
    g.add_argument("--update", default="auto", choices=UPDATES, help="center update (default: suits the metric)")
    g.add_argument("--init", default="k-means++", choices=("k-means++", "random"))
    g.add_argument("--n-init", type=_n_init, default="auto", help="starts; 'auto' = 10 for k-means++ on <=1e6 rows")
    g.add_argument("--max-iter", type=_positive_int, default=300)
    g.add_argument("--tol", type=float, default=1e-4)
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0: reproducible)")
    g.add_argument("--backend", default="auto", help="auto, cpu or cuda")
    g.add_argument(
        "--dedup",
        default="auto",
        choices=("auto", "on", "off"),
        help="fit on distinct pixel values weighted by counts (exact; default auto)",
    )
    g.add_argument("--sample-size", type=_positive_int, default=None, help="fit on this many random pixels")
    g = p.add_argument_group("input")
    g.add_argument("--window", default=None, help="crop ROW0:ROW1,COL0:COL1 (NumPy order), e.g. 140:600,110:500")
    g.add_argument("--nodata", type=float, default=None, help="nodata value (overrides the file's)")
    g.add_argument(
        "--nodata-rule",
        default="all",
        choices=NODATA_RULES,
        help="mask a pixel when all (default) / any of its bands equal nodata, or never",
    )
    g.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="ground pixel size in metres for areas (overrides georeferencing)",
    )
    g.add_argument("--crs", default=None, help="CRS for images without georeferencing, e.g. EPSG:3857")
    g.add_argument("--transform", default=None, help="affine a,b,c,d,e,f of the full image (with --crs)")
    g.add_argument("--band-names", default=None, help="comma-separated band names, e.g. NIR,G,B")
    g = p.add_argument_group("output")
    g.add_argument("--class", dest="class_rule", default=DEFAULT_CLASS_RULE, help="class of interest (see below)")
    g.add_argument("--out", default="gpukmeans_out", help="output folder (default ./gpukmeans_out)")
    g.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    g.add_argument("--rgb", default=None, help="band indices shown in the figure, e.g. 2,1,0")
    g.add_argument("--no-figure", action="store_true", help="do not write the figure")
    g.add_argument(
        "--geotiff",
        default="auto",
        choices=("auto", "yes", "no"),
        help="write the class map as GeoTIFF (auto: when the input is georeferenced and rasterio is installed)",
    )
    g.add_argument("--silhouette", type=int, default=0, metavar="N", help="silhouette on N random pixels (0: off)")
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="show progress bars")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpukmeans`` command."""
    parser = argparse.ArgumentParser(
        prog="gpukmeans", description="k-means segmentation of satellite and aerial imagery."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("segment", help="cluster the pixels of one or more images", epilog=_EPILOG)
    p.add_argument("images", nargs="+", help="JPEG, PNG, GeoTIFF or .npy files (one per date)")
    _add_common(p)
    p = sub.add_parser("change", help="segment two dates and report per-class change", epilog=_EPILOG)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument(
        "--resample",
        default=None,
        choices=("nearest",),
        help="resample the second date onto the first's grid when they differ",
    )
    _add_common(p)
    p = sub.add_parser("demo", help="reproduce the Aral Sea article on the shipped MODIS images")
    p.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="seed of the package-default runs")
    p.add_argument("--backend", default="auto")
    p.add_argument("--silhouette", type=int, default=4000, metavar="N", help="pixels sampled for the silhouette")
    p.add_argument("--progress", dest="progress", action="store_true", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def _read(path: str, args) -> Raster:
    return read_image(
        path,
        window=args.window,
        nodata=args.nodata,
        band_names=args.band_names,
        pixel_size=args.pixel_size,
        crs=args.crs,
        transform=args.transform,
    )


def _segment(raster: Raster, args) -> Segmentation:
    dedup = {"auto": "auto", "on": True, "off": False}[args.dedup]
    return segment(
        raster,
        args.k,
        metric=args.metric,
        update=args.update,
        init=args.init,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        backend=args.backend,
        dedup=dedup,
        sample_size=args.sample_size,
        nodata_rule=args.nodata_rule,
        progress=args.progress,
    )


def _check_outputs(args, rasters: Sequence[Raster]) -> bool:
    """Validate options before any clustering; return whether to write GeoTIFFs."""
    if args.k > 255:
        raise ImageryError(f"--k {args.k}: class maps are 8-bit and hold at most 255 classes.")
    for r in rasters:  # a bad --class rule or band name fails now, not after the clustering
        select_class(np.zeros((args.k, r.n_bands)), args.class_rule, r.band_names)
    if args.rgb is not None and isinstance(args.rgb, str):
        try:
            args.rgb = [int(b) for b in args.rgb.split(",")]
        except ValueError:
            raise ImageryError(f"--rgb {args.rgb!r}: expected three band indices such as 2,1,0.") from None
    if args.geotiff == "no":
        return False
    have = _have_rasterio()
    if args.geotiff == "yes" and not have:
        raise ImageryError("--geotiff yes needs rasterio; install it with pip install 'gpukmeans[geo]'.")
    return have and (args.geotiff == "yes" or all(r.transform is not None and r.crs for r in rasters))


def _have_rasterio() -> bool:
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


def _stems(paths: Sequence[str]) -> list[str]:
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return stems if len(set(stems)) == len(stems) else [f"{i}_{s}" for i, s in enumerate(stems)]


def _write_maps(stage, seg: Segmentation, stem: str, geotiff: bool) -> None:
    colours = palette(seg.n_clusters)
    write_label_png(stage.path(f"{stem}_classes.png"), seg.labels, colours)
    if geotiff:
        write_label_geotiff(stage.path(f"{stem}_classes.tif"), seg.labels, seg.raster, colours)
    rows = []
    for c in seg.to_dict()["classes"]:
        rows.append(
            {
                "class": c["class"],
                "center": c["center"],
                "pixels": c["pixels"],
                "fraction": round(c["fraction"], 6),
                "area_km2": c.get("area_km2", ""),
            }
        )
    write_csv(stage.path(f"{stem}_classes.csv"), rows)


def _figure_rows(segs: Sequence[Segmentation], titles: Sequence[str], bands) -> list:
    rows = []
    for seg, title in zip(segs, titles):
        rows.append(
            (
                title,
                [("image", display_rgb(seg.raster, bands)), ("classes", colorize(seg.labels, palette(seg.n_clusters)))],
            )
        )
    return rows


def _legend(seg: Segmentation, interest: int) -> list:
    out = []
    for c, colour in enumerate(palette(seg.n_clusters)):
        mark = " *" if c == interest else ""
        out.append((f"class {c}{mark}", colour))
    return out


def _class_table(seg: Segmentation, interest: int) -> str:
    d = seg.to_dict()
    lines = [
        f"{seg.raster.name}: {seg.raster.height}x{seg.raster.width} px, {seg.n_valid} valid, "
        f"{d['n_fit_samples']} {'distinct values' if seg.dedup else 'samples'} fitted, "
        f"{d['n_iter']} iterations, {seg.timings['total']:.2f} s"
    ]
    if seg.pixel_area is not None:
        lines.append(f"  areas: {seg.pixel_area.method}")
    for c in d["classes"]:
        area = f"{c['area_km2']:12.3f} km²" if "area_km2" in c else ""
        mark = "  <- class of interest" if c["class"] == interest else ""
        centre = ", ".join(f"{v:.1f}" for v in c["center"])
        lines.append(
            f"  class {c['class']}: center ({centre}) {c['pixels']:>10} px {100 * c['fraction']:6.2f}% {area}{mark}"
        )
    return "\n".join(lines)


def cmd_segment(args) -> int:
    rasters = [_read(p, args) for p in args.images]
    geotiff = _check_outputs(args, rasters)
    segs = [_segment(r, args) for r in rasters]
    interests = [select_class(s.cluster_centers, args.class_rule, s.raster.band_names) for s in segs]
    result = []
    for seg, interest in zip(segs, interests):
        d = seg.to_dict()
        d["class_of_interest"] = interest
        d["class_rule"] = args.class_rule
        if args.silhouette:
            d["silhouette"] = segmentation_silhouette(seg, args.silhouette, args.seed)
        result.append(d)
    stems = _stems(args.images)
    with atomic_outputs(args.out) as stage:
        for seg, stem in zip(segs, stems):
            _write_maps(stage, seg, stem, geotiff)
        if not args.no_figure:
            write_figure(stage.path("figure.png"), _figure_rows(segs, stems, args.rgb), _legend(segs[0], interests[0]))
        write_json(stage.path("segment.json"), {"images": result})
    if args.json:
        print(json.dumps({"images": result, "outputs": stage.written}, indent=2))
    else:
        for seg, interest, d in zip(segs, interests, result):
            print(_class_table(seg, interest))
            if "silhouette" in d:
                print(f"  silhouette ({args.silhouette} px): {d['silhouette']}")
        print(f"wrote {len(stage.written)} files to {args.out}")
    return 0


def cmd_change(args) -> int:
    before, after = _read(args.before, args), _read(args.after, args)
    check_grids(before, after, resample=args.resample)  # fail before any clustering
    geotiff = _check_outputs(args, [before, after])
    seg_b, seg_a = _segment(before, args), _segment(after, args)
    report = compare(seg_b, seg_a, resample=args.resample, class_rule=args.class_rule)
    summary = report.to_dict()
    stems = _stems([args.before, args.after])
    with atomic_outputs(args.out) as stage:
        _write_maps(stage, seg_b, stems[0], geotiff)
        _write_maps(stage, seg_a, stems[1], geotiff)
        write_csv(
            stage.path("change.csv"),
            [{k: v for k, v in r.items() if not k.startswith("center")} for r in report.rows()],
        )
        write_json(stage.path("change.json"), summary)
        if not args.no_figure:
            rows = _figure_rows([seg_b, seg_a], stems, args.rgb)
            interest = report.interest_map().astype(np.int16)
            interest[interest == 255] = -1
            rows.append(
                (
                    f"change of class {report.class_of_interest}",
                    [("stable / lost / gained", colorize(interest, CHANGE_COLOURS))],
                )
            )
            legend = _legend(seg_b, report.class_of_interest) + [
                (t, c) for t, c in zip(("absent", "stable", "lost", "gained"), CHANGE_COLOURS)
            ]
            write_figure(stage.path("figure.png"), rows, legend)
    if args.json:
        summary["outputs"] = stage.written
        print(json.dumps(summary, indent=2))
        return 0
    print(_class_table(seg_b, report.class_of_interest))
    print(_class_table(seg_a, int(report.match[report.class_of_interest])))
    unit = "km²" if report.unit == "km2" else "px"
    print(f"change ({'resampled' if report.resampled else 'same grid'}; classes matched by center distance):")
    for r in report.rows():
        b, a, ch = r[f"before_{report.unit}"], r[f"after_{report.unit}"], r[f"change_{report.unit}"]
        pct = "n/a" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%"
        mark = "  <- class of interest" if r["class_of_interest"] else ""
        print(
            f"  class {r['class']} -> {r['matched_class_after']}: {b:12.3f} -> {a:12.3f} {unit} "
            f"({ch:+.3f} {unit}, {pct}){mark}"
        )
    print(f"wrote {len(stage.written)} files to {args.out}")
    return 0


def cmd_demo(args) -> int:
    from .imagery import aral

    t0 = time.perf_counter()
    rows = aral.reproduce(seed=args.seed, backend=args.backend, silhouette_size=args.silhouette, progress=args.progress)
    elapsed = time.perf_counter() - t0
    out = args.out or tempfile.mkdtemp(prefix="gpukmeans-demo-")
    default = next(r for r in rows if r.method.startswith("package default") and r.metric == "euclidean")
    with atomic_outputs(out) as stage:
        fig_rows = []
        for seg, date in zip(default.segmentations, aral.DATES):
            panels = [("image (NIR,G,B)", display_rgb(seg.raster))]
            for r in rows:
                if r.method.startswith("package default"):
                    s = r.segmentations[aral.DATES.index(date)]
                    panels.append((r.metric, colorize(s.labels, palette(3))))
            fig_rows.append((date, panels))
            stem = f"aral_{date[:4]}_euclidean"
            write_label_png(stage.path(f"{stem}.png"), seg.labels)
            if _have_rasterio():
                write_label_geotiff(stage.path(f"{stem}.tif"), seg.labels, seg.raster)
        write_figure(
            stage.path("aral_figure.png"),
            fig_rows,
            [("class 0: water (darkest)", palette(3)[0]), ("class 1", palette(3)[1]), ("class 2", palette(3)[2])],
        )
        summary = aral.summary(rows)
        summary["seconds"] = elapsed
        write_json(stage.path("aral_demo.json"), summary)
        write_csv(stage.path("aral_table.csv"), [{k: v for k, v in r.to_dict().items()} for r in rows])
    if args.json:
        summary["outputs"] = stage.written
        print(json.dumps(summary, indent=2))
        return 0
    print("Aral Sea water area, MODIS 2000-08-01 vs 2023-08-01, crop img[140:600, 110:500], k=3,")
    print("water = class darkest in NIR (band 0). Article rows: init=random, update=mean, n_init=1, tol=0, seed 3.")
    print(f"Package default: k-means++ (10 starts), update per metric (mean / median / guarded), seed {args.seed}.")
    print(aral.format_table(rows))
    if args.silhouette:
        print(
            f"Silhouette 2000/2023 on {args.silhouette} random pixels' values "
            "(the article also fed its distance columns to it)."
        )
    print("The article's 'chebyshev' (max of signed differences) is not emulated; here chebyshev is max |x - c|.")
    for r in rows:
        if r.method.startswith("package default") and r.pixels[0] < 0.6 * default.pixels[0]:
            print(
                f"Note: with {r.metric} the lowest-objective 3-class split of 2000 separates the deep western basin "
                "from the turbid eastern one, so the darkest class is deep water only (with k=4 the two darkest "
                "classes, deep and turbid, hold all the water)."
            )
    print(f"{elapsed:.2f} s. Wrote {len(stage.written)} files to {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpukmeans`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.progress is not None:
        _progress.DEFAULT_ENABLED = args.progress
    commands = {"segment": cmd_segment, "change": cmd_change, "demo": cmd_demo}
    try:
        return commands[args.command](args)
    except (ImageryError, ValueError, TypeError, OSError) as exc:
        if os.environ.get("GPUKMEANS_DEBUG"):
            raise
        hint = " Here: --nodata VALUE masks the pixels that hold it." if "Mask fill values" in str(exc) else ""
        print(f"gpukmeans: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpukmeans: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: still one line, no traceback unless asked
        if os.environ.get("GPUKMEANS_DEBUG"):
            raise
        print(
            f"gpukmeans: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(set GPUKMEANS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        _progress.DEFAULT_ENABLED = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
