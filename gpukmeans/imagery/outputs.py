"""Writing results: class maps (PNG with a palette, GeoTIFF), JSON, CSV and a side-by-side figure.

Every file is written atomically: :func:`atomic_outputs` stages all files of
one run in a hidden folder inside the output folder and moves them into place
only when every one of them was written, so a failure leaves nothing half-way.
"""

from __future__ import annotations

import colorsys
import contextlib
import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np

from ._errors import ImageryError
from ._raster import Raster

#: Class colours (matplotlib's "tab10"), then golden-ratio hues for more classes.
_TAB10 = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
#: Label written for nodata in 8-bit class maps (PNG and GeoTIFF).
NODATA_8BIT = 255
#: Colours of :meth:`ChangeReport.interest_map` values 0..3: absent, stable, lost, gained.
CHANGE_COLOURS = [(235, 235, 235), (31, 119, 180), (214, 39, 40), (44, 160, 44)]


def palette(n_classes: int) -> list[tuple[int, int, int]]:
    """``n_classes`` distinct RGB colours."""
    colours = list(_TAB10[:n_classes])
    for i in range(len(colours), n_classes):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.9)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


class Staging:
    """Files of one run, written under a hidden folder until :meth:`commit`."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=".gpukmeans-", dir=out_dir)
        self.names: list[str] = []

    def path(self, name: str) -> str:
        """Staging path for the output file ``name`` (a plain file name)."""
        if os.path.basename(name) != name or not name:
            raise ValueError(f"output name must be a plain file name; got {name!r}.")
        self.names.append(name)
        return os.path.join(self.tmp, name)

    def commit(self) -> list[str]:
        """Move every staged file into the output folder; return their final paths."""
        final = []
        for name in self.names:
            dst = os.path.join(self.out_dir, name)
            os.replace(os.path.join(self.tmp, name), dst)
            final.append(dst)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_outputs(out_dir: str) -> Iterator[Staging]:
    """Stage output files; on success move them all into ``out_dir``, on error delete them all."""
    staging = Staging(out_dir)
    try:
        yield staging
    except BaseException:
        staging.abort()
        raise
    staging.written = staging.commit()


def labels_8bit(labels: np.ndarray) -> np.ndarray:
    """Class map as uint8 with :data:`NODATA_8BIT` for nodata (at most 255 classes)."""
    if labels.size and int(labels.max()) >= NODATA_8BIT:
        raise ImageryError(f"8-bit class maps hold at most {NODATA_8BIT} classes; use fewer classes.")
    out = labels.astype(np.uint8)
    out[labels < 0] = NODATA_8BIT
    return out


def write_label_png(path: str, labels: np.ndarray, colours: Sequence[tuple[int, int, int]] | None = None) -> None:
    """Class map as a palette PNG: pixel value = class, nodata = 255 (transparent, black)."""
    from PIL import Image

    data = labels_8bit(labels)
    colours = list(colours or palette(int(labels.max()) + 1 if labels.size else 1))
    flat = [0] * 768
    for i, c in enumerate(colours[:NODATA_8BIT]):
        flat[3 * i : 3 * i + 3] = c
    img = Image.frombytes("P", (data.shape[1], data.shape[0]), np.ascontiguousarray(data).tobytes())
    img.putpalette(flat)
    img.save(path, format="PNG", transparency=NODATA_8BIT, optimize=False)


def write_label_geotiff(
    path: str, labels: np.ndarray, raster: Raster, colours: Sequence[tuple[int, int, int]] | None = None
) -> None:
    """Class map as a one-band uint8 GeoTIFF keeping the CRS and transform; nodata 255, with a colour map."""
    try:
        import rasterio
        from rasterio.transform import Affine
    except ImportError:
        raise ImageryError("writing GeoTIFF needs rasterio; install it with pip install 'gpukmeans[geo]'.") from None
    data = labels_8bit(labels)
    colours = list(colours or palette(int(labels.max()) + 1 if labels.size else 1))
    profile = {
        "driver": "GTiff",
        "height": data.shape[0],
        "width": data.shape[1],
        "count": 1,
        "dtype": "uint8",
        "nodata": NODATA_8BIT,
        "compress": "deflate",
    }
    if raster.crs is not None:
        profile["crs"] = raster.crs
    if raster.transform is not None:
        profile["transform"] = Affine(*raster.transform)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        cmap = {i: (*c, 255) for i, c in enumerate(colours[:NODATA_8BIT])}
        cmap[NODATA_8BIT] = (0, 0, 0, 0)
        dst.write_colormap(1, cmap)


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, allow_nan=False, default=_json_default)
        fh.write("\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_csv(path: str, rows: Sequence[dict]) -> None:
    """Rows of dicts as CSV (lists are joined with ``;``)."""
    if not rows:
        raise ValueError("no rows to write")
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})


def _cell(value):
    if isinstance(value, (list, tuple)):
        return ";".join("" if x is None else f"{x:.10g}" for x in value)
    return "" if value is None else value


def display_rgb(raster: Raster, bands: Sequence[int] | None = None) -> np.ndarray:
    """An 8-bit ``(rows, cols, 3)`` rendering of the image for figures.

    Uses ``bands`` (default: bands named R/G/B or red/green/blue if present,
    else the first three, or the single band as grey). 8-bit data is shown as
    is; other data is stretched linearly between the 2nd and 98th percentiles
    of each band.
    """
    n = raster.n_bands
    if bands is None:
        names = [b.lower() for b in raster.band_names or []]
        wanted = [
            next((i for i, b in enumerate(names) if b in alias), None)
            for alias in (("r", "red"), ("g", "green"), ("b", "blue"))
        ]
        bands = wanted if None not in wanted else (list(range(3)) if n >= 3 else [0, 0, 0])
    bands = list(bands)
    if len(bands) != 3 or not all(0 <= b < n for b in bands):
        raise ImageryError(f"display bands must be 3 indices in 0..{n - 1}; got {bands}.")
    step = max(1, int(math.ceil(max(raster.height, raster.width) / 1200)))
    data = np.asarray(raster.data[::step, ::step])[:, :, bands]
    if data.dtype == np.uint8:
        return np.ascontiguousarray(data)
    out = np.zeros(data.shape, dtype=np.uint8)
    for i in range(3):
        band = data[:, :, i].astype(np.float64)
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, [2, 98])
        scaled = (band - lo) / (hi - lo if hi > lo else 1.0)
        out[:, :, i] = np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
    return out


def colorize(labels: np.ndarray, colours: Sequence[tuple[int, int, int]], max_side: int = 1200) -> np.ndarray:
    """RGB rendering of a label map (nodata black), subsampled to at most ``max_side`` pixels a side."""
    step = max(1, int(math.ceil(max(labels.shape) / max_side)))
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(colours[:NODATA_8BIT])] = np.asarray(colours[:NODATA_8BIT], dtype=np.uint8)
    return lut[labels_8bit(labels[::step, ::step])]


def write_figure(
    path: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
) -> None:
    """Side-by-side figure: one row per date, each ``(row title, [(panel title, rgb array), ...])``.

    Panels are scaled to a common height of at most 480 pixels (nearest
    neighbour, so class maps stay crisp); ``legend`` entries ``(text, colour)``
    are drawn below.
    """
    from PIL import Image, ImageDraw

    font_h, pad = 14, 8
    height = min(480, max(p.shape[0] for _, panels in rows for _, p in panels))
    rendered = []
    for title, panels in rows:
        imgs = []
        for ptitle, arr in panels:
            w = max(1, round(arr.shape[1] * height / arr.shape[0]))
            imgs.append(
                (
                    f"{title} | {ptitle}" if title else ptitle,
                    Image.fromarray(np.ascontiguousarray(arr)).resize((w, height), Image.NEAREST),
                )
            )
        rendered.append(imgs)
    width = max(sum(im.width for _, im in imgs) + pad * (len(imgs) + 1) for imgs in rendered)
    legend_h = (font_h + 6) * math.ceil(len(legend) / 4) + pad if legend else 0
    total_h = len(rendered) * (height + font_h + 2 * pad) + pad + legend_h
    fig = Image.new("RGB", (width, total_h), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    y = pad
    for imgs in rendered:
        x = pad
        for text, im in imgs:
            draw.text((x, y), text, fill=(0, 0, 0))
            fig.paste(im, (x, y + font_h + 2))
            x += im.width + pad
        y += height + font_h + 2 * pad
    for i, (text, colour) in enumerate(legend):
        lx = pad + (i % 4) * (width // 4)
        ly = y + (i // 4) * (font_h + 6)
        draw.rectangle([lx, ly, lx + font_h, ly + font_h], fill=tuple(colour), outline=(0, 0, 0))
        draw.text((lx + font_h + 4, ly + 1), text, fill=(0, 0, 0))
    fig.save(path, format="PNG")
