"""Tests of the third-party reader harness (tests/readers.py) on tiny hand-made datasets.

They check that the real readers (ultralytics, datumaro, pycocotools) load what we
expect, so that the format tests built on the harness can trust it. Each test skips
when its reader is not installed (see scripts/install_test_readers.sh).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.readers import (
    DatumaroStrictError,
    coco_load,
    coco_self_eval_ap,
    datumaro_detect,
    datumaro_import,
    error_chain,
    require,
    ultralytics_load,
)

W, H = 40, 20  # image size used throughout (>= 10 px: Ultralytics drops smaller images)


# --------------------------------------------------------------------------- builders


def _img(path: Path, w: int = W, h: int = H) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (120, 30, 200)).save(path, quality=90)
    return path


def _yolo(root: Path, rows: dict[str, str | None], extra_yaml: str = "",
          names: tuple[str, ...] = ("cat", "dog")) -> Path:
    """YOLO dataset with every image in split `train`; `val` is the same folder.

    rows maps image stem -> label file text (None-like "" = empty file; key absent = no file).
    """
    for stem, text in rows.items():
        _img(root / "images" / "train" / f"{stem}.jpg")
        if text is not None:
            lbl = root / "labels" / "train" / f"{stem}.txt"
            lbl.parent.mkdir(parents=True, exist_ok=True)
            lbl.write_text(text)
    names_yaml = "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    y = root / "data.yaml"
    y.write_text(f"train: images/train\nval: images/train\nnames:\n{names_yaml}{extra_yaml}")
    return y


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under root with a digest of its content (dirs marked)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def _coco(root: Path, *, keypoints: bool = False, bad_image_id: bool = False) -> Path:
    _img(root / "images" / "default" / "a.jpg")
    poly = [5.0, 4.0, 25.0, 4.0, 25.0, 14.0, 5.0, 14.0]  # 20 x 10 rectangle
    ann = {
        "id": 1,
        "image_id": 7 if bad_image_id else 1,
        "category_id": 1,
        "segmentation": [poly],
        "bbox": [5.0, 4.0, 20.0, 10.0],
        "area": 200.0,
        "iscrowd": 0,
    }
    cat: dict = {"id": 1, "name": "cat", "supercategory": ""}
    if keypoints:
        ann["keypoints"] = [6, 5, 2, 20, 6, 2, 24, 13, 1]
        ann["num_keypoints"] = 3
        cat["keypoints"] = ["nose", "tail", "paw"]
        cat["skeleton"] = [[1, 2], [2, 3]]
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": W, "height": H}],
        "annotations": [ann],
        "categories": [cat],
    }
    task = "person_keypoints" if keypoints else "instances"
    js = root / "annotations" / f"{task}_default.json"
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(doc))
    return js


def _voc(root: Path, label: str = "cat", labelmap: bool = True) -> Path:
    _img(root / "JPEGImages" / "a.jpg")
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(
        f"""<annotation>
  <folder>VOC</folder><filename>a.jpg</filename>
  <size><width>{W}</width><height>{H}</height><depth>3</depth></size>
  <segmented>0</segmented>
  <object>
    <name>{label}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>5</xmin><ymin>4</ymin><xmax>25</xmax><ymax>14</ymax></bndbox>
  </object>
