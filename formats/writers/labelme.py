"""LabelMe 3.0 view, in the layout Datumaro 1.13.12's ``label_me`` importer (and CVAT, which
runs it) reads.

```
Annotations/<split>/<stem>.xml            one per image: <filename>, <folder> = the split, <imagesize>
Images/<split>/<name>                     the source image bytes
Masks/<split>/<stem>_mask_<id>.png        one per mask object: RGBA, object pixels (255,203,0,153)
```
Objects (``<id>`` = 0-based position among the written objects of the file):
- rectangle → ``<type>bounding_box</type>`` and the 4 corners (TL, TR, BR, BL) of the box of its
  pixels, cut to the image, at pixel edges (``l, t, r+1, b+1``);
- polygon without holes → ``<polygon>`` of its vertices at pixel centres (``x+.5, y+.5``); cuboid →
  its convex hull, oriented box → its 4 corners, the same way;
- polygon with holes, bitmap, alpha mask (alpha > 0), and a polygon of fewer than 3 distinct
  vertices → ``<segm>``: a mask PNG of exactly the pixels Supervisely draws, and the box of them;
- lines, points, graphs: no LabelMe shape; counted, reported and noted in an XML comment, as are
  objects wholly outside the image.
Object tags → ``<attributes>`` (``k=v, …``, escaped so that Datumaro reads back the same text,
numbers and flags); the occluded tag (``--opt labelme.occluded-tag``) → ``<occluded>yes|no``; a
``username`` tag → ``<username>``. Labels bound by one ``instance`` key → one parts tree (the first
lists the others in ``<hasparts>``, they name it in ``<ispartof>``), which Datumaro reads as a group.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from lxml import etree
from PIL import Image

from slyfs.formats.common.geometry import Box, clipped_box
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.masks import check_drawable
from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import MAX_NAME_BYTES, shorten, split_ext, text_field
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.splits import item_assigner
from slyfs.formats.common.tags import find_tag, flag_tag
from slyfs.formats.common.text import xml_comment_text, xml_text
from slyfs.formats.contract import Generated, Node, image_node
from slyfs.formats.layout import ItemFile, Layout
from slyfs.formats.model import (
    Annotation,
    Cuboid2d,
    Graph,
    Item,
    Label,
    Line,
    Mask,
    OrientedBox,
    Point2,
    PointGeom,
    Polygon,
    Problem,
    Project,
    Rectangle,
    Tag,
)
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW_TITLE = "LabelMe"
USERNAME_TAG = "username"
MASK_RGBA = (255, 203, 0, 153)  # what Datumaro's exporter paints; its reader takes any non-zero channel
MASKABLE_SHAPES = ("polygon", "bitmap", "alpha_mask", "any")  # classes whose labels may become <segm>
OBJECTS_MEMO_BYTES = 8 << 20  # parsed object lists, shared by an item's XML, mask listing and masks
ATTRIBUTE_ESCAPES = {"\\": "\\\\", "=": "\\=", '"': '\\"', ",": "\\,"}
BOOLEAN_WORDS = ("true", "false")

OCCLUDED_TAG = FormatOption("labelme.occluded-tag", "the object tag written as <occluded>yes|no</occluded> "
                            "(valueless, or any value but 0/false/no: yes)", default="occluded")
OPTIONS = (OCCLUDED_TAG,)


# ---------------------------------------------------------------- pure helpers


def pixel_centres(points: Iterable[Point2]) -> tuple[Point2, ...]:
    """Pixel indices → the continuous coordinates of their centres."""
    return tuple((x + 0.5, y + 0.5) for x, y in points)


def box_corners(box: Box) -> tuple[Point2, ...]:
    """A continuous box's corners in LabelMe's order: top-left, top-right, bottom-right, bottom-left."""
    x0, y0, x1, y1 = box
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _escaped(text: str) -> str:
    """Text with Datumaro's four escapes. A trailing backslash becomes ``%5C``: escaped, it would be
    followed by the separator or a quote, which Datumaro's reader (it undoes ``\\,`` before ``\\\\``)
    would take for an escaped comma or quote."""
    if text.endswith("\\"):
        text = text[:-1] + "%5C"
    return "".join(ATTRIBUTE_ESCAPES.get(c, c) for c in text)


def _reads_as_text(value: str) -> bool:
    """Whether Datumaro reads ``value``, written bare, back as this same string: not a boolean
    word, not a number it would convert (``str(int(v)) == v`` or ``str(float(v)) == v``), and no
    blank at either end (it strips each ``k=v``)."""
    if value.lower() in BOOLEAN_WORDS or value != value.strip():
        return False
    for kind in (int, float):
        try:
            if str(kind(value)) == value:
                return False
        except (ValueError, OverflowError):
            pass
    return True


def attribute_value(value: str | int | float | None) -> str | None:
    """A tag value as Datumaro's LabelMe attribute text (None: a bare flag, read as ``True``)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    text = xml_text(value)
    return _escaped(text) if _reads_as_text(text) else f'"{_escaped(text)}"'


