"""The YOLO detection view without FUSE: every number recomputed here from the raw JSON."""

from __future__ import annotations

import base64
import io
import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from slyfs.formats.common.naming import safe_name, unique_names
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.yolo import detect as yolo
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN
from tests.helpers.views import view_files

# The documented renaming of the fixture's collisions (README, "Names").
EXPECTED_NAMES = {
    ("train", "dup.jpg"): ("train", "train__dup.jpg"),
    ("train/sub", "dup.jpg"): ("train", "train__sub__dup.jpg"),
    ("val", "dup.jpg"): ("val", "dup_jpg.jpg"),
    ("val", "dup.png"): ("val", "dup_png.png"),
}


def _mask_extent(obj: dict, alpha: bool) -> tuple[int, int, int, int] | None:
    png = Image.open(io.BytesIO(zlib.decompress(base64.b64decode(obj["bitmap"]["data"]))))
    a = np.asarray(png.convert("L")) if alpha else np.asarray(png.convert("RGBA"))[:, :, 3]
    ys, xs = np.nonzero(a)
    if xs.size == 0:
        return None
    ox, oy = obj["bitmap"]["origin"]
    return ox + xs.min(), oy + ys.min(), ox + xs.max(), oy + ys.max()


def expected_box(obj: dict) -> tuple[float, float, float, float] | None:
    """Inclusive pixel extent of one raw object, by its own definition in SDK_NOTES §1.2."""
    kind = obj["geometryType"]
    if kind == "point":
        return None
    if kind in ("bitmap", "alpha_mask"):
        return _mask_extent(obj, kind == "alpha_mask")
    if kind == "graph":
        pts = [n["loc"] for n in obj["nodes"].values()]
    elif kind == "cuboid_2d":
        pts = [v["loc"] for v in obj["vertices"].values()]
    elif kind == "oriented_bbox":
        (l, t), (r, b) = obj["points"]
        cx, cy, a = (l + r) / 2, (t + b) / 2, obj["angle"]
        pts = [(cx + (x - cx) * math.cos(a) - (y - cy) * math.sin(a),
                cy + (x - cx) * math.sin(a) + (y - cy) * math.cos(a)) for x, y in ((l, t), (r, t), (r, b), (l, b))]
    else:  # rectangle, polygon, line
        pts = obj["points"]["exterior"]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return math.floor(min(xs)), math.floor(min(ys)), math.floor(max(xs)), math.floor(max(ys))


def expected_rows(ann: dict, class_names: list[str]) -> str:
    w, h = ann["size"]["width"], ann["size"]["height"]
    rows = []
    for obj in ann["objects"]:
        ext = expected_box(obj)
        if ext is None:
            continue
        l, t, r, b = ext
        x0, y0, x1, y1 = max(0, l), max(0, t), min(w, r + 1), min(h, b + 1)
        rows.append(f"{class_names.index(obj['classTitle'])} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                    f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n")
    return "".join(rows)


