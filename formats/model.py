"""The neutral dataset model every format view reads.

One coordinate convention, Supervisely's: points are integer-valued pixel indices
``(x, y)`` = ``(column, row)``; a pixel ``(x, y)`` covers the continuous square
``[x, x+1) × [y, y+1)``. A geometry's *pixel box* is the inclusive ``(left, top,
right, bottom)`` of the pixels it covers, so its continuous extent is
``[left, right+1) × [top, bottom+1)``. Views convert at their edge.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

Point2 = tuple[float, float]
PixelBox = tuple[int, int, int, int]  # left, top, right, bottom (inclusive pixels)


# ---------------------------------------------------------------- geometries


def _hull(points: list[Point2] | tuple[Point2, ...]) -> PixelBox | None:
    """Inclusive pixel box of a set of points (``None`` when there are none)."""
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (math.floor(min(xs)), math.floor(min(ys)), math.floor(max(xs)), math.floor(max(ys)))


@dataclass(frozen=True, slots=True)
class Rectangle:
    left: int
    top: int
    right: int
    bottom: int

    def pixel_box(self) -> PixelBox | None:
        return (self.left, self.top, self.right, self.bottom)

    def corners(self) -> tuple[Point2, ...]:
        return ((self.left, self.top), (self.right, self.top),
                (self.right, self.bottom), (self.left, self.bottom))


@dataclass(frozen=True, slots=True)
class Polygon:
    exterior: tuple[Point2, ...]
    interiors: tuple[tuple[Point2, ...], ...] = ()

    def pixel_box(self) -> PixelBox | None:
        return _hull(self.exterior)


@dataclass(frozen=True, slots=True)
class Line:
    points: tuple[Point2, ...]

    def pixel_box(self) -> PixelBox | None:
        return _hull(self.points)


@dataclass(frozen=True, slots=True)
class PointGeom:
    x: float
    y: float

    def pixel_box(self) -> PixelBox | None:
        """A point has no extent: formats that need a box cannot express it."""
        return None


@dataclass(frozen=True, slots=True)
class Mask:
    """A raster mask placed at ``origin`` (x, y): ``bitmap`` (bool) or ``alpha_mask`` (0..255).

    ``pixels`` is a 2-D array, rows × columns. A pixel belongs to the object where it is non-zero.
    """

    origin: tuple[int, int]
    pixels: np.ndarray = field(compare=False)
    alpha: bool = False

    def pixel_box(self) -> PixelBox | None:
        rows = np.flatnonzero(self.pixels.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(self.pixels.any(axis=0))
        x0, y0 = self.origin
        return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1]))

    def full_mask(self, width: int, height: int) -> np.ndarray:
        """The object's pixels (bool) on the whole image, cut to the image bounds."""
        out = np.zeros((height, width), dtype=bool)
        x0, y0 = self.origin
        h, w = self.pixels.shape
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(width, x0 + w), min(height, y0 + h)
        if dx1 > dx0 and dy1 > dy0:
            out[dy0:dy1, dx0:dx1] = self.pixels[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0] != 0
        return out


@dataclass(frozen=True, slots=True)
class GraphNode:
    x: float
    y: float
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class Graph:
    """Keypoints keyed by the class template's node ids."""

    nodes: Mapping[str, GraphNode] = field(compare=False)

    def pixel_box(self) -> PixelBox | None:
        return _hull([(n.x, n.y) for n in self.nodes.values()])


@dataclass(frozen=True, slots=True)
class Cuboid2d:
    """The eight projected vertices of a 3-D box, keyed ``face{1,2}-{topleft,...}``."""

    vertices: Mapping[str, Point2] = field(compare=False)

    def pixel_box(self) -> PixelBox | None:
        return _hull(list(self.vertices.values()))

    def hull_polygon(self) -> tuple[Point2, ...]:
        """Convex hull of the vertices, counter-clockwise (monotone chain)."""
        pts = sorted(set(self.vertices.values()))
        if len(pts) < 3:
            return tuple(pts)

        def cross(o: Point2, a: Point2, b: Point2) -> float:
            return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

        lower: list[Point2] = []
        upper: list[Point2] = []
        for p in pts:
            while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
                lower.pop()
            lower.append(p)
        for p in reversed(pts):
            while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
                upper.pop()
            upper.append(p)
        return tuple(lower[:-1] + upper[:-1])


