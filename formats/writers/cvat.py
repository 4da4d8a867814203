"""CVAT for images 1.1 XML view, in CVAT's project form (importer ``cvat``; CVAT's own reader).

```
annotations.xml             every split: <meta><project> with one <task> per subset, then one
                            <image subset=... task_id=...> per image, streamed an image at a time
images/<subset>/<name>      the source image bytes; <image name> is <name>
```
Conventions (the README repeats them):
- Subset names are ``[A-Za-z0-9-]+`` (``common/splits.subset_names``); ``<image id>`` counts from
  0 over the whole file (split order, then (dataset, name)); ``name`` is unique in its subset.
- Labels: one per class (``type`` from its shape; ``any`` for any), every tag meta as an
  ``<attribute>`` of each (none → checkbox, oneof → select, else text), a ``tag`` label per
  image tag meta (``tag:<name>`` when a class has the name; its value in the attribute of the
  tag's name), and for a graph class a ``skeleton`` with one ``points`` sublabel per template node.
- rectangle → ``box`` of the pixels' edges (r+1, b+1); oriented box → ``box`` of the unturned
  box + ``rotation`` (degrees, clockwise); polygon → ``polygon`` at pixel centres, with holes
  (or under 3 vertices) → ``mask``; bitmap, alpha mask → ``mask``: row-major runs over the tight
  box of its pixels in the image, background first; line → ``polyline``; point → ``points``;
  graph → ``skeleton`` (missing node ``outside="1"``, disabled ``occluded="1"``); cuboid → ``cuboid``
  (face1 = front: ``xtl1`` its top-left ...). Coordinates ``%.2f``.
- Object tags → ``<attribute>`` (valueless → true); the ``occluded`` tag → ``occluded="1"``; an
  instance binding → ``group_id``. Datumaro 1.13.12 gives the ``<attribute>``s of a cuboid to the
  shape before it, so a cuboid's tags are written only with ``--opt cvat.cuboid-attributes=1``
  (otherwise counted and logged).
- Not written, counted in a closing XML comment and the problem log: a graph without template, a
  mask of an image of unknown size or with no pixel inside the image.
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from lxml import etree

from slyfs.formats.common.geometry import pixel_centre, template_joints
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import distinct_texts, escape_component
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.rle import row_runs
from slyfs.formats.common.splits import item_names, subset_names
from slyfs.formats.common.tags import find_tag, flag_value
from slyfs.formats.common.text import xml_comment_text, xml_text
from slyfs.formats.contract import Node, image_node, streamed
from slyfs.formats.layout import ItemFile, Layout, SplitItems, WholeFile
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
    Problem,
    Project,
    Rectangle,
    Tag,
    TagMeta,
)
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

OCCLUDED_TAG = FormatOption("cvat.occluded-tag", "object tag written as a shape's occluded=\"1\"", default="occluded")
CUBOID_ATTRIBUTES = FormatOption(
    "cvat.cuboid-attributes", "1: write a cuboid's tags as <attribute>s (Datumaro 1.13.12 then gives them to the "
    "shape before it); 0: leave them out and log them", default="0", choices=("0", "1"))
OPTIONS = (OCCLUDED_TAG, CUBOID_ATTRIBUTES)

VIEW_TITLE = "CVAT"
LABEL_TYPES = {"rectangle": "rectangle", "polygon": "polygon", "bitmap": "mask", "alpha_mask": "mask",
               "line": "polyline", "point": "points", "graph": "skeleton", "cuboid_2d": "cuboid",
               "oriented_bbox": "rectangle"}
CUBOID_CORNERS = (("tl", "topleft"), ("bl", "bottomleft"), ("tr", "topright"), ("br", "bottomright"))
INDENT = "  "


# ---------------------------------------------------------------- pure conversions


def xml_component(name: str) -> str:
    """An image name that is both one path component and XML text, so that ``<image name>`` and
    the served file are the same name (``%XX`` for what either refuses)."""
    return xml_text(escape_component(name))


def num(value: float) -> str:
    return f"{value:.2f}"


def points_text(points: Iterable[Point2]) -> str:
    """CVAT's ``x0,y0;x1,y1`` of pixel indices, at the pixels' centres."""
    return ";".join(f"{num(x)},{num(y)}" for x, y in map(pixel_centre, points))


def box_fields(left: float, top: float, right: float, bottom: float) -> dict[str, str]:
    """An inclusive pixel box as ``xtl ytl xbr ybr`` of the pixels' outer edges."""
    return {"xtl": num(left), "ytl": num(top), "xbr": num(right + 1), "ybr": num(bottom + 1)}


