#!/usr/bin/env python3
"""Generate a deterministic synthetic Supervisely image project, plain or blob form.

The output follows the layout the Supervisely SDK writes (see SDK_NOTES.md): ``meta.json``,
datasets with ``img/`` and ``ann/<item>.json``, nested datasets under ``<ds>/datasets/``, and in
blob form ``blob/<id>.tar`` plus ``<ds>/<id>_offsets.pkl``. Every geometry type, all four tag
value types, split tags, deliberate name collisions and thin shapes (slivers, 1-px lines drawn as
polygons, diagonal strips, a 1-px oriented box) are present. Same arguments give a
byte-identical tree. Only the standard library, numpy and pillow are used; never the SDK.

    python scripts/make_sample_project.py /tmp/proj --images 1000 --form blob --seed 0
"""

from __future__ import annotations

import argparse
import base64
import copyreg
import functools
import hashlib
import io
import json
import math
import os
import pickle
import random
import sys
import tarfile
import time
import types
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

FORMS = ("blob", "plain")
TAR_MEMBERS_MAX = 50_000  # members per blob tar before the next tar is started
PICKLE_LIST_MAX = 10_000  # BlobImageInfo entries per pickled list (the SDK's batch size)
FIRST_TAR_ID = 1001
SDK_BLOB_MODULE = "supervisely.api.image_api"
CREATED_AT = "2024-01-02T03:04:05.000Z"


# ----------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by its SDK full name (``train/extra``) and its share of the regular items."""

    name: str
    weight: float

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def rel_path(self) -> str:
        """Directory relative to the project: ``train/datasets/extra``."""
        return "/datasets/".join(self.name.split("/"))

    @property
    def top(self) -> str:
        return self.name.split("/", 1)[0]


DATASETS = (
    DatasetSpec("train", 0.60),
    DatasetSpec("train/extra", 0.10),
    DatasetSpec("train/extra/deep", 0.05),
    DatasetSpec("val", 0.15),
    DatasetSpec("test", 0.10),
)
DS = {d.name: d for d in DATASETS}
IMG_INFO_DATASETS = ("test",)  # datasets that also get img_info/<item>.json


@dataclass(frozen=True)
class ItemSpec:
    """One image: its dataset, file name (extension included) and role."""

    dataset: DatasetSpec
    name: str
    role: str = "regular"  # regular | showcase (every geometry) | empty (no objects, no tags)

    @property
    def ext(self) -> str:
        return self.name.rsplit(".", 1)[-1]


# Always present whatever N: collisions, odd names, an every-geometry image, an empty one.
SPECIAL_ITEMS = (
    ItemSpec(DS["train"], "dup_0001.jpg"),
    ItemSpec(DS["train/extra"], "dup_0001.jpg"),  # same name, same top-level split
    ItemSpec(DS["val"], "dup_0001.jpg"),  # same name, other split
    ItemSpec(DS["val"], "same_stem_0001.jpg"),
    ItemSpec(DS["val"], "same_stem_0001.png"),  # same stem, other extension
    ItemSpec(DS["train"], "img with space 0001.jpg"),
    ItemSpec(DS["test"], "straße_ü_0001.jpg"),  # non-ASCII (PAX header in the tar)
    ItemSpec(DS["train/extra/deep"], "deep_0001.png"),
    ItemSpec(DS["train"], "showcase_0001.jpg", "showcase"),
    ItemSpec(DS["test"], "empty_0001.jpg", "empty"),
    ItemSpec(DS["val"], "mixed_0001.png"),  # blob form: stays a plain file in val/img/
)
MIXED_ITEM = ("val", "mixed_0001.png")
MIN_IMAGES = len(SPECIAL_ITEMS)


def plan_items(images: int) -> list[ItemSpec]:
    """All items, grouped by dataset in DATASETS order, sorted by name inside a dataset."""
    regular = images - len(SPECIAL_ITEMS)
    counts = [math.floor(regular * d.weight) for d in DATASETS]
    for i in range(regular - sum(counts)):
        counts[i % len(counts)] += 1
    by_ds: dict[str, list[ItemSpec]] = {d.name: [] for d in DATASETS}
    for item in SPECIAL_ITEMS:
        by_ds[item.dataset.name].append(item)
    for ds, count in zip(DATASETS, counts):
        for k in range(1, count + 1):
            ext = "png" if k % 8 == 0 else "jpg"
            by_ds[ds.name].append(ItemSpec(ds, f"{ds.short_name}_{k:06d}.{ext}"))
    return [item for d in DATASETS for item in sorted(by_ds[d.name], key=lambda it: it.name)]


# ----------------------------------------------------------------------------- meta.json

def _cls(title: str, shape: str, color: str, geometry_config: dict | None = None) -> dict:
    return {"title": title, "description": "", "shape": shape, "color": color,
            "geometry_config": geometry_config or {}, "hotkey": ""}


