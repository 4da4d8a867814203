"""VGGFace2 view, as Datumaro's ``vgg_face2`` importer reads it.

```
labels.txt                                  one identity a line
<subset>/<identity>/<name>                  source bytes; images without an identity in no_label/
bb_landmark/loose_bb_<subset>.csv           NAME_ID,X,Y,W,H of each image with one face box
bb_landmark/loose_landmark_<subset>.csv     NAME_ID,P1X,P1Y,…,P5Y: a row per image (empty fields
                                            when it has no landmarks; the reader makes items from it)
```
``NAME_ID`` is ``<identity>/<stem>``. The identity is an image tag's value (``vggface2.identity-tag``);
the box is the one rectangle of the face class (``vggface2.face-class``, XYWH cut to the image);
the landmarks the one graph with a five-node template, in template order at pixel centres.
VGGFace2 holds at most one box and one landmark set per image: an image with several has those
left out, counted and reported, as is every other label of a kept class.
"""

from __future__ import annotations

import csv
import functools
import io
from collections import Counter
from collections.abc import Iterable

from slyfs.formats.common.geometry import clipped_box
from slyfs.formats.common.identities import (
    Notes,
    folders_by_value,
    identity_names,
    image_name,
    image_tag_text,
    landmark_classes,
    landmark_points,
    number,
    scan_tags,
)
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import tag_option
from slyfs.formats.contract import Generated, Node, constant
from slyfs.formats.layout import Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Annotation, Graph, Label, Project, Rectangle
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "VGGFace2"
NO_LABEL = "no_label"
BOX_HEADER = ("NAME_ID", "X", "Y", "W", "H")
LANDMARK_HEADER = ("NAME_ID", *(f"P{k}{axis}" for k in range(1, 6) for axis in "XY"))

IDENTITY = tag_option("vggface2", "identity", "identity", "an image's identity (its folder and label)")
FACE_CLASS = FormatOption("vggface2.face-class", "the class whose rectangle is an image's face box",
                          default="face")
OPTIONS = (IDENTITY, FACE_CLASS)


def csv_text(rows: Iterable[Iterable[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def face_rows(ann: Annotation, labels: Iterable[Label], face_class: str,
              templates: dict[str, tuple[str, ...]]) -> tuple[list[str] | None, list[str] | None, Counter[str]]:
    """The box fields and landmark fields of one image (None: none), and the labels left out by kind."""
    boxes: list[tuple[Label, list[str]]] = []
    marks: list[tuple[Label, list[str]]] = []
    left_out: Counter[str] = Counter()
    for label in labels:
        geometry = label.geometry
        kind = GEOMETRY_NAMES[type(geometry)]
        if label.class_title == face_class and isinstance(geometry, Rectangle):
            box = clipped_box(geometry, ann.width, ann.height)
            if box is not None:
                x0, y0, x1, y1 = box
                boxes.append((label, [number(x0), number(y0), number(x1 - x0), number(y1 - y0)]))
                continue
        elif label.class_title in templates and isinstance(geometry, Graph):
            points = landmark_points(geometry, templates[label.class_title])
            if points is not None:
                marks.append((label, [number(v) for point in points for v in point]))
                continue
        left_out[kind] += 1
    if len(boxes) > 1:
        left_out["rectangle"] += len(boxes)
    if len(marks) > 1:
        left_out["graph"] += len(marks)
    return (boxes[0][1] if len(boxes) == 1 else None), (marks[0][1] if len(marks) == 1 else None), left_out


def layout(project: Project, options: ViewOptions) -> Layout:
    identity_tag = options.param(IDENTITY)
    face_class = options.param(FACE_CLASS)
    classes = selected_classes(project, options)
    kept = {c.title for c in classes}
    marks = landmark_classes(classes)
    templates = {c.title: c.template.node_ids for c in classes if c.title in marks and c.template is not None}
    identities = scan_tags(project, ("image-tag", identity_tag), lambda ann: image_tag_text(ann, identity_tag))
    names = identity_names([v for v in identities.values() if v is not None], reserved=(NO_LABEL,))
    folders: dict[str | None, str] = {None: NO_LABEL}
    folders.update(names)
    labels_text = "".join(f"{name}\n" for name in sorted(names.values())).encode()
    key = (options.key(), tuple(sorted(names.items())))

    notes = []
    if not names:
        notes.append(f"no image has an {identity_tag!r} tag with a value: every image is in no_label/ with no "
                     "identity (--opt vggface2.identity-tag=NAME names the image tag that holds it)")
    if face_class not in kept:
        notes.append(f"no kept class is called {face_class!r}: no face boxes "
                     "(--opt vggface2.face-class=NAME names the class of the face rectangles)")
    if not marks:
        notes.append("no kept graph class has a five-node template: no landmarks")
    readme = Notes(VIEW, tuple(notes))
    readme.report(project)

    def rows(split: SplitItems) -> tuple[list[list[str]], list[list[str]]]:
        box_rows, mark_rows = [list(BOX_HEADER)], [list(LANDMARK_HEADER)]
        for item, name in zip(split.items, split.names):
            ann = project.annotation(item)
            box, points, left_out = face_rows(ann, [lb for lb in ann.labels if lb.class_title in kept],
                                              face_class, templates)
            report_left_out(project, item, VIEW, left_out)
            name_id = f"{folders[identities.get((item.dataset, item.name))]}/{split_ext(name)[0]}"
            if box is not None:
                box_rows.append([name_id, *box])
            mark_rows.append([name_id, *(points or [""] * (len(LANDMARK_HEADER) - 1))])
        return box_rows, mark_rows

    def table(which: int) -> SplitFile:
        prefix = ("loose_bb_", "loose_landmark_")[which]

        def node(split: SplitItems) -> Node:
            return Generated(("vggface2-csv", which, split.split, split.key, key),
                             lambda: csv_text(rows(split)[which]))
        return SplitFile(lambda subset: f"bb_landmark/{prefix}{subset}.csv", node)

    labels_node = Generated(("vggface2-labels", labels_text), constant(labels_text))
    return Layout(
        static=(StaticFile("labels.txt", lambda splits: labels_node), *readme.static()),
        per_split=(table(0), table(1)),
        per_item=folders_by_value(identities, folders, lambda subset, sub: f"{subset}/{sub}"),
        group_by="split", names=functools.partial(item_names, escape=image_name), split_labels=plain_subset_names,
        epoch=key[1])
