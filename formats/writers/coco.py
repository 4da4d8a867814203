"""COCO view (the layout CVAT, Datumaro and detectron2 read).

```
annotations/instances_<split>.json         every object with an area
annotations/person_keypoints_<split>.json  graph (keypoint) objects; only when a selected class is a graph
annotations/captions_<split>.json          image tag ``caption``; only when meta.json declares that tag
images/<split>/<name>                      the source image bytes
```
Conventions (the README repeats them):
- ids: an image's id is its 1-based position in the split's (dataset, name) order, the same in
  every file of the split; annotation ids count from 1 per file; category id = 1-based position
  in meta.json order (or ``--classes``), the same in every file.
- Coordinates are continuous, a pixel (x, y) covering [x, x+1) × [y, y+1). A bbox covers the
  object's pixels: rectangle (l, t, r, b) → [l, t, r-l+1, b-t+1]. Keypoints are written at the
  pixel centre (x+0.5, y+0.5). All of it is cut to the image.
- ``area`` is the number of pixels the object covers as Supervisely draws it (boundary
  included, holes cleared): w*h for a rectangle, the mask's pixel count otherwise. For a
  keypoint object it is its bbox's w*h.
- Segmentation: a lone rectangle → the polygon of its box. Hole-free polygons, cuboids (convex
  hull), oriented boxes and bound groups of them → the outline of the object's pixels (as cut
  to the image) along the pixels' outer edges, one polygon per connected part, vertices at
  pixel corners: pycocotools samples pixel centres, so its mask is exactly those pixels, where
  an outline through the vertices' pixel centres would lose the border (a 1-px sliver whole).
  The exact mask as uncompressed column-major RLE for polygons with holes, bitmaps, alpha
  masks (a pixel with alpha > 0 belongs), and shapes whose pixels enclose a hole.
- Object tags → ``attributes`` (a valueless tag is ``true``), except CVAT's and Datumaro's two
  fields: ``score`` → the annotation's top-level ``"score"`` (float), ``is_crowd``/``iscrowd``
  (valueless, or 1/true/yes; 0/false/no: not a crowd) → ``"iscrowd": 1`` with an RLE
  segmentation. A value neither reads as stays in ``attributes`` and is logged.
- Labels bound by one ``instance`` key and of one class are one object: bbox = union of their
  boxes, shape = the non-rectangle members (a bound rectangle only gives the box).
- Lines, points, graphs without a template and objects wholly outside the image are not
  instances: they are counted per class in the file's ``info.slyfs_left_out`` and logged.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from slyfs.formats.common.contours import pixel_edge_outlines
from slyfs.formats.common.geometry import Box, clipped_box, polygonal, union_box
from slyfs.formats.common.raster import has_area, pixel_crop
from slyfs.formats.common.rle import rle
from slyfs.formats.common.text import JsonArraySpool, json_object_chunks
from slyfs.formats.contract import Node, image_node, streamed
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems
from slyfs.formats.model import (
    Annotation,
    Geometry,
    Graph,
    GraphTemplate,
    Item,
    Label,
    Line,
    ObjClass,
    PointGeom,
    Problem,
    Project,
    Rectangle,
    Tag,
    TagValue,
)
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

DISABLED_VISIBILITY = FormatOption("coco.disabled_visibility", "v of a disabled keypoint; 0 writes it as 0,0,0",
                                   default="1", choices=("0", "1", "2"))


# ---------------------------------------------------------------- pure conversions


def coco_bbox(box: Box) -> list[float]:
    """Continuous (x0, y0, x1, y1) → COCO [x, y, w, h]."""
    x0, y0, x1, y1 = box
    return [x0, y0, x1 - x0, y1 - y0]


def mask_segmentation(crop: np.ndarray, origin: tuple[int, int], size: tuple[int, int],
                      as_polygons: bool) -> list[list[float]] | dict:
    """The segmentation of a bool mask placed at ``origin`` in an image of ``size``: with
    ``as_polygons``, one polygon per connected part along its pixels' outer edges (pycocotools
    samples pixel centres, so it gives back exactly these pixels, even of a 1-px sliver); the
    exact RLE when that is not wanted or a part has a hole, which a COCO polygon cannot cut out."""
    outlines = pixel_edge_outlines(crop) if as_polygons else None
    if outlines is None:
        return rle(crop, origin, size)
    return [(outline + origin).ravel().tolist() for outline in outlines]


def instance_fields(geometries: Sequence[Geometry], width: int, height: int, crowd: bool = False) -> dict | None:
    """bbox, area and segmentation of one object made of ``geometries`` (one label, or the
    labels bound into one object), or None when none of it lies inside the image. A lone
    rectangle keeps its box polygon (exact as it is); a ``crowd`` object is RLE, as COCO wants."""
    boxed = [(g, b) for g in geometries if (b := clipped_box(g, width, height)) is not None]
    if not boxed:
        return None
    bbox = coco_bbox(union_box([b for _, b in boxed]))
    shaped = [(g, b) for g, b in boxed if not isinstance(g, Rectangle)] or boxed
    if len(shaped) == 1 and isinstance(shaped[0][0], Rectangle) and not crowd:
        x0, y0, x1, y1 = shaped[0][1]
        return {"bbox": bbox, "area": (x1 - x0) * (y1 - y0),
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
    window = union_box([b for _, b in shaped])
    crop = np.logical_or.reduce([pixel_crop(g, window) for g, _ in shaped])  # a new array: rasters are read-only
    area = int(np.count_nonzero(crop))
    if area == 0:
        return None
    as_polygons = not crowd and all(polygonal(g) for g, _ in shaped)
    segmentation = mask_segmentation(crop, (int(window[0]), int(window[1])), (width, height), as_polygons)
    return {"bbox": bbox, "area": area, "segmentation": segmentation}


def keypoint_fields(graph: Graph, template: GraphTemplate, width: int, height: int,
                    disabled_visibility: int) -> dict | None:
    """keypoints (template order, pixel centres), num_keypoints, bbox and area of a graph;
    None when no node is visible inside the image. Missing or outside nodes are [0, 0, 0]."""
    flat: list[float] = []
    present: list[tuple[float, float]] = []
    for node_id in template.node_ids:
        node = graph.nodes.get(node_id)
        v = 0 if node is None else (disabled_visibility if node.disabled else 2)
        if node is not None and v and 0 <= node.x < width and 0 <= node.y < height:
            flat += [node.x + 0.5, node.y + 0.5, v]
            present.append((node.x, node.y))
        else:
            flat += [0, 0, 0]
    if not present:
        return None
    box = clipped_box(Line(tuple(present)), width, height)
    assert box is not None
    x, y, w, h = coco_bbox(box)
    return {"keypoints": flat, "num_keypoints": len(present), "bbox": [x, y, w, h], "area": w * h}


def attributes(tags: Iterable[Tag]) -> dict:
    """Object tags as COCO ``attributes``; a tag without a value is ``true``. First value wins."""
    out: dict = {}
    for t in tags:
        out.setdefault(t.name, True if t.value is None else t.value)
    return out


SCORE_TAG = "score"
CROWD_TAGS = ("is_crowd", "iscrowd")
_YES, _NO = ("1", "true", "yes"), ("0", "false", "no")


@dataclass(frozen=True, slots=True)
class ObjectTags:
    """An object's tags as CVAT and Datumaro carry them in COCO: ``score`` as the annotation's
    top-level float, ``is_crowd``/``iscrowd`` as ``iscrowd``, every other tag in ``attributes``."""

    attributes: dict
    score: float | None = None
    crowd: bool = False
    problems: tuple[str, ...] = ()

    def fields(self) -> dict:
        """The annotation's ``iscrowd``, ``score`` (when there is one) and ``attributes``."""
        score = {} if self.score is None else {"score": self.score}
        return {"iscrowd": int(self.crowd), **score, "attributes": self.attributes}