def mask_fields(mask: np.ndarray) -> dict[str, str] | None:
    """``rle left top width height`` of a whole-image bool mask over the tight box of its pixels;
    None when it has none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    runs = row_runs(mask[top:bottom + 1, left:right + 1])
    return {"rle": ", ".join(map(str, runs)), "left": str(left), "top": str(top),
            "width": str(right - left + 1), "height": str(bottom - top + 1)}


def cuboid_fields(cuboid: Cuboid2d) -> dict[str, str] | None:
    """``xtl1 ytl1 xbl1 … ybr2`` of a cuboid's two faces (face1 first), None without all 8 vertices."""
    out: dict[str, str] = {}
    for face in ("1", "2"):
        for short, corner in CUBOID_CORNERS:
            vertex = cuboid.vertices.get(f"face{face}-{corner}")
            if vertex is None:
                return None
            x, y = pixel_centre(vertex)
            out[f"x{short}{face}"], out[f"y{short}{face}"] = num(x), num(y)
    return out


def skeleton_svg(template: GraphTemplate, names: Sequence[str]) -> str:
    """The ``<svg>`` text of a skeleton label: its edges and its nodes, set on a circle of the
    100 x 100 canvas CVAT draws templates on (a Supervisely template keeps no node positions here)."""
    n = len(template.node_ids)
    spots = [(50 + 40 * math.cos(2 * math.pi * i / n), 50 + 40 * math.sin(2 * math.pi * i / n)) for i in range(n)]
    parts = []
    for a, b in template_joints(template):
        (x1, y1), (x2, y2) = spots[a - 1], spots[b - 1]
        parts.append(f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" stroke="black" '
                     f'data-type="edge" data-node-from="{a}" data-node-to="{b}"></line>')
    for i, ((x, y), name) in enumerate(zip(spots, names), start=1):
        label = etree.Element("circle", {"r": "0.75", "cx": num(x), "cy": num(y), "data-type": "element node",
                                         "data-element-id": str(i), "data-node-id": str(i),
                                         "data-label-name": name})
        parts.append(etree.tostring(label, encoding="unicode"))
    return "".join(parts)


def attribute_spec(meta: TagMeta, name: str) -> etree._Element:
    """One ``<attribute>`` declaration of a label, from a tag meta."""
    el = etree.Element("attribute")
    kind, default, values = {
        "none": ("checkbox", "false", "false"),
        "oneof_string": ("select", meta.values[0] if meta.values else "", "\n".join(meta.values)),
    }.get(meta.value_type, ("text", "", ""))
    for key, text in (("name", name), ("mutable", "False"), ("input_type", kind), ("default_value", default),
                      ("values", values)):
        etree.SubElement(el, key).text = xml_text(text)
    return el


def _sub(parent: etree._Element, tag: str, text: str = "") -> etree._Element:
    el = etree.SubElement(parent, tag)
    el.text = text
    return el


class Labels:
    """The ``<labels>`` of the view and the names its shapes use."""

    def __init__(self, project: Project, classes: tuple[ObjClass, ...], options: ViewOptions) -> None:
        self.classes = classes
        self.occluded = options.param(OCCLUDED_TAG)
        self.cuboid_attributes = options.param(CUBOID_ATTRIBUTES) == "1"
        titles = [c.title for c in classes]
        self.names = dict(zip(titles, distinct_texts(titles, xml_text)))
        self.templates = {c.title: c.template for c in classes if c.shape == "graph" and c.template}
        self.node_names = {title: distinct_texts(list(t.labels), xml_text) for title, t in self.templates.items()}
        self.all_metas = project.meta.tag_metas  # each a tag label: meta.json does not say which are images' only
        self.metas = [m for m in self.all_metas if m.name != self.occluded]  # each an attribute of every class
        metas = [m.name for m in self.all_metas]
        self.attribute_names = dict(zip(metas, distinct_texts(metas, xml_text)))
        taken = set(self.names.values())
        self.tag_labels = {m.name: (f"tag:{self.attribute_names[m.name]}" if self.attribute_names[m.name] in taken
                                    else self.attribute_names[m.name]) for m in self.all_metas}

    def element(self) -> etree._Element:
        labels = etree.Element("labels")
        specs = [(m, self.attribute_names[m.name]) for m in self.metas]
        for c in self.classes:
            label = etree.SubElement(labels, "label")
            _sub(label, "name", self.names[c.title])
            _sub(label, "color", "#{:02x}{:02x}{:02x}".format(*c.color))
            _sub(label, "type", LABEL_TYPES.get(c.shape, "any"))
            attributes = etree.SubElement(label, "attributes")
            for meta, name in specs:
                attributes.append(attribute_spec(meta, name))
            template = self.templates.get(c.title)
            if template is not None:
                _sub(label, "svg", skeleton_svg(template, self.node_names[c.title]))
        for c in self.classes:
            for node in self.node_names.get(c.title, ()):
                label = etree.SubElement(labels, "label")
                _sub(label, "name", node)
                _sub(label, "color", "#{:02x}{:02x}{:02x}".format(*c.color))
                _sub(label, "type", "points")
                etree.SubElement(label, "attributes")
                _sub(label, "parent", self.names[c.title])
        for meta in self.all_metas:
            label = etree.SubElement(labels, "label")
            _sub(label, "name", self.tag_labels[meta.name])
            _sub(label, "color", "#000000")
            _sub(label, "type", "tag")
            etree.SubElement(label, "attributes").append(attribute_spec(meta, self.attribute_names[meta.name]))
        return labels

    def attribute_tags(self, tags: Sequence[Tag]) -> list[Tag]:
        """The object tags that are ``<attribute>``s: the first of each name, but the occluded tag
        when it reads as a flag (it is the shape's own ``occluded``)."""
        seen: set[str] = set()
        out = []
        for tag in tags:
            if tag.name not in seen and not (tag.name == self.occluded and flag_value(tag.value) is not None):
                seen.add(tag.name)
                out.append(tag)
        return out

    def attributes(self, parent: etree._Element, tags: Sequence[Tag]) -> None:
        """Object tags as ``<attribute>`` children."""
        for tag in self.attribute_tags(tags):
            el = etree.SubElement(parent, "attribute", name=self.attribute_names.get(tag.name, xml_text(tag.name)))
            el.text = "true" if tag.value is None else xml_text(str(tag.value))

    def occluded_of(self, tags: Sequence[Tag]) -> str:
        tag = find_tag(tags, self.occluded)
        return "1" if tag is not None and flag_value(tag.value) else "0"


