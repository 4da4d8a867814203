"""yolo-seg, yolo-pose, yolo-obb and yolo-darknet: numbers recomputed here from the raw JSON,
the real readers (Ultralytics, Datumaro) on the output, the SDK's own exports, real mounts."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from slyfs.formats.model import Problem
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.formats.writers.yolo import darknet as yolo_darknet
from slyfs.formats.writers.yolo import obb as yolo_obb
from slyfs.formats.writers.yolo import pose as yolo_pose
from slyfs.formats.writers.yolo import segment as yolo_seg
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, SDK_REFERENCE, read_tree
from tests.helpers.readers import datumaro_detect, datumaro_import, require, ultralytics_load
from tests.helpers.views import view_files
from tests.test_yolo import EXPECTED_NAMES, expected_rows, source_anns

ROOTS = pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
AREA_KINDS = ("rectangle", "polygon", "bitmap", "alpha_mask", "cuboid_2d", "oriented_bbox")


def class_names(root: Path) -> list[str]:
    return [c["title"] for c in json.loads((root / "meta.json").read_text())["classes"]]


def template_order(root: Path, title: str) -> list[str]:
    cls = next(c for c in json.loads((root / "meta.json").read_text())["classes"] if c["title"] == title)
    return list(cls["geometry_config"]["nodes"])


def label_path(ds: str, item: str, folder: str = "labels") -> str:
    split, name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
    return f"{folder}/{split}/{name.rsplit('.', 1)[0]}.txt"


def rows_of(tree: VirtualTree, path: str) -> list[list[str]]:
    return [r.split() for r in tree.read_file(path).decode().splitlines()]


def mask_of(obj: dict, w: int, h: int) -> np.ndarray:
    """The object's pixels on the whole image, decoded here (base64 → zlib → PNG)."""
    png = Image.open(io.BytesIO(zlib.decompress(base64.b64decode(obj["bitmap"]["data"]))))
    alpha_mask = obj["geometryType"] == "alpha_mask"
    a = np.asarray(png.convert("L")) if alpha_mask else np.asarray(png.convert("RGBA"))[:, :, 3]
    out = np.zeros((h, w), bool)
    ox, oy = obj["bitmap"]["origin"]
    out[oy:oy + a.shape[0], ox:ox + a.shape[1]] = a[:h - oy, :w - ox] != 0
    return out


def polygon_mask(exterior: list, holes: list, w: int, h: int) -> np.ndarray:
    """Supervisely's rule: inside or on the border; a hole's inside is cleared, its border kept."""
    img = Image.new("1", (w, h), 0)
    d = ImageDraw.Draw(img)
    d.polygon([tuple(p) for p in exterior], fill=1, outline=1)
    for hole in holes:
        d.polygon([tuple(p) for p in hole], fill=0, outline=0)
        d.polygon([tuple(p) for p in hole], outline=1)
    return np.asarray(img, dtype=bool)


def row_mask(values: list[str], w: int, h: int) -> np.ndarray:
    """How Ultralytics rasterises a segment row (``polygon2mask``: denormalise, int32, fillPoly)."""
    from ultralytics.data.utils import polygon2mask
    xy = np.asarray(values, float).reshape(-1, 2) * [w, h]
    return polygon2mask((h, w), [xy.reshape(-1)]).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def rotated(obj: dict, grow: int) -> list[tuple[float, float]]:
    """Corners of an oriented_bbox (inclusive box grown by ``grow`` px right/down), turned clockwise."""
    (l, t), (r, b) = obj["points"]
    r, b = r + grow, b + grow
    cx, cy, a = (l + r) / 2, (t + b) / 2, obj["angle"]
    return [(cx + (x - cx) * math.cos(a) - (y - cy) * math.sin(a), cy + (x - cx) * math.sin(a) + (y - cy) * math.cos(a))
            for x, y in ((l, t), (r, t), (r, b), (l, b))]


