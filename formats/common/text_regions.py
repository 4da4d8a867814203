"""What the three ICDAR views share: transcriptions made safe for the lines Datumaro's ICDAR
readers split, text regions as boxes or quads, and the names of subsets and item files.

Escapes (``%XX`` of the character's UTF-8 bytes, as every slyfs text field):
- every field: control characters, line separators, unpaired surrogates;
- recognition captions: ``\\`` (the reader deletes it) and the space of ``", "`` (the reader splits the
  line there), so ``one, two`` is written ``one,%20two``;
- localization texts: ``"`` (the reader takes the text between the first two quotes);
- segmentation characters: whitespace (the line is split at it), except a text that is one space,
  which has ICDAR's own form (a leading ``#`` and ``" "``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from slyfs.formats.common.geometry import clipped_box
from slyfs.formats.common.labels import GEOMETRY_NAMES
from slyfs.formats.common.naming import WHITESPACE, fit_name, line_unsafe, percent_bytes, text_field
from slyfs.formats.common.splits import item_names
from slyfs.formats.common.tags import find_tag
from slyfs.formats.model import Cuboid2d, Geometry, Item, Label, Mask, OrientedBox, Point2, Polygon, Rectangle

REGION_GEOMETRIES = (Rectangle, Polygon, OrientedBox, Cuboid2d, Mask)  # what has a region


def _caption_unsafe(ch: str) -> bool:
    return line_unsafe(ch) or ch == "\\"


def caption_text(text: str) -> str:
    """A recognition caption: one line, no backslash, no ``", "``."""
    out = text_field(text, _caption_unsafe, strip=False)
    return out.replace(", ", ",%20") if ", " in out else out


def _quoted_unsafe(ch: str) -> bool:
    return line_unsafe(ch) or ch == '"'


def quoted_text(text: str) -> str:
    """A localization text: one line without ``"``."""
    return text_field(text, _quoted_unsafe, strip=False)


def char_text(text: str) -> str:
    """A segmentation character's text token: no whitespace (one space is written by the caller)."""
    out = text_field(text, line_unsafe, strip=False)
    return WHITESPACE.sub(lambda m: percent_bytes(m.group()), out) if WHITESPACE.search(out) else out


def clockwise_from_top_left(points: Sequence[Point2]) -> list[Point2]:
    """Four corners in ICDAR's order: clockwise on screen (y down), the top-left one first
    (the one with the smallest x + y; ties: the smaller y)."""
    pts = list(points)
    area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(pts, pts[1:] + pts[:1]))
    if area2 < 0:
        pts.reverse()
    start = min(range(len(pts)), key=lambda i: (pts[i][0] + pts[i][1], pts[i][1]))
    return pts[start:] + pts[:start]


@dataclass(frozen=True, slots=True)
class Region:
    """A text region: ``box`` (x1, y1, x2, y2 continuous, x2/y2 exclusive) or ``quad`` (four
    corners at pixel centres, clockwise from the top left)."""

    box: tuple[float, float, float, float] | None = None
    quad: tuple[Point2, ...] | None = None


def text_region(geometry: Geometry, width: int, height: int) -> Region | None:
    """The region of a geometry: a rectangle its edge box; an oriented box and a 4-vertex polygon
    without holes their corners; other polygons, cuboids and masks the edge box of their pixels,
    cut to the image. None for geometries without area (points, lines, graphs) and for regions
    wholly outside the image."""
    if not isinstance(geometry, REGION_GEOMETRIES):
        return None
    corners: tuple[Point2, ...] | None = None
    if isinstance(geometry, OrientedBox):
        corners = geometry.corners()
    elif isinstance(geometry, Polygon) and len(geometry.exterior) == 4 and not geometry.interiors:
        corners = geometry.exterior
    box = clipped_box(geometry, width, height)
    if box is None:
        return None
    if corners is not None:
        return Region(quad=tuple((x + 0.5, y + 0.5) for x, y in clockwise_from_top_left(corners)))
    return Region(box=box)


def subset_labels(splits: Sequence[str]) -> dict[str, str]:
    """Subset folder names: the split names (already safe components), a leading ``.`` written
    ``%2E`` (a hidden folder is no subset to the readers' globs)."""
    return {s: "%2E" + s[1:] if s.startswith(".") else s for s in splits}


def affixed_names(room: int, escape: Callable[[str], str] | None = None) -> Callable[[Sequence[Item]], list[str]]:
    """Output names of a folder's items whose files get ``room`` more bytes around the stem than
    the 4 of an extension (``gt_<id>.txt``, ``<id>_GT.bmp``): longer stems are cut and hash-tagged."""
    def names(items: Sequence[Item]) -> list[str]:
        out = item_names(items) if escape is None else item_names(items, escape)
        limit = 251 - room
        return [n if len(n) <= limit // 4 else fit_name(n, limit) for n in out]
    return names


def transcribed(labels: Sequence[Label], kept: Collection[str], tag: str,
                expressible: Callable[[Geometry], bool]) -> tuple[list[tuple[Label, str]], Counter[str]]:
    """The labels of kept classes that carry a transcription (tag ``tag`` with a value) and a geometry
    the view can write, with their text; the others counted by kind for ``report_left_out``
    (``untranscribed rectangle``, ``line``…)."""
    out: list[tuple[Label, str]] = []
    left_out: Counter[str] = Counter()
    for label in labels:
        if label.class_title not in kept:
            continue
        kind = GEOMETRY_NAMES[type(label.geometry)]
        found = find_tag(label.tags, tag)
        if found is None or found.value is None:
            left_out[f"untranscribed {kind}"] += 1
        elif not expressible(label.geometry):
            left_out[kind] += 1
        else:
            out.append((label, str(found.value)))
    return out, left_out
