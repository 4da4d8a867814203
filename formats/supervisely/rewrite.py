"""Supervisely JSON written back out, in the SDK's own style, for views that re-serve a project:
the same documents with some classes left out, or an empty annotation where the source has none."""

from __future__ import annotations

import json
from typing import Any, Collection

from formats.supervisely.project import load_json_file


def dumps(data: Any) -> bytes:
    """As the SDK writes its JSON: ``indent=4``, ASCII only, no final newline."""
    return json.dumps(data, indent=4, ensure_ascii=True).encode("ascii")


def _load_object(path: str) -> dict:
    data = load_json_file(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def annotation_with_classes(path: str, kept: Collection[str]) -> bytes:
    """The annotation file at ``path`` with only the objects of the ``kept`` classes."""
    data = _load_object(path)
    objects = data.get("objects")
    if isinstance(objects, list):
        data["objects"] = [o for o in objects if isinstance(o, dict) and o.get("classTitle") in kept]
    return dumps(data)


def meta_with_classes(path: str, kept: Collection[str]) -> bytes:
    """``meta.json`` declaring only the ``kept`` classes; tag metas that list applicable
    classes list only kept ones. Everything else (tags, settings) is unchanged."""
    data = _load_object(path)
    if isinstance(data.get("classes"), list):
        data["classes"] = [c for c in data["classes"] if isinstance(c, dict) and c.get("title") in kept]
    for tag in data.get("tags") or ():
        if isinstance(tag, dict) and isinstance(tag.get("classes"), list):
            tag["classes"] = [t for t in tag["classes"] if t in kept]
    return dumps(data)


def empty_annotation(width: int, height: int) -> bytes:
    """What the SDK writes for an image without labels."""
    return dumps({"description": "", "size": {"height": height, "width": width},
                  "tags": [], "objects": [], "customBigData": {}})