def shape_element(labels: Labels, label: Label, ann: Annotation, group: int | None,
                  left_out: Counter[str], unwritten: Counter[str]) -> etree._Element | None:
    """One shape, or None (counted in ``left_out``) when this label cannot be written; the
    cuboids whose tags are not written, and those tags, are counted in ``unwritten``."""
    g = label.geometry
    common = {"label": labels.names[label.class_title], "source": "manual", "occluded": labels.occluded_of(label.tags)}
    fields: dict[str, str]
    if isinstance(g, (Rectangle, OrientedBox)):
        tag, fields = "box", box_fields(g.left, g.top, g.right, g.bottom)
        if isinstance(g, OrientedBox):
            fields["rotation"] = num(math.degrees(g.angle) % 360)
    elif isinstance(g, Polygon) and not g.interiors and len(set(g.exterior)) >= 3:
        tag, fields = "polygon", {"points": points_text(g.exterior)}
    elif isinstance(g, (Polygon, Mask)):
        mask = geometry_mask(g, ann.width, ann.height) if ann.width > 0 and ann.height > 0 else None
        found = mask_fields(mask) if mask is not None else None
        if found is None:
            left_out["mask"] += 1
            return None
        tag, fields = "mask", found
    elif isinstance(g, Line):
        tag, fields = "polyline", {"points": points_text(g.points)}
    elif isinstance(g, PointGeom):
        tag, fields = "points", {"points": points_text([(g.x, g.y)])}
    elif isinstance(g, Graph):
        return skeleton_element(labels, label, g, common, group, left_out)
    elif isinstance(g, Cuboid2d):
        found = cuboid_fields(g)
        if found is None:
            left_out["cuboid"] += 1
            return None
        tag, fields = "cuboid", found
    else:
        left_out[GEOMETRY_NAMES[type(g)]] += 1
        return None
    el = etree.Element(tag, {**common, **fields, "z_order": "0"})
    if group is not None:
        el.set("group_id", str(group))
    if tag != "cuboid" or labels.cuboid_attributes:
        labels.attributes(el, label.tags)
    elif tags := labels.attribute_tags(label.tags):
        unwritten["cuboid"] += 1
        unwritten["tag"] += len(tags)
    return el


def skeleton_element(labels: Labels, label: Label, graph: Graph, common: dict[str, str], group: int | None,
                     left_out: Counter[str]) -> etree._Element | None:
    template = labels.templates.get(label.class_title)
    if template is None:
        left_out["graph"] += 1
        return None
    el = etree.Element("skeleton", {"label": common["label"], "source": "manual", "z_order": "0"})
    if group is not None:
        el.set("group_id", str(group))
    for node_id, name in zip(template.node_ids, labels.node_names[label.class_title]):
        node = graph.nodes.get(node_id)
        where = points_text([(node.x, node.y)]) if node is not None else "0.00,0.00"
        etree.SubElement(el, "points", {"label": name, "source": "manual", "outside": "0" if node else "1",
                                        "occluded": "1" if node is not None and node.disabled else "0",
                                        "points": where})
    labels.attributes(el, label.tags)  # after the nodes: Datumaro 1.13.12 reads these into no shape
    return el


