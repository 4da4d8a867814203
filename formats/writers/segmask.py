"""CVAT's Segmentation Mask 1.1 view: VOC-style class and instance PNGs with a labelmap, as
Datumaro's ``voc_segmentation`` / ``voc_instance_segmentation`` importers read them.

```
labelmap.txt                          "# label:color_rgb:parts:actions", then "name:r,g,b::" a label
ImageSets/Segmentation/<split>.txt    the ids of the split, one a line (every image of it)
ImageSets/Main/<split>.txt            the same ids: CVAT imports this format with Datumaro's ``voc``,
                                      which in Datumaro 1.x finds subsets only there
SegmentationClass/<id>.png            palette PNG: index = class (0 background), palette = labelmap colours
SegmentationObject/<id>.png           palette PNG: index k = instance k, VOC colour map
JPEGImages/<id><ext>                  the source image bytes
```
``<id>`` is the image's output name without extension, unique over the whole project. Class
colours are meta.json's, made distinct and never black (the background's). Area geometries
(rectangle, polygon, bitmap, alpha mask, cuboid hull, oriented box) are painted in label order,
later over earlier; labels bound by one instance key are one instance. Points, lines and graphs
have no pixels: they are reported as left out, as are the labels of classes past the 254th
(the class PNG is 8-bit, 255 is VOC's void) and instances past the 254th.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable

import numpy as np

from slyfs.formats.common.colour_masks import (
    ClassTable,
    instance_numbers,
)
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.masks import (
    MAX_OBJECT_INDEX,
    background_name,
    drawable_annotation,
    labelmap_names,
    labelmap_text,
    mask_memo,
    painted_layers,
    palette_png,
)
from slyfs.formats.common.naming import spaceless_component, split_ext
from slyfs.formats.common.splits import dashed_split_names, item_names
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Item, Label, Project
from slyfs.formats.view import ViewOptions

VIEW = "segmask"
MAX_CLASSES = MAX_OBJECT_INDEX  # class indices share the 8-bit PNG and VOC's void index 255


def instances_of(labels: list[Label]) -> tuple[list[Label], list[int], Counter[str]]:
    """The area labels drawn in the object PNG and their instance numbers; those of instances past
    ``MAX_OBJECT_INDEX`` are left out (counted by kind)."""
    numbers = instance_numbers(labels)
    left_out = Counter(f"{GEOMETRY_NAMES[type(label.geometry)]} (instance past the {MAX_OBJECT_INDEX}th)"
                       for label, k in zip(labels, numbers) if k > MAX_OBJECT_INDEX)
    kept = [(label, k) for label, k in zip(labels, numbers) if k <= MAX_OBJECT_INDEX]
    return [label for label, _ in kept], [k for _, k in kept], left_out


def layout(project: Project, options: ViewOptions) -> Layout:
    table = ClassTable.of(project, options, MAX_CLASSES)
    names = labelmap_names(table.titles)
    palette = table.palette()
    labelmap = labelmap_text(background_name(names), names, table.colours)
    base_key = (options.key(), tuple(zip(table.titles, names, table.colours[1:])))
    memo = mask_memo()

    def draw(item: Item) -> tuple[np.ndarray, np.ndarray]:
        ann = drawable_annotation(project, item)
        area, left_out = table.area_labels(ann.labels)
        labels, numbers, past = instances_of(area)
        report_left_out(project, item, VIEW, left_out + past)
        cls, obj = painted_layers(ann.width, ann.height, [label.geometry for label in labels],
                                  [(table.indices(labels), np.uint8),
                                   (numbers, np.uint8)])
        return cls, obj

    def png_of(item: Item, which: int) -> bytes:
        masks = memo.get(item, lambda: draw(item))
        return palette_png(masks[0], palette) if which == 0 else palette_png(masks[1])

    def mask(kind: str, which: int) -> Callable[[Item, str], Node]:
        return lambda item, name: Generated((kind, item.dataset, item.name, item.fingerprint, item.image, base_key),
                                            functools.partial(png_of, item, which))

    def id_list(task: str) -> Callable[[SplitItems], Node]:
        def node(split: SplitItems) -> Node:
            text = "".join(f"{split_ext(name)[0]}\n" for name in split.names).encode("utf-8")
            return Generated((f"segmask-{task}-list", text), constant(text))
        return node

    return Layout(
        static=(StaticFile("labelmap.txt", lambda _: Generated(("segmask-labelmap", labelmap), constant(labelmap))),),
        per_split=tuple(SplitFile(functools.partial("ImageSets/{}/{}.txt".format, task), id_list(task))
                        for task in ("Segmentation", "Main")),
        per_item=(ItemFile(lambda _: "JPEGImages", lambda item, _: image_node(item)),
                  ItemFile(lambda _: "SegmentationClass", mask("segmask-class", 0), _png_name),
                  ItemFile(lambda _: "SegmentationObject", mask("segmask-object", 1), _png_name)),
        group_by="all", names=functools.partial(item_names, escape=spaceless_component),
        split_labels=dashed_split_names, default_splits=("train",))


def _png_name(name: str) -> str:
    return f"{split_ext(name)[0]}.png"
