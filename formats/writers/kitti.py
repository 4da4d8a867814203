"""KITTI view (object detection ``label_2`` + instance/semantic segmentation), as Datumaro's
``kitti_detection`` and ``kitti_segmentation`` importers read it.

```
label_colors.txt                 "r g b name": background (0 0 0) first, then the classes in meta order
dataset_meta.json                the same labels and colours: without it the detection reader numbers
                                 the labels of each subset in order of appearance, and subsets clash
<subset>/image_2/<id><ext>       the source image bytes
<subset>/label_2/<id>.txt        one 16-field row per object with an extent (empty file: none)
<subset>/instance/<id>.png       16-bit grey: (class index << 8) + instance (1..255; 0 = a crowd object)
<subset>/semantic/<id>.png       16-bit grey: class index (0 background)
<subset>/semantic_rgb/<id>.png   RGB: the class colours of label_colors.txt
```
A ``label_2`` row is ``type truncated occluded alpha x1 y1 x2 y2 h w l X Y Z rot_y score``: the
class name (whitespace → ``_``), ``truncated`` (0..1) and ``occluded`` (0..3) from the object
tags of those names, the 3-D fields -1, the box of the pixels the object covers cut to the image
(continuous edges, x2 = right + 1), ``score`` from the ``score`` tag (else 1.0). Area objects
(rectangle, polygon, bitmap, alpha mask, cuboid hull, oriented box) are painted in the masks,
later over earlier; an object tagged ``is_crowd`` keeps instance 0, which the reader takes for a
crowd. Points have no box; lines and graphs have a box but no pixels.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from slyfs.formats.common.colour_masks import BLACK, distinct_colours, label_colors_text
from slyfs.formats.common.geometry import Box, clipped_box
from slyfs.formats.common.labels import report_left_out, tagged_label_file
from slyfs.formats.common.masks import (
    background_name,
    drawable_annotation,
    gray_png,
    mask_memo,
    painted_indices,
    rgb_png,
)
from slyfs.formats.common.naming import backslashless_component, split_ext, token_texts
from slyfs.formats.common.raster import has_area
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import find_tag, flag_tag, tag_names, tag_number, tag_option
from slyfs.formats.common.text import json_bytes
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, StaticFile
from slyfs.formats.model import Item, Label, Project
from slyfs.formats.view import ViewOptions, selected_classes

VIEW = "kitti"
BOXES_TITLE = "KITTI label_2"
MASKS_TITLE = "KITTI instance masks"
FOLDERS = ("image_2", "label_2", "instance", "semantic", "semantic_rgb")
MAX_INDEX = 255  # class index and instance id share a 16-bit value: (class << 8) + instance

TRUNCATED = tag_option(VIEW, "truncated")
OCCLUDED = tag_option(VIEW, "occluded")
SCORE = tag_option(VIEW, "score")
IS_CROWD = tag_option(VIEW, "crowd", "is_crowd")
OPTIONS = (TRUNCATED, OCCLUDED, SCORE, IS_CROWD)


# ---------------------------------------------------------------- pure helpers


def kitti_row(name: str, box: Box, truncated: float, occluded: int, score: float) -> str:
    """One ``label_2`` line; numbers as Python prints floats (``10.0``), ``occluded`` an integer
    (the reader parses it with ``int``), every 3-D field -1."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return f"{name} {float(truncated)} {occluded} -1 {x0} {y0} {x1} {y1} -1 -1 -1 -1 -1 -1 -1 {float(score)}\n"


def truncated_of(label: Label, tag: str) -> float:
    """The ``truncated`` fraction: the tag's number cut to 0..1 (text other than a number: 1), 0 without the tag."""
    found = find_tag(label.tags, tag)
    if found is None:
        return 0.0
    number = tag_number(found.value)
    return 1.0 if number is None else min(1.0, max(0.0, number))


def occluded_of(label: Label, tag: str) -> int:
    """KITTI's occlusion level 0..3 from the tag (a flag: 1; a number: rounded, cut), 0 without it."""
    found = find_tag(label.tags, tag)
    if found is None:
        return 0
    number = tag_number(found.value)
    return 1 if number is None else int(min(3.0, max(0.0, round(number))))


def score_of(label: Label, tag: str) -> float:
    """The ``score`` tag's number, 1.0 without one."""
    found = find_tag(label.tags, tag)
    number = tag_number(found.value) if found is not None and found.value is not None else None
    return 1.0 if number is None else number


