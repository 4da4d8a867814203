"""Datumaro's reading of a view set beside the reader's model, shape by shape: the checks the
Datumaro and CVAT views share (boxes as pixel edges, polygons at pixel centres, masks pixel for
pixel), and the boxes the KITTI and Open Images views must write."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.model import Annotation, Label, OrientedBox, PointGeom, Polygon, Rectangle


def items_by_subset(dataset: Any) -> dict[str, list]:
    """A Datumaro dataset's items by subset, in the order it gives them."""
    out: dict[str, list] = {}
    for item in dataset:
        out.setdefault(item.subset, []).append(item)
    return out


def assert_shape_is_label(shape: Any, label: Label, width: int, height: int, exact: bool = True) -> None:
    """One Datumaro annotation against the source label it was written from (an oriented box only
    where it is read as a rotated box); polygon points compared exactly, or within float rounding
    when ``exact`` is false."""
    g = label.geometry
    if shape.type.name == "mask":
        assert np.array_equal(shape.image.astype(bool), geometry_mask(g, width, height))
    elif isinstance(g, Rectangle):
        assert shape.get_bbox() == [g.left, g.top, g.right - g.left + 1, g.bottom - g.top + 1]
    elif isinstance(g, OrientedBox) and shape.type.name == "rotated_bbox":  # Datumaro's own view: a bbox
        assert (shape.cx, shape.cy, shape.w, shape.h) == pytest.approx(
            ((g.left + g.right + 1) / 2, (g.top + g.bottom + 1) / 2, g.right - g.left + 1,
             g.bottom - g.top + 1), abs=0.01)
        assert shape.r == pytest.approx(math.degrees(g.angle) % 360, abs=0.01)
    elif isinstance(g, Polygon):
        points = [v + 0.5 for p in g.exterior for v in p]
        assert shape.points == (points if exact else pytest.approx(points))


def edge_boxes(ann: Annotation) -> Iterator[tuple[Label, tuple[int, int, int, int], dict[str, object]]]:
    """(label, (x, y, w, h) of its pixel box's edges cut to the image, its tags by name) of every
    label but points whose box keeps a pixel inside the image: the objects the box views write."""
    for label in ann.labels:
        if isinstance(label.geometry, PointGeom):
            continue
        l, t, r, b = label.geometry.pixel_box()
        l, t, r, b = max(l, 0), max(t, 0), min(r + 1, ann.width), min(b + 1, ann.height)
        if r <= l or b <= t:
            continue
        yield label, (l, t, r - l, b - t), {tag.name: tag.value for tag in label.tags}
