"""Pascal VOC view (detection + class/instance segmentation), as the VOC devkit,
torchvision, mmdet and datumaro read it.

```
Annotations/<id>.xml                 one per image; boxes in the devkit's 1-based inclusive pixels
JPEGImages/<id><ext>                 the source image bytes, own extension (``voc.jpeg=1``: <id>.jpg)
ImageSets/Main/<split>.txt           ids of the split
ImageSets/Main/<class>_<split>.txt   ``<id>  1`` / ``<id> -1``: does the image hold that class
ImageSets/Segmentation/<split>.txt   ids of the images with at least one area object
SegmentationClass/<id>.png           palette PNG, index = class (0 background), VOC colour map
SegmentationObject/<id>.png          palette PNG, index k = the k-th <object> of the XML
labelmap.txt                         datumaro's ``name:r,g,b::``, colours = VOC colour map
```
``<id>`` is the image's output name without extension, unique over the whole project.
Every object with an extent in the image is an ``<object>``; only area geometries
(rectangle, polygon, bitmap, alpha mask, cuboid hull, oriented box) are painted in the
masks, later objects on top. Points, lines and graphs are objects without pixels.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from lxml import etree
from PIL import Image

from slyfs.formats.common.geometry import pixel_extent
from slyfs.formats.common.masks import (
    MAX_OBJECT_INDEX,
    background_name,
    check_drawable,
    labelmap_text,
    mask_memo,
    palette_png,
    segmentation_arrays,
)
from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import (
    MAX_NAME_BYTES,
    distinct_texts,
    line_unsafe,
    shorten,
    spaceless_component,
    split_ext,
    text_field,
)
from slyfs.formats.common.raster import has_area
from slyfs.formats.common.splits import MAX_SPLIT_BYTES, item_names
from slyfs.formats.common.splits import dashed_split_names as voc_split_names
from slyfs.formats.common.tags import tag_flag as flag_is_set
from slyfs.formats.common.text import xml_comment_text, xml_text
from slyfs.formats.contract import Generated, Node, NotRenderable, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Annotation, ImageRef, Item, Label, PixelBox, Project, TagValue
from slyfs.formats.readers.supervisely.annotation import size_problem
from slyfs.formats.source_bytes import read_bytes
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

FLAG_TAGS = ("truncated", "difficult", "occluded")
JPEG_EXTS = (".jpg", ".jpeg", ".jpe", ".jfif")
JPEG_QUALITY = 95
HEADER_PROBE_BYTES = 64 << 10
MAX_REENCODE_BYTES = 256 << 20  # voc.jpeg=1: larger source images are not re-encoded
PRESENCE_MEMO_ENTRIES = 8  # splits whose per-image class presence is kept for their list files
MAX_CLASS_BYTES = MAX_NAME_BYTES - len("_.txt") - MAX_SPLIT_BYTES  # <class>_<split>.txt fits in 255 bytes
DEPTH_BY_MODE = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 2, "P": 3, "RGB": 3, "YCbCr": 3,
                 "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4}


# ---------------------------------------------------------------- pure helpers


def voc_box(box: PixelBox, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Inclusive 0-based pixel box → the devkit's 1-based inclusive ``xmin ymin xmax ymax``,
    cut to the image; None when nothing of it is inside."""
    left, top, right, bottom = max(0, box[0]), max(0, box[1]), min(width - 1, box[2]), min(height - 1, box[3])
    if right < left or bottom < top:
        return None
    return (left + 1, top + 1, right + 1, bottom + 1)


def _class_unsafe(ch: str) -> bool:
    return line_unsafe(ch) or ch in ":/"


def voc_class_name(title: str) -> str:
    """A class title as one labelmap.txt field, the same XML ``<name>`` and the ``<class>`` of
    ``<class>_<split>.txt``: ``:``, ``/`` and control characters become ``%XX``, as do leading/trailing
    blanks and a leading ``#`` (datumaro strips lines and skips ``#`` comments). At most
    ``MAX_CLASS_BYTES``, so that ``<class>_<split>.txt`` is one path component. :func:`voc_class_names`
    keeps the names of distinct titles distinct."""
    out = text_field(title, _class_unsafe)
    if out.startswith("#"):
        out = "%23" + out[1:]
    return shorten(out, MAX_CLASS_BYTES)


