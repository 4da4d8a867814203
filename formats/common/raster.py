"""Geometry → pixel mask, in the model's convention: a pixel belongs to a polygon when it
is inside it or on its boundary (the exterior's and the holes' alike), as Supervisely's
own rasteriser draws it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from slyfs.formats.common.geometry import Box, translated
from slyfs.formats.model import Cuboid2d, Geometry, Mask, OrientedBox, Point2, Polygon, Rectangle

AREA_GEOMETRIES = (Rectangle, Polygon, Mask, Cuboid2d, OrientedBox)  # what geometry_mask draws


def _draw_polygon(width: int, height: int, exterior: tuple[Point2, ...],
                  holes: tuple[tuple[Point2, ...], ...] = ()) -> np.ndarray:
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon([(float(x), float(y)) for x, y in exterior], fill=1, outline=1)
    for hole in holes:
        pts = [(float(x), float(y)) for x, y in hole]
        draw.polygon(pts, fill=0, outline=0)
        draw.polygon(pts, fill=None, outline=1)
    return np.asarray(img, dtype=bool)


def geometry_mask(geometry: Geometry, width: int, height: int) -> np.ndarray | None:
    """The image-sized bool mask of the pixels a geometry covers, or None for geometries
    without area (points, lines, graphs)."""
    if isinstance(geometry, Rectangle):
        out = np.zeros((height, width), dtype=bool)
        out[max(0, geometry.top):max(0, geometry.bottom + 1), max(0, geometry.left):max(0, geometry.right + 1)] = True
        return out
    if isinstance(geometry, Polygon):
        return _draw_polygon(width, height, geometry.exterior, geometry.interiors)
    if isinstance(geometry, Cuboid2d):
        return _draw_polygon(width, height, geometry.hull_polygon())
    if isinstance(geometry, OrientedBox):
        return _draw_polygon(width, height, geometry.corners())
    if isinstance(geometry, Mask):
        return geometry.full_mask(width, height)
    return None


def pixel_crop(geometry: Geometry, box: Box) -> np.ndarray:
    """``geometry_mask`` of the image window ``box`` (integer continuous bounds), without
    drawing the whole image."""
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = geometry_mask(translated(geometry, -x0, -y0), x1 - x0, y1 - y0)
    assert mask is not None
    return mask


def has_area(geometry: Geometry) -> bool:
    """Whether the geometry paints pixels (one ``geometry_mask`` draws)."""
    return isinstance(geometry, AREA_GEOMETRIES)