def _score(value: TagValue) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]  # None is refused here too
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _crowd(value: TagValue) -> bool | None:
    if value is None:
        return True
    word = str(int(value) if isinstance(value, float) and value.is_integer() else value).strip().lower()
    return True if word in _YES else False if word in _NO else None


def object_tags(tags: Iterable[Tag]) -> ObjectTags:
    """Split an object's tags (the first ``score`` and the first crowd tag count). A value
    neither reads as stays in ``attributes`` and is named in ``problems``."""
    rest: list[Tag] = []
    score: float | None = None
    crowd: bool | None = None
    problems: list[str] = []
    seen: set[str] = set()
    for tag in tags:
        kind = SCORE_TAG if tag.name == SCORE_TAG else "crowd" if tag.name in CROWD_TAGS else None
        if kind is None:
            rest.append(tag)
            continue
        if kind in seen:  # the first one counts, as in ``attributes``
            continue
        seen.add(kind)
        if kind == SCORE_TAG and (score := _score(tag.value)) is None:
            problems.append(f"tag {tag.name!r} value {tag.value!r} is not a finite number")
            rest.append(tag)
        elif kind == "crowd" and (crowd := _crowd(tag.value)) is None:
            problems.append(f"tag {tag.name!r} value {tag.value!r} is not one of {', '.join(_YES + _NO)}")
            rest.append(tag)
    return ObjectTags(attributes(rest), score, bool(crowd), tuple(problems))


