"""ICDAR text localization view (``--format icdar-localization``), as Datumaro's
``icdar_text_localization`` reads it:

```
<subset>/gt_<id>.txt       one line per text region: box  x1 y1 x2 y2 "text"   (edge box, x2 = x + w)
                                                     quad x1,y1,x2,y2,x3,y3,x4,y4,"text"
<subset>/images/<id><ext>  the source image bytes
.README.slyfs.txt          only when meta.json declares no transcription tag (hidden: the reader
                           takes every root entry for a subset folder)
```
A region is an object of a kept class with a ``text`` tag (``--opt icdar-localization.text-tag=NAME``):
rectangles, other polygons, cuboids and masks as the edge box of their pixels; oriented boxes and
4-vertex polygons as their corners (pixel centres, clockwise from the top left). Objects without the
tag and points, lines and graphs are reported as left out. Every image has its gt file (the reader
makes items from them), empty when it holds no region.
"""

from __future__ import annotations

import functools
from collections import Counter

from slyfs.formats.common.geometry import coordinate_text
from slyfs.formats.common.labels import report_left_out
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.tagged import HIDDEN_NOTE_FILE, missing_tags_note
from slyfs.formats.common.text_regions import (
    affixed_names,
    quoted_text,
    subset_labels,
    text_region,
    transcribed,
)
from slyfs.formats.contract import Generated, Node, image_node
from slyfs.formats.layout import ItemFile, Layout
from slyfs.formats.model import Annotation, Geometry, Item, Project
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "icdar-localization"
TEXT_TAG = FormatOption(f"{VIEW}.text-tag", "object tag whose value is the region's transcription", default="text")
OPTIONS = (TEXT_TAG,)


def region_lines(ann: Annotation, kept: set[str], tag: str) -> tuple[str, Counter[str]]:
    """The gt file's text and what was left out, by kind."""
    def expressible(geometry: Geometry) -> bool:
        return text_region(geometry, ann.width, ann.height) is not None

    labels, left_out = transcribed(ann.labels, kept, tag, expressible)
    lines = []
    for label, text in labels:
        region = text_region(label.geometry, ann.width, ann.height)
        assert region is not None  # expressible said so
        quoted = f'"{quoted_text(text)}"'
        if region.quad is not None:
            lines.append(",".join(coordinate_text(v) for point in region.quad for v in point) + "," + quoted)
        else:
            assert region.box is not None
            lines.append(" ".join(map(coordinate_text, region.box)) + " " + quoted)
    return "".join(f"{line}\n" for line in lines), left_out


def layout(project: Project, options: ViewOptions) -> Layout:
    tag = options.param(TEXT_TAG)
    classes = selected_classes(project, options)
    kept = {c.title for c in classes}
    base_key = (VIEW, options.key(), tuple(sorted(kept)))

    def gt_text(item: Item) -> bytes:
        text, left_out = region_lines(project.annotation(item), kept, tag)
        report_left_out(project, item, VIEW, left_out)
        return text.encode("utf-8")

    def gt(item: Item, _name: str) -> Node:
        return Generated((*base_key, "gt", item.dataset, item.name, item.fingerprint), functools.partial(gt_text, item))

    return Layout(
        static=missing_tags_note(project, VIEW, [(tag, "transcriptions", TEXT_TAG.key)], HIDDEN_NOTE_FILE),
        per_item=(ItemFile(lambda label: f"{label}/images", lambda item, _name: image_node(item)),
                  ItemFile(lambda label: label, gt, lambda name: f"gt_{split_ext(name)[0]}.txt")),
        names=affixed_names(len("gt_")),
        split_labels=subset_labels)
