"""Pure geometry conversions shared by the views (all in the model's pixel convention)."""

from __future__ import annotations

from slyfs.formats.model import Geometry

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
