"""Remote-sensing segmentation: read imagery, cluster pixels, map classes, measure areas and change.

Quick start::

    from gpukmeans.imagery import read_image, segment
    raster = read_image("scene.tif", window="0:512,0:512")
    seg = segment(raster, n_clusters=4, metric="manhattan", random_state=0)
    seg.labels          # (rows, cols) class map, -1 where nodata
    seg.areas_km2       # ground area of each class

See :func:`segment`, :func:`compare` (change between dates) and
:mod:`gpukmeans.imagery.outputs` (PNG/GeoTIFF/JSON/CSV/figure writers) and
:mod:`gpukmeans.imagery.aral` (the Aral Sea article, reproduced).
"""

from ._change import ChangeReport, change, check_grids, compare
from ._classes import DEFAULT_CLASS_RULE, match_classes, select_class
from ._errors import GridMismatchError, ImageryError
from ._georef import PixelArea, class_areas_km2, describe_crs, pixel_area
from ._mask import NODATA_RULES, valid_mask
from ._quality import segmentation_silhouette
from ._raster import Raster, Window
from ._read import read_image
from ._segment import NODATA_LABEL, Segmentation, segment

__all__ = [
    "ChangeReport",
    "DEFAULT_CLASS_RULE",
    "change",
    "check_grids",
    "compare",
    "match_classes",
    "select_class",
    "segmentation_silhouette",
    "GridMismatchError",
    "ImageryError",
    "NODATA_LABEL",
    "NODATA_RULES",
    "PixelArea",
    "Raster",
    "Segmentation",
    "Window",
    "class_areas_km2",
    "describe_crs",
    "pixel_area",
    "read_image",
    "segment",
    "valid_mask",
]