def image_element(labels: Labels, frame: int, name: str, subset: str, task_id: int, ann: Annotation,
                  left_out: Counter[str], unwritten: Counter[str]) -> etree._Element:
    attrs = {"id": str(frame), "name": name, "subset": subset, "task_id": str(task_id)}
    if ann.width > 0 and ann.height > 0:
        attrs |= {"width": str(ann.width), "height": str(ann.height)}
    el = etree.Element("image", attrs)
    groups: dict[str, int] = {}
    for label in ann.labels:
        if label.class_title not in labels.names:
            continue
        group = groups.setdefault(label.instance, len(groups) + 1) if label.instance is not None else None
        shape = shape_element(labels, label, ann, group, left_out, unwritten)
        if shape is not None:
            el.append(shape)
    for tag in ann.tags:
        tag_label = labels.tag_labels.get(tag.name)
        if tag_label is None:
            left_out["image tag"] += 1
            continue
        t = etree.SubElement(el, "tag", label=tag_label, source="manual")
        if tag.value is not None:
            etree.SubElement(t, "attribute", name=labels.attribute_names[tag.name]).text = xml_text(str(tag.value))
    return el


def indented(el: etree._Element, depth: int) -> bytes:
    """An element as a block of lines at ``depth`` (lxml indents only whitespace between elements,
    so multi-line text such as a select's values stays as it is)."""
    etree.indent(el, space=INDENT, level=depth)
    return (INDENT * depth).encode() + etree.tostring(el, encoding="utf-8") + b"\n"


def meta_element(project: Project, labels: Labels, splits: Sequence[SplitItems]) -> etree._Element:
    """``<meta><project>``: the labels and one ``<task>`` per subset (Datumaro makes a subset of each)."""
    meta = etree.Element("meta")
    proj = etree.SubElement(meta, "project")
    _sub(proj, "id", "1")
    _sub(proj, "name", xml_text(os.path.basename(os.path.normpath(project.root))))
    for key in ("created", "updated", "bug_tracker", "owner", "assignee"):
        _sub(proj, key)
    proj.append(labels.element())
    tasks = etree.SubElement(proj, "tasks")
    for task_id, split in enumerate(splits, start=1):
        task = etree.SubElement(tasks, "task")
        n = len(split.items)
        for key, text in (("id", str(task_id)), ("name", split.label), ("size", str(n)), ("mode", "annotation"),
                          ("overlap", "0"), ("bugtracker", ""), ("created", ""), ("updated", ""),
                          ("subset", split.label), ("start_frame", "0"), ("stop_frame", str(max(n - 1, 0))),
                          ("frame_filter", ""), ("segments", ""), ("owner", ""), ("assignee", "")):
            _sub(task, key, text)
    _sub(proj, "subsets", "\n".join(s.label for s in splits))
    _sub(meta, "dumped")
    return meta


def annotations_xml(project: Project, labels: Labels, splits: Sequence[SplitItems]) -> Iterator[bytes]:
    """``annotations.xml`` in pieces, an image at a time."""
    yield b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n'
    yield indented(meta_element(project, labels, splits), 1)
    total: Counter[str] = Counter()
    frame = 0
    for task_id, split in enumerate(splits, start=1):
        for item, name in zip(split.items, split.names):
            ann = project.annotation(item)
            left_out: Counter[str] = Counter()
            unwritten: Counter[str] = Counter()
            yield indented(image_element(labels, frame, name, split.label, task_id, ann, left_out, unwritten), 1)
            frame += 1
            report_left_out(project, item, VIEW_TITLE, left_out)
            if unwritten:
                project.report(Problem(item.ann_path or f"{item.dataset}/{item.name}",
                                       f"{unwritten['tag']} tag(s) of {unwritten['cuboid']} cuboid(s) not written",
                                       "left out (--opt cvat.cuboid-attributes=1 writes them)", item.name))
            total += left_out
    if total:
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(total.items()))
        yield f"  <!-- slyfs: left out: {xml_comment_text(summary)} -->\n".encode()
    yield b"</annotations>\n"


def layout(project: Project, options: ViewOptions) -> Layout:
    labels = Labels(project, selected_classes(project, options), options)
    opt_key = (options.key(), project.meta, os.path.basename(os.path.normpath(project.root)))

    def node(splits: Sequence[SplitItems]) -> Node:
        key = tuple((s.split, s.label, s.key) for s in splits)
        return streamed(("cvat", opt_key, key), functools.partial(annotations_xml, project, labels, list(splits)))

    def image(item: Item, name: str) -> Node:
        return image_node(item)

    return Layout(whole=(WholeFile("annotations.xml", node),),
                  per_item=(ItemFile(lambda label: f"images/{label}", image),),
                  names=functools.partial(item_names, escape=xml_component), split_labels=subset_names,
                  default_splits=("default",))