# ---------------------------------------------------------------- files


def _left_out_info(left_out: Counter, kind: str) -> dict:
    info: dict = {"description": f"COCO {kind} served by slyfs"}
    if left_out:
        by_reason: dict[str, dict[str, int]] = {}
        for (reason, title), n in sorted(left_out.items()):
            by_reason.setdefault(reason, {})[title] = n
        info["slyfs_left_out"] = by_reason
    return info


def _report_left_out(project: Project, path: str, left_out: Counter) -> None:
    if left_out:
        summary = ", ".join(f"{n} {title!r} ({reason})" for (reason, title), n in sorted(left_out.items()))
        project.report(Problem(path, f"not exported: {summary}", "counted in the file's info.slyfs_left_out"))


class SplitFiles:
    """One split's items, output names and annotations, shared by its JSON files."""

    def __init__(self, project: Project, split: str, items: list[Item], names: list[str],
                 classes: tuple[ObjClass, ...]) -> None:
        self.project, self.split, self.items, self.names = project, split, items, names
        self.category_ids = {c.title: i + 1 for i, c in enumerate(classes)}
        self.classes = classes

    def annotated_images(self) -> Iterable[tuple[dict, Annotation]]:
        """(image record, annotation) per item whose size is known."""
        for image_id, (item, name) in enumerate(zip(self.items, self.names), start=1):
            ann = self.project.annotation(item)
            if ann.width > 0 and ann.height > 0:
                yield {"id": image_id, "file_name": name, "width": ann.width, "height": ann.height}, ann

    def object_tags(self, path: str, image: dict, title: str, tags: Iterable[Tag]) -> ObjectTags:
        """``object_tags``, with a tag value it cannot read reported against the image."""
        split = object_tags(tags)
        for problem in split.problems:
            self.project.report(Problem(path, f"{title!r} object: {problem}", "kept in attributes", image["file_name"]))
        return split

    def categories(self, classes: Iterable[ObjClass]) -> list[dict]:
        return [{"id": self.category_ids[c.title], "name": c.title, "supercategory": ""} for c in classes]

    def instances(self) -> Iterator[bytes]:
        """The instances file in pieces, an image at a time (its ``info`` is known only at the end)."""
        path = f"annotations/instances_{self.split}.json"
        images, annotations = JsonArraySpool(), JsonArraySpool()
        left_out: Counter = Counter()
        for image, ann in self.annotated_images():
            images.append(image)
            for title, labels in _objects(ann.labels, self.category_ids, self.classes, left_out):
                tags = self.object_tags(path, image, title, (t for lb in labels for t in lb.tags))
                fields = instance_fields([lb.geometry for lb in labels], ann.width, ann.height, tags.crowd)
                if fields is None:
                    left_out["nothing inside the image", title] += 1
                    continue
                annotations.append({"id": annotations.count + 1, "image_id": image["id"],
                                    "category_id": self.category_ids[title], **fields, **tags.fields()})
        _report_left_out(self.project, path, left_out)
        yield from json_object_chunks([("info", _left_out_info(left_out, "instances")), ("licenses", []),
                                       ("images", images), ("annotations", annotations),
                                       ("categories", self.categories(self.classes))])

    def keypoints(self, visibility_of_disabled: int) -> Iterator[bytes]:
        """The person keypoints file in pieces, an image at a time."""
        path = f"annotations/person_keypoints_{self.split}.json"
        templates = {c.title: c.template for c in self.classes if c.shape == "graph" and c.template}
        images, annotations = JsonArraySpool(), JsonArraySpool()
        left_out: Counter = Counter()
        for image, ann in self.annotated_images():
            images.append(image)
            for label in ann.labels:
                template = templates.get(label.class_title)
                if template is None or not isinstance(label.geometry, Graph):
                    continue
                fields = keypoint_fields(label.geometry, template, ann.width, ann.height, visibility_of_disabled)
                if fields is None:
                    left_out["no visible keypoint inside the image", label.class_title] += 1
                    continue
                tags = self.object_tags(path, image, label.class_title, label.tags)
                annotations.append({"id": annotations.count + 1, "image_id": image["id"],
                                    "category_id": self.category_ids[label.class_title], **fields, **tags.fields()})
        _report_left_out(self.project, path, left_out)
        categories = [{**cat, "keypoints": list(templates[cat["name"]].labels),
                       "skeleton": _skeleton(templates[cat["name"]])}
                      for cat in self.categories(c for c in self.classes if c.title in templates)]
        yield from json_object_chunks([("info", _left_out_info(left_out, "person keypoints")), ("licenses", []),
                                       ("images", images), ("annotations", annotations), ("categories", categories)])

    def captions(self) -> Iterator[bytes]:
        """The captions file in pieces, an image at a time."""
        images, annotations = JsonArraySpool(), JsonArraySpool()
        for image, ann in self.annotated_images():
            images.append(image)
            caption = ann.tag_value("caption")
            if isinstance(caption, str):
                annotations.append({"id": annotations.count + 1, "image_id": image["id"], "caption": caption})
        yield from json_object_chunks([("info", {"description": "COCO captions served by slyfs"}), ("licenses", []),
                                       ("images", images), ("annotations", annotations)])


