"""MOT 1.1 view (``--format mot``), one sequence per split, as Datumaro's ``mot_seq`` reads it:

```
<split>/img1/<frame:06d><ext>   the split's images in (dataset, name) order, frames from 1; source bytes
<split>/gt/gt.txt               frame,track_id,x,y,w,h,not_ignored,class_id,visibility  (no header)
<split>/gt/labels.txt           the kept classes, one a line; class_id = 1 + line index
README.slyfs.txt                only when meta.json declares no track tag
```
With the default ``--split dataset`` a sequence is a top-level dataset (nested ones follow it, by
name); import each ``<split>/`` on its own (the reader puts every sequence it finds in one subset).
Every object of a kept class with an extent in the image is a row: the edge box of its pixels cut
to the image. ``track_id``: the object tag ``track_id`` (``--opt mot.track-tag=NAME``), a positive whole
number, else ``-1`` (no track; none is made up). ``not_ignored``: 0 when the object has the flag tag
``ignored`` (``mot.ignored-tag``). ``visibility``: the tag ``visibility`` (``mot.visibility-tag``), else
``1 - occluded`` from the ``occluded`` flag tag (``mot.occluded-tag``), else 1. Points and objects
wholly outside the image are reported as left out.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

from slyfs.formats.common.geometry import clipped_box, coordinate_text
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import escape_component
from slyfs.formats.common.tagged import missing_tags_note
from slyfs.formats.common.tags import find_tag, flag_tag, number_value
from slyfs.formats.common.tracks import line_names, track_id
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems
from slyfs.formats.model import Annotation, Item, Label, Project
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "mot"
TRACK_TAG = FormatOption("mot.track-tag", "object tag whose value (a positive whole number) is the track id",
                         default="track_id")
VISIBILITY_TAG = FormatOption("mot.visibility-tag", "object tag whose value (a number) is the visibility",
                              default="visibility")
IGNORED_TAG = FormatOption("mot.ignored-tag", "object flag tag that marks an object as ignored (not_ignored 0)",
                           default="ignored")
OCCLUDED_TAG = FormatOption("mot.occluded-tag", "object flag tag that gives visibility 0 (without a visibility tag)",
                            default="occluded")
OPTIONS = (TRACK_TAG, VISIBILITY_TAG, IGNORED_TAG, OCCLUDED_TAG)
Tags = tuple[str, str, str, str]  # the track, visibility, ignored and occluded tags


def frame_names(items: Sequence[Item]) -> list[str]:
    """``000001.jpg``, ``000002.png``…: frame numbers in the items' order, each image's own extension."""
    return [f"{k:06d}{escape_component(item.ext) if item.ext else ''}" for k, item in enumerate(items, 1)]


def visibility(label: Label, tag: str, occluded_tag: str) -> float:
    found = find_tag(label.tags, tag)
    value = number_value(found.value) if found is not None else None
    if value is not None:
        return value
    return 0.0 if flag_tag(label.tags, occluded_tag) else 1.0


def gt_rows(frame: int, ann: Annotation, class_ids: dict[str, int], tags: Tags) -> tuple[list[str], Counter[str]]:
    """One image's gt.txt rows and what was left out, by kind."""
    track_tag, visibility_tag, ignored_tag, occluded_tag = tags
    rows = []
    left_out: Counter[str] = Counter()
    for label in ann.labels:
        cid = class_ids.get(label.class_title)
        if cid is None:
            continue
        box = clipped_box(label.geometry, ann.width, ann.height)
        if box is None:
            kind = GEOMETRY_NAMES[type(label.geometry)]
            left_out[kind if label.geometry.pixel_box() is None else f"outside-image {kind}"] += 1
            continue
        x0, y0, x1, y1 = box
        fields = [frame, track_id(label, track_tag) or -1, *map(coordinate_text, (x0, y0, x1 - x0, y1 - y0)),
                  0 if flag_tag(label.tags, ignored_tag) else 1, cid,
                  coordinate_text(visibility(label, visibility_tag, occluded_tag))]
        rows.append(",".join(map(str, fields)) + "\n")
    return rows, left_out


def layout(project: Project, options: ViewOptions) -> Layout:
    tags = (options.param(TRACK_TAG), options.param(VISIBILITY_TAG), options.param(IGNORED_TAG),
            options.param(OCCLUDED_TAG))
    classes = selected_classes(project, options)
    class_ids = {c.title: k for k, c in enumerate(classes, 1)}
    labels = "".join(f"{name}\n" for name in line_names([c.title for c in classes])).encode("utf-8")
    opt_key = (options.key(), tuple(class_ids))

    def gt_text(split: SplitItems) -> bytes:
        out = []
        for frame, item in enumerate(split.items, 1):
            rows, left_out = gt_rows(frame, project.annotation(item), class_ids, tags)
            report_left_out(project, item, VIEW, left_out)
            out += rows
        return "".join(out).encode("utf-8")

    def gt(split: SplitItems) -> Node:
        return Generated((VIEW, "gt", split.split, split.key, opt_key), functools.partial(gt_text, split))

    return Layout(
        static=missing_tags_note(project, VIEW, [(tags[0], "track ids", TRACK_TAG.key)]),
        per_split=(SplitFile(lambda label: f"{label}/gt/gt.txt", gt),
                   SplitFile(lambda label: f"{label}/gt/labels.txt",
                             lambda _split: Generated((VIEW, "labels", labels), constant(labels)))),
        per_item=(ItemFile(lambda label: f"{label}/img1", lambda item, _name: image_node(item)),),
        names=frame_names)
