"""YOLO (Ultralytics) oriented-box view: the ``yolo`` layout, one rotated box per object.

```
data.yaml                  as ``yolo`` (same class ids)
images/<split>/<name>      the source image bytes
labels/<split>/<stem>.txt  ``class x1 y1 x2 y2 x3 y3 x4 y4`` per object, normalised
```
Corners are in continuous image coordinates (pixel ``x`` spans ``[x, x+1)``), so a box
covers whole pixels exactly as in the ``yolo`` detection view: an axis-aligned rectangle
gives the same width and height there and here.

Geometry → box:
- rectangle: its 4 corners; oriented box: the corners of its pixel extent turned by its angle.
- polygon, cuboid, line, graph, bitmap, alpha mask: the minimum-area rotated rectangle
  (``cv2.minAreaRect``, as Ultralytics' own converters fit it) of the pixels the shape
  touches (polygon/cuboid/line/graph vertices, the border pixels of a mask), corners included.
- every corner is then clamped into the image, so all values lie in [0, 1]; a box
  reaching outside the image becomes the (not necessarily rectangular) quadrilateral of
  its clamped corners, and one with nothing inside the image is left out.
- a point has no extent: left out and reported to the problem log.
"""

from __future__ import annotations

import numpy as np

from slyfs.formats.common.contours import min_area_rect, trace_mask
from slyfs.formats.common.geometry import clipped_box
from slyfs.formats.layout import Layout
from slyfs.formats.model import (
    Cuboid2d,
    Geometry,
    Graph,
    Line,
    Mask,
    OrientedBox,
    PointGeom,
    Polygon,
    Project,
    Rectangle,
)
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.yolo.shared import class_layout

CELL = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)


def _cells(points: np.ndarray) -> np.ndarray:
    """The corners of the pixels at the given pixel indices (N×2 → 4N×2)."""
    return (points[:, None, :] + CELL[None, :, :]).reshape(-1, 2)


def _vertices(geometry: Geometry, width: int, height: int) -> np.ndarray | None:
    if isinstance(geometry, Polygon):
        return np.asarray(geometry.exterior, dtype=float)
    if isinstance(geometry, Line):
        return np.asarray(geometry.points, dtype=float)
    if isinstance(geometry, Cuboid2d):
        return np.asarray(list(geometry.vertices.values()), dtype=float)
    if isinstance(geometry, Graph):
        return np.asarray([(n.x, n.y) for n in geometry.nodes.values()], dtype=float)
    if isinstance(geometry, Mask):
        regions = trace_mask(geometry.full_mask(width, height))
        pts = [p for r in regions for p in r.exterior]
        return np.asarray(pts, dtype=float) if pts else None
    return None


def obb_corners(geometry: Geometry, width: int, height: int) -> np.ndarray | None:
    """4×2 continuous corners of the rotated box of a geometry, clamped to the image;
    None when the geometry has no extent or nothing of it is inside the image."""
    if clipped_box(geometry, width, height) is None:
        return None
    if isinstance(geometry, Rectangle):
        corners = np.array([[geometry.left, geometry.top], [geometry.right + 1, geometry.top],
                            [geometry.right + 1, geometry.bottom + 1], [geometry.left, geometry.bottom + 1]], float)
    elif isinstance(geometry, OrientedBox):
        extent = OrientedBox(geometry.left, geometry.top, geometry.right + 1, geometry.bottom + 1, geometry.angle)
        corners = np.asarray(extent.corners(), dtype=float)
    else:
        pts = _vertices(geometry, width, height)
        if pts is None or len(pts) == 0:
            return None
        corners = min_area_rect(_cells(np.floor(pts)))
    return np.clip(corners, 0, [width, height])


def obb_rows(class_id: int, geometry: Geometry, width: int, height: int) -> list[str] | None:
    """``class x1 y1 ... x4 y4`` of the rotated box; None for a point (no extent)."""
    if isinstance(geometry, PointGeom):
        return None
    corners = obb_corners(geometry, width, height)
    if corners is None:
        return []
    norm = corners / [width, height]
    return [f"{class_id} " + " ".join(f"{v:.6f}" for v in norm.reshape(-1)) + "\n"]


def layout(project: Project, options: ViewOptions) -> Layout:
    return class_layout(project, options, "yolo-obb", "YOLO oriented boxes", obb_rows)
