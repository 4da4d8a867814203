"""Cityscapes 1.0 view: the fine ground truth PNGs and renamed images, as Datumaro's
``cityscapes`` importer and cityscapesScripts-style loaders read them.

```
label_colors.txt                                "0 0 0 background" first, then "r g b name" a class
gtFine/<split>/<city>/<stem>_gtFine_color.png        RGB: the colour of the class on top, background black
gtFine/<split>/<city>/<stem>_gtFine_labelIds.png     8-bit: the index of the class on top (0 background)
gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png  16-bit: class*1000+k for instance k (1.. per image and
                                                     class), the class index alone for crowd objects
leftImg8bit/<split>/<city>/<stem>_leftImg8bit<ext>   the source image bytes under the Cityscapes name
```
``<city>`` is the split's name again: Cityscapes loaders (cityscapesScripts, torchvision) walk
``<split>/<city>/``, and one city per split keeps the items of a split in one folder, named together.
Class index = line order of label_colors.txt; colours are meta.json's, made distinct and never
black. Class names become one whitespace-free token (spaces → ``_``). ``cityscapes.instance-ids=classes``
writes the class index for every object, which is what Datumaro 1.13.12 writes and the only values
it reads back (it drops pixels ≥ 1000). Area geometries are painted in label order, later over
earlier; labels bound by one instance key are one instance. Points, lines and graphs are reported
as left out, as are labels of classes past the 255th; an instance whose id would pass 65535 (or k
past 999) is written as its class index and reported.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from slyfs.formats.common.colour_masks import (
    ClassTable,
    label_colors_text,
    token_label_names,
)
from slyfs.formats.common.labels import report_left_out
from slyfs.formats.common.masks import (
    background_name,
    drawable_annotation,
    gray_png,
    mask_memo,
    painted_layers,
    rgb_png,
)
from slyfs.formats.common.naming import MAX_EXT_BYTES, MAX_NAME_BYTES, escape_component, fit_name, split_ext
from slyfs.formats.common.splits import dashed_split_names, item_names
from slyfs.formats.common.tags import flag_tag
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, StaticFile
from slyfs.formats.model import Item, Label, Project
from slyfs.formats.view import FormatOption, ViewOptions

VIEW = "cityscapes"
MAX_CLASSES = 255  # labelIds is 8-bit
INSTANCE_STEP = 1000  # cityscapesScripts: id = class * 1000 + k
MAX_ID = 65535  # instanceIds is a 16-bit PNG
IMAGE_SUFFIX = "_leftImg8bit"
MASK_SUFFIXES = ("_gtFine_color.png", "_gtFine_labelIds.png", "_gtFine_instanceIds.png")
MAX_STEM = MAX_NAME_BYTES - max(len(s) for s in MASK_SUFFIXES) - MAX_EXT_BYTES  # room for every file name

CROWD_TAG = FormatOption("cityscapes.crowd-tag", "object tag whose objects are crowds (instanceIds: class index)",
                         default="is_crowd")
INSTANCE_IDS = FormatOption("cityscapes.instance-ids",
                            "instances: class*1000+k as cityscapesScripts reads; classes: the class index only, "
                            "all Datumaro 1.13.12 reads back", default="instances", choices=("instances", "classes"))
OPTIONS = (CROWD_TAG, INSTANCE_IDS)


def cityscapes_component(name: str) -> str:
    """An item name as one path component whose stem the reader keeps whole: it takes an id apart
    at ``_leftImg8bit`` and ``_gtFine_`` wherever they stand, so there they get ``-``."""
    return escape_component(name).replace(IMAGE_SUFFIX, "-leftImg8bit").replace("_gtFine_", "-gtFine_")


def cityscapes_names(items: Sequence[Item]) -> list[str]:
    """Unique output names with stems short enough for the longest suffix (``_gtFine_instanceIds.png``)."""
    return [fit_name(name, MAX_STEM) for name in item_names(items, escape=cityscapes_component)]


def instance_ids(labels: Sequence[Label], class_index: dict[str, int], crowd: Sequence[bool]
                 ) -> tuple[list[int], int]:
    """The instanceIds value of each label: ``class*1000+k`` (k = 1.. per class in order of first
    label; labels bound by one instance key and class share one), the class index for crowds, and
    also for instances whose id cannot be held (k past 999 or an id past 65535), counted."""
    numbers: dict[object, int] = {}
    per_class: Counter[str] = Counter()
    out = []
    unheld = 0
    for i, (label, is_crowd) in enumerate(zip(labels, crowd)):
        index = class_index[label.class_title]
        if is_crowd:
            out.append(index)
            continue
        key = (label.instance, label.class_title) if label.instance is not None else i
        if key not in numbers:
            per_class[label.class_title] += 1
            numbers[key] = per_class[label.class_title]
        k = numbers[key]
        value = index * INSTANCE_STEP + k
        if k >= INSTANCE_STEP or value > MAX_ID:
            unheld += 1
            value = index
        out.append(value)
    return out, unheld


def layout(project: Project, options: ViewOptions) -> Layout:
    crowd_tag = options.param(CROWD_TAG)
    as_instances = options.param(INSTANCE_IDS) == "instances"
    table = ClassTable.of(project, options, MAX_CLASSES)
    names = token_label_names(table.titles)
    label_colors = label_colors_text([background_name(names), *names], table.colours)
    base_key = (options.key(), label_colors)
    memo = mask_memo()

    def draw(item: Item) -> tuple[np.ndarray, np.ndarray]:
        ann = drawable_annotation(project, item)
        area, left_out = table.area_labels(ann.labels)
        crowd = [not as_instances or flag_tag(label.tags, crowd_tag) for label in area]
        ids, unheld = instance_ids(area, table.class_index, crowd)
        if unheld:
            left_out["instance (id past 65535 or k past 999, written as its class)"] += unheld
        report_left_out(project, item, VIEW, left_out)
        cls, inst = painted_layers(ann.width, ann.height, [label.geometry for label in area],
                                   [(table.indices(area), np.uint8),
                                    (ids, np.uint16)])
        return cls, inst

    def masks_of(item: Item) -> tuple[np.ndarray, ...]:
        return memo.get(item, lambda: draw(item))

    renders: dict[str, Callable[[Item], bytes]] = {
        "color": lambda item: rgb_png(masks_of(item)[0], table.colours),
        "labelIds": lambda item: gray_png(masks_of(item)[0]),
        "instanceIds": lambda item: gray_png(masks_of(item)[1]),
    }

    def mask_file(kind: str) -> ItemFile:
        def node(item: Item, name: str) -> Node:
            key = (f"cityscapes-{kind}", item.dataset, item.name, item.fingerprint, item.image, base_key)
            return Generated(key, functools.partial(renders[kind], item))
        return ItemFile(lambda label: f"gtFine/{label}/{label}", node,
                        lambda name: f"{split_ext(name)[0]}_gtFine_{kind}.png")

    return Layout(
        static=(StaticFile("label_colors.txt",
                           lambda _: Generated(("cityscapes-labels", label_colors), constant(label_colors))),),
        per_item=(ItemFile(lambda label: f"leftImg8bit/{label}/{label}", lambda item, _: image_node(item), _image_name),
                  *(mask_file(kind) for kind in renders)),
        group_by="split", names=cityscapes_names, split_labels=dashed_split_names)


def _image_name(name: str) -> str:
    stem, ext = split_ext(name)
    return f"{stem}{IMAGE_SUFFIX}{ext}"