</annotation>
"""
    )
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    if labelmap:
        (root / "labelmap.txt").write_text(
            "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncat:128,0,0::\ndog:0,128,0::\n"
        )
    return root


# --------------------------------------------------------------------------- require


def test_require_skips_or_fails_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLYFS_REQUIRE_READERS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require("slyfs_no_such_reader")
    monkeypatch.setenv("SLYFS_REQUIRE_READERS", "1")
    with pytest.raises(pytest.fail.Exception):
        require("slyfs_no_such_reader")


# --------------------------------------------------------------------------- ultralytics


def test_ultralytics_detect_two_images(tmp_path: Path) -> None:
    require("ultralytics")
    y = _yolo(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n", "b": "1 0.25 0.75 0.5 0.5\n"})
    r = ultralytics_load(y, "train")
    assert (r.n_images, r.total, r.found, r.missing, r.empty, r.corrupt) == (2, 2, 2, 0, 0, 0)
    assert r.names == {0: "cat", 1: "dog"}
    by = r.by_stem()
    assert by["a"].shape == (H, W)
    assert by["a"].cls.tolist() == [0] and by["b"].cls.tolist() == [1]
    np.testing.assert_allclose(by["b"].bboxes, [[0.25, 0.75, 0.5, 0.5]])
    assert by["a"].segments == [] and by["a"].keypoints is None
    assert r.write_attempts == [] and r.error is None
    assert not list(tmp_path.rglob("*.cache"))  # no cache written next to the labels


@pytest.mark.parametrize(
    "bad_row, reason",
    [
        ("2 0.5 0.5 0.2 0.2\n", "exceeds dataset class count"),  # class id out of range (nc = 2)
        ("0 1.5 0.5 0.2 0.2\n", "non-normalized or out of bounds"),  # value > 1
        ("0.5 0.5 0.5 0.2 0.2\n", "non-integer class"),
        ("0 0.5 0.5 0.2\n", "columns"),
    ],
)
def test_ultralytics_broken_label_counted_corrupt(tmp_path: Path, bad_row: str, reason: str) -> None:
    require("ultralytics")
    y = _yolo(tmp_path, {"good": "0 0.5 0.5 0.25 0.5\n", "bad": bad_row})
    r = ultralytics_load(y, "train")
    assert (r.total, r.n_images, r.corrupt) == (2, 1, 1)
    assert [lb.stem for lb in r.labels] == ["good"]
    assert any("bad.jpg" in m and reason in m for m in r.msgs), r.msgs


def test_ultralytics_missing_empty_and_all_corrupt(tmp_path: Path) -> None:
    require("ultralytics")
    y = _yolo(tmp_path / "d1", {"a": "0 0.5 0.5 0.25 0.5\n", "b": "", "c": None})
    r = ultralytics_load(y, "train")
    assert (r.total, r.n_images, r.found, r.empty, r.missing, r.corrupt) == (3, 3, 2, 1, 1, 0)
    assert len(r.by_stem()["b"]) == 0 and len(r.by_stem()["c"]) == 0

    y = _yolo(tmp_path / "d2", {"a": "9 0.5 0.5 0.25 0.5\n"})
    r = ultralytics_load(y, "train")
    assert (r.total, r.n_images, r.corrupt) == (1, 0, 1)
    assert r.error and "No valid images found" in r.error


def test_ultralytics_segment_pose_obb(tmp_path: Path) -> None:
    require("ultralytics")
    seg = _yolo(tmp_path / "seg", {"a": "1 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n"})
    r = ultralytics_load(seg, "train", task="segment")
    (lb,) = r.labels
    assert lb.cls.tolist() == [1] and len(lb.segments) == 1 and lb.segments[0].shape == (4, 2)
    np.testing.assert_allclose(lb.bboxes, [[0.3, 0.35, 0.4, 0.5]], atol=1e-6)

    pose = _yolo(
        tmp_path / "pose",
        {"a": "0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 1 0 0 0\n"},
        extra_yaml="kpt_shape: [3, 3]\nflip_idx: [1, 0, 2]\n",
        names=("person",),
    )
    r = ultralytics_load(pose, "train", task="pose")
    (lb,) = r.labels
    assert lb.keypoints is not None and lb.keypoints.shape == (1, 3, 3)
    np.testing.assert_allclose(lb.keypoints[0, :, 2], [2, 1, 0])
    # wrong column count for kpt_shape -> that image is corrupt
    bad = _yolo(tmp_path / "pose_bad", {"a": "0 0.5 0.5 0.4 0.4 0.4 0.4 2\n"}, extra_yaml="kpt_shape: [3, 3]\n")
    assert ultralytics_load(bad, "train", task="pose").corrupt == 1

    obb = _yolo(tmp_path / "obb", {"a": "0 0.1 0.1 0.6 0.1 0.6 0.5 0.1 0.5\n"})
    r = ultralytics_load(obb, "train", task="obb")
    (lb,) = r.labels
    assert lb.segments[0].shape == (4, 2) and r.corrupt == 0


def test_ultralytics_never_reads_a_stale_cache(tmp_path: Path) -> None:
    """A cache left by a plain Ultralytics run must not be read back (same-size edit)."""
    require("ultralytics")
    y = _yolo(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n"})
    import ultralytics.data.utils as uu
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.utils import DEFAULT_CFG

    old = uu.check_font
    uu.check_font = lambda *a, **k: None
    try:  # vanilla Ultralytics: writes labels/train.cache
        data = uu.check_det_dataset(str(y), autodownload=False)
        build_yolo_dataset(get_cfg(DEFAULT_CFG, {"task": "detect", "imgsz": 64}), data["train"], 1, data, mode="val")
    finally:
        uu.check_font = old
    cache = tmp_path / "labels" / "train.cache"
    assert cache.is_file()
    before = cache.stat().st_mtime_ns
    # Same size => same Ultralytics hash => vanilla Ultralytics would reuse the stale cache.
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    r = ultralytics_load(y, "train")
    assert r.labels[0].cls.tolist() == [1]
    assert cache.stat().st_mtime_ns == before  # and it is not rewritten either


def test_ultralytics_corrupt_jpeg_is_not_rewritten(tmp_path: Path) -> None:
    """Ultralytics repairs a JPEG lacking FFD9 in place; the harness refuses (read-only)."""
    require("ultralytics")
    y = _yolo(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n", "b": "0 0.5 0.5 0.25 0.5\n"})
    jpg = tmp_path / "images" / "train" / "b.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-2])
    snap = _snapshot(tmp_path)
    r = ultralytics_load(y, "train")
    assert r.write_attempts == [str(jpg)]
    assert (r.n_images, r.corrupt) == (1, 1)
    assert _snapshot(tmp_path) == snap


def _try_ro_bind(src: Path, dst: Path) -> bool:
    dst.mkdir()
    for cmd in (["mount", "--bind", str(src), str(dst)], ["mount", "-o", "remount,bind,ro", str(dst)]):
        if shutil.which(cmd[0]) is None or subprocess.run(cmd, check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(dst)], check=False, capture_output=True)
            return False
    return True


def test_readers_on_read_only_dataset(tmp_path: Path) -> None:
    """Ultralytics and datumaro load a read-only copy; nothing is written to the source."""
    require("ultralytics")
    src = tmp_path / "src"
    _yolo(src, {"a": "0 0.5 0.5 0.25 0.5\n", "b": "1 0.25 0.75 0.5 0.5\n"})
    snap = _snapshot(src)
    ro = tmp_path / "ro"
    mounted = os.geteuid() == 0 and _try_ro_bind(src, ro)
    root = ro if mounted else src  # as non-root, still prove no write is needed (snapshot)
    try:
        if mounted:
            with pytest.raises(OSError):
                (ro / "probe").write_text("x")
        r = ultralytics_load(root / "data.yaml", "train")
        assert (r.n_images, r.corrupt) == (2, 0)
        assert r.warnings == [] and r.write_attempts == []
        if _has("datumaro"):
            ds = datumaro_import(root, "yolo")
            assert len(ds) == 2
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=False)
    assert _snapshot(src) == snap
    assert not list(src.rglob("*.cache"))


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


# --------------------------------------------------------------------------- datumaro


def test_datumaro_yolo(tmp_path: Path) -> None:
    require("datumaro")
    _yolo(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n", "b": "1 0.25 0.75 0.5 0.5\n"})
    assert "yolo" in datumaro_detect(tmp_path)
    ds = datumaro_import(tmp_path, "yolo")
    assert len(ds) == 2
    labels = ds.categories()[__import__("datumaro").AnnotationType.label]
    assert [c.name for c in labels] == ["cat", "dog"]
    bbox = next(a for it in ds if it.id == "b" for a in it.annotations)
    # (0.25, 0.75, 0.5, 0.5) normalized xywh on 40x20 -> x 0..20, y 10..20
    assert bbox.label == 1 and np.allclose(bbox.points, [0, 10, 20, 20])


def test_datumaro_strict_policy_raises(tmp_path: Path) -> None:
    require("datumaro")
    # a class id beyond the declared names: datumaro reports an annotation error
    _yolo(tmp_path / "y", {"a": "5 0.5 0.5 0.25 0.5\n"})
    with pytest.raises(Exception) as ei:
        datumaro_import(tmp_path / "y", "yolo")
    assert any(c.startswith("UndeclaredLabelError") for c in error_chain(ei.value)), error_chain(ei.value)

    # COCO annotation on an unknown image id: datumaro only logs and skips -> strict raises
    _coco(tmp_path / "c", bad_image_id=True)
    with pytest.raises(DatumaroStrictError, match="Unknown image id"):
        datumaro_import(tmp_path / "c", "coco_instances")
    ds = datumaro_import(tmp_path / "c", "coco_instances", strict_warnings=False)
    assert sum(len(it.annotations) for it in ds) == 0


def test_datumaro_voc(tmp_path: Path) -> None:
    require("datumaro")
    import datumaro as dm

    root = _voc(tmp_path / "voc")
    assert "voc" in datumaro_detect(root)
    ds = datumaro_import(root, "voc_detection")
    assert len(ds) == 1 and {it.subset for it in ds} == {"train"}
    (ann,) = next(iter(ds)).annotations
    names = [c.name for c in ds.categories()[dm.AnnotationType.label]]
    assert names[ann.label] == "cat" and ann.type == dm.AnnotationType.bbox
    assert np.allclose(ann.points, [5, 4, 25, 14])  # taken as-is (dm-zero-based)

    # a custom name absent from labelmap.txt is an error, not a silent skip
    bad = _voc(tmp_path / "voc_bad", label="zebra")
    with pytest.raises(Exception) as ei:
        datumaro_import(bad, "voc_detection")
    assert any("zebra" in c for c in error_chain(ei.value)), error_chain(ei.value)


def test_datumaro_coco(tmp_path: Path) -> None:
    require("datumaro")
    import datumaro as dm

    _coco(tmp_path)
    assert "coco" in datumaro_detect(tmp_path) or "coco_instances" in datumaro_detect(tmp_path)
    ds = datumaro_import(tmp_path, "coco_instances")
    (item,) = list(ds)
    polys = [a for a in item.annotations if a.type == dm.AnnotationType.polygon]
    assert len(polys) == 1 and np.allclose(polys[0].points, [5, 4, 25, 4, 25, 14, 5, 14])


# --------------------------------------------------------------------------- pycocotools


def test_coco_load_and_self_eval(tmp_path: Path) -> None:
    require("pycocotools")
    js = _coco(tmp_path)
    coco = coco_load(js)
    assert len(coco.getImgIds()) == 1 and len(coco.getAnnIds()) == 1 and coco.getCatIds() == [1]
    mask = coco.annToMask(coco.loadAnns([1])[0])
    assert mask.shape == (H, W) and mask.sum() > 0
    assert coco_self_eval_ap(js, "bbox") == pytest.approx(1.0)
    assert coco_self_eval_ap(js, "segm") == pytest.approx(1.0)


def test_coco_self_eval_keypoints_k3(tmp_path: Path) -> None:
    require("pycocotools")
    js = _coco(tmp_path, keypoints=True)
    assert coco_self_eval_ap(js, "keypoints") == pytest.approx(1.0)


def test_coco_self_eval_detects_bad_ids(tmp_path: Path) -> None:
    """Self-AP is 1 only for a consistent file: COCOeval treats annotation id 0 as
    'unmatched', and duplicate ids make pycocotools load one annotation twice."""
    require("pycocotools")
    js = _coco(tmp_path)
    doc = json.loads(js.read_text())
    ann = doc["annotations"][0]
    other = {**ann, "id": 2, "bbox": [1.0, 1.0, 5.0, 5.0], "segmentation": [[1, 1, 6, 1, 6, 6, 1, 6]], "area": 25.0}

    def ap(anns: list[dict], iou_type: str = "bbox") -> float:
        js.write_text(json.dumps({**doc, "annotations": anns}))
        return coco_self_eval_ap(js, iou_type)

    assert ap([ann, other]) == pytest.approx(1.0)
    assert ap([ann, {**ann, "id": 2}]) == pytest.approx(1.0)  # an exact duplicate box is fine
    assert ap([{**ann, "id": 0}]) < 1.0
    assert ap([ann, {**other, "id": 1}]) < 1.0
    assert ap([ann, {**other, "id": 1}], "segm") < 1.0
    assert ap([]) == -1.0  # nothing to evaluate


def test_coco_self_eval_many_boxes_per_image(tmp_path: Path) -> None:
    """More than COCOeval's 100 maxDets on one image still gives AP 1 for a consistent file."""
    require("pycocotools")
    js = _coco(tmp_path)
    doc = json.loads(js.read_text())
    doc["images"][0].update(width=1000, height=1000)
    doc["annotations"] = [
        {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [(i % 15) * 60.0, (i // 15) * 60.0, 50.0, 50.0],
         "area": 2500.0, "iscrowd": 0, "segmentation": []}
        for i in range(150)
    ]
    js.write_text(json.dumps(doc))
    assert coco_self_eval_ap(js, "bbox") == pytest.approx(1.0)
