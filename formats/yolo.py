"""YOLO (Ultralytics) detection view.

```
data.yaml                  names in meta.json order (or --classes order), no ``path:`` key
images/<split>/<name>      the source image bytes
labels/<split>/<stem>.txt  ``class cx cy w h`` per object with an extent, normalised
```
Every geometry with an extent is written as the box of the pixels it covers, cut to the
image; a point has none and is left out (counted in the log).
"""

from __future__ import annotations

import json

from formats.geometry import clipped_box, normalized_cxcywh
from formats.model import Item, Project
from formats.naming import split_ext, unique_names
from formats.nodes import Generated, Node, SourceBytes, Unavailable
from formats.view import ViewOptions, selected_classes, splits

VAL_NAMES = ("val", "validation", "valid")


def label_text(project: Project, item: Item, class_ids: dict[str, int]) -> bytes:
    ann = project.annotation(item)
    rows = []
    for label in ann.labels:
        cid = class_ids.get(label.class_title)
        box = clipped_box(label.geometry, ann.width, ann.height) if cid is not None else None
        if box is not None:
            cx, cy, w, h = normalized_cxcywh(box, ann.width, ann.height)
            rows.append(f"{cid} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(rows).encode()


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def data_yaml(names: list[str], split_names: list[str]) -> bytes:
    """Ultralytics needs ``train`` and ``val``: splits not named val/test train; with no
    val split the training images are also the validation set (said in a comment)."""
    val = [s for s in split_names if s in VAL_NAMES]
    test = [s for s in split_names if s == "test"]
    train = [s for s in split_names if s not in val and s not in test] or val or test
    lines = ["# YOLO (Ultralytics) dataset served by slyfs; paths are relative to this file's folder"]

    def key(k: str, dirs: list[str]) -> None:
        items = [_yaml_str(f"images/{d}") for d in dirs]
        lines.append(f"{k}: {items[0]}" if len(items) == 1 else f"{k}: [{', '.join(items)}]")

    key("train", train)
    if not val:
        lines.append("# no val split in the source: validating on the training images")
    key("val", val or train)
    if test:
        key("test", test)
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines.extend(f"  {i}: {_yaml_str(n)}" for i, n in enumerate(names))
    return ("\n".join(lines) + "\n").encode()


def image_node(item: Item) -> Node:
    if item.image is None:
        return Unavailable(f"{item.dataset}/{item.name}: no readable image bytes")
    return SourceBytes(item.image)


def build(project: Project, options: ViewOptions) -> dict[str, Node]:
    classes = selected_classes(project, options)
    class_ids = {c.title: i for i, c in enumerate(classes)}
    ids_key = tuple(class_ids.items())
    by_split = splits(project, options)
    files: dict[str, Node] = {}
    if not by_split:
        return {"data.yaml": Generated(("yolo-data", ids_key), lambda: data_yaml(list(class_ids), ["train"]))}
    yaml_bytes = data_yaml(list(class_ids), list(by_split))
    files["data.yaml"] = Generated(("yolo-data", yaml_bytes), lambda: yaml_bytes)
    for split, items in by_split.items():
        names = unique_names([(i.dataset, i.name) for i in items])
        for item, name in zip(items, names):
            files[f"images/{split}/{name}"] = image_node(item)
            files[f"labels/{split}/{split_ext(name)[0]}.txt"] = Generated(
                ("yolo-label", ids_key, item.dataset, item.name, item.fingerprint),
                lambda item=item: label_text(project, item, class_ids))
    return files