def expected_segments(obj: dict, w: int, h: int) -> tuple[int, np.ndarray | None]:
    """(number of rows, pixels the rows must cover) for one raw object."""
    kind = obj["geometryType"]
    if kind not in AREA_KINDS:
        return 0, None
    if kind in ("bitmap", "alpha_mask"):
        m = mask_of(obj, w, h)
        return components(m), m
    if kind == "rectangle":
        (l, t), (r, b) = obj["points"]["exterior"]
        m = np.zeros((h, w), bool)
        m[t:b + 1, l:r + 1] = True
        return 1, m
    if kind == "polygon":
        return 1, polygon_mask(obj["points"]["exterior"], obj["points"]["interior"], w, h)
    if kind == "cuboid_2d":
        hull = cv2.convexHull(np.array([v["loc"] for v in obj["vertices"].values()], np.float32)).reshape(-1, 2)
        return 1, polygon_mask(hull.tolist(), [], w, h)
    return 1, polygon_mask(rotated(obj, 0), [], w, h)


def build(view, root: Path, **params: str) -> VirtualTree:
    return VirtualTree(view_files(view, read_project(str(root)), ViewOptions(params=params)))


# ------------------------------------------------------------------ yolo-seg


@ROOTS
def test_seg_rows_cover_each_objects_pixels(root: Path) -> None:
    require("ultralytics")
    tree = build(yolo_seg, root)
    names = class_names(root)
    checked = set()
    for (ds, item), ann in source_anns(root).items():
        w, h = ann["size"]["width"], ann["size"]["height"]
        rows = rows_of(tree, label_path(ds, item))
        assert all(len(r) >= 7 and len(r) % 2 == 1 for r in rows)  # polygons only, >= 3 points, never a box row
        assert all(0 < float(v) < 1 for r in rows for v in r[1:])
        for obj in ann["objects"]:
            n, pixels = expected_segments(obj, w, h)
            mine, rows = rows[:n], rows[n:]
            assert {int(r[0]) for r in mine} <= {names.index(obj["classTitle"])}, (item, obj["geometryType"])
            if pixels is not None:
                drawn = np.logical_or.reduce([row_mask(r[1:], w, h) for r in mine])
                assert iou(drawn, pixels) > 0.9, (item, obj["geometryType"], iou(drawn, pixels))
                checked.add(obj["geometryType"])
            if obj["geometryType"] == "rectangle":  # exactly its corners, at pixel centres
                (l, t), (r, b) = obj["points"]["exterior"]
                xs, ys = [(l + .5) / w, (r + .5) / w], [(t + .5) / h, (b + .5) / h]
                assert mine[0][1:] == [f"{v:.6f}" for v in (xs[0], ys[0], xs[1], ys[0], xs[1], ys[1], xs[0], ys[1])]
        assert rows == [], item  # lines, points and graphs have no row
    assert checked == set(AREA_KINDS)


def test_seg_mask_round_trip_is_exact_and_holes_are_cut_out() -> None:
    """A traced mask (several components, holes, an island in a hole) rasterises back the same."""
    require("ultralytics")
    from slyfs.formats.common.contours import bridge_holes, trace_mask
    w, h = 90, 60
    m = np.zeros((h, w), bool)
    m[5:50, 10:80] = True
    m[15:30, 20:40] = False
    m[20:25, 25:30] = True  # island in the hole
    m[40:45, 50:60] = False
    m[55, 3:9] = True  # one pixel thin: two contour points
    m[58, 70] = True  # a single pixel
    drawn = np.zeros_like(m)
    regions = trace_mask(m)
    assert len(regions) == components(m) == 4
    for r in regions:
        row = yolo_seg.polygon_row(0, bridge_holes(r.exterior, r.holes), w, h).split()
        assert len(row) >= 7
        drawn |= row_mask(row[1:], w, h)
    assert (drawn == m).all()


def test_seg_reports_what_it_leaves_out() -> None:
    seen: list[Problem] = []
    project = read_project(str(PLAIN), report=seen.append)
    tree = VirtualTree(view_files(yolo_seg, project, ViewOptions()))
    for p in tree.walk_files():
        if p.startswith("labels/"):
            tree.read_file(p)
    left = {(p.item, p.message) for p in seen if "YOLO segments" in p.message}
    raw = [(item, o["geometryType"]) for (_, item), a in source_anns(PLAIN).items() for o in a["objects"]
           if o["geometryType"] in ("line", "point", "graph")]
    assert sum(int(m.split()[0]) for _, m in left) == len(raw) == 6
    assert {(i, k) for i, k in raw} == {(i, m.split()[1]) for i, m in left}