def attributes_text(tags: Iterable[Tag], skip: Iterable[str]) -> str:
    """``k=v, k2, …`` of the tags (the first of each name), except those named in ``skip``. Keys
    keep their text, with blanks at either end as ``%XX`` (Datumaro strips them)."""
    skipped = set(skip)
    parts = []
    for tag in tags:
        if tag.name in skipped:
            continue
        skipped.add(tag.name)
        key = _escaped(text_field(xml_text(tag.name), lambda c: False))
        value = attribute_value(tag.value)
        parts.append(key if value is None else f"{key}={value}")
    return ", ".join(parts)


def mask_name(stem: str, index: int) -> str:
    """``<stem>_mask_<id>.png``, the stem cut (hash-tagged, so still distinct) to fit 255 bytes."""
    suffix = f"_mask_{index}.png"
    return shorten(stem, MAX_NAME_BYTES - len(suffix)) + suffix


def mask_index(file_name: str) -> int:
    """The object id a ``mask_name`` carries."""
    return int(file_name[file_name.rindex("_mask_") + len("_mask_"):-len(".png")])


def mask_png(pixels: np.ndarray) -> bytes:
    """An object's bool mask as Datumaro's LabelMe mask PNG (RGBA, image-sized)."""
    height, width = pixels.shape
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[pixels] = MASK_RGBA
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class LabelmeObject:
    """One ``<object>``: a box or polygon (``points``), or a mask (``box`` of its pixels, ``label``
    redrawn when its PNG is read)."""

    label: Label
    points: tuple[Point2, ...] = ()
    is_box: bool = False
    box: Box | None = None

    @property
    def is_mask(self) -> bool:
        return self.box is not None


@dataclass(frozen=True, slots=True)
class Parsed:
    """An item's objects in file order (image size ``width`` x ``height``), with what was left out:
    per geometry kind, and outside the image."""

    width: int
    height: int
    objects: tuple[LabelmeObject, ...]
    left_out: Counter[str]
    outside: int


def _outline(label: Label) -> tuple[Point2, ...] | None:
    """The vertices of a label LabelMe can carry as a polygon, None when it needs a mask."""
    g = label.geometry
    if isinstance(g, Polygon):
        ring: tuple[Point2, ...] = () if g.interiors else g.exterior
    elif isinstance(g, Cuboid2d):
        ring = g.hull_polygon()
    elif isinstance(g, OrientedBox):
        ring = g.corners()
    else:
        return None
    return pixel_centres(ring) if len(set(ring)) >= 3 else None


def labelme_object(label: Label, width: int, height: int) -> LabelmeObject | None:
    """A label with an area as its LabelMe object; None when nothing of it lies inside the image."""
    box = clipped_box(label.geometry, width, height)
    if box is None:
        return None
    if isinstance(label.geometry, Rectangle):
        return LabelmeObject(label, box_corners(box), is_box=True)
    outline = _outline(label)
    if outline is not None:
        return LabelmeObject(label, outline)
    pixels = geometry_mask(label.geometry, width, height)
    assert pixels is not None  # every geometry with a clipped box but lines/points/graphs has an area
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if rows.size == 0:
        return None
    return LabelmeObject(label, box=(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))