def voc_class_names(titles: list[str]) -> list[str]:
    """:func:`voc_class_name` of each title, distinct for distinct titles."""
    return distinct_texts(titles, voc_class_name, MAX_CLASS_BYTES)


def tag_flag(value: TagValue) -> str:
    """A flag tag's VOC value: ``1`` when it says yes (common/tags.tag_flag), else ``0``."""
    return "1" if flag_is_set(value) else "0"


def tag_text(value: TagValue) -> str:
    return "true" if value is None else xml_text(str(value))


@dataclass(frozen=True, slots=True)
class VocObject:
    name: str
    box: tuple[int, int, int, int]  # xmin ymin xmax ymax, devkit convention
    flags: tuple[tuple[str, str], ...]  # (truncated|difficult|occluded, "0"|"1")
    attributes: tuple[tuple[str, str], ...]


def annotation_xml(filename: str, width: int, height: int, depth: int, segmented: bool,
                   objects: list[VocObject], notes: list[str]) -> bytes:
    """The ``Annotations/<id>.xml`` document."""
    root = etree.Element("annotation")
    etree.SubElement(root, "folder").text = "VOC"
    etree.SubElement(root, "filename").text = xml_text(filename)
    size = etree.SubElement(root, "size")
    for key, number in (("width", width), ("height", height), ("depth", depth)):
        etree.SubElement(size, key).text = str(number)
    etree.SubElement(root, "segmented").text = "1" if segmented else "0"
    for note in notes:
        root.append(etree.Comment(" slyfs: " + xml_comment_text(note) + " "))
    for obj in objects:
        el = etree.SubElement(root, "object")
        etree.SubElement(el, "name").text = obj.name
        etree.SubElement(el, "pose").text = "Unspecified"
        for key, value in obj.flags:
            etree.SubElement(el, key).text = value
        bnd = etree.SubElement(el, "bndbox")
        for key, number in zip(("xmin", "ymin", "xmax", "ymax"), obj.box):
            etree.SubElement(bnd, key).text = str(number)
        if obj.attributes:
            attrs = etree.SubElement(el, "attributes")
            for name, value in obj.attributes:
                a = etree.SubElement(attrs, "attribute")
                etree.SubElement(a, "name").text = name
                etree.SubElement(a, "value").text = value
    return etree.tostring(root, encoding="utf-8", xml_declaration=True, pretty_print=True)


def voc_object(label: Label, name: str, box: tuple[int, int, int, int]) -> VocObject:
    flags = {k: "0" for k in FLAG_TAGS}
    attributes = []
    for tag in label.tags:
        if tag.name in flags:
            flags[tag.name] = tag_flag(tag.value)
        else:
            attributes.append((xml_text(tag.name), tag_text(tag.value)))
    return VocObject(name, box, tuple(flags.items()), tuple(attributes))


def kept_objects(ann: Annotation, class_names: dict[str, str]) -> tuple[list[tuple[Label, VocObject]], int]:
    """The labels that become ``<object>``s, in order, and how many were left out because
    nothing of them lies inside the image."""
    out = []
    outside = 0
    for label in ann.labels:
        name = class_names.get(label.class_title)
        if name is None:
            continue
        pb = pixel_extent(label.geometry)
        box = voc_box(pb, ann.width, ann.height) if pb is not None else None
        if box is None:
            outside += 1
        else:
            out.append((label, voc_object(label, name, box)))
    return out, outside


# ---------------------------------------------------------------- source access


def image_mode(ref: ImageRef | None) -> str | None:
    """The image's PIL mode from its header (one small read), None if unknown."""
    if ref is None:
        return None
    try:
        with Image.open(io.BytesIO(read_bytes(ref, HEADER_PROBE_BYTES))) as img:
            return img.mode
    except Exception:  # not an image, or a header beyond the probe: depth falls back to 3
        return None