def test_seg_polygon_reaching_outside_is_cut_to_the_image(tmp_path: Path) -> None:
    src = shutil.copytree(PLAIN, tmp_path / "p")
    ann_file = src / "train/ann/dup.jpg.json"
    ann = json.loads(ann_file.read_text())
    ann["objects"][0].update(geometryType="polygon", classTitle="building",
                             points={"exterior": [[-10, -5], [30, -5], [30, 60]], "interior": []})
    ann_file.write_text(json.dumps(ann))
    require("ultralytics")
    tree = build(yolo_seg, src)
    (row,) = rows_of(tree, "labels/train/train__dup.txt")
    assert all(0 < float(v) < 1 for v in row[1:])
    want = polygon_mask([[-10, -5], [30, -5], [30, 60]], [], 40, 40)
    assert iou(row_mask(row[1:], 40, 40), want) > 0.95


# ------------------------------------------------------------------ yolo-pose


@ROOTS
def test_pose_rows_in_template_order(root: Path) -> None:
    tree = build(yolo_pose, root)
    order = template_order(root, "person_kp")
    data = yaml.safe_load(tree.read_file("data.yaml"))
    assert data["kpt_shape"] == [len(order), 3] and data["names"] == {0: "person_kp"} and data["nc"] == 1
    mirrored = {"left_eye": "right_eye", "right_eye": "left_eye"}
    assert data["flip_idx"] == [order.index(mirrored.get(n, n)) for n in order]
    n = 0
    for (ds, item), ann in source_anns(root).items():
        w, h = ann["size"]["width"], ann["size"]["height"]
        want = []
        for obj in ann["objects"]:
            if obj["classTitle"] != "person_kp":
                continue
            nodes = obj["nodes"]
            xs = [v["loc"][0] for v in nodes.values()]
            ys = [v["loc"][1] for v in nodes.values()]
            x0, y0, x1, y1 = min(xs), min(ys), min(w, max(xs) + 1), min(h, max(ys) + 1)
            row = ["0"] + [f"{v:.6f}" for v in ((x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h)]
            for nid in order:
                node = nodes.get(nid)
                row += ["0", "0", "0"] if node is None else [
                    f"{(node['loc'][0] + .5) / w:.6f}", f"{(node['loc'][1] + .5) / h:.6f}",
                    "1" if node.get("disabled") else "2"]
            want.append(row)
        assert rows_of(tree, label_path(ds, item)) == want
        n += len(want)
    assert n == 2


def test_pose_follows_the_template_not_the_label_and_options(tmp_path: Path) -> None:
    src = shutil.copytree(PLAIN, tmp_path / "p")
    ann_file = src / "train/ann/img_001.jpg.json"
    ann = json.loads(ann_file.read_text())
    kp = next(o for o in ann["objects"] if o["classTitle"] == "person_kp")
    kp["nodes"] = {"neck": kp["nodes"]["neck"], "right_eye": kp["nodes"]["right_eye"], "nose": kp["nodes"]["nose"]}
    ann_file.write_text(json.dumps(ann))
    (row,) = rows_of(build(yolo_pose, src), "labels/train/img_001.txt")
    assert len(row) == 5 + 3 * 4
    kpts = [row[5 + 3 * i:8 + 3 * i] for i in range(4)]  # nose, left_eye, right_eye, neck
    assert kpts[0] == [f"{60.5 / 96:.6f}", f"{20.5 / 64:.6f}", "2"]
    assert kpts[1] == ["0", "0", "0"]  # missing node
    assert kpts[2][2] == "1" and kpts[3] == [f"{60.5 / 96:.6f}", f"{35.5 / 64:.6f}", "2"]
    (row,) = rows_of(build(yolo_pose, src, **{"pose.disabled": "0"}), "labels/train/img_001.txt")
    assert row[11:14] == ["0", "0", "0"]
    with pytest.raises(OptionError, match="graph class"):
        build(yolo_pose, src, **{"pose.class": "car"})


def test_flip_idx_pairs_left_and_right() -> None:
    names = ["nose", "left_eye", "right_eye", "eye_l", "eye_r", "l_ear", "r_ear", "LeftHand", "RightHand", "left_only"]
    assert yolo_pose.flip_idx(names) == [0, 2, 1, 4, 3, 6, 5, 8, 7, 9]


def test_pose_without_graph_class_says_so() -> None:
    tree = VirtualTree(view_files(yolo_pose, read_project(str(PLAIN)), ViewOptions(classes=("car",))))
    assert tree.walk_files() == ["data.yaml"]
    with pytest.raises(Unreadable, match="no graph"):
        tree.read_file("data.yaml")


# ------------------------------------------------------------------ yolo-obb


def _inside_quad(quad: np.ndarray, pts: np.ndarray) -> bool:
    return all(cv2.pointPolygonTest(quad.astype(np.float32), (float(x), float(y)), True) >= -1e-3 for x, y in pts)


@ROOTS
def test_obb_rows(root: Path) -> None:
    tree = build(yolo_obb, root)
    names = class_names(root)
    n = 0
    for (ds, item), ann in source_anns(root).items():
        w, h = ann["size"]["width"], ann["size"]["height"]
        rows = rows_of(tree, label_path(ds, item))
        objs = [o for o in ann["objects"] if o["geometryType"] != "point"]
        assert [int(r[0]) for r in rows] == [names.index(o["classTitle"]) for o in objs]
        for obj, row in zip(objs, rows):
            assert len(row) == 9 and all(0 <= float(v) <= 1 for v in row[1:])
            quad = np.asarray(row[1:], float).reshape(4, 2) * [w, h]
            kind = obj["geometryType"]
            if kind == "rectangle":
                (l, t), (r, b) = obj["points"]["exterior"]
                want = [(l, t), (r + 1, t), (r + 1, b + 1), (l, b + 1)]
                assert row[1:] == [f"{min(max(v, 0), s) / s:.6f}" for p in want for v, s in zip(p, (w, h))]
            elif kind == "oriented_bbox":
                want = np.clip(np.asarray(rotated(obj, 1)), 0, [w, h])
                assert np.abs(quad - want).max() < 1e-3 * max(w, h)
            elif kind in ("polygon", "bitmap", "alpha_mask", "cuboid_2d") and not (
                    kind == "bitmap" and obj["bitmap"]["origin"][1] + 20 > h):  # within the image: holds every pixel
                if kind in ("bitmap", "alpha_mask"):
                    ys, xs = np.nonzero(mask_of(obj, w, h))
                    pix = np.stack([xs, ys], 1)
                else:
                    pix = np.asarray(obj["points"]["exterior"] if kind == "polygon"
                                     else [v["loc"] for v in obj["vertices"].values()])
                cells = (pix[:, None, :] + [[0, 0], [1, 0], [1, 1], [0, 1]]).reshape(-1, 2)
                assert _inside_quad(quad, cells), (item, kind)
                assert cv2.contourArea(quad.astype(np.float32)) <= np.ptp(cells[:, 0]) * np.ptp(cells[:, 1]) * 1.001
        n += len(rows)
    assert n == sum(o["geometryType"] != "point" for a in source_anns(root).values() for o in a["objects"])


# ------------------------------------------------------------------ yolo-darknet


@ROOTS
def test_darknet_layout_and_rows(root: Path) -> None:
    tree = build(yolo_darknet, root)
    names = class_names(root)
    assert tree.read_file("obj.names").decode() == "".join(f"{n}\n" for n in names)
    assert tree.read_file("obj.data").decode() == (
        f"classes = {len(names)}\ntrain = data/train.txt\nval = data/val.txt\n"
        "names = data/obj.names\nbackup = backup/\n")
    listed = {s: tree.read_file(f"{s}.txt").decode().splitlines() for s in ("train", "val")}
    for (ds, item), ann in source_anns(root).items():
        split, name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
        assert f"data/obj_{split}_data/{name}" in listed[split]
        assert tree.attr(f"obj_{split}_data/{name}").size > 0
        stem = name.rsplit(".", 1)[0]
        assert tree.read_file(f"obj_{split}_data/{stem}.txt").decode() == expected_rows(ann, names)
    assert sum(len(v) for v in listed.values()) == 12


def test_darknet_split_keys() -> None:
    assert yolo_darknet.split_keys(["train", "names", "a-b", "a_b_", "a_b"]) == {
        "train": "train", "names": "names_", "a-b": "a_b_", "a_b_": "a_b__", "a_b": "a_b"}


# ------------------------------------------------------------------ SDK reference


def sdk_labels(task: str) -> dict[tuple[str, str], list[list[str]]]:
    """The SDK's rows by (dataset, item); its file is ``<ds short name>_<stem>.txt``."""
    files = {p.stem: p for p in (SDK_REFERENCE / "yolo" / task / "labels").rglob("*.txt")}
    out = {}
    for ds, item in source_anns(PLAIN):
        if (ds, item) in (("val", "dup.jpg"), ("val", "dup.png")):
            continue  # the SDK writes one val_dup.txt for both (SDK_NOTES §5)
        p = files[f"{ds.split('/')[-1]}_{item.rsplit('.', 1)[0]}"]
        out[(ds, item)] = [r.split() for r in p.read_text().splitlines()]
    return out


def test_segment_against_sdk_reference() -> None:
    require("ultralytics")
    tree = build(yolo_seg, PLAIN)
    anns = source_anns(PLAIN)
    names = class_names(PLAIN)
    sdk_only_kinds = set()
    for key, sdk_rows in sdk_labels("segment").items():
        ann = anns[key]
        w, h = ann["size"]["width"], ann["size"]["height"]
        mine = rows_of(tree, label_path(*key))
        for srow in sdk_rows:  # every object the SDK writes, we write: same class, nearly the same pixels
            # (moved by half a pixel: the SDK's vertices are pixel corners, ours pixel centres)
            smask = row_mask([f"{float(v) + 0.5 / (w, h)[i % 2]:.6f}" for i, v in enumerate(srow[1:])], w, h)
            best = max((iou(smask, row_mask(r[1:], w, h)) for r in mine if r[0] == srow[0]), default=0)
            assert best > 0.7, (key, srow[0], best)
        # deliberate differences, each asserted:
        for obj in ann["objects"]:
            kind, cid = obj["geometryType"], str(names.index(obj["classTitle"]))
            if kind in ("cuboid_2d", "oriented_bbox") or (kind == "rectangle" and obj["classTitle"] != "vehicle"):
                sdk_only_kinds.add(kind)  # the SDK drops these; we write them as polygons
                assert not any(r[0] == cid for r in sdk_rows) and any(r[0] == cid for r in mine)
            if kind == "polygon" and obj["points"]["interior"]:  # the SDK drops holes; ours are cut out
                (hx0, hy0), _, (hx1, hy1), _ = obj["points"]["interior"][0]
                cx, cy = (hx0 + hx1) // 2, (hy0 + hy1) // 2
                sdk_poly = next(r for r in sdk_rows if r[0] == cid)
                ours = next(r for r in mine if r[0] == cid)
                assert row_mask(sdk_poly[1:], w, h)[cy, cx] and not row_mask(ours[1:], w, h)[cy, cx]
                # vertices: the SDK writes pixel index / size, we write the pixel centre (+0.5 px)
                sx, sy = float(sdk_poly[1]), float(sdk_poly[2])
                assert abs(float(ours[1]) - (sx + 0.5 / w)) < 2e-6 and abs(float(ours[2]) - (sy + 0.5 / h)) < 2e-6
    assert sdk_only_kinds == {"rectangle", "cuboid_2d", "oriented_bbox"}


def test_pose_against_sdk_reference() -> None:
    sdk_yaml = yaml.safe_load((SDK_REFERENCE / "yolo/pose/data_config.yaml").read_text())
    tree = build(yolo_pose, PLAIN)
    data = yaml.safe_load(tree.read_file("data.yaml"))
    order = template_order(PLAIN, "person_kp")
    assert sdk_yaml["kpt_shape"] == [8, 3] and data["kpt_shape"] == [len(order), 3]  # SDK: K from the cuboid
    assert sdk_yaml["flip_idx"] == list(range(8)) and data["flip_idx"] == [0, 2, 1, 3]
    pairs = 0
    for key, sdk_rows in sdk_labels("pose").items():
        mine = rows_of(tree, label_path(*key))
        assert len(mine) == len(sdk_rows)
        w, h = (anns := source_anns(PLAIN)[key])["size"]["width"], anns["size"]["height"]
        for srow, row in zip(sdk_rows, mine):
            pairs += 1
            assert srow[0] == str(class_names(PLAIN).index("person_kp")) and row[0] == "0"  # we number the pose class 0
            # the SDK's rows have the template's 4 keypoints but its kpt_shape says 8: Ultralytics rejects them
            assert len(srow) == len(row) == 5 + 3 * 4 != 5 + 3 * sdk_yaml["kpt_shape"][0]
            assert srow[3:5] == row[3:5]  # same box size
            # box centre: the SDK floors the centre to a whole pixel, we use the exact centre
            assert abs(float(row[1]) - float(srow[1])) <= 0.5 / w + 1e-6
            for i in range(4):  # same keypoints and visibility, at the pixel centre instead of its corner
                s, m = srow[5 + 3 * i:8 + 3 * i], row[5 + 3 * i:8 + 3 * i]
                assert s[2] == m[2]
                assert abs(float(m[0]) - float(s[0]) - 0.5 / w) < 2e-6
                assert abs(float(m[1]) - float(s[1]) - 0.5 / h) < 2e-6
    assert pairs == 2


# ------------------------------------------------------------------ real readers, real mounts


def expected_instances(root: Path, task: str) -> int:
    total = 0
    for ann in source_anns(root).values():
        w, h = ann["size"]["width"], ann["size"]["height"]
        for o in ann["objects"]:
            if task == "segment":
                total += expected_segments(o, w, h)[0]
            elif task == "pose":
                total += o["classTitle"] == "person_kp"
            else:
                total += o["geometryType"] != "point"
    return total


def source_image(ds: str, item: str) -> bytes:
    return (PLAIN / ds.replace("/", "/datasets/") / "img" / item).read_bytes()


@ROOTS
@pytest.mark.parametrize("fmt, task", [("yolo-seg", "segment"), ("yolo-pose", "pose"), ("yolo-obb", "obb")])
def test_mount_and_load_with_ultralytics(root: Path, fmt: str, task: str, mount) -> None:
    require("ultralytics")
    with mount(root, "--format", fmt) as mnt:
        files = read_tree(mnt)
        for ds, item in source_anns(root):
            split, name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
            assert files[f"images/{split}/{name}"] == source_image(ds, item)
        instances = 0
        for split in ("train", "val"):
            result = ultralytics_load(mnt / "data.yaml", split, task=task)
            assert result.error is None and result.corrupt == 0 and result.missing == 0, result.msgs
            assert result.n_images == len([f for f in files if f.startswith(f"images/{split}/")])
            instances += result.n_instances
            if task == "pose":
                assert all(lb.keypoints.shape[1:] == (4, 3) for lb in result.labels)
        assert instances == expected_instances(root, task)


@ROOTS
def test_mount_darknet_and_import_with_datumaro(root: Path, mount) -> None:
    require("datumaro")
    with mount(root, "--format", "yolo-darknet") as mnt:
        files = read_tree(mnt)
        for ds, item in source_anns(root):
            split, name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
            assert files[f"obj_{split}_data/{name}"] == source_image(ds, item)
        assert "yolo" in datumaro_detect(mnt)
        dataset = datumaro_import(mnt, "yolo")
        assert len(dataset) == 12 and set(dataset.subsets()) == {"train", "val"}
        boxes = sum(len(it.annotations) for it in dataset)
        assert boxes == expected_instances(root, "obb")  # every object but points has a box


def test_plain_yolo_view_imports_with_datumaro(tmp_path: Path) -> None:
    require("datumaro")
    from slyfs.formats.writers.yolo import detect as yolo
    tree = VirtualTree(view_files(yolo, read_project(str(PLAIN)), ViewOptions()))
    for p in tree.walk_files():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(tree.read_file(p))
    assert "yolo" in datumaro_detect(tmp_path)
    dataset = datumaro_import(tmp_path, "yolo")
    assert len(dataset) == 12
    assert sum(len(it.annotations) for it in dataset) == expected_instances(PLAIN, "obb")
