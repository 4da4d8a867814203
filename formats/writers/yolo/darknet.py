"""Darknet YOLO view: the "YOLO 1.1" layout CVAT and Datumaro export.

```
obj.names                        one class name per line (class id = line number, from 0)
obj.data                         classes = N / <split> = data/<split>.txt / names = data/obj.names / backup = backup/
<split>.txt                      data/obj_<split>_data/<image>, one per line
obj_<split>_data/<image>         the source image bytes
obj_<split>_data/<stem>.txt      detection rows, exactly as in the ``yolo`` view
```
Paths in obj.data and the lists start with ``data/`` as CVAT writes them (darknet runs with
the dataset as its ``data/`` folder; Datumaro strips the prefix). A split whose name is not
one word (``\\w+``), or is one of obj.data's own keys (classes, names, backup), gets
``_`` in place of the other characters, and a trailing ``_``; it is cut to 64 bytes (hash-tagged).
Readers strip each line of obj.names and of the lists: a class title is written as one line
field (:func:`formats.common.naming.text_field`, kept distinct); an image name ending in whitespace
gets ``%XX`` for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from slyfs.formats.common.labels import class_ids_of
from slyfs.formats.common.naming import (
    distinct_texts,
    escape_component,
    percent_bytes,
    shorten,
    text_field,
)
from slyfs.formats.common.splits import MAX_SPLIT_BYTES, item_names
from slyfs.formats.contract import Generated, Node, constant
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Item, Project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.yolo.shared import image_file, label_name, label_text

RESERVED_KEYS = ("classes", "names", "backup")


def list_safe(name: str) -> str:
    """An image name as a list line's tail keeps it: safe, with trailing whitespace ``%XX``."""
    out = escape_component(name)
    core = out.rstrip()
    return out if core == out else core + "".join(percent_bytes(c) for c in out[len(core):])


def split_keys(split_names: Sequence[str]) -> dict[str, str]:
    """Split → obj.data key: one word, not reserved, distinct (``~`` would not parse)."""
    out: dict[str, str] = {}
    for name in split_names:
        key = re.sub(r"\W", "_", name)
        if key in RESERVED_KEYS or key != name:
            key += "_"
        key = shorten(key, MAX_SPLIT_BYTES).replace("~", "_")  # obj_<key>_data stays far below 255 bytes
        while key in out.values() or key in RESERVED_KEYS:
            key += "_"
        out[name] = key
    return out


def obj_data(n_classes: int, keys: list[str]) -> bytes:
    lines = [f"classes = {n_classes}"] + [f"{k} = data/{k}.txt" for k in keys]
    lines += ["names = data/obj.names", "backup = backup/"]
    return ("\n".join(lines) + "\n").encode()


def layout(project: Project, options: ViewOptions) -> Layout:
    class_ids = class_ids_of(project, options)
    names_bytes = "".join(f"{n}\n" for n in distinct_texts(list(class_ids), text_field)).encode()
    label_key = (tuple(class_ids.items()), options.key())

    def data_node(keys: Sequence[str]) -> Node:
        data = obj_data(len(class_ids), list(keys))
        return Generated(("darknet-data", data), constant(data))

    def list_node(split: SplitItems) -> Node:
        data = "".join(f"data/obj_{split.label}_data/{name}\n" for name in split.names).encode()
        return Generated(("darknet-list", data), constant(data))

    def label_node(item: Item, name: str) -> Node:
        return Generated(("darknet-label", label_key, item.dataset, item.name, item.fingerprint),
                         functools.partial(label_text, project, item, class_ids))

    return Layout(static=(StaticFile("obj.names", lambda keys: Generated(("darknet-names", names_bytes),
                                                                         constant(names_bytes))),
                          StaticFile("obj.data", data_node)),
                  per_split=(SplitFile(lambda key: f"{key}.txt", list_node),),
                  per_item=(image_file(lambda key: f"obj_{key}_data"),
                            ItemFile(lambda key: f"obj_{key}_data", label_node, label_name)),
                  names=functools.partial(item_names, escape=list_safe), split_labels=split_keys)