def jpeg_bytes(ref: ImageRef) -> bytes:
    """The image re-encoded as JPEG (quality 95); modes JPEG cannot hold become RGB. Refused
    (NotRenderable: the file reads EIO) past ``MAX_REENCODE_BYTES`` or ``MAX_LABELLED_PIXELS``."""
    if ref.size > MAX_REENCODE_BYTES:
        raise NotRenderable(f"{ref.path}: image of {ref.size} bytes is over the limit of {MAX_REENCODE_BYTES} "
                         "(MAX_REENCODE_BYTES): not re-encoded")
    with Image.open(io.BytesIO(read_bytes(ref))) as img:
        too_large = size_problem(img.size)
        if too_large:
            raise NotRenderable(f"{ref.path}: {too_large}: not re-encoded")
        encodable = img if img.mode in ("L", "RGB") else img.convert("RGB")
        buf = io.BytesIO()
        encodable.save(buf, format="JPEG", quality=JPEG_QUALITY)
        return buf.getvalue()


# ---------------------------------------------------------------- the view


JPEG = FormatOption("voc.jpeg", "1: every image as <id>.jpg, non-JPEGs re-encoded; 0: images as they are",
                    default="0", choices=("0", "1"))
OPTIONS = (JPEG,)


def layout(project: Project, options: ViewOptions) -> Layout:
    to_jpeg = options.param(JPEG) == "1"
    classes = selected_classes(project, options)
    class_names = dict(zip([c.title for c in classes], voc_class_names([c.title for c in classes])))
    class_index = {c.title: k for k, c in enumerate(classes, 1)}
    class_key = tuple(class_names.items())
    opt_key = options.key()
    labelmap = labelmap_text(background_name(class_names.values()), list(class_names.values()))

    def objects_of(item: Item) -> tuple[Annotation, list[tuple[Label, VocObject]], int]:
        ann = project.annotation(item)
        return (ann, *kept_objects(ann, class_names))

    memo = mask_memo()

    def draw_masks(item: Item) -> tuple[np.ndarray, np.ndarray]:
        ann, objs, _ = objects_of(item)
        check_drawable(f"{item.dataset}/{item.name}", ann.width, ann.height)
        return segmentation_arrays(ann, [label for label, _ in objs], class_index)

    def masks_of(item: Item) -> tuple[np.ndarray, ...]:
        """Both index images of an item: its two PNGs are usually read one after the other."""
        return memo.get(item, lambda: draw_masks(item))

    def xml_of(item: Item, image_name: str) -> bytes:
        return _render_xml(objects_of(item), item, image_name, to_jpeg)

    def png_of(item: Item, which: int) -> bytes:
        """The class (0) or object (1) index image of ``item`` as a palette PNG."""
        return palette_png(masks_of(item)[which])

    def image_name(name: str) -> str:
        return f"{split_ext(name)[0]}.jpg" if to_jpeg else name

    def image(item: Item, name: str) -> Node:
        return _image(item, name, split_ext(name)[0], to_jpeg)[1]

    def xml(item: Item, name: str) -> Node:
        served = image_name(name)
        return Generated(("voc-xml", *_base(item), item.image, served), functools.partial(xml_of, item, served))

    def _base(item: Item) -> tuple:
        return (item.dataset, item.name, item.fingerprint, opt_key, class_key)

    def mask(kind: str, which: int) -> Callable[[Item, str], Node]:
        return lambda item, name: Generated((kind, *_base(item), item.image), functools.partial(png_of, item, which))

    presence_memo: BoundedMemo[dict[str, tuple[set[str], bool]]] = BoundedMemo(
        PRESENCE_MEMO_ENTRIES, lambda presence: 1)

    def presence(split: SplitItems) -> dict[str, tuple[set[str], bool]]:
        """Per image id of a split: the classes it holds, whether it has an area object.
        Computed once per split for all its list files."""
        def compute() -> dict[str, tuple[set[str], bool]]:
            out = {}
            for item, name in zip(split.items, split.names):
                objs = objects_of(item)[1]
                out[split_ext(name)[0]] = ({label.class_title for label, _ in objs},
                                           any(has_area(label.geometry) for label, _ in objs))
            return out
        return presence_memo.get(split.key, compute)

    def main_list(split: SplitItems) -> Node:
        main = "".join(f"{split_ext(name)[0]}\n" for name in split.names).encode("utf-8")
        return Generated(("voc-main", main), constant(main))

    def segmentation_list(split: SplitItems) -> Node:
        def render() -> bytes:
            return "".join(f"{v}\n" for v, (_, area) in presence(split).items() if area).encode("utf-8")
        return Generated(("voc-seg-list", split.split, split.key, opt_key, class_key), render)

    def class_list(title: str) -> Callable[[SplitItems], Node]:
        def node(split: SplitItems) -> Node:
            def render() -> bytes:
                """devkit "%s % d": the id, then 1 if the image holds the class, else -1."""
                return "".join(f"{v} {1 if title in held else -1:2d}\n"
                               for v, (held, _) in presence(split).items()).encode("utf-8")
            return Generated(("voc-class-list", title, split.split, split.key, opt_key, class_key), render)
        return node

    per_split = [SplitFile(lambda label: f"ImageSets/Main/{label}.txt", main_list),
                 SplitFile(lambda label: f"ImageSets/Segmentation/{label}.txt", segmentation_list)]
    per_split += [SplitFile(_class_list_path(cname), class_list(title)) for title, cname in class_names.items()]
    return Layout(
        static=(StaticFile("labelmap.txt", lambda splits: Generated(("voc-labelmap", labelmap), constant(labelmap))),),
        per_split=tuple(per_split),
        per_item=(ItemFile(lambda _: "JPEGImages", image, image_name),
                  ItemFile(lambda _: "Annotations", xml, lambda name: f"{split_ext(name)[0]}.xml"),
                  ItemFile(lambda _: "SegmentationClass", mask("voc-class-png", 0), _png_name),
                  ItemFile(lambda _: "SegmentationObject", mask("voc-object-png", 1), _png_name)),
        group_by="all", names=functools.partial(item_names, escape=spaceless_component),
        split_labels=voc_split_names)