def source_anns(root: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for ann in root.rglob("ann/*.json"):
        ds = str(ann.parent.parent.relative_to(root)).replace("/datasets/", "/")
        out[(ds, ann.name[:-5])] = json.loads(ann.read_bytes())
    return out


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_labels_equal_independent_computation(root: Path) -> None:
    tree = VirtualTree(view_files(yolo, read_project(str(root)), ViewOptions()))
    names = [c["title"] for c in json.loads((root / "meta.json").read_text())["classes"]]
    anns = source_anns(root)
    assert len(anns) == 12
    for (ds, item), ann in anns.items():
        split, out_name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
        stem = out_name.rsplit(".", 1)[0]
        assert tree.read_file(f"labels/{split}/{stem}.txt").decode() == expected_rows(ann, names), (ds, item)
        assert tree.attr(f"images/{split}/{out_name}").size > 0
    labels = [p for p in tree.walk_files() if p.startswith("labels/")]
    images = [p for p in tree.walk_files() if p.startswith("images/")]
    assert len(labels) == len(images) == 12


def test_every_geometry_has_a_row_except_points() -> None:
    tree = VirtualTree(view_files(yolo, read_project(str(PLAIN)), ViewOptions()))
    rows = [r for p in tree.walk_files() if p.startswith("labels/") for r in tree.read_file(p).decode().splitlines()]
    kinds = {o["geometryType"] for a in source_anns(PLAIN).values() for o in a["objects"]}
    n_objects = sum(len(a["objects"]) for a in source_anns(PLAIN).values())
    n_points = sum(o["geometryType"] == "point" for a in source_anns(PLAIN).values() for o in a["objects"])
    assert len(kinds) == 9 and n_points == 2
    assert len(rows) == n_objects - n_points
    for row in rows:
        cls, *vals = row.split()
        assert cls.isdigit() and all(0.0 <= float(v) <= 1.0 for v in vals)


def test_data_yaml_names_in_meta_order_without_path() -> None:
    tree = VirtualTree(view_files(yolo, read_project(str(BLOB)), ViewOptions()))
    data = yaml.safe_load(tree.read_file("data.yaml"))
    meta = [c["title"] for c in json.loads((BLOB / "meta.json").read_text())["classes"]]
    assert data["names"] == dict(enumerate(meta)) and data["nc"] == len(meta)
    assert "path" not in data
    assert data["train"] == "images/train" and data["val"] == "images/val"


def test_split_by_tags(tmp_path: Path) -> None:
    project = read_project(str(PLAIN))
    tree = VirtualTree(view_files(yolo, project, ViewOptions(split="tags")))
    val = {p.rsplit("/", 1)[1] for p in tree.walk_files() if p.startswith("images/val/")}
    tagged = {item for (ds, item), a in source_anns(PLAIN).items() if any(t["name"] == "val" for t in a["tags"])}
    # the tagged items' output names, collisions qualified by dataset
    assert val == {"img_006.png", "val_001.jpg", "dup_jpg.jpg", "dup_png.png"}
    assert tagged == {"img_006.png", "val_001.jpg", "dup.jpg", "dup.png"}
    train = [p for p in tree.walk_files() if p.startswith("images/train/")]
    assert len(train) == 12 - len(val)


def test_unique_names_rules() -> None:
    assert unique_names([("a", "x.jpg"), ("b", "x.jpg"), ("a", "y.png")]) == ["a__x.jpg", "b__x.jpg", "y.png"]
    assert unique_names([("a", "x.jpg"), ("a", "x.png")]) == ["x_jpg.jpg", "x_png.png"]
    assert unique_names([("a/b", "x.jpg"), ("a", "x.jpg")]) == ["a__b__x.jpg", "a__x.jpg"]
    # a real name equal to a qualified one: the later one in sorted order gets ~2
    assert unique_names([("a", "x.jpg"), ("b", "x.jpg"), ("a", "a__x.png")]) == ["a__x~2.jpg", "b__x.jpg", "a__x.png"]
    names = unique_names([("d", f"n{i % 3}.{'jpg' if i % 2 else 'png'}") for i in range(12)])
    assert len({n.rsplit(".", 1)[0] for n in names}) == 12


@pytest.mark.parametrize("raw, safe", [
    ("a/b.jpg", "a%2Fb.jpg"), ("..", "%2E%2E"), (".", "%2E"), ("", "%00"), ("x\x00y\n.png", "x%00y%0A.png"),
    (b"\xffz.jpg".decode("utf-8", "surrogateescape"), "%FFz.jpg"), ("straße ü.jpg", "straße ü.jpg"),
])
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_long_name_is_cut_to_255_bytes_and_stays_unique() -> None:
    a, b = safe_name("é" * 200 + "a.jpg"), safe_name("é" * 200 + "b.jpg")
    assert len(a.encode()) <= 255 and len(b.encode()) <= 255 and a != b and a.endswith(".jpg")
