"""Open Images V6 view, as Datumaro's ``open_images`` importer (and CVAT through it) reads it.

```
annotations/class-descriptions.csv                        "LabelName,DisplayName" rows, no header: name,name
annotations/bbox_labels_600_hierarchy.json                a root node "/m/0" with no subcategories
annotations/images.meta                                   "<ImageID> <height> <width>" per image of known size
annotations/<subset>-images-with-rotation.csv             every image of the subset (ImageID, Subset)
annotations/<subset>-annotations-human-imagelabels.csv    one row per image tag
annotations/<subset>-annotations-bbox.csv                 one row per object with a box, edges normalised
annotations/<subset>-annotations-object-segmentation.csv  one row per polygon / bitmap / alpha mask
images/<subset>/<ImageID><ext>                            the source image bytes
masks/<subset>/<ImageID>_<BoxID>.png                      8-bit, 255 = the object's pixels, 0 elsewhere
```
Labels are the kept classes, then the image tag names that are no class's name. ``ImageID`` is
the image's output name without extension, unique over the whole view (the reader refuses an id
seen in two subsets). Every object with an extent gets a box row (the box of its pixels cut to the
image); its flags come from the object tags ``occluded``, ``truncated``, ``is_group_of``,
``is_depiction``, ``is_inside`` (1/0; -1 when the tag is absent), ``Confidence`` from ``score``.
Polygons, bitmaps and alpha masks also get a mask row and PNG with the same box, so the reader pairs
them (same ``group``); ``BoxID`` is the object's position in the annotation, 8 hex digits.
"""

from __future__ import annotations

import functools
import shlex
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from slyfs.formats.common.geometry import Box, clipped_box
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.masks import drawable_annotation, gray_png
from slyfs.formats.common.naming import (
    MAX_NAME_BYTES,
    backslashless_component,
    distinct_texts,
    shorten,
    split_ext,
    text_field,
)
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import find_tag, tag_flag, tag_names, tag_number, tag_option
from slyfs.formats.common.text import csv_rows, json_bytes
from slyfs.formats.contract import Generated, Node, NotRenderable, constant, image_node, streamed
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile, WholeFile
from slyfs.formats.model import Item, Mask, Polygon, Project, Tag
from slyfs.formats.view import ViewOptions, selected_classes

VIEW = "open-images"
TITLE = "Open Images"
IMAGE_FIELDS = ("ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License", "AuthorProfileURL", "Author",
                "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL", "Rotation")
LABEL_FIELDS = ("ImageID", "Source", "LabelName", "Confidence")
BOX_FIELDS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax",
              "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
MASK_FIELDS = ("MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax",
               "PredictedIoU", "Clicks")
FLAGS = ("occluded", "truncated", "is_group_of", "is_depiction", "is_inside")  # in BOX_FIELDS order
MASKED = (Polygon, Mask)  # what gets a mask PNG besides its box
MASK_VALUE = 255

FLAG_OPTIONS = tuple(tag_option(VIEW, flag.removeprefix("is_").replace("_", "-"), flag) for flag in FLAGS)
SCORE = tag_option(VIEW, "score")
PREDICTED_IOU = tag_option(VIEW, "predicted-iou", "predicted_iou")
OPTIONS = (*FLAG_OPTIONS, SCORE, PREDICTED_IOU)


# ---------------------------------------------------------------- pure helpers


