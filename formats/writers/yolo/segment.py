"""YOLO (Ultralytics) segmentation view: the ``yolo`` layout, one polygon row per object.

```
data.yaml                  as ``yolo`` (same class ids)
images/<split>/<name>      the source image bytes
labels/<split>/<stem>.txt  ``class x1 y1 ... xn yn`` per region, normalised, n >= 3
```
Vertices are pixel *centres*: the model's pixel index ``x`` becomes ``(x + 0.5) / width``.
Ultralytics rasterises a row with ``polygon2mask`` (``int32`` truncation, then
``cv2.fillPoly``, which fills the border pixels too), so a centre lands back on its own
pixel and a traced mask comes back as the same pixels; the values never reach 0 or 1.

Geometry → rows (never a box row, so the file is never a mix):
- rectangle, oriented box: its 4 corners; cuboid: the convex hull of its 8 vertices;
  polygon: its exterior, each hole spliced in by a zero-width bridge (Ultralytics rows
  have no holes; see ``contours.bridge_holes``).
- bitmap, alpha mask (non-zero pixels): traced with OpenCV, one row per 8-connected
  component, holes bridged likewise.
- a shape reaching outside the image is rasterised, cut to the image and traced.
- line, point, graph: no area; left out and reported to the problem log.
"""

from __future__ import annotations

from slyfs.formats.common.contours import Ring, bridge_holes, geometry_regions
from slyfs.formats.common.raster import has_area
from slyfs.formats.layout import Layout
from slyfs.formats.model import Geometry, Project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.yolo.shared import class_layout


def polygon_row(class_id: int, ring: Ring, width: int, height: int) -> str:
    """``class x1 y1 ...`` with vertices at pixel centres; a ring of fewer than 3 vertices (a
    one- or two-pixel-thin region) repeats its last vertex, which still fills its pixels."""
    pts = list(ring) + [ring[-1]] * max(0, 3 - len(ring))
    coords = " ".join(f"{min(max((x + 0.5) / width, 0.0), 1.0):.6f} {min(max((y + 0.5) / height, 0.0), 1.0):.6f}"
                      for x, y in pts)
    return f"{class_id} {coords}\n"


def segment_rows(class_id: int, geometry: Geometry, width: int, height: int) -> list[str] | None:
    """One polygon row per region; None for a geometry without area."""
    if not has_area(geometry):
        return None
    return [polygon_row(class_id, bridge_holes(region.exterior, region.holes), width, height)
            for region in geometry_regions(geometry, width, height)]


def layout(project: Project, options: ViewOptions) -> Layout:
    return class_layout(project, options, "yolo-seg", "YOLO segments", segment_rows)