def parse(ann: Annotation, titles: set[str]) -> Parsed:
    """The objects of the kept classes, in order."""
    objects = []
    left_out: Counter[str] = Counter()
    outside = 0
    for label in ann.labels:
        if label.class_title not in titles:
            continue
        if isinstance(label.geometry, (Line, PointGeom, Graph)):
            left_out[GEOMETRY_NAMES[type(label.geometry)]] += 1
            continue
        obj = labelme_object(label, ann.width, ann.height)
        if obj is None:
            outside += 1
        else:
            objects.append(obj)
    return Parsed(ann.width, ann.height, tuple(objects), left_out, outside)


def parts_of(objects: Sequence[LabelmeObject]) -> list[tuple[str, str]]:
    """``(hasparts, ispartof)`` of each object: bound labels (one ``instance`` key) form a tree
    whose root is the first of them."""
    members: dict[str, list[int]] = {}
    for i, obj in enumerate(objects):
        if obj.label.instance is not None:
            members.setdefault(obj.label.instance, []).append(i)
    out = [("", "")] * len(objects)
    for ids in members.values():
        if len(ids) > 1:
            out[ids[0]] = (",".join(map(str, ids[1:])), "")
            for i in ids[1:]:
                out[i] = ("", str(ids[0]))
    return out


def _coordinate(parent: etree._Element, tag: str, value: float) -> None:
    etree.SubElement(parent, tag).text = f"{value:.2f}"


def annotation_xml(filename: str, folder: str, parsed: Parsed, stem: str, occluded_tag: str,
                   notes: Sequence[str]) -> bytes:
    """The ``Annotations/<split>/<stem>.xml`` document, elements in Datumaro's order."""
    root = etree.Element("annotation")
    etree.SubElement(root, "filename").text = xml_text(filename)
    etree.SubElement(root, "folder").text = xml_text(folder)
    source = etree.SubElement(root, "source")
    etree.SubElement(source, "sourceImage").text = ""
    etree.SubElement(source, "sourceAnnotation").text = "slyfs"
    if parsed.width > 0 and parsed.height > 0:
        size = etree.SubElement(root, "imagesize")
        etree.SubElement(size, "nrows").text = str(parsed.height)
        etree.SubElement(size, "ncols").text = str(parsed.width)
    for note in notes:
        root.append(etree.Comment(" slyfs: " + xml_comment_text(note) + " "))
    for index, (obj, (hasparts, ispartof)) in enumerate(zip(parsed.objects, parts_of(parsed.objects))):
        tags = obj.label.tags
        el = etree.SubElement(root, "object")
        etree.SubElement(el, "name").text = xml_text(obj.label.class_title)
        etree.SubElement(el, "deleted").text = "0"
        etree.SubElement(el, "verified").text = "0"
        etree.SubElement(el, "occluded").text = "yes" if flag_tag(tags, occluded_tag) else "no"
        etree.SubElement(el, "date").text = ""
        etree.SubElement(el, "id").text = str(index)
        parts = etree.SubElement(el, "parts")
        etree.SubElement(parts, "hasparts").text = hasparts
        etree.SubElement(parts, "ispartof").text = ispartof
        username = find_tag(tags, USERNAME_TAG)
        user = "" if username is None or username.value is None else xml_text(str(username.value))
        if obj.box is not None:
            segm = etree.SubElement(el, "segm")
            etree.SubElement(segm, "mask").text = mask_name(stem, index)
            box = etree.SubElement(segm, "box")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box):
                _coordinate(box, tag, value)
            etree.SubElement(segm, "username").text = user
        else:
            if obj.is_box:
                etree.SubElement(el, "type").text = "bounding_box"
            polygon = etree.SubElement(el, "polygon")
            for x, y in obj.points:
                pt = etree.SubElement(polygon, "pt")
                _coordinate(pt, "x", x)
                _coordinate(pt, "y", y)
            etree.SubElement(polygon, "username").text = user
        etree.SubElement(el, "attributes").text = attributes_text(tags, (occluded_tag, USERNAME_TAG))
    return etree.tostring(root, encoding="utf-8", xml_declaration=True, pretty_print=True)


