"""What the identity/face view tests (WIDER Face, VGGFace2, Market-1501, LFW) expect, read from a
source project's JSON alone (no slyfs code)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.source import meta_of, source_annotations

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
    return [SourceImage(a.top, a.dataset, a.name, a.data) for a in source_annotations(root)]


def class_shapes(root: Path) -> dict[str, dict]:
    return {c["title"]: c for c in meta_of(root)["classes"]}


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
