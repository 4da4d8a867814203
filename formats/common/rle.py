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


def compressed_counts(counts: list[int]) -> str:
    """COCO's compressed RLE string of uncompressed ``counts`` (what pycocotools ``encode`` gives
    and Datumaro's JSON reader wants): each count, less the count two before it from the third on,
    as little-endian 5-bit groups with a continuation bit, offset into printable ASCII by 48."""
    out: list[str] = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        while True:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: a negative difference ends at -1
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr(c + (0x20 if more else 0) + 48))
            if not more:
                break
    return "".join(out)


def compressed_rle(mask: np.ndarray, origin: tuple[int, int] = (0, 0), size: tuple[int, int] | None = None) -> dict:
    """:func:`rle` with the counts as COCO's compressed string."""
    out = rle(mask, origin, size)
    out["counts"] = compressed_counts(out["counts"])
    return out


def row_runs(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of a bool mask, background first (0 when the first pixel is set):
    CVAT's ``<mask rle>`` over the mask's own box."""
    flat = np.concatenate(([False], mask.ravel(order="C").astype(bool), [False]))
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    bounds = np.concatenate(([0], edges, [mask.size]))
    counts = np.diff(bounds)
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]
    return counts.tolist()