@dataclass(frozen=True, slots=True)
class OrientedBox:
    """Axis-aligned box ``left..right × top..bottom`` turned by ``angle`` radians clockwise
    (in image coordinates, y down) about its centre."""

    left: float
    top: float
    right: float
    bottom: float
    angle: float

    def corners(self) -> tuple[Point2, ...]:
        """Corners in the order top-left, top-right, bottom-right, bottom-left of the unturned box."""
        cx, cy = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        c, s = math.cos(self.angle), math.sin(self.angle)
        out = []
        for x, y in ((self.left, self.top), (self.right, self.top),
                     (self.right, self.bottom), (self.left, self.bottom)):
            dx, dy = x - cx, y - cy
            out.append((cx + dx * c - dy * s, cy + dx * s + dy * c))
        return tuple(out)

    def pixel_box(self) -> PixelBox | None:
        return _hull(self.corners())


Geometry = Rectangle | Polygon | Line | PointGeom | Mask | Graph | Cuboid2d | OrientedBox


# ---------------------------------------------------------------- meta


@dataclass(frozen=True, slots=True)
class GraphTemplate:
    """Keypoint template of a graph class: node ids in template order, their labels, edges."""

    node_ids: tuple[str, ...]
    labels: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ObjClass:
    title: str
    shape: str  # rectangle polygon bitmap line point graph alpha_mask cuboid_2d oriented_bbox any
    color: tuple[int, int, int]
    template: GraphTemplate | None = None


@dataclass(frozen=True, slots=True)
class TagMeta:
    name: str
    value_type: str  # none any_string any_number oneof_string
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProjectMeta:
    classes: tuple[ObjClass, ...]
    tag_metas: tuple[TagMeta, ...] = ()

    def class_index(self) -> dict[str, int]:
        return {c.title: i for i, c in enumerate(self.classes)}


# ---------------------------------------------------------------- annotations


TagValue = str | int | float | None


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    value: TagValue = None


@dataclass(frozen=True, slots=True)
class Label:
    class_title: str
    geometry: Geometry
    tags: tuple[Tag, ...] = ()
    instance: str | None = None  # binding key grouping labels of one object


@dataclass(frozen=True, slots=True)
class Annotation:
    width: int
    height: int
    tags: tuple[Tag, ...] = ()
    labels: tuple[Label, ...] = ()

    def tag_names(self) -> set[str]:
        return {t.name for t in self.tags}

    def tag_value(self, name: str) -> TagValue:
        for t in self.tags:
            if t.name == name:
                return t.value
        return None


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What membership decisions read of an item's annotation (``--split tags``, ``--no-empty``,
    ``--classes``): small enough for a reader to keep per annotation file, so that deciding them
    again need not parse every annotation."""

    tag_names: frozenset[str]
    class_titles: frozenset[str]  # the classes it has labels of
    # the image tags in annotation order, values too: the views that name folders after tag values
    # (ImageNet, the identity views) read them here, with the functions they would apply to ``Annotation.tags``
    tags: tuple[Tag, ...]
    # (class title, geometry type name, labels) per class and geometry, sorted: what a view with no
    # place for objects (ImageNet) reports as left out
    label_kinds: tuple[tuple[str, str, int], ...]

    @classmethod
    def of(cls, ann: Annotation) -> ItemFacts:
        kinds = Counter((label.class_title, type(label.geometry).__name__) for label in ann.labels)
        return cls(frozenset(ann.tag_names()), frozenset(label.class_title for label in ann.labels), ann.tags,
                   tuple(sorted((title, kind, n) for (title, kind), n in kinds.items())))


# ---------------------------------------------------------------- items and projects


class Stamp(NamedTuple):
    """One version of one source file, what slyfs compares to know a file unchanged. The inode
    change time moves on every write, so an edit that restores size and mtime (``rsync --inplace -t``)
    is still a new version; it also moves on chmod and on link(2), which the link count tells apart."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    nlink: int

    def same_bytes(self, now: Stamp) -> bool:
        """Whether the file, stamped ``now``, still holds this version's bytes: the same stamp, or only
        a hard link added or removed (``slyfs export`` links images, which must not make them EIO)."""
        return now == self or (now[:4] == self[:4] and now.nlink != self.nlink)


def file_stamp(st: os.stat_result) -> Stamp:
    """The stamp of a file from its stat result. Made by ``tuple.__new__`` directly: a scan makes
    one per file, and the named tuple's own ``__new__`` is a Python-level layer around it."""
    return _new_tuple(Stamp, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink))


