"""Per-item label text files (YOLO rows, KITTI's label_2): the rows of each
label of a kept class, and what a view cannot express counted and reported, never dropped silently."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from collections.abc import Set as AbstractSet

from slyfs.formats.model import (
    Cuboid2d,
    Geometry,
    Graph,
    Item,
    ItemFacts,
    Label,
    Line,
    Mask,
    OrientedBox,
    PointGeom,
    Polygon,
    Problem,
    Project,
    Rectangle,
)
from slyfs.formats.view import ViewOptions, selected_classes


def class_ids_of(project: Project, options: ViewOptions) -> dict[str, int]:
    """Class title → 0-based class id (YOLO, KITTI, ...), in meta.json (or ``--classes``) order."""
    return {c.title: i for i, c in enumerate(selected_classes(project, options))}


def report_left_out(project: Project, item: Item, view: str, counts: Counter[str]) -> None:
    """One problem per image and kind of label a view cannot express (the log dedupes re-renders)."""
    for what, n in sorted(counts.items()):
        project.report(Problem(item.ann_path or f"{item.dataset}/{item.name}",
                               f"{n} {what} label(s) cannot be expressed in {view}", "left out", item.name))


RowsOf = Callable[[int, Geometry, int, int], list[str] | None]
"""``(class_id, geometry, width, height)`` → a view's rows for one label, or None when
the view cannot express that geometry (then counted and reported as left out)."""

GEOMETRY_NAMES = {Rectangle: "rectangle", Polygon: "polygon", Line: "line", PointGeom: "point", Mask: "mask",
                  Graph: "graph", Cuboid2d: "cuboid", OrientedBox: "oriented box"}


def facts_left_out(facts: ItemFacts, kept: AbstractSet[str]) -> Counter[str]:
    """The labels of the ``kept`` classes by geometry name, as the index keeps them
    (``ItemFacts.label_kinds``): for views with no place for any label, without a parse."""
    counts: Counter[str] = Counter()
    for title, kind, n in facts.label_kinds:
        if title in kept:
            counts[_KIND_NAMES[kind]] += n
    return counts


_KIND_NAMES = {geometry.__name__: name for geometry, name in GEOMETRY_NAMES.items()}


LabelRowsOf = Callable[[int, Label, int, int], list[str] | None]
"""``(class_id, label, width, height)`` → rows, for views whose rows also carry the label's tags
(KITTI's truncated/occluded/score); None as for :data:`RowsOf`."""


def label_file(project: Project, item: Item, class_ids: dict[str, int], view_title: str, rows_of: RowsOf) -> bytes:
    """One label file: the rows of every label of a kept class; what ``rows_of`` cannot
    express is counted by geometry and reported once per image and kind."""
    return tagged_label_file(project, item, class_ids, view_title,
                             lambda cid, label, width, height: rows_of(cid, label.geometry, width, height))


def tagged_label_file(project: Project, item: Item, class_ids: dict[str, int], view_title: str,
                      rows_of: LabelRowsOf) -> bytes:
    """:func:`label_file` with rows made from the whole label (geometry and tags)."""
    ann = project.annotation(item)
    rows: list[str] = []
    left_out: Counter[str] = Counter()
    for label in ann.labels:
        cid = class_ids.get(label.class_title)
        if cid is None:
            continue
        label_rows = rows_of(cid, label, ann.width, ann.height)
        if label_rows is None:
            left_out[GEOMETRY_NAMES[type(label.geometry)]] += 1
        else:
            rows.extend(label_rows)
    report_left_out(project, item, view_title, left_out)
    return "".join(rows).encode()
