"""Pure geometry conversions shared by the views (all in the model's pixel convention)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from slyfs.formats.model import (
    Cuboid2d,
    Geometry,
    GraphTemplate,
    Mask,
    OrientedBox,
    PixelBox,
    Point2,
    PointGeom,
    Polygon,
    Rectangle,
)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 continuous, x1/y1 exclusive


def clipped_box(geometry: Geometry, width: int, height: int) -> Box | None:
    """The continuous box of the pixels a geometry covers, cut to the image; None when it
    has no extent (a point) or nothing of it lies inside the image."""
    pb = geometry.pixel_box()
    if pb is None or width <= 0 or height <= 0:
        return None
    left, top, right, bottom = pb
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, right + 1), min(height, bottom + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def normalized_cxcywh(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """YOLO's centre/size form of a box, as fractions of the image size."""
    x0, y0, x1, y1 = box
    return ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)


def union_box(boxes: Sequence[Box]) -> Box:
    """The smallest box holding every one of ``boxes`` (at least one)."""
    if len(boxes) == 1:
        return boxes[0]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def translated(geometry: Geometry, dx: int, dy: int) -> Geometry:
    """An area geometry moved by (dx, dy) pixels (TypeError for one without area)."""
    if isinstance(geometry, Rectangle):
        return Rectangle(geometry.left + dx, geometry.top + dy, geometry.right + dx, geometry.bottom + dy)
    if isinstance(geometry, Polygon):
        def move(pts: tuple[Point2, ...]) -> tuple[Point2, ...]:
            return tuple((x + dx, y + dy) for x, y in pts)
        return Polygon(move(geometry.exterior), tuple(move(h) for h in geometry.interiors))
    if isinstance(geometry, Cuboid2d):
        return Cuboid2d({k: (x + dx, y + dy) for k, (x, y) in geometry.vertices.items()})
    if isinstance(geometry, OrientedBox):
        g = geometry
        return OrientedBox(g.left + dx, g.top + dy, g.right + dx, g.bottom + dy, g.angle)
    if isinstance(geometry, Mask):
        return Mask((geometry.origin[0] + dx, geometry.origin[1] + dy), geometry.pixels, geometry.alpha)
    raise TypeError(f"{type(geometry).__name__} has no area")


def polygonal(geometry: Geometry) -> bool:
    """Whether a polygon segmentation can carry the geometry's pixels (no holes, no raster)."""
    return isinstance(geometry, (Rectangle, Cuboid2d, OrientedBox)) or (
        isinstance(geometry, Polygon) and not geometry.interiors)


def pixel_extent(geometry: Geometry) -> PixelBox | None:
    """The inclusive pixel box a geometry spans, as ``pixel_box`` has it, except that a point
    spans the one pixel it lies in (formats that give every object a box need one for it)."""
    if isinstance(geometry, PointGeom):
        x, y = math.floor(geometry.x), math.floor(geometry.y)
        return (x, y, x, y)
    return geometry.pixel_box()


def coordinate_text(value: float) -> str:
    """A coordinate as text label files hold it: ``12`` for whole numbers, else up to 6 decimals."""
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0")
def pixel_centre(point: Point2) -> tuple[float, float]:
    """A pixel index as the continuous point at the centre of that pixel (how views that take
    continuous vertices write polygons, lines and keypoints)."""
    return (point[0] + 0.5, point[1] + 0.5)


def template_joints(template: GraphTemplate) -> list[list[int]]:
    """A keypoint template's edges as 1-based positions of their nodes in template order."""
    index = {node_id: i + 1 for i, node_id in enumerate(template.node_ids)}
    return [[index[a], index[b]] for a, b in template.edges if a in index and b in index]