def normalised_edges(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """``XMin, XMax, YMin, YMax``: a continuous box's edges as fractions of the image size."""
    x0, y0, x1, y1 = box
    return (x0 / width, x1 / width, y0 / height, y1 / height)


def flag_field(tags: Sequence[Tag], name: str) -> int:
    """An ``Is*`` field: 1 or 0 from a flag tag, -1 (unknown) without one."""
    found = find_tag(tags, name)
    return -1 if found is None else int(tag_flag(found.value))


def confidence(tags: Sequence[Tag], name: str) -> float:
    """A ``Confidence``: the tag's number when it lies in [0, 1], else 1."""
    found = find_tag(tags, name)
    number = tag_number(found.value) if found is not None and found.value is not None else None
    return number if number is not None and 0.0 <= number <= 1.0 else 1.0


def box_id(position: int) -> str:
    return format(position, "08x")


MASK_TAIL_BYTES = len("_00000000.png")


def mask_name(image_id: str, position: int) -> str:
    """``<ImageID>_<BoxID>.png``, the id cut (hash-tagged) so that the name is one path component
    and always ends in the BoxID, which :func:`mask_position` reads back (ids hold no ``\\``, which
    the reader refuses in a ``MaskPath``)."""
    return f"{shorten(image_id, MAX_NAME_BYTES - MASK_TAIL_BYTES)}_{box_id(position)}.png"


def mask_position(file: str) -> int:
    """The object position a :func:`mask_name` names."""
    return int(file[-MASK_TAIL_BYTES + 1:-4], 16)


def label_names(titles: Sequence[str]) -> list[str]:
    """Label names as CSV fields every reader keeps: control characters and outer blanks ``%XX``
    (``,`` and ``"`` are quoted by the CSV itself); distinct titles stay distinct."""
    return distinct_texts(titles, text_field)


def images_meta(rows: Sequence[tuple[str, int, int]]) -> bytes:
    """Datumaro's ``images.meta``: a comment, a blank line, then ``<shell-quoted id> <height> <width>``."""
    lines = ["# <image name> <height> <width>", ""] + [f"{shlex.quote(i)} {h} {w}" for i, h, w in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class ItemRows:
    """What one image contributes to its subset's CSVs."""

    labels: list[list[object]]
    boxes: list[list[object]]
    masks: list[list[object]]  # the first field is the mask's file name


# ---------------------------------------------------------------- the view


def layout(project: Project, options: ViewOptions) -> Layout:
    tags = tag_names(options, OPTIONS)
    classes = selected_classes(project, options)
    titles = [c.title for c in classes]
    tag_titles = [m.name for m in project.meta.tag_metas if m.name not in set(titles)]
    names = label_names([*titles, *tag_titles])
    class_label = dict(zip(titles, names))
    tag_label = dict(zip(tag_titles, names[len(titles):]))
    tag_label.update((t, class_label[t]) for t in titles if any(m.name == t for m in project.meta.tag_metas))
    base_key = (tuple(names), tuple(titles), tuple(sorted(tags.items())), options.key())
    classes_csv = csv_rows([n, n] for n in names).encode("utf-8")
    # the reader wants one root: an OID-style id no label has, without subcategories (the labels are flat)
    hierarchy = json_bytes({"LabelName": next(f"/m/{i}" for i in range(len(names) + 1) if f"/m/{i}" not in names),
                            "Subcategory": []})

    def rows_of(item: Item, image_id: str) -> ItemRows:
        ann = project.annotation(item)
        labels = [[image_id, "", tag_label[t.name], confidence((t,), t.name)] for t in ann.tags if t.name in tag_label]
        boxes: list[list[object]] = []
        masks: list[list[object]] = []
        left_out: Counter[str] = Counter()
        for position, label in enumerate(ann.labels):
            name = class_label.get(label.class_title)
            if name is None:
                continue
            box = clipped_box(label.geometry, ann.width, ann.height)
            if box is None:
                left_out[GEOMETRY_NAMES[type(label.geometry)]] += 1
                continue
            edges = normalised_edges(box, ann.width, ann.height)
            boxes.append([image_id, "", name, confidence(label.tags, tags["score"]), *edges,
                          *(flag_field(label.tags, tags[flag]) for flag in FLAGS)])
            if isinstance(label.geometry, MASKED):
                file = mask_name(image_id, position)
                iou = find_tag(label.tags, tags["predicted_iou"])
                iou_number = tag_number(iou.value) if iou is not None and iou.value is not None else None
                masks.append([file, image_id, name, box_id(position), *edges,
                              "" if iou_number is None else iou_number, ""])
        report_left_out(project, item, TITLE, left_out)
        return ItemRows(labels, boxes, masks)

    def image_id(name: str) -> str:
        return split_ext(name)[0]

    def split_csv(kind: str, fields: Sequence[str],
                  rows: Callable[[Item, str, str], list[list[object]]]) -> Callable[[SplitItems], Node]:
        def node(split: SplitItems) -> Node:
            def stream() -> Iterator[bytes]:
                yield csv_rows([fields]).encode("utf-8")
                for item, name in zip(split.items, split.names):
                    chunk = rows(item, image_id(name), split.label)
                    if chunk:
                        yield csv_rows(chunk).encode("utf-8")
            return streamed((f"oi-{kind}", split.split, split.label, split.key, base_key), stream)
        return node

    def image_row(item: Item, iid: str, subset: str) -> list[list[object]]:
        return [[iid, subset, *[""] * (len(IMAGE_FIELDS) - 2)]]

    def meta_node(splits: Sequence[SplitItems]) -> Node:
        def render() -> bytes:
            sizes = []
            for split in splits:
                for item, name in zip(split.items, split.names):
                    ann = project.annotation(item)
                    if ann.width > 0 and ann.height > 0:
                        sizes.append((image_id(name), ann.height, ann.width))
            return images_meta(sizes)
        return Generated(("oi-images-meta", tuple(split.key for split in splits), base_key), render)

    def mask_files(item: Item, name: str) -> list[str]:
        return [str(row[0]) for row in rows_of(item, image_id(name)).masks]

    def mask_png(item: Item, file: str) -> bytes:
        ann = drawable_annotation(project, item)
        position = mask_position(file)
        label = ann.labels[position] if position < len(ann.labels) else None
        pixels = geometry_mask(label.geometry, ann.width, ann.height) if label is not None else None
        if pixels is None:
            raise NotRenderable(f"{item.dataset}/{item.name}: {file}: the annotation has no such object")
        return gray_png(np.where(pixels, MASK_VALUE, 0).astype(np.uint8))

    def mask_node(item: Item, file: str) -> Node:
        return Generated(("oi-mask", base_key, item.dataset, item.name, item.fingerprint, item.image, file),
                         functools.partial(mask_png, item, file))

    def static(path: str, data: bytes) -> StaticFile:
        return StaticFile(path, lambda splits: Generated(("oi-static", path, data), constant(data)))

    return Layout(
        static=(static("annotations/class-descriptions.csv", classes_csv),
                static("annotations/bbox_labels_600_hierarchy.json", hierarchy)),
        per_split=(
            SplitFile(lambda s: f"annotations/{s}-images-with-rotation.csv",
                      split_csv("images", IMAGE_FIELDS, image_row)),
            SplitFile(lambda s: f"annotations/{s}-annotations-human-imagelabels.csv",
                      split_csv("labels", LABEL_FIELDS, lambda item, iid, _: rows_of(item, iid).labels)),
            SplitFile(lambda s: f"annotations/{s}-annotations-bbox.csv",
                      split_csv("boxes", BOX_FIELDS, lambda item, iid, _: rows_of(item, iid).boxes)),
            SplitFile(lambda s: f"annotations/{s}-annotations-object-segmentation.csv",
                      split_csv("masks", MASK_FIELDS, lambda item, iid, _: rows_of(item, iid).masks))),
        whole=(WholeFile("annotations/images.meta", meta_node),),
        per_item=(ItemFile(lambda s: f"images/{s}", lambda item, name: image_node(item), by_split=True),
                  ItemFile(lambda s: f"masks/{s}", mask_node, many=mask_files, by_split=True)),
        group_by="all", names=functools.partial(item_names, escape=backslashless_component),
        split_labels=plain_subset_names)