def instance_values(labels: Sequence[Label], class_index: dict[str, int],
                    crowd_tag: str) -> tuple[list[tuple[Label, int]], Counter[str]]:
    """The value each area label paints in ``instance/``: ``(class << 8) + k``, k = 1, 2… per
    image in label order, ``class << 8`` for one tagged as a crowd; and what cannot be encoded
    (a class index or an instance past 255), counted by kind."""
    out: list[tuple[Label, int]] = []
    left_out: Counter[str] = Counter()
    k = 0
    for label in labels:
        cls = class_index.get(label.class_title)
        if cls is None or not has_area(label.geometry):
            continue
        if cls > MAX_INDEX:
            left_out[f"mask of a class past the {MAX_INDEX}th"] += 1
            continue
        if flag_tag(label.tags, crowd_tag):
            out.append((label, cls << 8))
            continue
        k += 1
        if k > MAX_INDEX:
            left_out[f"instance past the {MAX_INDEX}th"] += 1
            continue
        out.append((label, (cls << 8) + k))
    return out, left_out


def dataset_meta(names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> bytes:
    """Datumaro's ``dataset_meta.json`` saying what ``label_colors.txt`` says (it takes precedence)."""
    return json_bytes({"labels": list(names), "label_map": {str(i): n for i, n in enumerate(names)},
                       "segmentation_colors": [list(c) for c in colours], "background_label": "0"})


# ---------------------------------------------------------------- the view


def layout(project: Project, options: ViewOptions) -> Layout:
    tags = tag_names(options, OPTIONS)
    classes = selected_classes(project, options)
    titles = [c.title for c in classes]
    names = token_texts(titles)
    label_names = [background_name(names), *names]
    colours = [BLACK, *distinct_colours([c.color for c in classes])]
    class_index = {t: k for k, t in enumerate(titles, 1)}
    label_colors = label_colors_text(label_names, colours)
    meta = dataset_meta(label_names, colours)
    base_key = (tuple(zip(titles, names, colours[1:])), options.key())

    def row(cid: int, label: Label, width: int, height: int) -> list[str] | None:
        box = clipped_box(label.geometry, width, height)
        if box is None:
            return None
        return [kitti_row(label_names[cid], box, truncated_of(label, tags["truncated"]),
                          occluded_of(label, tags["occluded"]), score_of(label, tags["score"]))]

    def label_text(item: Item) -> bytes:
        return tagged_label_file(project, item, class_index, BOXES_TITLE, row)

    memo = mask_memo()

    def paint(item: Item) -> np.ndarray:
        ann = drawable_annotation(project, item)
        shapes, left_out = instance_values(ann.labels, class_index, tags["is_crowd"])
        report_left_out(project, item, MASKS_TITLE, left_out)
        return painted_indices(ann.width, ann.height, shapes, np.uint16)

    def instances(item: Item) -> np.ndarray:
        return memo.get(item, lambda: (paint(item),))[0]

    def png(kind: str, item: Item) -> bytes:
        inst = instances(item)
        if kind == "instance":
            return gray_png(inst)
        semantic = inst >> 8
        return gray_png(semantic) if kind == "semantic" else rgb_png(semantic, colours)

    def key(kind: str, item: Item) -> tuple:
        return (f"kitti-{kind}", base_key, item.dataset, item.name, item.fingerprint, item.image)

    def label_node(item: Item, name: str) -> Node:
        return Generated(key("label", item), functools.partial(label_text, item))

    def mask_file(kind: str) -> ItemFile:
        def node(item: Item, name: str) -> Node:
            return Generated(key(kind, item), functools.partial(png, kind, item))
        return ItemFile(_in(kind), node, _png_name)

    return Layout(
        static=(StaticFile("label_colors.txt",
                           lambda splits: Generated(("kitti-label-colors", label_colors), constant(label_colors))),
                StaticFile("dataset_meta.json", lambda splits: Generated(("kitti-meta", meta), constant(meta)))),
        per_item=(ItemFile(_in("image_2"), lambda item, name: image_node(item)),
                  ItemFile(_in("label_2"), label_node, lambda name: f"{split_ext(name)[0]}.txt"),
                  *(mask_file(kind) for kind in FOLDERS[2:])),
        names=functools.partial(item_names, escape=backslashless_component),
        split_labels=lambda splits: plain_subset_names(splits, reserved=FOLDERS))


def _in(folder: str) -> Callable[[str], str]:
    return lambda subset: f"{subset}/{folder}"


def _png_name(name: str) -> str:
    return f"{split_ext(name)[0]}.png"
