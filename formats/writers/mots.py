"""MOTS PNG 1.0 view (``--format mots``), one sequence per split, as Datumaro's ``mots`` reads it:

```
<split>/images/<id><ext>          the source image bytes, names unchanged
<split>/instances/<id>.png        16-bit grayscale: 1000 * (1 + label index) + track id; 0 background
<split>/instances/labels.txt      the kept classes, one a line (always written: the reader's
                                  defaults would mislabel every class)
README.slyfs.txt                  only when meta.json declares no track tag
```
An object is painted when its class is kept, its geometry has area (painted as the other mask
views paint it, later objects on top) and it has a track id: the object tag ``track_id`` (``--opt
mots.track-tag=NAME``), a whole number 1..999. Objects without one are left out, as CVAT leaves out
shapes that belong to no track; they, objects without area, ids over 999 and classes past the 64th
(whose pixels would not fit in 16 bits) are reported. A split named ``instances`` is written
``instances~`` (a root folder of that name would make the root itself the one sequence).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.masks import drawable_annotation, gray_png, painted_indices
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.raster import has_area
from slyfs.formats.common.tagged import missing_tags_note
from slyfs.formats.common.tags import find_tag
from slyfs.formats.common.tracks import (
    MAX_MOTS_LABELS,
    line_names,
    mots_pixel,
    track_id,
)
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile
from slyfs.formats.model import Annotation, Item, Label, Project
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "mots"
TRACK_TAG = FormatOption("mots.track-tag", "object tag whose value (a whole number 1..999) is the track id",
                         default="track_id")
OPTIONS = (TRACK_TAG,)
MASKS_DIR = "instances"


def split_labels(splits: Sequence[str]) -> dict[str, str]:
    """Split folder names: the split names, ``instances`` (and what clashes then) with ``~`` after it."""
    out: dict[str, str] = {}
    used = set(splits)
    for s in splits:
        name = s
        if name == MASKS_DIR:
            while name in used:
                name += "~"
            used.add(name)
        out[s] = name
    return out


def painted(ann: Annotation, label_index: dict[str, int], tag: str) -> tuple[list[tuple[Label, int]], Counter[str]]:
    """The objects painted, each with its pixel value, and those left out, by kind."""
    out = []
    left_out: Counter[str] = Counter()
    for label in ann.labels:
        index = label_index.get(label.class_title)
        if index is None:
            continue
        kind = GEOMETRY_NAMES[type(label.geometry)]
        track = track_id(label, tag)
        if not has_area(label.geometry):
            left_out[kind] += 1
        elif track is None:
            left_out[f"untracked {kind}" if find_tag(label.tags, tag) is None else f"bad-track-id {kind}"] += 1
        elif index >= MAX_MOTS_LABELS:
            left_out[f"class-past-{MAX_MOTS_LABELS} {kind}"] += 1
        else:
            value = mots_pixel(index, track)
            if value is None:
                left_out[f"track-id-over-999 {kind}"] += 1
            else:
                out.append((label, value))
    return out, left_out


def layout(project: Project, options: ViewOptions) -> Layout:
    tag = options.param(TRACK_TAG)
    classes = selected_classes(project, options)
    label_index = {c.title: k for k, c in enumerate(classes)}
    labels = "".join(f"{name}\n" for name in line_names([c.title for c in classes])).encode("utf-8")
    base_key = (VIEW, options.key(), tuple(label_index))

    def render(item: Item) -> bytes:
        ann = drawable_annotation(project, item)
        objects, left_out = painted(ann, label_index, tag)
        report_left_out(project, item, VIEW, left_out)
        return gray_png(painted_indices(ann.width, ann.height, objects))

    def png(item: Item, _name: str) -> Node:
        return Generated((*base_key, "png", item.dataset, item.name, item.fingerprint), functools.partial(render, item))

    return Layout(
        static=missing_tags_note(project, VIEW, [(tag, "track ids", TRACK_TAG.key)]),
        per_split=(SplitFile(lambda label: f"{label}/{MASKS_DIR}/labels.txt",
                             lambda _split: Generated((VIEW, "labels", labels), constant(labels))),),
        per_item=(ItemFile(lambda label: f"{label}/images", lambda item, _name: image_node(item)),
                  ItemFile(lambda label: f"{label}/{MASKS_DIR}", png, lambda name: f"{split_ext(name)[0]}.png")),
        split_labels=split_labels)