def _tag(name: str, value_type: str, color: str, applicable: str = "all",
         values: list[str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "value_type": value_type, "color": color}
    if values is not None:
        meta["values"] = values
    meta.update({"hotkey": "", "applicable_type": applicable, "classes": [], "target_type": "all"})
    return meta


# Keypoint template: platform-style opaque node ids, human labels, [x, y] layout in a unit box.
KEYPOINTS = (
    ("nose", (0.50, 0.08)), ("left_eye", (0.58, 0.04)), ("right_eye", (0.42, 0.04)),
    ("left_shoulder", (0.75, 0.30)), ("right_shoulder", (0.25, 0.30)),
    ("left_hip", (0.65, 0.70)), ("right_hip", (0.35, 0.70)),
)
KP_EDGES = (("nose", "left_eye"), ("nose", "right_eye"), ("left_shoulder", "right_shoulder"),
            ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"))


def _node_id(label: str) -> str:
    return "kp" + hashlib.sha1(label.encode()).hexdigest()[:10]


def _graph_config() -> dict:
    nodes = {_node_id(label): {"label": label, "loc": [round(x * 40), round(y * 80)], "color": "#0000FF"}
             for label, (x, y) in KEYPOINTS}
    edges = [{"src": _node_id(a), "dst": _node_id(b), "color": "#00FF00"} for a, b in KP_EDGES]
    return {"nodes": nodes, "edges": edges}


def build_meta(format_tags: bool = False) -> dict:
    """The project meta: every shape, a keypoint template, every tag value type; with
    ``format_tags``, also the tags and face classes that identity, text and tracking formats read."""
    classes = [
        _cls("car", "rectangle", "#FF0000"),
        _cls("traffic sign", "rectangle", "#008080"),
        _cls("building", "polygon", "#00FF00"),
        _cls("road", "bitmap", "#0000FF"),
        _cls("lane", "line", "#FFFF00"),
        _cls("pin", "point", "#FF00FF"),
        _cls("person_kp", "graph", "#00FFFF", _graph_config()),
        _cls("smoke", "alpha_mask", "#808080"),
        _cls("box3d", "cuboid_2d", "#FF8000"),
        _cls("rotated", "oriented_bbox", "#8000FF"),
        _cls("vehicle", "any", "#404000"),
    ]
    tags = [
        _tag("train", "none", "#1E8C3C", "imagesOnly"),
        _tag("val", "none", "#828C96", "imagesOnly"),
        _tag("test", "none", "#B4323C", "imagesOnly"),
        _tag("reviewed", "none", "#0A141E"),
        _tag("caption", "any_string", "#A0AAB4", "imagesOnly"),
        _tag("weather", "oneof_string", "#646E78", "imagesOnly", ["sunny", "rainy", "cloudy"]),
        _tag("confidence", "any_number", "#46505A"),
        _tag("comment", "any_string", "#28323C", "objectsOnly"),
        _tag("difficult", "none", "#C8503C", "objectsOnly"),
        _tag("truncated", "none", "#50C83C", "objectsOnly"),
        _tag("occluded", "oneof_string", "#3C50C8", "objectsOnly", ["0", "1"]),
    ]
    if format_tags:
        classes += format_classes()
        tags += format_tag_metas()
    return {"classes": classes, "tags": tags,
            "projectSettings": {"multiView": {"enabled": False, "tagName": None, "tagId": None,
                                              "isSynced": False}}}


# ----------------------------------------------------------------------------- format tags

# Face landmarks in the order VGGFace2 and LFW list them, laid out in a unit face box.
FACE_LANDMARKS = (("left_eye", (0.30, 0.35)), ("right_eye", (0.70, 0.35)), ("nose", (0.50, 0.55)),
                  ("mouth_left", (0.35, 0.78)), ("mouth_right", (0.65, 0.78)))
IDENTITIES = ("Ana Lima", "Bo_Chen", "Zoë Kraft", "Jean-Luc", "Ola Nordmann", "Priya K", "Tomás",
              "Yuki_Sato")
SPECIES = ("cat", "dog", "red fox")
WORDS = ("STOP", "Main St", "exit", 'say "hi"', "one, two", "café", "42", "OPEN 24h")


def format_classes() -> list[dict]:
    """The face box and landmark classes of ``--format-tags``."""
    nodes = {_node_id(f"face:{label}"): {"label": label, "loc": [round(x * 40), round(y * 40)],
                                         "color": "#00AA00"} for label, (x, y) in FACE_LANDMARKS}
    return [_cls("face", "rectangle", "#C04000"),
            _cls("face_landmarks", "graph", "#00C040", {"nodes": nodes, "edges": []})]


def format_tag_metas() -> list[dict]:
    """The tags of ``--format-tags``; ``text`` may be on images (a crop's word) and objects."""
    return [
        _tag("identity", "any_string", "#A01010", "imagesOnly"),
        _tag("person_id", "any_number", "#A01020", "imagesOnly"),
        _tag("camera_id", "any_number", "#A01030", "imagesOnly"),
        _tag("sequence", "any_number", "#A01040", "imagesOnly"),
        _tag("frame", "any_number", "#A01050", "imagesOnly"),
        _tag("query", "none", "#A01060", "imagesOnly"),
        _tag("text", "any_string", "#A01070"),
        _tag("species", "oneof_string", "#A01080", "imagesOnly", list(SPECIES)),
        _tag("pair_with", "any_string", "#A01090", "imagesOnly"),
        _tag("track_id", "any_number", "#A010A0", "objectsOnly"),
        _tag("score", "any_number", "#A010B0", "objectsOnly"),
        _tag("is_crowd", "none", "#A010C0", "objectsOnly"),
        _tag("is_group_of", "none", "#A010D0", "objectsOnly"),
        _tag("visibility", "any_number", "#A010E0", "objectsOnly"),
        _tag("ignored", "none", "#A010F0", "objectsOnly"),
    ]


TEXT_SHAPES = ("rectangle", "polygon", "oriented_bbox")


def face_objects(rng: random.Random, w: int, h: int) -> list[dict]:
    """One face box with its five landmarks, sometimes a second face (more than one-face formats hold)."""
    out = []
    for _ in range(2 if rng.random() < 0.06 else 1):
        left, top, right, bottom = _box(rng, w, h, 0.5, min_size=8)
        out.append(_label("face", "rectangle", {"points": {"exterior": [[left, top], [right, bottom]],
                                                           "interior": []}}, []))
        nodes = {_node_id(f"face:{label}"): {"loc": [round(left + fx * (right - left)),
                                                      round(top + fy * (bottom - top))]}
                 for label, (fx, fy) in FACE_LANDMARKS}
        out.append(_label("face_landmarks", "graph", {"nodes": nodes}, []))
    return out


def add_format_tags(ann: dict, rng: random.Random, partner: str | None) -> None:
    """Adds the identity, camera, text, class and pair image tags, the track, text, score and flag
    object tags, and faces to one annotation. ``partner``: the file name of an
    earlier image of the same dataset, for an explicit pair."""
    person = rng.randrange(len(IDENTITIES))
    tags = ann["tags"]
    if rng.random() < 0.85:
        tags += [{"name": "identity", "value": IDENTITIES[person]}, {"name": "person_id", "value": person + 1},
                 {"name": "camera_id", "value": rng.randint(1, 6)}, {"name": "sequence", "value": rng.randint(1, 3)},
                 {"name": "frame", "value": rng.randint(0, 9999)}]
        if rng.random() < 0.1:
            tags.append({"name": "query"})
    if rng.random() < 0.6:
        tags.append({"name": "text", "value": rng.choice(WORDS)})
    if rng.random() < 0.7:
        tags.append({"name": "species", "value": rng.choice(SPECIES)})
    if partner is not None and rng.random() < 0.15:
        tags.append({"name": "pair_with", "value": partner})
    for track, obj in enumerate(ann["objects"], 1):
        extra = obj["tags"]
        if rng.random() < 0.9:
            extra.append({"name": "track_id", "value": track})
        if obj["geometryType"] in TEXT_SHAPES and rng.random() < 0.5:
            extra.append({"name": "text", "value": rng.choice(WORDS)})
        if rng.random() < 0.3:
            extra.append({"name": "score", "value": round(rng.uniform(0.05, 1.0), 2)})
        if rng.random() < 0.3:
            extra.append({"name": "visibility", "value": round(rng.random(), 2)})
        for flag, chance in (("is_crowd", 0.05), ("is_group_of", 0.05), ("ignored", 0.05)):
            if rng.random() < chance:
                extra.append({"name": flag})
    if rng.random() < 0.8:
        ann["objects"] += face_objects(rng, ann["size"]["width"], ann["size"]["height"])


# ----------------------------------------------------------------------------- images

@dataclass(frozen=True)
class ImageKind:
    """Pool parameters for one --image-kind."""

    width: tuple[int, int]  # inclusive range
    height: tuple[int, int]
    jpeg_quality: int
    jpeg_noise: int  # +- uniform noise amplitude added to JPEG pixels
    png_noise_bits: int  # low bits of PNG pixels replaced by noise
    pool: int  # distinct encoded images per extension


IMAGE_KINDS = {
    "tiny": ImageKind((32, 40), (24, 30), 50, 0, 0, 16),
    "small": ImageKind((96, 160), (64, 120), 80, 12, 0, 32),
    "large": ImageKind((580, 660), (430, 490), 93, 80, 4, 12),
}


@dataclass(frozen=True)
class PoolImage:
    """An encoded image and its size."""

    data: bytes
    width: int
    height: int

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _render(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A gradient with a few flat shapes, as uint8 RGB."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 215, 3).astype(np.float32)
    slope = rng.uniform(-120, 120, (3, 2)).astype(np.float32)
    arr = base + slope[:, 0] * (x / w)[..., None] + slope[:, 1] * (y / h)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, w, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, h, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(2) else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return np.asarray(img)


def build_pool(kind: str, ext: str, seed: int) -> list[PoolImage]:
    """Distinct encoded images for one kind and extension, reused by the items."""
    spec = IMAGE_KINDS[kind]
    rng = np.random.default_rng([seed, list(IMAGE_KINDS).index(kind), ("jpg", "png").index(ext)])
    pool = []
    for _ in range(spec.pool):
        w = int(rng.integers(spec.width[0], spec.width[1] + 1))
        h = int(rng.integers(spec.height[0], spec.height[1] + 1))
        arr = _render(rng, w, h)
        buf = io.BytesIO()
        if ext == "jpg":
            if spec.jpeg_noise:
                noise = rng.integers(-spec.jpeg_noise, spec.jpeg_noise + 1, arr.shape, dtype=np.int16)
                arr = np.clip(arr + noise, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(buf, "JPEG", quality=spec.jpeg_quality, subsampling=0)
        else:
            if spec.png_noise_bits:
                low = (1 << spec.png_noise_bits) - 1
                arr = (arr & ~np.uint8(low)) | rng.integers(0, low + 1, arr.shape, dtype=np.uint8)
            Image.fromarray(arr).save(buf, "PNG")
        pool.append(PoolImage(buf.getvalue(), w, h))
    return pool


# ----------------------------------------------------------------------------- geometries

SHAPE_FIRST = {"polygon", "line", "bitmap", "alpha_mask"}  # the SDK's key order per geometry


def _label(cls: str, shape: str, geometry: dict, tags: list[dict], instance: str | None = None) -> dict:
    """One object in the SDK's key order."""
    obj: dict[str, Any] = {"classTitle": cls, "description": "", "tags": tags, **geometry}
    if shape in SHAPE_FIRST:
        obj.update({"shape": shape, "geometryType": shape})
    else:
        obj.update({"geometryType": shape, "shape": shape})
    obj.update({"nnCreated": False, "nnUpdated": False})
    if instance is not None:
        obj["instance"] = instance
    return obj


def _box(rng: random.Random, w: int, h: int, max_frac: float = 0.6,
         min_size: int = 2) -> tuple[int, int, int, int]:
    """A random inclusive box [l, t, r, b] inside the image, at least min_size pixels a side."""
    bw = rng.randint(min(min_size, w), max(min(min_size, w), int(w * max_frac)))
    bh = rng.randint(min(min_size, h), max(min(min_size, h), int(h * max_frac)))
    left, top = rng.randint(0, w - bw), rng.randint(0, h - bh)
    return left, top, left + bw - 1, top + bh - 1


def _pt(rng: random.Random, w: int, h: int) -> list[int]:
    return [rng.randint(0, w - 1), rng.randint(0, h - 1)]


def geo_rectangle(rng: random.Random, w: int, h: int) -> dict:
    left, top, right, bottom = _box(rng, w, h)
    return {"points": {"exterior": [[left, top], [right, bottom]], "interior": []}}


def _dedup(points: list[list[int]]) -> list[list[int]]:
    out = [p for i, p in enumerate(points) if p != points[i - 1]]
    return out if len(out) >= 3 else points


def geo_polygon(rng: random.Random, w: int, h: int, hole: bool) -> dict:
    """A star-convex polygon in a random box; with `hole`, a rectangular hole around its centre."""
    left, top, right, bottom = _box(rng, w, h, 0.7, min_size=6)
    cx, cy, rx, ry = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
    n = rng.randint(5, 9)
    exterior = []
    for k in range(n):
        a = 2 * math.pi * (k + rng.uniform(-0.3, 0.3)) / n
        r = rng.uniform(0.8, 1.0)
        exterior.append([round(cx + r * rx * math.cos(a)), round(cy + r * ry * math.sin(a))])
    interior = []
    hx, hy = int(rx * 0.3), int(ry * 0.3)
    if hole and hx >= 1 and hy >= 1:
        x0, y0, x1, y1 = round(cx) - hx, round(cy) - hy, round(cx) + hx, round(cy) + hy
        interior.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return {"points": {"exterior": _dedup(exterior), "interior": interior}}


def geo_line(rng: random.Random, w: int, h: int) -> dict:
    return {"points": {"exterior": [_pt(rng, w, h) for _ in range(rng.randint(2, 5))], "interior": []}}


def geo_point(rng: random.Random, w: int, h: int) -> dict:
    return {"points": {"exterior": [_pt(rng, w, h)], "interior": []}}


def geo_graph(rng: random.Random, w: int, h: int, disable: bool, drop: bool) -> dict:
    """Keypoints laid out in a random box; optionally one node disabled and one left out."""
    left, top, right, bottom = _box(rng, w, h, 0.8)
    labels = [label for label, _ in KEYPOINTS]
    disabled = rng.choice(labels) if disable else None
    dropped = rng.choice([lb for lb in labels if lb != disabled]) if drop else None
    nodes = {}
    for label, (fx, fy) in KEYPOINTS:
        if label == dropped:
            continue
        node: dict[str, Any] = {"loc": [round(left + fx * (right - left)), round(top + fy * (bottom - top))]}
        if label == disabled:
            node["disabled"] = True
        nodes[_node_id(label)] = node
    return {"nodes": nodes}


CUBOID_VERTICES = ("topleft", "topright", "bottomright", "bottomleft")


def geo_cuboid(rng: random.Random, w: int, h: int) -> dict:
    """Front face and a shifted back face, all 8 vertices inside the image."""
    left, top, right, bottom = _box(rng, max(2, w * 3 // 4), max(2, h * 3 // 4))
    dx, dy = rng.randint(0, w - 1 - right), rng.randint(0, h - 1 - bottom)
    vertices = {}
    for face, (ox, oy) in (("face1", (0, 0)), ("face2", (dx, dy))):
        corners = ([left, top], [right, top], [right, bottom], [left, bottom])
        for vname, (x, y) in zip(CUBOID_VERTICES, corners):
            vertices[f"{face}-{vname}"] = {"loc": [x + ox, y + oy]}
    return {"vertices": vertices}


def geo_oriented_bbox(rng: random.Random, w: int, h: int) -> dict:
    """An axis-aligned box and a clockwise angle whose rotated corners stay in the image."""
    left, top, right, bottom = _box(rng, w, h, 0.5)
    angle = round(rng.uniform(-0.8, 0.8), 4)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    for _ in range(4):
        c, s = math.cos(angle), math.sin(angle)
        corners = [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c)
                   for x, y in ((left, top), (right, top), (right, bottom), (left, bottom))]
        if all(0 <= x <= w - 1 and 0 <= y <= h - 1 for x, y in corners):
            break
        angle = round(angle / 2, 4)
    else:
        angle = 0.0
    return {"points": [[left, top], [right, bottom]], "angle": angle}


def _ellipse(mw: int, mh: int, box: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    y, x = np.mgrid[0:mh, 0:mw]
    rx, ry = max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    return ((x - (x0 + x1) / 2) / rx) ** 2 + ((y - (y0 + y1) / 2) / ry) ** 2 <= 1.0


def _png(img: Image.Image, **params: Any) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii")


@functools.cache
def bitmap_data(mw: int, mh: int, variant: int) -> tuple[str, int, int]:
    """A 1-bit mask drawn in an mw x mh box, cropped to its tight bbox like sly.Bitmap.

    Variants: 0 ellipse, 1 ring (a hole), 2 two blobs (two components), 3 ellipse with wide
    margins. Returns (data, dx, dy): data = base64(zlib(png)), (dx, dy) the crop offset.
    """
    margin = (mw * 0.25, mh * 0.25) if variant == 3 else (mw * 0.05, mh * 0.05)
    outer = (margin[0], margin[1], mw - 1 - margin[0], mh - 1 - margin[1])
    mask = _ellipse(mw, mh, outer)
    if variant == 1:
        cx, cy = (mw - 1) / 2, (mh - 1) / 2
        mask &= ~_ellipse(mw, mh, (cx - mw * 0.2, cy - mh * 0.2, cx + mw * 0.2, cy + mh * 0.2))
    elif variant == 2:
        mask = (_ellipse(mw, mh, (0, 0, mw * 0.4, mh * 0.4))
                | _ellipse(mw, mh, (mw * 0.6, mh * 0.6, mw - 1, mh - 1)))
    if not mask.any():
        mask[mh // 2, mw // 2] = True
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    cropped = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.uint8)
    img = Image.frombytes("P", (cropped.shape[1], cropped.shape[0]), cropped.tobytes())
    img.putpalette([0, 0, 0, 255, 255, 255])
    return _png(img, bits=1, transparency=0), int(cols[0]), int(rows[0])


@functools.cache
def alpha_data(mw: int, mh: int) -> str:
    """An 8-bit radial alpha mask (0 at the box edge, 255 in the centre), not cropped."""
    y, x = np.mgrid[0:mh, 0:mw]
    d = np.hypot((x - (mw - 1) / 2) / (mw / 2), (y - (mh - 1) / 2) / (mh / 2))
    alpha = np.clip((1.0 - d) * 320, 0, 255).astype(np.uint8)
    return _png(Image.fromarray(alpha), transparency=0)


def _mask_box(rng: random.Random, w: int, h: int) -> tuple[int, int, int, int]:
    """Origin and size of a mask box inside the image (at most 128 px a side)."""
    mw = rng.randint(2, max(2, min(128, w // 2)))
    mh = rng.randint(2, max(2, min(128, h // 2)))
    return rng.randint(0, w - mw), rng.randint(0, h - mh), mw, mh


def geo_bitmap(rng: random.Random, w: int, h: int) -> dict:
    x, y, mw, mh = _mask_box(rng, w, h)
    data, dx, dy = bitmap_data(mw, mh, rng.randrange(4))
    return {"bitmap": {"origin": [x + dx, y + dy], "data": data}}


def geo_alpha_mask(rng: random.Random, w: int, h: int) -> dict:
    x, y, mw, mh = _mask_box(rng, w, h)
    return {"bitmap": {"origin": [x, y], "data": alpha_data(mw, mh)}}


# ----------------------------------------------------------------------------- annotations

CAPTIONS = ("a car near a building", "an empty road at dusk", "two people crossing the street",
            "smoke above the roofs", "a café with a red awning")
COMMENTS = ("check later", "partially hidden", "blurry")


def object_tags(rng: random.Random) -> list[dict]:
    """Object tags: difficult/truncated (none), occluded (oneof), confidence (number), comment."""
    tags: list[dict] = []
    if rng.random() < 0.1:
        tags.append({"name": "difficult"})
    if rng.random() < 0.1:
        tags.append({"name": "truncated"})
    if rng.random() < 0.2:
        tags.append({"name": "occluded", "value": rng.choice(["0", "1"])})
    if rng.random() < 0.2:
        tags.append({"name": "confidence", "value": round(rng.uniform(0.3, 1.0), 2)})
    if rng.random() < 0.05:
        tags.append({"name": "comment", "value": rng.choice(COMMENTS)})
    return tags


def image_tags(rng: random.Random, top: str) -> list[dict]:
    """Image tags: a split tag (mostly the item's top-level dataset), weather, caption, ..."""
    tags: list[dict] = []
    if rng.random() < 0.95:
        split = top if rng.random() < 0.9 else rng.choice([s for s in ("train", "val", "test") if s != top])
        tags.append({"name": split})
    if rng.random() < 0.5:
        tags.append({"name": "weather", "value": rng.choice(["sunny", "rainy", "cloudy"])})
    if rng.random() < 0.3:
        tags.append({"name": "reviewed"})
    if rng.random() < 0.3:
        tags.append({"name": "caption", "value": rng.choice(CAPTIONS)})
    if rng.random() < 0.2:
        value = rng.randint(1, 100) if rng.random() < 0.5 else round(rng.random(), 3)
        tags.append({"name": "confidence", "value": value})
    return tags


# (class, shape) -> weight for random objects; "vehicle" (shape any) is handled separately.
RANDOM_OBJECTS = {
    ("car", "rectangle"): 20, ("traffic sign", "rectangle"): 8, ("building", "polygon"): 14,
    ("road", "bitmap"): 10, ("lane", "line"): 8, ("pin", "point"): 8, ("person_kp", "graph"): 8,
    ("smoke", "alpha_mask"): 5, ("box3d", "cuboid_2d"): 5, ("rotated", "oriented_bbox"): 6,
    ("vehicle", "any"): 8,
}


GeometryMaker = Callable[[random.Random, int, int], dict]

# One random geometry of each shape inside a w x h image (flags drawn before the shape, as always).
GEOMETRIES: dict[str, GeometryMaker] = {
    "rectangle": geo_rectangle,
    "polygon": lambda rng, w, h: geo_polygon(rng, w, h, hole=rng.random() < 0.3),
    "bitmap": geo_bitmap,
    "line": geo_line,
    "point": geo_point,
    "graph": lambda rng, w, h: geo_graph(rng, w, h, disable=rng.random() < 0.2, drop=rng.random() < 0.1),
    "alpha_mask": geo_alpha_mask,
    "cuboid_2d": geo_cuboid,
    "oriented_bbox": geo_oriented_bbox,
}


def make_geometry(rng: random.Random, shape: str, w: int, h: int) -> dict:
    """A random geometry of one shape inside a w x h image."""
    return GEOMETRIES[shape](rng, w, h)


def vehicle_labels(rng: random.Random, w: int, h: int, bind: str | None) -> list[dict]:
    """Labels of the `any` class: one rectangle, polygon or bitmap, or a bound rectangle + polygon."""
    if bind is not None:
        left, top, right, bottom = _box(rng, w, h)
        inner = [[left + (right - left) // 4, top + (bottom - top) // 4],
                 [right - (right - left) // 4, top + (bottom - top) // 4],
                 [right - (right - left) // 4, bottom - (bottom - top) // 4],
                 [left + (right - left) // 4, bottom - (bottom - top) // 4]]
        rect = {"points": {"exterior": [[left, top], [right, bottom]], "interior": []}}
        poly = {"points": {"exterior": inner, "interior": []}}
        return [_label("vehicle", "rectangle", rect, [], bind), _label("vehicle", "polygon", poly, [], bind)]
    shape = rng.choice(["rectangle", "polygon", "bitmap"])
    return [_label("vehicle", shape, make_geometry(rng, shape, w, h), object_tags(rng))]


def showcase_objects(rng: random.Random, w: int, h: int) -> list[dict]:
    """Every geometry at least once, with the variants a reader must handle."""
    objects = [
        _label("car", "rectangle", geo_rectangle(rng, w, h), [{"name": "difficult"}, {"name": "truncated"}]),
        _label("traffic sign", "rectangle",
               {"points": {"exterior": [[0, 0], [w - 1, h - 1]], "interior": []}},
               [{"name": "occluded", "value": "1"}]),
        _label("building", "polygon", geo_polygon(rng, w, h, hole=False), []),
        _label("road", "bitmap", geo_bitmap(rng, w, h), [{"name": "comment", "value": "bitmap"}]),
        _label("lane", "line", geo_line(rng, w, h), []),
        _label("pin", "point", geo_point(rng, w, h), [{"name": "confidence", "value": 0.5}]),
        _label("person_kp", "graph", geo_graph(rng, w, h, disable=True, drop=False), []),
        _label("person_kp", "graph", geo_graph(rng, w, h, disable=False, drop=True), []),
        _label("smoke", "alpha_mask", geo_alpha_mask(rng, w, h), []),
        _label("box3d", "cuboid_2d", geo_cuboid(rng, w, h), []),
        _label("rotated", "oriented_bbox", geo_oriented_bbox(rng, w, h), []),
    ]
    # A polygon with a hole, drawn on half the image so the hole always fits.
    cx, cy, hx, hy = w // 2, h // 2, max(4, w // 4), max(4, h // 4)
    hole_poly = {"points": {
        "exterior": [[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]],
        "interior": [[[cx - hx // 2, cy - hy // 2], [cx + hx // 2, cy - hy // 2],
                      [cx + hx // 2, cy + hy // 2], [cx - hx // 2, cy + hy // 2]]]}}
    objects.append(_label("building", "polygon", hole_poly, [{"name": "comment", "value": "courtyard"}]))
    objects += vehicle_labels(rng, w, h, bind="bind-1")
    for shape in ("rectangle", "polygon", "bitmap"):
        objects.append(_label("vehicle", shape, make_geometry(rng, shape, w, h), []))
    return objects + thin_objects(w, h)


def thin_objects(w: int, h: int) -> list[dict]:
    """Shapes whose outline through their vertices' pixel centres encloses few or no pixel
    centres, though Supervisely draws them pixels (boundary included): a 3x2-px sliver, 1-px
    lines drawn as polygons (horizontal, vertical, diagonal: all vertices on one line), a 1-px
    diagonal strip, and an oriented box one pixel tall. Fixed positions, inside any image kind."""

    def polygon(points: list[list[int]]) -> dict:
        return _label("building", "polygon", {"points": {"exterior": points, "interior": []}}, [])

    x, y = w // 8, h - 3
    d = min(w, h) // 2
    sx, sy, k = w // 3, h // 2, min(w // 4, h // 3)
    ox, oy = w // 4, h * 3 // 4
    return [
        polygon([[x + 1, y], [x + 3, y], [x + 1, y + 1], [x, y]]),
        polygon([[2, h // 8], [w - 3, h // 8], [w // 2, h // 8]]),
        polygon([[w - 2, 1], [w - 2, h - 2], [w - 2, h // 2]]),
        polygon([[w // 4, h // 4], [w // 4 + d, h // 4 + d], [w // 4 + d // 2, h // 4 + d // 2]]),
        polygon([[sx, sy], [sx + 2 * k, sy + k], [sx + 2 * k + 1, sy + k], [sx + 1, sy]]),
        _label("rotated", "oriented_bbox", {"points": [[ox, oy], [ox + w // 3, oy]], "angle": 0.6}, []),
    ]


def make_annotation(item: ItemSpec, rng: random.Random, w: int, h: int) -> dict:
    """The ann JSON of one item."""
    tags: list[dict] = []
    objects: list[dict] = []
    if item.role == "showcase":
        tags = [{"name": item.dataset.top}, {"name": "weather", "value": "sunny"}, {"name": "reviewed"},
                {"name": "caption", "value": CAPTIONS[0]}, {"name": "confidence", "value": 0.93}]
        objects = showcase_objects(rng, w, h)
    elif item.role == "regular":
        tags = image_tags(rng, item.dataset.top)
        count = 0 if rng.random() < 0.12 else rng.randint(1, 6)
        binds = 0
        for cls, shape in rng.choices(list(RANDOM_OBJECTS), list(RANDOM_OBJECTS.values()), k=count):
            if shape == "any":
                bind = None
                if rng.random() < 0.3:
                    binds += 1
                    bind = f"bind-{binds}"
                objects += vehicle_labels(rng, w, h, bind)
            else:
                objects.append(_label(cls, shape, make_geometry(rng, shape, w, h), object_tags(rng)))
    return {"description": "", "size": {"height": h, "width": w}, "tags": tags, "objects": objects,
            "customBigData": {}}


def img_info(item: ItemSpec, image: PoolImage, item_id: int, dataset_id: int, labels: int) -> dict:
    """An SDK ImageInfo._asdict() for img_info/<item>.json."""
    ext = "png" if item.ext == "png" else "jpeg"
    return {
        "id": item_id, "name": item.name, "link": None, "hash": image.sha256, "mime": f"image/{ext}",
        "ext": ext, "size": len(image.data), "width": image.width, "height": image.height,
        "labels_count": labels, "dataset_id": dataset_id, "created_at": CREATED_AT,
        "updated_at": CREATED_AT, "meta": {}, "path_original": None, "full_storage_url": None,
        "tags": [], "created_by": None, "related_data_id": None, "download_id": None,
        "offset_start": None, "offset_end": None, "ai_search_meta": None, "embeddings_updated_at": None,
        "project_id": 1, "description": None, "parent_id": None,
    }


# ----------------------------------------------------------------------------- blob form

class BlobImageInfo:
    """Stand-in for supervisely.api.image_api.BlobImageInfo; pickles to the SDK's exact opcodes."""

    __module__ = SDK_BLOB_MODULE

    def __init__(self, name: str, offset_start: int, offset_end: int) -> None:
        self.name, self.offset_start, self.offset_end = name, offset_start, offset_end

    def __reduce_ex__(self, protocol: int) -> tuple:
        state = {"name": self.name, "offset_start": self.offset_start, "offset_end": self.offset_end}
        return copyreg.__newobj__, (type(self),), state


@contextmanager
def _sdk_module_alias() -> Iterator[None]:
    """Let pickle find BlobImageInfo under the SDK's module name, for this block only.

    pickle imports the module (and so its parent packages) by name, then checks that the
    attribute is our class; stand-in modules are put in sys.modules and removed afterwards.
    """
    parts = SDK_BLOB_MODULE.split(".")
    names = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[SDK_BLOB_MODULE].BlobImageInfo = BlobImageInfo  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_offsets_pkl(path: Path, entries: list[tuple[str, int, int]]) -> None:
    """Several protocol-4 pickles concatenated, each a list of <= 10,000 BlobImageInfo."""
    with _sdk_module_alias(), open(path, "wb") as f:
        for i in range(0, len(entries), PICKLE_LIST_MAX):
            pickle.dump([BlobImageInfo(*e) for e in entries[i:i + PICKLE_LIST_MAX]], f, protocol=4)


class BlobWriter:
    """Appends members to blob/<id>.tar (PAX, mtime 0), starting a new tar every `cap` members."""

    def __init__(self, blob_dir: Path, cap: int) -> None:
        self.blob_dir, self.cap = blob_dir, cap
        self.tar_id = FIRST_TAR_ID - 1
        self.tar: tarfile.TarFile | None = None
        self.members = 0
        # (dataset rel path, tar stem) -> [(item name, offset_start, offset_end)], in insertion order
        self.offsets: dict[tuple[str, str], list[tuple[str, int, int]]] = {}

    def add(self, item: ItemSpec, data: bytes) -> None:
        if self.tar is None or self.members == self.cap:
            self.close()
            self.tar_id += 1
            tar_path = self.blob_dir / f"{self.tar_id}.tar"
            self.tar = tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 (open until close())
            self.members = 0
        info = tarfile.TarInfo(f"{item.dataset.name}/{item.name}")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self.tar.addfile(info, io.BytesIO(data))
        self.members += 1
        # After addfile the tar offset sits past the data padded to whole 512-byte blocks.
        start = self.tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        key = (item.dataset.rel_path, str(self.tar_id))
        self.offsets.setdefault(key, []).append((item.name, start, start + len(data)))

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None

    def write_offsets(self, root: Path) -> None:
        for (rel_path, stem), entries in self.offsets.items():
            write_offsets_pkl(root / rel_path / f"{stem}_offsets.pkl", entries)


# ----------------------------------------------------------------------------- project

def _dump_json(path: Path, data: dict) -> None:
    """JSON as the SDK writes it: indent=4, ensure_ascii, no trailing newline."""
    path.write_text(json.dumps(data, indent=4, ensure_ascii=True), encoding="ascii")


def make_project(out: Path, images: int, form: str = "blob", seed: int = 0, image_kind: str = "small",
                 *, tar_members: int = TAR_MEMBERS_MAX, format_tags: bool = False) -> Path:
    """Write a synthetic project with `images` items to `out` (must be empty or absent); return `out`.
    ``format_tags`` adds identities, transcriptions, track ids, class tags and faces (see
    :func:`add_format_tags`); without it the tree is what it always was."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, not {form!r}")
    if image_kind not in IMAGE_KINDS:
        raise ValueError(f"image_kind must be one of {tuple(IMAGE_KINDS)}, not {image_kind!r}")
    if images < MIN_IMAGES:
        raise ValueError(f"need at least {MIN_IMAGES} images (the fixed special items), got {images}")
    if tar_members < 1:
        raise ValueError("tar_members must be >= 1")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")

    pools = {ext: build_pool(image_kind, ext, seed) for ext in ("jpg", "png")}
    items = plan_items(images)
    out.mkdir(parents=True, exist_ok=True)
    _dump_json(out / "meta.json", build_meta(format_tags))
    for d in DATASETS:
        (out / d.rel_path / "ann").mkdir(parents=True)
        if form == "plain":
            (out / d.rel_path / "img").mkdir()
        if d.name in IMG_INFO_DATASETS:
            (out / d.rel_path / "img_info").mkdir()
    blobs = None
    if form == "blob":
        (out / "blob").mkdir()
        blobs = BlobWriter(out / "blob", tar_members)

    partners: dict[str, str] = {}  # dataset -> its latest tagged image, a pair's other half
    for index, item in enumerate(items):
        rng = random.Random(f"{seed}/{item.dataset.name}/{item.name}")
        pool = pools[item.ext]
        image = pool[rng.randrange(len(pool))]
        ann = make_annotation(item, rng, image.width, image.height)
        if format_tags and item.role != "empty":
            add_format_tags(ann, random.Random(f"{seed}/{item.dataset.name}/{item.name}/format-tags"),
                            partners.get(item.dataset.name))
            partners[item.dataset.name] = item.name
        ds_dir = out / item.dataset.rel_path
        _dump_json(ds_dir / "ann" / f"{item.name}.json", ann)
        if item.dataset.name in IMG_INFO_DATASETS:
            ds_id = 100 + DATASETS.index(item.dataset)
            info = img_info(item, image, 1_000_000 + index, ds_id, len(ann["objects"]))
            _dump_json(ds_dir / "img_info" / f"{item.name}.json", info)
        if blobs is None or (item.dataset.name, item.name) == MIXED_ITEM:
            (ds_dir / "img").mkdir(exist_ok=True)
            (ds_dir / "img" / item.name).write_bytes(image.data)
        else:
            blobs.add(item, image.data)
    if blobs is not None:
        blobs.close()
        blobs.write_offsets(out)
    return out


def _tree_bytes(root: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory (must be empty or absent)")
    parser.add_argument("--images", type=int, default=1000, help=f"number of images (>= {MIN_IMAGES})")
    parser.add_argument("--form", choices=FORMS, default="blob")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-kind", choices=tuple(IMAGE_KINDS), default="small",
                        help="tiny ~0.5-1 KB, small ~4 KB, large ~500 KB per image")
    parser.add_argument("--tar-members", type=int, default=TAR_MEMBERS_MAX,
                        help="blob form: members per tar before a new tar is started")
    parser.add_argument("--format-tags", action="store_true",
                        help="add identities, transcriptions, track ids, class tags and faces "
                             "(what identity, text and tracking formats read)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = make_project(args.out, args.images, args.form, args.seed, args.image_kind,
                           tar_members=args.tar_members, format_tags=args.format_tags)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    seconds = time.perf_counter() - started
    print(f"{args.images} images, {len(DATASETS)} datasets, {args.form}/{args.image_kind}, "
          f"{_tree_bytes(out):,} bytes, {seconds:.1f} s -> {out}")


if __name__ == "__main__":
    main()