def _skeleton(template: GraphTemplate) -> list[list[int]]:
    index = {node_id: i + 1 for i, node_id in enumerate(template.node_ids)}
    return [[index[a], index[b]] for a, b in template.edges if a in index and b in index]


def _objects(labels: Iterable[Label], category_ids: dict[str, int], classes: tuple[ObjClass, ...],
             left_out: Counter) -> list[tuple[str, list[Label]]]:
    """Labels with an area, grouped into objects (bound labels of one class together); the
    rest is counted in ``left_out`` unless the keypoints file carries it."""
    templated = {c.title for c in classes if c.shape == "graph" and c.template}
    groups: dict[object, tuple[str, list[Label]]] = {}
    for label in labels:
        title, geometry = label.class_title, label.geometry
        if title not in category_ids:
            continue
        if has_area(geometry):
            key = (label.instance, title) if label.instance is not None else id(label)
            groups.setdefault(key, (title, []))[1].append(label)
        elif isinstance(geometry, Graph):
            if title not in templated:
                left_out["graph without a keypoint template", title] += 1
        else:
            kind = "line" if isinstance(geometry, Line) else "point" if isinstance(geometry, PointGeom) else "other"
            left_out[f"{kind}: no area", title] += 1
    return list(groups.values())


OPTIONS = (DISABLED_VISIBILITY,)


def layout(project: Project, options: ViewOptions) -> Layout:
    classes = selected_classes(project, options)
    visibility = int(options.param(DISABLED_VISIBILITY))
    class_key = tuple((c.title, c.shape, c.template) for c in classes)
    with_keypoints = any(c.shape == "graph" and c.template for c in classes)
    with_captions = any(t.name == "caption" for t in project.meta.tag_metas)

    def split_file(kind: str, render: Callable[[SplitFiles], Iterator[bytes]]) -> Callable[[SplitItems], Node]:
        def node(split: SplitItems) -> Node:
            src = SplitFiles(project, split.split, list(split.items), list(split.names), classes)
            return streamed((kind, (options.key(), class_key, split.split, split.key)), functools.partial(render, src))
        return node

    per_split = [SplitFile(lambda split: f"annotations/instances_{split}.json",
                           split_file("coco-instances", SplitFiles.instances))]
    if with_keypoints:
        per_split.append(SplitFile(lambda split: f"annotations/person_keypoints_{split}.json",
                                   split_file("coco-keypoints", lambda src: src.keypoints(visibility))))
    if with_captions:
        per_split.append(SplitFile(lambda split: f"annotations/captions_{split}.json",
                                   split_file("coco-captions", SplitFiles.captions)))
    return Layout(per_split=tuple(per_split), per_item=(ItemFile(lambda split: f"images/{split}",
                                                                 lambda item, name: image_node(item)),),
                  default_splits=("train",))