def _class_list_path(cname: str) -> Callable[[str], str]:
    return lambda label: f"ImageSets/Main/{cname}_{label}.txt"


def _png_name(name: str) -> str:
    return f"{split_ext(name)[0]}.png"


def _image(item: Item, name: str, vid: str, to_jpeg: bool) -> tuple[str, Node]:
    """The JPEGImages entry: the source bytes under their own extension, or (``voc.jpeg=1``)
    ``<id>.jpg``, re-encoded unless the source already is a JPEG."""
    if not to_jpeg:
        return name, image_node(item)
    jpg = f"{vid}.jpg"
    if item.image is None or item.ext.lower() in JPEG_EXTS:
        return jpg, image_node(item)
    return jpg, Generated(("voc-jpeg", item.image, JPEG_QUALITY), functools.partial(jpeg_bytes, item.image))


def _render_xml(parsed: tuple[Annotation, list[tuple[Label, VocObject]], int], item: Item,
                image_name: str, to_jpeg: bool) -> bytes:
    ann, objs, outside = parsed
    mode = image_mode(item.image)
    if to_jpeg and item.ext.lower() not in JPEG_EXTS and mode is not None:
        mode = "L" if mode == "L" else "RGB"
    notes = []
    if outside:
        notes.append(f"{outside} object(s) lying wholly outside the image left out")
    if len(objs) > MAX_OBJECT_INDEX:
        notes.append(f"objects after the {MAX_OBJECT_INDEX}th have no index in SegmentationObject")
    return annotation_xml(image_name, ann.width, ann.height, DEPTH_BY_MODE.get(mode or "RGB", 3),
                          any(has_area(label.geometry) for label, _ in objs), [o for _, o in objs], notes)

