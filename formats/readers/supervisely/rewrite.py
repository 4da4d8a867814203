"""Supervisely JSON written back out, in the SDK's own style, for views that re-serve a project:
the same documents with some classes left out, or an empty annotation where the source has none."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from slyfs.formats.common.naming import encodable_text
from slyfs.formats.contract import SourceChanged
from slyfs.formats.model import Stamp
from slyfs.formats.readers.supervisely.project import load_json_file


def dumps(data: Any) -> bytes:
    """As the SDK writes its JSON: ``indent=4``, ASCII only, no final newline."""
    return json.dumps(data, indent=4, ensure_ascii=True).encode("ascii")


def _kept(title: Any, kept: Collection[str]) -> bool:
    """Whether a source title is one of the ``kept`` (model) titles, which the reader made encodable."""
    return isinstance(title, str) and encodable_text(title) in kept


def _load_object(path: str, stamp: Stamp | tuple[()] = ()) -> dict:
    """The JSON object at ``path``; ``stamp``: the version the view holds (a catalogued one may be
    out of date), another version raises SourceChanged before it is read."""
    def opened(now: Stamp) -> None:
        if stamp and not stamp.same_bytes(now):
            raise SourceChanged((path,))

    data = load_json_file(path, opened)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def annotation_with_classes(path: str, kept: Collection[str], stamp: Stamp | tuple[()] = ()) -> bytes:
    """The annotation file at ``path`` (in the version ``stamp``, see ``_load_object``) with only
    the objects of the ``kept`` classes."""
    data = _load_object(path, stamp)
    objects = data.get("objects")
    if isinstance(objects, list):
        data["objects"] = [o for o in objects if isinstance(o, dict) and _kept(o.get("classTitle"), kept)]
    return dumps(data)


def meta_with_classes(path: str, kept: Collection[str]) -> bytes:
    """``meta.json`` declaring only the ``kept`` classes; tag metas that list applicable
    classes list only kept ones. Everything else (tags, settings) is unchanged."""
    data = _load_object(path)
    if isinstance(data.get("classes"), list):
        data["classes"] = [c for c in data["classes"] if isinstance(c, dict) and _kept(c.get("title"), kept)]
    for tag in data.get("tags") or ():
        if isinstance(tag, dict) and isinstance(tag.get("classes"), list):
            tag["classes"] = [t for t in tag["classes"] if _kept(t, kept)]
    return dumps(data)


def empty_annotation(width: int, height: int) -> bytes:
    """What the SDK writes for an image without labels."""
    return dumps({"description": "", "size": {"height": height, "width": width},
                  "tags": [], "objects": [], "customBigData": {}})
