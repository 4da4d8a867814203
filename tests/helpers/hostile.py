"""Builders for small hostile Supervisely projects (each test writes its own under tmp_path): the
names readers split, strip or escape, in images, datasets, classes and transcriptions."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

CLASSES = ("car", "person")


def png(width: int = 10, height: int = 10, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def meta(classes: tuple[str, ...] = CLASSES) -> dict:
    return {"classes": [{"title": c, "shape": "any", "color": "#FF0000", "geometry_config": {}} for c in classes],
            "tags": []}


def rect(l: Any, t: Any, r: Any, b: Any, cls: str = "car") -> dict:
    return {"classTitle": cls, "geometryType": "rectangle", "tags": [],
            "points": {"exterior": [[l, t], [r, b]], "interior": []}}


def ann(*objects: dict, width: int = 10, height: int = 10) -> dict:
    return {"size": {"width": width, "height": height}, "tags": [], "objects": list(objects)}


def plain_project(root: Path, items: dict[str, Any], classes: tuple[str, ...] = CLASSES,
                  dataset: str = "ds", images: dict[str, bytes] | None = None) -> Path:
    """``items``: image name -> annotation (a dict is dumped as JSON, bytes written as they
    are, None = no annotation file). Every item gets a 10x10 PNG unless ``images`` says otherwise."""
    (root / dataset / "img").mkdir(parents=True)
    (root / dataset / "ann").mkdir()
    (root / "meta.json").write_text(json.dumps(meta(classes)))
    for name, a in items.items():
        (root / dataset / "img" / name).write_bytes((images or {}).get(name, png()))
        if a is not None:
            data = a if isinstance(a, bytes) else json.dumps(a).encode()
            (root / dataset / "ann" / f"{name}.json").write_bytes(data)
    return root


@dataclass
class BlobImageInfo:
    """Pickles exactly as the SDK's record does (a dataclass of supervisely.api.image_api)."""

    name: str
    offset_start: int
    offset_end: int


def offsets_pickle(entries: list[tuple[str, int, int]]) -> bytes:
    """Entries pickled as the SDK pickles them; the stand-in SDK modules pickle needs to find
    the class by name exist only while dumping (other tests assert no ``supervisely`` module)."""
    import pickle

    names = ("supervisely", "supervisely.api", "supervisely.api.image_api")
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]].BlobImageInfo = BlobImageInfo
    BlobImageInfo.__module__, BlobImageInfo.__qualname__ = names[-1], "BlobImageInfo"
    try:
        return pickle.dumps([BlobImageInfo(*e) for e in entries], protocol=4)
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


def blob_project(root: Path, images: dict[str, bytes], anns: dict[str, Any] | None = None,
                 dataset: str = "ds") -> tuple[Path, list[tuple[str, int, int]]]:
    """A blob project: one tar ``blob/1001.tar`` holding ``images``; returns (root, entries)."""
    (root / "blob").mkdir(parents=True)
    (root / dataset / "ann").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(meta()))
    tar_path = root / "blob" / "1001.tar"
    entries = []
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in images.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            entries.append((m.name, m.offset_data, m.offset_data + m.size))
    (root / dataset / "1001_offsets.pkl").write_bytes(offsets_pickle(entries))
    for name, a in (anns or {}).items():
        (root / dataset / "ann" / f"{name}.json").write_text(json.dumps(a))
    return root, entries


def tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (and its mode), by relative path."""
    import hashlib

    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {st.st_mode:o}"
    return out


ODD_IMAGES = ("back\\slash.png", 'com,ma "q" x.png', "ü" * 80 + ".png", "dup.png")
ODD_DATASETS = ("my_set.v2", "other")


def odd_names_project(root: Path, classes: tuple[str, ...], objects: Callable[[int], list[dict]]) -> Path:
    """The same four images (a backslash, a comma and quotes, a long non-ASCII name, a common name)
    in each of two datasets, one with ``_`` and ``.`` in its name; the k-th image has ``objects(k)``."""
    for dataset in ODD_DATASETS:
        plain_project(root, {name: ann(*objects(k)) for k, name in enumerate(ODD_IMAGES)},
                      classes=classes, dataset=dataset)
    return root


HOSTILE_NAMES = ("a b.png", "a, b.png", " lead.png", "x_y.png", "ü" * 122 + "a.png", "ü" * 122 + "b.png",
                 "dup.png", "dup.jpg", "gt_x.png", "x_GT.png", "labels.png", "Ω.png")
HOSTILE_TEXTS = ('say "hi", there\\', " ", "one, two", "", "tab\there", "#1")
HOSTILE_CLASSES = ("traffic sign", " lead", "a_b")


def hostile_text_project(root: Path) -> Path:
    """A plain project whose image, dataset and class names and transcriptions are what the
    text and tracking readers split or strip at; every object has a ``text`` and a ``track_id`` tag,
    three images in four a ``text`` tag."""
    items = {}
    for k, name in enumerate(HOSTILE_NAMES):
        objects = []
        for j, cls in enumerate(HOSTILE_CLASSES):
            obj = rect(j, j, j + 4 + k % 3, j + 5, cls)
            obj["tags"] = [{"name": "text", "value": HOSTILE_TEXTS[(k + j) % len(HOSTILE_TEXTS)]},
                           {"name": "track_id", "value": 1 + j}]
            objects.append(obj)
        items[name] = ann(*objects, width=12, height=12)
        if k % 4:
            items[name]["tags"] = [{"name": "text", "value": HOSTILE_TEXTS[k % len(HOSTILE_TEXTS)]}]
    plain_project(root, items, classes=HOSTILE_CLASSES, dataset="tr_ain x")
    data = meta(HOSTILE_CLASSES)
    data["tags"] = [{"name": "text", "value_type": "any_string", "color": "#000000", "id": 1},
                    {"name": "track_id", "value_type": "any_number", "color": "#000001", "id": 2}]
    (root / "meta.json").write_text(json.dumps(data))
    return root


def names_project(root: Path, classes: tuple[str, ...], items: dict[str, dict], black: int) -> Path:
    """A plain project of ``items`` in a dataset named ``my_train`` (a ``_`` readers split on) whose
    class ``black`` has the background's colour, for the mask views' name-mapping tests."""
    plain_project(root, items, classes=classes, dataset="my_train")
    meta = json.loads((root / "meta.json").read_text())
    meta["classes"][black]["color"] = "#000000"
    (root / "meta.json").write_text(json.dumps(meta))
    return root
