"""Uncompressed COCO run-length encoding of a bool mask: the mask form COCO, Datumaro and
CVAT readers decode with pycocotools (column-major runs, zeros first)."""

from __future__ import annotations

import numpy as np


def rle(mask: np.ndarray, origin: tuple[int, int] = (0, 0), size: tuple[int, int] | None = None) -> dict:
    """Uncompressed COCO RLE of a bool mask placed at ``origin`` (x, y) in an image of
    ``size`` (width, height; default: the mask's own): column-major runs, zeros first."""
    h_c, w_c = mask.shape
    width, height = size or (w_c, h_c)
    x0, y0 = origin
    padded = np.zeros((h_c + 2, w_c), dtype=np.int8)  # zero rows keep runs inside their column
    padded[1:-1] = mask
    edges = np.flatnonzero(np.diff(padded.ravel(order="F"))) + 1
    if edges.size == 0:
        return {"size": [height, width], "counts": [width * height]}
    col, row = np.divmod(edges, h_c + 2)
    pos = (x0 + col) * height + (y0 + row - 1)  # alternately run starts and run ends in the image
    starts, ends = pos[0::2], pos[1::2]
    joined = ends[:-1] == starts[1:]  # a run that goes on at the top of the next column
    if joined.any():
        starts = starts[np.concatenate(([True], ~joined))]
        ends = ends[np.concatenate((~joined, [True]))]
    bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, width * height
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds)
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    return {"size": [height, width], "counts": counts.tolist()}
