"""Datumaro 1.0 JSON view (Datumaro's own format, importer ``datumaro``).

```
annotations/<subset>.json      one per split, streamed an item at a time
images/<subset>/<name>         the source image bytes; ``image.path`` of the item is <name>
```
Conventions (the README repeats them):
- Subset names are ``[A-Za-z0-9-]+`` (``common/splits.subset_names``); item id = the output
  image name without its extension (unique in the split, ``common/naming.unique_names``).
- Labels: the classes (meta.json or ``--classes`` order), then one label per image tag meta
  (``tag:<name>`` when a class has that name). Every tag meta name is a category attribute.
- rectangle → ``bbox`` [l, t, r-l+1, b-t+1]; polygon → ``polygon`` at pixel centres (x+.5, y+.5);
  a polygon with holes (or under 3 vertices), bitmap and alpha mask → ``mask``, the exact pixels
  as compressed COCO RLE of the image; line → ``polyline``; point → ``points`` (visibility 2);
  graph → ``points`` in its template's node order (disabled node: visibility 1, missing: 0 at
  0,0) with a ``points`` category per graph class; cuboid → ``cuboid_2d`` (face1 = front);
  oriented box → ``bbox`` of the unturned box + ``attributes.rotation`` (degrees in [0, 360),
  clockwise).
- Object tags → ``attributes`` (valueless → true); the ``occluded`` and ``is_crowd`` tags →
  those attributes as bools, ``score`` → ``attributes.score`` as a number (what Datumaro's
  converters read), the ``track_id`` tag → ``object_id``; labels bound by one instance key share
  a ``group``. Image tags → ``label`` annotations (a value in ``attributes.value``), the ``caption`` tag →
  a ``caption`` annotation. The tag names are ``--opt datumaro.<x>-tag=NAME`` settings.
- What cannot be written (a graph without template, a mask of an image of unknown size, an
  image tag with no declared meta) is counted in ``infos.slyfs_left_out`` and the problem log.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from slyfs.formats.common.geometry import pixel_centre, template_joints
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.rle import compressed_rle
from slyfs.formats.common.splits import subset_names
from slyfs.formats.common.tags import find_tag, flag_value, number_value, tag_attributes, whole_number
from slyfs.formats.common.text import JsonArraySpool, json_object_chunks
from slyfs.formats.contract import Node, image_node, streamed
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems
from slyfs.formats.model import (
    Annotation,
    Cuboid2d,
    Graph,
    GraphTemplate,
    Item,
    Label,
    Line,
    Mask,
    ObjClass,
    OrientedBox,
    Point2,
    PointGeom,
    Polygon,
    Project,
    Rectangle,
    Tag,
    TagValue,
)
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

OCCLUDED_TAG = FormatOption("datumaro.occluded-tag", "object tag written as attributes.occluded (bool)",
                            default="occluded")
TRACK_TAG = FormatOption("datumaro.track-tag", "object tag whose integer value is the object_id",
                         default="track_id")
CAPTION_TAG = FormatOption("datumaro.caption-tag", "image tag written as a caption annotation", default="caption")
SCORE_TAG = FormatOption("datumaro.score-tag", "object tag written as attributes.score (a number)", default="score")
CROWD_TAG = FormatOption("datumaro.crowd-tag", "object tag written as attributes.is_crowd (bool)", default="is_crowd")
OPTIONS = (OCCLUDED_TAG, TRACK_TAG, CAPTION_TAG, SCORE_TAG, CROWD_TAG)
# the attributes Datumaro's converters give a meaning to, each read from the tag an option names
MEANINGFUL: tuple[tuple[str, FormatOption, Callable[[TagValue], object]], ...] = (
    ("occluded", OCCLUDED_TAG, flag_value), ("score", SCORE_TAG, number_value), ("is_crowd", CROWD_TAG, flag_value))

VIEW_TITLE = "Datumaro"
# Datumaro's Cuboid2D vertex order, as Supervisely cuboid vertex keys (face1 is the front face)
CUBOID_ORDER = ("face1-topleft", "face2-topleft", "face2-topright", "face1-topright",
                "face2-bottomleft", "face2-bottomright", "face1-bottomright", "face1-bottomleft")


# ---------------------------------------------------------------- pure conversions


def centre(point: Point2) -> list[float]:
    return list(pixel_centre(point))


def flat_centres(points: Sequence[Point2]) -> list[float]:
    return [v for p in points for v in pixel_centre(p)]


def xywh(left: float, top: float, right: float, bottom: float) -> list[float]:
    """An inclusive pixel box as Datumaro's [x, y, w, h] of the pixels' extent."""
    return [left, top, right - left + 1, bottom - top + 1]


def graph_points(graph: Graph, template: GraphTemplate) -> tuple[list[float], list[int]]:
    """Points and visibility of a graph in template order: 2 visible, 1 disabled, 0 missing (at 0,0)."""
    points: list[float] = []
    visibility: list[int] = []
    for node_id in template.node_ids:
        node = graph.nodes.get(node_id)
        if node is None:
            points += [0, 0]
            visibility.append(0)
        else:
            points += centre((node.x, node.y))
            visibility.append(1 if node.disabled else 2)
    return points, visibility


def mask_rle(label: Label, width: int, height: int) -> dict:
    """The label's pixels (cut to the image) as compressed RLE of the whole image, painted on the
    whole image as the class masks of other views are (a crop's rasterisation can differ at an edge)."""
    mask = geometry_mask(label.geometry, width, height)
    assert mask is not None  # only area geometries come here
    return compressed_rle(mask)


def shape_fields(label: Label, template: GraphTemplate | None, width: int, height: int) -> dict | str:
    """``type`` and geometry keys of one label, or the kind of label it cannot be written as."""
    g = label.geometry
    if isinstance(g, Rectangle):
        return {"type": "bbox", "bbox": xywh(g.left, g.top, g.right, g.bottom)}
    if isinstance(g, OrientedBox):
        return {"type": "bbox", "bbox": xywh(g.left, g.top, g.right, g.bottom),
                "rotation": math.degrees(g.angle) % 360}  # CVAT's range, [0, 360)
    if isinstance(g, Polygon) and not g.interiors and len(set(g.exterior)) >= 3:
        return {"type": "polygon", "points": flat_centres(g.exterior)}
    if isinstance(g, (Polygon, Mask)):
        if width <= 0 or height <= 0:
            return "mask"  # of an image of unknown size
        return {"type": "mask", "rle": mask_rle(label, width, height)}
    if isinstance(g, Line):
        return {"type": "polyline", "points": flat_centres(g.points)}
    if isinstance(g, PointGeom):
        return {"type": "points", "points": centre((g.x, g.y)), "visibility": [2]}
    if isinstance(g, Graph):
        if template is None:
            return "graph"  # without a template: no node order
        points, visibility = graph_points(g, template)
        return {"type": "points", "points": points, "visibility": visibility}
    if isinstance(g, Cuboid2d):
        if any(k not in g.vertices for k in CUBOID_ORDER):
            return "cuboid"  # without its 8 vertices
        return {"type": "cuboid_2d", "points": [centre(g.vertices[k]) for k in CUBOID_ORDER]}
    return GEOMETRY_NAMES[type(g)]


class Labels:
    """The label categories of a view: classes, then image tag labels, and what is read from tags."""

    def __init__(self, project: Project, classes: tuple[ObjClass, ...], options: ViewOptions) -> None:
        self.classes = classes
        self.meaningful = [(attribute, options.param(option), parse) for attribute, option, parse in MEANINGFUL]
        self.track = options.param(TRACK_TAG)
        self.caption = options.param(CAPTION_TAG)
        self.class_ids = {c.title: i for i, c in enumerate(classes)}
        self.templates = {c.title: c.template for c in classes if c.shape == "graph" and c.template}
        titles = set(self.class_ids)
        self.tag_names = [t.name for t in project.meta.tag_metas if t.name != self.caption]
        self.tag_ids = {name: len(classes) + i for i, name in enumerate(self.tag_names)}
        self.tag_labels = [f"tag:{n}" if n in titles else n for n in self.tag_names]

    def categories(self, project: Project) -> dict:
        attributes = sorted({t.name for t in project.meta.tag_metas} | {"rotation", "value"}
                            | {attribute for attribute, _, _ in MEANINGFUL})
        labels = [{"name": c.title, "parent": "", "attributes": []} for c in self.classes]
        labels += [{"name": n, "parent": "", "attributes": []} for n in self.tag_labels]
        colormap = [{"label_id": i, "r": c.color[0], "g": c.color[1], "b": c.color[2]}
                    for i, c in enumerate(self.classes)]
        points = [{"label_id": self.class_ids[title], "labels": list(t.labels), "joints": template_joints(t),
                   "positions": []} for title, t in self.templates.items()]
        out: dict = {"label": {"labels": labels, "label_groups": [], "attributes": attributes},
                     "mask": {"colormap": colormap}}
        if points:
            out["points"] = {"items": points}
        return out

    def object_fields(self, tags: Sequence[Tag]) -> dict:
        """``attributes`` (and ``object_id``) of an object from its tags."""
        attributes: dict = tag_attributes(tags, skip={self.track, *(name for _, name, _ in self.meaningful)})
        for attribute, name, parse in self.meaningful:
            tag = find_tag(tags, name)
            if tag is not None:
                value = parse(tag.value)  # a value it does not read as stays as it is
                attributes[attribute] = value if value is not None else tag.value
        out: dict = {"attributes": attributes}
        track = find_tag(tags, self.track)
        if track is not None:
            object_id = whole_number(track.value)
            if object_id is None:
                attributes[self.track] = True if track.value is None else track.value
            else:
                out["object_id"] = object_id
        return out

    def annotations(self, ann: Annotation, left_out: Counter[str]) -> list[dict]:
        """Every annotation of one image: its tags, then its labels of kept classes."""
        out: list[dict] = []
        for tag in ann.tags:
            if tag.name == self.caption:
                out.append({"id": len(out), "type": "caption", "attributes": {}, "group": 0,
                            "caption": "" if tag.value is None else str(tag.value)})
            elif tag.name in self.tag_ids:
                value = {} if tag.value is None else {"value": tag.value}
                out.append({"id": len(out), "type": "label", "attributes": value, "group": 0,
                            "label_id": self.tag_ids[tag.name]})
            else:
                left_out["image tag"] += 1  # no tag meta declares it
        groups: dict[str, int] = {}
        for label in ann.labels:
            label_id = self.class_ids.get(label.class_title)
            if label_id is None:
                continue
            fields = shape_fields(label, self.templates.get(label.class_title), ann.width, ann.height)
            if isinstance(fields, str):
                left_out[fields] += 1
                continue
            extra = self.object_fields(label.tags)
            rotation = fields.pop("rotation", None)
            if rotation is not None:
                extra["attributes"]["rotation"] = rotation
            group = groups.setdefault(label.instance, len(groups) + 1) if label.instance is not None else 0
            out.append({"id": len(out), "type": fields.pop("type"), **extra, "group": group,
                        "label_id": label_id, "z_order": 0, **fields})
        return out


def item_record(item_id: str, image_path: str, ann: Annotation, annotations: list[dict]) -> dict:
    image: dict = {"path": image_path}
    if ann.width > 0 and ann.height > 0:
        image["size"] = [ann.height, ann.width]
    return {"id": item_id, "annotations": annotations, "image": image}


def subset_file(project: Project, labels: Labels, split: SplitItems) -> Iterator[bytes]:
    """``annotations/<subset>.json`` in pieces, an item at a time; its ``infos`` (what was left
    out) is known only at the end and comes last (only ``dm_format_version`` must lead)."""
    items = JsonArraySpool()
    total: Counter[str] = Counter()
    for item, name in zip(split.items, split.names):
        ann = project.annotation(item)
        left_out: Counter[str] = Counter()
        items.append(item_record(split_ext(name)[0], name, ann, labels.annotations(ann, left_out)))
        report_left_out(project, item, VIEW_TITLE, left_out)
        total += left_out
    infos = {"slyfs_left_out": dict(sorted(total.items()))} if total else {}
    yield from json_object_chunks([("dm_format_version", "1.0"), ("media_type", 2),
                                   ("categories", labels.categories(project)), ("items", items), ("infos", infos)])


def layout(project: Project, options: ViewOptions) -> Layout:
    labels = Labels(project, selected_classes(project, options), options)
    opt_key = (options.key(), project.meta)

    def node(split: SplitItems) -> Node:
        return streamed(("datumaro", opt_key, split.split, split.label, split.key),
                        functools.partial(subset_file, project, labels, split))

    def image(item: Item, name: str) -> Node:
        return image_node(item)

    return Layout(per_split=(SplitFile(lambda label: f"annotations/{label}.json", node),),
                  per_item=(ItemFile(lambda label: f"images/{label}", image),),
                  split_labels=subset_names, default_splits=("default",))
