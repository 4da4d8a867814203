"""CamVid 1.0 view: colour-coded class masks beside the images, as Datumaro's ``camvid``
importer reads them.

```
label_colors.txt         "r g b name" a line: "0 0 0 background" first, then the classes
<split>.txt              "/<split>/<image> <split>annot/<stem>.png" a line, every image of the split
<split>/<image>          the source image bytes
<split>annot/<stem>.png  palette PNG: index = class on top (0 background), palette = the label colours
```
A palette PNG reads as the class colours to colour-decoding readers (OpenCV, ``convert("RGB")``) and
as class indices to those that take the index (PIL arrays, Datumaro's PIL backend, SegNet-style
loaders). Labels of classes past the 255th are reported as left out.
Class colours are meta.json's, made distinct and never black. Class names become one
whitespace-free token (the reader splits lines at whitespace: spaces become ``_``). Image names
have whitespace and ``"`` as ``%XX``, so that list lines need no quoting. Area geometries are
painted in label order, later over earlier; points, lines and graphs have no pixels and are
reported as left out. CamVid has no instances and no attributes: tags are not written.
"""

from __future__ import annotations

import functools

import numpy as np

from slyfs.formats.common.colour_masks import (
    ClassTable,
    label_colors_text,
    token_label_names,
)
from slyfs.formats.common.labels import report_left_out
from slyfs.formats.common.masks import background_name, drawable_annotation, painted_layers, palette_png
from slyfs.formats.common.naming import list_component, split_ext
from slyfs.formats.common.splits import dashed_split_names, item_names
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Item, Project
from slyfs.formats.view import ViewOptions

VIEW = "camvid"
MAX_CLASSES = 255  # palette PNG (and Datumaro reads CamVid masks as 8-bit)


def layout(project: Project, options: ViewOptions) -> Layout:
    table = ClassTable.of(project, options, MAX_CLASSES)
    names = token_label_names(table.titles)
    label_colors = label_colors_text([background_name(names), *names], table.colours)
    palette = table.palette()
    base_key = (options.key(), label_colors)

    def render_mask(item: Item) -> bytes:
        ann = drawable_annotation(project, item)
        area, left_out = table.area_labels(ann.labels)
        report_left_out(project, item, VIEW, left_out)
        (indices,) = painted_layers(ann.width, ann.height, [label.geometry for label in area],
                                    [(table.indices(area), np.uint8)])
        return palette_png(indices, palette)

    def mask(item: Item, name: str) -> Node:
        return Generated(("camvid-mask", item.dataset, item.name, item.fingerprint, item.image, base_key),
                         functools.partial(render_mask, item))

    def pair_list(split: SplitItems) -> Node:
        label = split.label
        text = "".join(f"/{label}/{name} {label}annot/{split_ext(name)[0]}.png\n"
                       for name in split.names).encode("utf-8")
        return Generated(("camvid-list", text), constant(text))

    return Layout(
        static=(StaticFile("label_colors.txt",
                           lambda _: Generated(("camvid-labels", label_colors), constant(label_colors))),),
        per_split=(SplitFile(lambda label: f"{label}.txt", pair_list),),
        per_item=(ItemFile(lambda label: label, lambda item, _: image_node(item)),
                  ItemFile(lambda label: f"{label}annot", mask, _png_name)),
        group_by="split", names=functools.partial(item_names, escape=list_component),
        split_labels=dashed_split_names, default_splits=("train",))


def _png_name(name: str) -> str:
    return f"{split_ext(name)[0]}.png"
