"""What the identity/face view tests (WIDER Face, VGGFace2, Market-1501, LFW) expect, read from a
source project's JSON alone (no slyfs code)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

AREA_TYPES = ("rectangle", "polygon", "bitmap", "alpha_mask", "cuboid_2d", "oriented_bbox")


@dataclass(frozen=True)
class SourceImage:
    split: str  # the top-level dataset: the view's split under --split dataset
    dataset: str
    name: str
    ann: dict

    def tag(self, name: str) -> object:
        """The value of the image tag ``name`` (``True`` for a valueless one), None when absent."""
        for t in self.ann.get("tags", []):
            if t["name"] == name:
                return t["value"] if t.get("value") is not None else True
        return None

    def objects(self, class_title: str | None = None) -> list[dict]:
        return [o for o in self.ann.get("objects", []) if class_title is None or o["classTitle"] == class_title]


def source_images(root: Path) -> list[SourceImage]:
    """Every image of a project (each has an ``ann/<name>.json``), nested datasets included."""
    out = []
    for ann_dir in sorted(root.rglob("ann")):
        rel = ann_dir.parent.relative_to(root).as_posix()
        dataset = rel.replace("/datasets/", "/")
        for f in sorted(ann_dir.glob("*.json")):
            out.append(SourceImage(dataset.split("/")[0], dataset, f.name[:-5], json.loads(f.read_text("utf-8"))))
    return out


def class_shapes(root: Path) -> dict[str, dict]:
    return {c["title"]: c for c in json.loads((root / "meta.json").read_text("utf-8"))["classes"]}


def in_image(obj: dict, ann: dict) -> bool:
    """Whether any pixel of an object's extent lies inside the image."""
    pts = extent_points(obj)
    w, h = ann["size"]["width"], ann["size"]["height"]
    left, top = math.floor(min(p[0] for p in pts)), math.floor(min(p[1] for p in pts))
    right, bottom = math.floor(max(p[0] for p in pts)), math.floor(max(p[1] for p in pts))
    return right >= 0 and bottom >= 0 and left < w and top < h


def extent_points(obj: dict) -> list[tuple[float, float]]:
    from tests.test_voc import _points

    return _points(obj)
