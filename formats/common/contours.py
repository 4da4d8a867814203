"""Mask → polygons and points → rotated box, with OpenCV (the library Ultralytics itself
rasterises and fits with), any area geometry → its polygons cut to the image, plus the hole
"bridge" that lets a hole-less polygon format carry holes.

Vertices here are pixel indices (the model's convention): a traced contour runs through the
centres of the object's border pixels, so ``cv2.fillPoly`` of it gives back the same pixels.
``pixel_edge_outlines`` is the exception: its rings run along the pixels' edges instead (vertices at
pixel corners), the outline a centre-sampling rasteriser such as pycocotools' gives back exactly.
OpenCV is imported inside the functions: views that never trace a mask do not load it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.model import Cuboid2d, Geometry, Mask, OrientedBox, Point2, Polygon, Rectangle

Ring = tuple[Point2, ...]


@dataclass(frozen=True, slots=True)
class Region:
    """One 8-connected component of a mask: its outer border and the borders of its holes."""

    exterior: Ring
    holes: tuple[Ring, ...]


def trace_mask(mask: np.ndarray) -> list[Region]:
    """Every connected component of a bool mask, with its holes (``RETR_CCOMP``: outer
    borders and hole borders; an island inside a hole is a component of its own).
    ``CHAIN_APPROX_SIMPLE`` only drops the middle points of straight runs, so nothing
    is lost. Components come in OpenCV's order (bottom-up scan), holes likewise."""
    import cv2

    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    links = hierarchy[0]  # per contour: next, previous, first child, parent
    rings = [tuple((float(x), float(y)) for x, y in c.reshape(-1, 2)) for c in contours]
    regions = []
    for i, (_next, _prev, _child, parent) in enumerate(links):
        if parent == -1:
            holes = tuple(rings[j] for j in range(len(rings)) if links[j][3] == i)
            regions.append(Region(rings[i], holes))
    return regions


def pixel_edge_outlines(mask: np.ndarray) -> list[np.ndarray] | None:
    """The outline of each 8-connected component of a bool mask along the outer edges of its
    border pixels (int N×2, vertices at pixel corners, continuous coordinates), enclosing
    exactly the component's pixels: no pixel centre lies on it, however thin the component.
    None when a component has a hole, which a hole-less outline cannot cut out.

    The mask is traced at twice its size, where each pixel is a 2×2 block: a border sub-pixel
    at an even index is on the left/top side of its pixel, at an odd one on the right/bottom
    side, so ``(s + 1) // 2`` moves it onto that pixel edge; a diagonal step between two blocks
    that touch at a corner becomes that corner."""
    import cv2

    doubled = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(doubled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    if (hierarchy[0][:, 3] != -1).any():
        return None
    outlines = []
    for contour in contours:
        corners = (contour.reshape(-1, 2) + 1) // 2
        outlines.append(corners[(corners != np.roll(corners, 1, axis=0)).any(axis=1)])
    return outlines


def _signed_area(ring: Ring) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))


def bridge_holes(exterior: Ring, holes: tuple[Ring, ...]) -> Ring:
    """One ring that fills like ``exterior`` minus ``holes``: each hole is spliced in through
    a zero-width bridge between the closest pair of vertices (what Ultralytics'
    ``merge_multi_segment`` does to join COCO polygon parts), and walked in the opposite
    direction to the exterior so both the even-odd and the non-zero fill rule cut it out."""
    ring = list(exterior)
    outer_sign = _signed_area(exterior) >= 0
    for hole in holes:
        if len(hole) < 3:
            continue
        h = list(hole) if (_signed_area(hole) >= 0) != outer_sign else list(reversed(hole))
        a = np.asarray(ring, dtype=float)
        b = np.asarray(h, dtype=float)
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        ring = ring[:i + 1] + h[j:] + h[:j + 1] + ring[i:]
    return tuple(ring)


def min_area_rect(points: np.ndarray) -> np.ndarray:
    """The four corners (4×2 float) of the smallest rotated rectangle holding ``points``
    (N×2, continuous coordinates), as ``cv2.minAreaRect`` finds it."""
    import cv2

    return cv2.boxPoints(cv2.minAreaRect(points.astype(np.float32))).astype(float)


def _inside(ring: Ring, width: int, height: int) -> bool:
    """All vertices' pixel centres lie in the image, so the ring needs no cutting."""
    return all(-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5 for x, y in ring)


def geometry_regions(geometry: Geometry, width: int, height: int) -> list[Region]:
    """The regions (pixel-index vertices) an area geometry covers inside the image; [] if none.
    A shape wholly inside keeps its own vertices; one reaching outside is rasterised, cut to the
    image and traced, so no vertex lies outside it."""
    if isinstance(geometry, Mask):
        return trace_mask(geometry.full_mask(width, height))
    if isinstance(geometry, Rectangle):
        x0, y0 = max(geometry.left, 0), max(geometry.top, 0)
        x1, y1 = min(geometry.right, width - 1), min(geometry.bottom, height - 1)
        return [Region(((x0, y0), (x1, y0), (x1, y1), (x0, y1)), ())] if x0 <= x1 and y0 <= y1 else []
    if isinstance(geometry, Polygon):
        region = Region(geometry.exterior, geometry.interiors)
    elif isinstance(geometry, Cuboid2d):
        region = Region(geometry.hull_polygon(), ())
    elif isinstance(geometry, OrientedBox):
        region = Region(geometry.corners(), ())
    else:
        return []
    if all(_inside(ring, width, height) for ring in (region.exterior, *region.holes)):
        return [region]
    mask = geometry_mask(geometry, width, height)
    return trace_mask(mask) if mask is not None else []