_new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class ImageRef:
    """Where an image's bytes are: ``size`` bytes at ``offset`` in the file ``path``
    (a plain image file with offset 0, or a tar). ``stamp`` (a :class:`Stamp`) identifies the
    file as it was indexed; bytes are served only from that very version of that file, so a
    replaced or rewritten source gives EIO, never another file's bytes.
    An empty stamp is not checked."""

    path: str
    offset: int
    size: int
    stamp: Stamp | tuple[()] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in the source, where it is, and what slyfs does about it."""

    path: str
    message: str
    action: str
    item: str | None = None

    def __str__(self) -> str:
        where = f"{self.path} [{self.item}]" if self.item else self.path
        return f"{where}: {self.message} -> {self.action}"


@dataclass(frozen=True, slots=True)
class Item:
    """One image of a dataset. ``fingerprint`` (the annotation file's :class:`Stamp`) changes whenever it does.
    ``sidecars`` are the item's own source files besides the image, as (folder, file) with
    folder ``ann``, ``img_info`` or ``meta``: views that pass the source through serve them."""

    dataset: str  # full dataset name, e.g. "train/sub"
    name: str  # item name = image file name, extension included
    image: ImageRef | None
    ann_path: str | None
    fingerprint: Stamp | tuple[()] = ()  # empty: no annotation file
    sidecars: tuple[tuple[str, ImageRef], ...] = ()

    @property
    def stem(self) -> str:
        dot = self.name.rfind(".")
        return self.name[:dot] if dot > 0 else self.name

    @property
    def ext(self) -> str:
        dot = self.name.rfind(".")
        return self.name[dot:] if dot > 0 else ""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str  # full name, "/"-separated for nested datasets
    items: tuple[Item, ...]

    @property
    def top(self) -> str:
        return self.name.split("/", 1)[0]

    def find(self, name: str) -> int | None:
        """The position of the item called ``name`` (the items are sorted by name)."""
        i = bisect.bisect_left(self.items, name, key=_item_name)
        return i if i < len(self.items) and self.items[i].name == name else None

    def named_from(self, prefix: str) -> Iterator[Item]:
        """The items whose names start with ``prefix``, in order (found by bisection, not a pass)."""
        for item in self.items[bisect.bisect_left(self.items, prefix, key=_item_name):]:
            if not item.name.startswith(prefix):
                return
            yield item


def _item_name(item: Item) -> str:
    return item.name


AnnotationLoader = Callable[[Item], Annotation]
FactsLoader = Callable[[Item], ItemFacts]
Report = Callable[[Problem], None]


def _ignore(problem: Problem) -> None:
    """The default sink of a project built without a problem log (tests, scripts)."""


@dataclass(frozen=True, eq=False)
class Project:
    """A whole source project. ``annotation(item)`` reads and parses on demand (never at
    build time), so views stay pure and mounting stays fast."""

    root: str
    meta: ProjectMeta
    datasets: tuple[Dataset, ...]
    load_annotation: AnnotationLoader
    problems: tuple[Problem, ...] = ()
    report: Report = _ignore  # where views say what they could not write (the mount's problem log)
    meta_file: ImageRef | None = None  # meta.json itself, for views that pass the source through
    meta_fingerprint: Stamp | tuple = ()  # meta.json's Stamp: changes whenever meta.json does
    load_facts: FactsLoader | None = None  # a reader's shortcut to ``facts``; None: from the annotation

    def items(self) -> Iterator[Item]:
        for ds in self.datasets:
            yield from ds.items

    def annotation(self, item: Item) -> Annotation:
        return self.load_annotation(item)

    def facts(self, item: Item) -> ItemFacts:
        """What membership needs of the item's annotation: as ``annotation`` would give it, without a
        parse when the reader has kept it."""
        return self.load_facts(item) if self.load_facts is not None else ItemFacts.of(self.annotation(item))

    def with_items(self, items: Iterable[Item]) -> Project:
        """This project with new versions of some of its items (each found by dataset and name):
        a live edit copies the tuple of the datasets it touches, and nothing else."""
        by_dataset: dict[str, list[Item]] = {}
        for item in items:
            by_dataset.setdefault(item.dataset, []).append(item)
        datasets = list(self.datasets)
        for d, ds in enumerate(datasets):
            news = by_dataset.pop(ds.name, None)
            if news is None:
                continue
            copy = list(ds.items)
            for new in news:
                i = ds.find(new.name)
                if i is None:
                    raise KeyError((new.dataset, new.name))
                copy[i] = new
            datasets[d] = Dataset(ds.name, tuple(copy))
        if by_dataset:
            raise KeyError(next(iter(by_dataset)))
        return replace(self, datasets=tuple(datasets))