def notes_of(parsed: Parsed) -> list[str]:
    """What the XML's comments say was left out."""
    notes = [f"{n} {kind} label(s) cannot be expressed in {VIEW_TITLE}: left out"
             for kind, n in sorted(parsed.left_out.items())]
    if parsed.outside:
        notes.append(f"{parsed.outside} object(s) lying wholly outside the image left out")
    return notes


# ---------------------------------------------------------------- the view


def _objects_cost(parsed: Parsed) -> int:
    """About what a memo entry holds: the objects, their vertices, the rasters of bitmap labels."""
    return 200 + sum(100 + 16 * len(o.points) + (o.label.geometry.pixels.nbytes if isinstance(o.label.geometry, Mask)
                                                  else 0) for o in parsed.objects)


def layout(project: Project, options: ViewOptions) -> Layout:
    classes = selected_classes(project, options)
    titles = {c.title for c in classes}
    maskable = {c.title for c in classes if c.shape in MASKABLE_SHAPES}
    occluded_tag = options.param(OCCLUDED_TAG)
    base_key = (options.key(), tuple(sorted(titles)))
    split_of = item_assigner(project, options)
    memo: BoundedMemo[Parsed] = BoundedMemo(OBJECTS_MEMO_BYTES, _objects_cost)

    def parsed_of(item: Item) -> Parsed:
        return memo.get(item, lambda: parse(project.annotation(item), titles))

    def item_key(item: Item) -> tuple:
        return (item.dataset, item.name, item.fingerprint, *base_key)

    def render_xml(item: Item, name: str, folder: str) -> bytes:
        parsed = parsed_of(item)
        report_left_out(project, item, VIEW_TITLE, parsed.left_out)
        if parsed.outside:
            project.report(Problem(item.ann_path or f"{item.dataset}/{item.name}",
                                   f"{parsed.outside} object(s) lie wholly outside the image", "left out", item.name))
        return annotation_xml(name, folder, parsed, split_ext(name)[0], occluded_tag, notes_of(parsed))

    def xml(item: Item, name: str) -> Node:
        folder = split_of(item) or ""
        return Generated(("labelme-xml", *item_key(item), name, folder),
                         functools.partial(render_xml, item, name, folder))

    def mask_names(item: Item, name: str) -> list[str]:
        stem = split_ext(name)[0]
        return [mask_name(stem, i) for i, obj in enumerate(parsed_of(item).objects) if obj.is_mask]

    def render_mask(item: Item, index: int) -> bytes:
        parsed = parsed_of(item)
        check_drawable(f"{item.dataset}/{item.name}", parsed.width, parsed.height)
        pixels = geometry_mask(parsed.objects[index].label.geometry, parsed.width, parsed.height)
        assert pixels is not None
        return mask_png(pixels)

    def mask(item: Item, file_name: str) -> Node:
        index = mask_index(file_name)
        return Generated(("labelme-mask", *item_key(item), index), functools.partial(render_mask, item, index))

    def may_have_masks(item: Item) -> bool:
        return not maskable.isdisjoint(project.facts(item).class_titles)

    return Layout(per_item=(
        ItemFile(lambda split: f"Images/{split}", lambda item, name: image_node(item), present=_not_xml),
        ItemFile(lambda split: f"Annotations/{split}", xml, lambda name: f"{split_ext(name)[0]}.xml"),
        ItemFile(lambda split: f"Masks/{split}", mask, present=may_have_masks, many=mask_names),
    ), group_by="split")


def _not_xml(item: Item) -> bool:
    """Datumaro parses every ``*.xml`` of the tree as an annotation: an image called so is not served."""
    return not item.name.lower().endswith(".xml")
