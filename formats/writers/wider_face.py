"""WIDER Face view, as Datumaro's ``wider_face`` importer reads it.

```
labels.txt                                     label names, one a line (no trailing newline)
wider_face_split/wider_face_<subset>_bbx_gt.txt
WIDER_<subset>/images/<k>--<event>/<name>      source bytes; k = the event's line in labels.txt
WIDER_<subset>/images/no_label/<name>          images without an event tag
```
A ``bbx_gt`` file lists each image of the subset: its path under ``WIDER_<subset>/images/``,
then, when it has boxes, their count and one ``x y w h`` line each (the box of the pixels an
area object covers, cut to the image), the six attributes ``blur expression illumination
occluded pose invalid`` from object tags when any is set (``-`` for the others), and the class
name unless it is ``face``. The event is the value of an image tag (``wider-face.event-tag``).
Points, lines and graphs have no box: they are counted and reported.
"""

from __future__ import annotations

import functools
from collections import Counter

from slyfs.formats.common.geometry import clipped_box
from slyfs.formats.common.identities import (
    Notes,
    folders_by_value,
    identity_names,
    image_name,
    image_tag_text,
    number,
    scan_tags,
    tag_value_text,
    token,
)
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.raster import has_area
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import find_tag, tag_flag, tag_option
from slyfs.formats.contract import Generated, Node, constant
from slyfs.formats.layout import Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Item, Label, Project
from slyfs.formats.view import ViewOptions, selected_classes

VIEW = "WIDER Face"
DEFAULT_LABEL = "face"
NO_LABEL = "no_label"
ATTRIBUTES = ("blur", "expression", "illumination", "occluded", "pose", "invalid")  # Datumaro's column order
FLAG_ATTRIBUTES = ("occluded", "invalid")  # written True/False

EVENT = tag_option("wider-face", "event", "event", "an image's event (its <k>--<event> folder)")
ATTRIBUTE_OPTIONS = {a: tag_option("wider-face", a, a, f"a face's {a} attribute") for a in ATTRIBUTES}
OPTIONS = (EVENT, *ATTRIBUTE_OPTIONS.values())


def wider_label(text: str) -> str:
    """A label as one token of a box line and the tail of a ``<k>--<label>`` folder: whitespace,
    ``/`` and ``\\`` as ``%XX`` (box lines must not look like paths), and ``--`` (where the reader
    splits the folder name) as ``-%2D``."""
    return token(text).replace("--", "-%2D")


def wider_name(name: str) -> str:
    """An image name as a whole path line (:func:`image_name`), with a ``.`` at the end of a name
    without one: the reader takes only lines with a ``.`` for paths."""
    out = image_name(name)
    return out if "." in out else out + "."


def attribute_text(name: str, value: object) -> str:
    """One attribute column: ``True``/``False`` for the flags, else the tag's value as a token."""
    if name in FLAG_ATTRIBUTES:
        return "True" if tag_flag(value) else "False"  # type: ignore[arg-type]  # a TagValue
    text = tag_value_text(value)  # type: ignore[arg-type]
    if text is None:
        return "True"  # a valueless tag: set
    out = token(text)
    return "%2D" if out == "-" else out


def box_line(label: Label, width: int, height: int, class_name: str, attribute_tags: dict[str, str]) -> str | None:
    """The line of one object, None when it has no box inside the image (a point, a line, a graph)."""
    if not has_area(label.geometry):
        return None
    box = clipped_box(label.geometry, width, height)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    fields = [number(x0), number(y0), number(x1 - x0), number(y1 - y0)]
    found = {a: find_tag(label.tags, tag) for a, tag in attribute_tags.items()}
    if any(t is not None for t in found.values()):
        fields += [attribute_text(a, t.value) if t is not None else "-" for a, t in found.items()]
    if class_name != DEFAULT_LABEL:
        fields.append(class_name)
    return " ".join(fields)


def layout(project: Project, options: ViewOptions) -> Layout:
    event_tag = options.param(EVENT)
    attribute_tags = {a: options.param(o) for a, o in ATTRIBUTE_OPTIONS.items()}
    classes = [c.title for c in selected_classes(project, options)]
    events = scan_tags(project, ("image-tag", event_tag), lambda ann: image_tag_text(ann, event_tag))
    event_values = sorted({e for e in events.values() if e is not None})
    names = identity_names([*classes, *event_values], reserved=(NO_LABEL,), escape_one=wider_label)
    labels = list(dict.fromkeys(names[v] for v in [*classes, *event_values]))
    index = {name: k for k, name in enumerate(labels)}
    folders: dict[str | None, str] = {e: f"{index[names[e]]}--{names[e]}" for e in event_values}
    class_names = {c: names[c] for c in classes}
    labels_text = "\n".join(labels).encode()
    key = (options.key(), tuple(labels))

    notes = []
    if not event_values:
        notes.append(f"no image has a {event_tag!r} tag with a value: every image is in no_label/ "
                     "(--opt wider-face.event-tag=NAME names the image tag whose value is the event)")
    if not any(c == DEFAULT_LABEL for c in classes):
        notes.append("no class is called 'face': every box line names its class")
    readme = Notes(VIEW, tuple(notes))
    readme.report(project)

    def folder_of(item: Item) -> str:
        event = events.get((item.dataset, item.name))
        return folders[event] if event is not None else NO_LABEL

    def render(split: SplitItems) -> bytes:
        lines = []
        for item, name in zip(split.items, split.names):
            ann = project.annotation(item)
            boxes = []
            left_out: Counter[str] = Counter()
            for label in ann.labels:
                class_name = class_names.get(label.class_title)
                if class_name is None:
                    continue
                line = box_line(label, ann.width, ann.height, class_name, attribute_tags)
                if line is None:
                    left_out[GEOMETRY_NAMES[type(label.geometry)]] += 1
                else:
                    boxes.append(line)
            report_left_out(project, item, VIEW, left_out)
            lines.append(f"{folder_of(item)}/{name}")
            if boxes:
                lines += [str(len(boxes)), *boxes]
        return "".join(f"{line}\n" for line in lines).encode()

    def bbx_gt(split: SplitItems) -> Node:
        return Generated(("wider-bbx-gt", split.split, split.key, key), functools.partial(render, split))

    per_item = folders_by_value(events, {None: NO_LABEL, **folders}, lambda subset, sub: f"WIDER_{subset}/images/{sub}")
    labels_node = Generated(("wider-labels", labels_text), constant(labels_text))
    return Layout(
        static=(StaticFile("labels.txt", lambda splits: labels_node), *readme.static()),
        per_split=(SplitFile(lambda subset: f"wider_face_split/wider_face_{subset}_bbx_gt.txt", bbx_gt),),
        per_item=per_item,
        group_by="split", names=functools.partial(item_names, escape=wider_name), split_labels=plain_subset_names,
        epoch=tuple(labels))
