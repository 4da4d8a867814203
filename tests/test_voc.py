"""The Pascal VOC view: helpers, both SDK fixtures checked against expectations the test
computes from the annotation JSON itself, datumaro/mmdet readings, the SDK's own export,
and a real mount."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image, ImageDraw

from slyfs.formats.contract import Generated, SourceBytes
from slyfs.formats.layout import LayoutView
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.formats.writers import voc
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, SDK_REFERENCE, read_tree
from tests.helpers.readers import datumaro_import, require
from tests.helpers.views import view_files

SDK_VOC = SDK_REFERENCE / "voc" / "VOCdevkit" / "VOC"
AREA_TYPES = ("rectangle", "polygon", "bitmap", "alpha_mask", "cuboid_2d", "oriented_bbox")

# The VOC devkit's colour map as published (VOCdevkit/VOCcode/VOClabelcolormap.m), first 16 and the void index.
DEVKIT_COLOURS = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                  5: (128, 0, 128), 6: (0, 128, 128), 7: (128, 128, 128), 8: (64, 0, 0), 9: (192, 0, 0),
                  10: (64, 128, 0), 11: (192, 128, 0), 12: (64, 0, 128), 13: (192, 0, 128),
                  14: (64, 128, 128), 15: (192, 128, 128), 255: (224, 224, 192)}


# ---------------------------------------------------------------- expectations from the JSON alone


def _bitmap(obj: dict) -> tuple[tuple[int, int], np.ndarray]:
    raw = base64.b64decode(obj["bitmap"]["data"])
    with Image.open(io.BytesIO(zlib.decompress(raw))) as img:
        alpha = np.asarray(img.convert("RGBA"))[..., 3] > 0
    return tuple(obj["bitmap"]["origin"]), alpha


def _obb_corners(obj: dict) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = obj["points"]
    cx, cy, a = (x0 + x1) / 2, (y0 + y1) / 2, obj["angle"]
    return [(cx + (x - cx) * math.cos(a) - (y - cy) * math.sin(a), cy + (x - cx) * math.sin(a) + (y - cy) * math.cos(a))
            for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = sorted(set(points))
    def half(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    return half(pts) + half(pts[::-1])


def _points(obj: dict) -> list[tuple[float, float]]:
    t = obj["geometryType"]
    if t in ("rectangle", "polygon", "line", "point"):
        return [tuple(p) for p in obj["points"]["exterior"]]
    if t == "graph":
        return [tuple(n["loc"]) for n in obj["nodes"].values()]
    if t == "cuboid_2d":
        return [tuple(v["loc"]) for v in obj["vertices"].values()]
    if t == "oriented_bbox":
        return _obb_corners(obj)
    (ox, oy), m = _bitmap(obj)
    ys, xs = np.nonzero(m)
    return [(ox + xs.min(), oy + ys.min()), (ox + xs.max(), oy + ys.max())]


def pixel_box(obj: dict) -> tuple[int, int, int, int]:
    """Inclusive 0-based box of the pixels the object touches."""
    pts = _points(obj)
    return (math.floor(min(p[0] for p in pts)), math.floor(min(p[1] for p in pts)),
            math.floor(max(p[0] for p in pts)), math.floor(max(p[1] for p in pts)))


def area_raster(obj: dict, w: int, h: int) -> np.ndarray:
    """The object's pixels, drawn with PIL: polygons filled with their boundary, holes
    emptied but their boundary kept."""
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    t = obj["geometryType"]
    if t == "rectangle":
        (l, tp), (r, b) = obj["points"]["exterior"]
        d.rectangle([l, tp, r, b], fill=1)
    elif t == "polygon":
        d.polygon([tuple(p) for p in obj["points"]["exterior"]], fill=1, outline=1)
        for hole in obj["points"]["interior"]:
            pts = [tuple(p) for p in hole]
            d.polygon(pts, fill=0)
            d.line(pts + [pts[0]], fill=1)
    elif t in ("cuboid_2d", "oriented_bbox"):
        d.polygon(_hull(_points(obj)) if t == "cuboid_2d" else _obb_corners(obj), fill=1, outline=1)
    else:
        (ox, oy), m = _bitmap(obj)
        out = np.zeros((h, w), dtype=bool)
        out[oy:oy + m.shape[0], ox:ox + m.shape[1]] = m
        return out
    return np.asarray(img) > 0


def source_items(root: Path) -> dict[str, tuple[dict, Path]]:
    """sha1 of each image's bytes → (annotation JSON, image file) read from the plain fixture
    (the blob fixture holds the same images and annotations)."""
    out = {}
    for img in PLAIN.rglob("img/*"):
        rel = img.relative_to(PLAIN)
        ann = root / rel.parent.parent / "ann" / (img.name + ".json")
        out[hashlib.sha1(img.read_bytes()).hexdigest()] = (json.loads(ann.read_text()), img)
    return out


def expected(ann: dict, class_index: dict[str, int]):
    """(objects as (class, box), class raster, object raster) for one image."""
    w, h = ann["size"]["width"], ann["size"]["height"]
    cls = np.zeros((h, w), dtype=np.uint8)
    inst = np.zeros((h, w), dtype=np.uint8)
    objs = []
    for k, obj in enumerate(ann["objects"], 1):
        objs.append((obj["classTitle"], pixel_box(obj)))
        if obj["geometryType"] in AREA_TYPES:
            m = area_raster(obj, w, h)
            cls[m] = class_index[obj["classTitle"]]
            inst[m] = k
    return objs, cls, inst


# ---------------------------------------------------------------- helpers on the view


def render(root: Path, **params: str) -> dict[str, bytes]:
    tree = VirtualTree(view_files(voc, read_project(str(root)), ViewOptions(params=params)))
    return {p: tree.read_file(p) for p in tree.walk_files()}


def materialise(files: dict[str, bytes], dest: Path) -> Path:
    for path, data in files.items():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_bytes(data)
    return dest


def meta_classes(root: Path) -> list[str]:
    return [c["title"] for c in json.loads((root / "meta.json").read_text())["classes"]]


def xml_boxes(xml: bytes) -> list[tuple[str, tuple[int, ...]]]:
    root = etree.fromstring(xml)
    return [(o.findtext("name"), tuple(int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")))
            for o in root.iter("object")]


def by_image(files: dict[str, bytes], root: Path):
    """(id, annotation JSON, source image path, XML root) for every image of the view."""
    sources = source_items(root)
    for path, data in files.items():
        if path.startswith("JPEGImages/"):
            vid = os.path.splitext(path.split("/", 1)[1])[0]
            ann, img = sources[hashlib.sha1(data).hexdigest()]
            yield vid, ann, img, etree.fromstring(files[f"Annotations/{vid}.xml"])


# ---------------------------------------------------------------- pure helpers


def test_voc_box_is_devkit_one_based_and_cut_to_the_image():
    assert voc.voc_box((10, 5, 40, 30), 96, 64) == (11, 6, 41, 31)
    assert voc.voc_box((0, 0, 63, 47), 64, 48) == (1, 1, 64, 48)
    assert voc.voc_box((-5, -3, 100, 70), 96, 64) == (1, 1, 96, 64)
    assert voc.voc_box((80, 10, 80, 10), 96, 64) == (81, 11, 81, 11)
    assert voc.voc_box((96, 0, 120, 10), 96, 64) is None


def test_class_names_fit_labelmap_and_xml():
    assert voc.voc_class_name("traffic sign") == "traffic sign"
    assert voc.voc_class_name("a:b%c") == "a%3Ab%c"
    a, b = voc.voc_class_names(["a:b", "a%3Ab"])  # the second looks like the first's escape: kept apart
    assert b == "a%3Ab" and a.startswith("a%3Ab~") and len(a) == len("a%3Ab~12345678")
    assert voc.voc_class_name(" #x\n") == "%20#x%0A"
    assert voc.voc_class_name("#x") == "%23x"
    assert voc.voc_class_name("bad\udcffbyte") == "bad%ED%B3%BFbyte"


def test_split_names_never_contain_underscore():
    assert voc.voc_split_names(["train", "my_val", "my-val"]) == {"train": "train", "my_val": "my-val",
                                                                   "my-val": "my-val~2"}


def test_tag_flags():
    assert [voc.tag_flag(v) for v in (None, 1, 0, 0.0, "1", "0", "yes", "No", "false", "")] == \
        ["1", "1", "0", "0", "1", "0", "1", "0", "0", "0"]


def test_annotation_xml_round_trip():
    obj = voc.VocObject("car", (1, 2, 3, 4), (("truncated", "1"), ("difficult", "0"), ("occluded", "0")),
                        (("colour", "red"),))
    root = etree.fromstring(voc.annotation_xml("a b.png", 10, 20, 4, True, [obj], ["a note -- here"]))
    assert root.findtext("filename") == "a b.png"
    assert [root.findtext(f"size/{k}") for k in ("width", "height", "depth")] == ["10", "20", "4"]
    assert root.findtext("segmented") == "1"
    o = root.find("object")
    assert [o.findtext(k) for k in ("name", "pose", "truncated", "difficult", "occluded")] == \
        ["car", "Unspecified", "1", "0", "0"]
    assert o.findtext("attributes/attribute/name") == "colour" and o.findtext("attributes/attribute/value") == "red"
    assert xml_boxes(etree.tostring(root)) == [("car", (1, 2, 3, 4))]


def test_object_tags_become_flags_and_attributes():
    from slyfs.formats.model import Label, Rectangle, Tag
    label = Label("car", Rectangle(0, 0, 1, 1), (Tag("difficult"), Tag("truncated", "no"), Tag("occluded", 1),
                                                  Tag("score", 0.5), Tag("seen")))
    obj = voc.voc_object(label, "car", (1, 1, 2, 2))
    assert dict(obj.flags) == {"truncated": "0", "difficult": "1", "occluded": "1"}
    assert obj.attributes == (("score", "0.5"), ("seen", "true"))


# ---------------------------------------------------------------- the view on the fixtures


def test_build_reads_no_annotation():
    project = read_project(str(BLOB))
    calls = []
    counting = dataclasses.replace(project, load_annotation=lambda item: calls.append(item))
    files = view_files(voc, counting, ViewOptions())
    assert calls == [] and "labelmap.txt" in files


def test_both_masks_of_an_image_come_from_one_painting(monkeypatch):
    paintings = []
    real = voc.segmentation_arrays
    monkeypatch.setattr(voc, "segmentation_arrays", lambda *a: paintings.append(1) or real(*a))
    files = view_files(voc, read_project(str(BLOB)), ViewOptions())
    vid = next(p for p in files if p.startswith("SegmentationClass/"))[len("SegmentationClass/"):]
    cls, obj = files[f"SegmentationClass/{vid}"].render(), files[f"SegmentationObject/{vid}"].render()
    assert len(paintings) == 1 and cls.startswith(b"\x89PNG") and obj.startswith(b"\x89PNG")

def test_generated_keys_are_distinct_and_images_are_source_bytes():
    files = view_files(voc, read_project(str(BLOB)), ViewOptions())
    keys = [n.key for n in files.values() if isinstance(n, Generated)]
    assert len(keys) == len(set(keys))
    assert all(isinstance(n, SourceBytes) for p, n in files.items() if p.startswith("JPEGImages/"))
    other = view_files(voc, read_project(str(BLOB)), ViewOptions(classes=("car",)))
    assert files["Annotations/img_001.xml"].key != other["Annotations/img_001.xml"].key


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_xml_boxes_and_masks_match_the_json(root: Path):
    files = render(root)
    class_index = {t: k for k, t in enumerate(meta_classes(root), 1)}
    seen = 0
    for vid, ann, img, xml in by_image(files, root):
        seen += 1
        objs, cls, inst = expected(ann, class_index)
        assert xml.findtext("filename") == f"{vid}{img.suffix}"
        assert (int(xml.findtext("size/width")), int(xml.findtext("size/height"))) == \
            (ann["size"]["width"], ann["size"]["height"])
        with Image.open(img) as im:
            assert int(xml.findtext("size/depth")) == len(im.getbands())
        assert xml_boxes(etree.tostring(xml)) == [(c, (l + 1, t + 1, r + 1, b + 1)) for c, (l, t, r, b) in objs]
        assert xml.findtext("segmented") == ("1" if cls.any() else "0")
        for folder, want in (("SegmentationClass", cls), ("SegmentationObject", inst)):
            with Image.open(io.BytesIO(files[f"{folder}/{vid}.png"])) as png:
                assert png.mode == "P" and png.size == (ann["size"]["width"], ann["size"]["height"])
                assert png.getpalette()[:48] == [v for k in range(16) for v in DEVKIT_COLOURS[k]]
                assert np.array_equal(np.asarray(png), want), (vid, folder)
    assert seen == 12


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_image_sets_and_labelmap(root: Path):
    files = render(root)
    titles = meta_classes(root)
    lines = files["labelmap.txt"].decode().splitlines()
    assert lines[0] == "# label:color_rgb:parts:actions" and lines[1] == "background:0,0,0::"
    assert lines[2:] == [f"{t}:{','.join(map(str, DEVKIT_COLOURS[k]))}::" for k, t in enumerate(titles, 1)]
    anns = {vid: ann for vid, ann, _, _ in by_image(files, root)}
    for split in ("train", "val"):
        ids = files[f"ImageSets/Main/{split}.txt"].decode().splitlines()
        assert len(ids) == len(set(ids)) and all(f"Annotations/{i}.xml" in files for i in ids)
        seg = files[f"ImageSets/Segmentation/{split}.txt"].decode().splitlines()
        assert seg == [i for i in ids if any(o["geometryType"] in AREA_TYPES for o in anns[i]["objects"])]
        for t in titles:
            rows = files[f"ImageSets/Main/{t}_{split}.txt"].decode().splitlines()
            assert rows == [f"{i} {' 1' if any(o['classTitle'] == t for o in anns[i]['objects']) else '-1'}"
                            for i in ids]
    assert sorted(i for s in ("train", "val") for i in files[f"ImageSets/Main/{s}.txt"].decode().split("\n") if i) \
        == sorted(anns)


def test_mmdet_rule_gives_back_the_zero_based_pixel_box():
    files = render(BLOB)
    for _, ann, _, xml in by_image(files, BLOB):
        got = [tuple(int(float(o.findtext(f"bndbox/{k}"))) - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
               for o in xml.iter("object")]
        assert got == [pixel_box(o) for o in ann["objects"]]


def test_jpeg_option():
    with pytest.raises(OptionError):
        view_files(voc, read_project(str(BLOB)), ViewOptions(params={"voc.jpeg": "yes"}))
    files = render(BLOB, **{"voc.jpeg": "1"})
    plain = render(BLOB)
    images = [p for p in files if p.startswith("JPEGImages/")]
    assert len(images) == 12 and all(p.endswith(".jpg") for p in images)
    for path in images:
        vid = path[len("JPEGImages/"):-4]
        xml = etree.fromstring(files[f"Annotations/{vid}.xml"])
        assert xml.findtext("filename") == f"{vid}.jpg"
        original = next(data for p, data in plain.items() if p.startswith(f"JPEGImages/{vid}."))
        if original[:3] == b"\xff\xd8\xff":
            assert files[path] == original
            continue
        with Image.open(io.BytesIO(files[path])) as got, Image.open(io.BytesIO(original)) as src:
            assert got.format == "JPEG" and got.size == src.size and got.mode in ("RGB", "L")
            assert int(xml.findtext("size/depth")) == len(got.getbands())
            diff = np.abs(np.asarray(got.convert("RGB"), dtype=int) - np.asarray(src.convert("RGB"), dtype=int))
            assert diff.mean() < 8


def test_class_selection_keeps_only_those_objects():
    project = read_project(str(PLAIN))
    tree = VirtualTree(view_files(voc, project, ViewOptions(classes=("road", "car"))))
    xml = tree.read_file("Annotations/img_001.xml")
    assert [n for n, _ in xml_boxes(xml)] == ["car", "road"]
    with Image.open(io.BytesIO(tree.read_file("SegmentationClass/img_001.png"))) as png:
        assert set(np.unique(np.asarray(png))) == {0, 1, 2}  # road is class 2 of the selection (meta order)
    with Image.open(io.BytesIO(tree.read_file("SegmentationObject/img_001.png"))) as png:
        assert set(np.unique(np.asarray(png))) == {0, 1, 2}


# ---------------------------------------------------------------- real readers


def _datumaro_counts(path: Path, root: Path, files: dict[str, bytes]) -> None:
    """datumaro's voc / voc_segmentation readings equal what the JSON says."""
    dm = require("datumaro")
    class_index = {t: k for k, t in enumerate(meta_classes(root), 1)}
    want = {vid: expected(ann, class_index) for vid, ann, _, _ in by_image(files, root)}
    ds = datumaro_import(path, "voc", coordinate_mode="voc-one-based")
    assert len(ds) == 12 and sorted(item.id for item in ds) == sorted(want)
    for item in ds:
        objs, cls, inst = want[item.id]
        boxes = [a for a in item.annotations if a.type.name == "bbox"]
        names = [ds.categories()[dm.AnnotationType.label][a.label].name for a in boxes]
        assert [(n, tuple(a.points)) for n, a in zip(names, boxes)] == \
            [(c, (l, t, r + 1, b + 1)) for c, (l, t, r, b) in objs]
        assert item.media.has_data and item.media.data.shape[:2] == cls.shape
        masks = [a for a in item.annotations if a.type.name == "mask"]
        visible = sorted(int(k) for k in np.unique(inst) if k)
        assert sorted(a.group for a in masks) == visible
        for a in masks:
            assert np.array_equal(a.image, inst == a.group)
            assert a.label == int(cls[inst == a.group][0])
    seg = datumaro_import(path, "voc_segmentation")
    assert sorted(item.id for item in seg) == sorted(v for v, (_, c, _) in want.items() if c.any())
    assert sum(len(item.annotations) for item in seg) == \
        sum(np.count_nonzero(np.unique(i)) for _, _, i in want.values())


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_datumaro_reads_the_view(root: Path, tmp_path: Path):
    files = render(root)
    _datumaro_counts(materialise(files, tmp_path), root, files)


def test_against_the_sdk_export():
    """Every object the SDK exported is ours too, same class, box +1 on each coordinate
    (the SDK writes 0-based inclusive pixels, we the devkit's 1-based ones); oriented boxes
    are the exception: the SDK rounds their rotated corners outwards, we take the pixels the
    corners lie in, so ours lies inside the SDK's."""
    files = render(PLAIN)
    ours = {}
    for _vid, ann, img, xml in by_image(files, PLAIN):
        ds = img.parent.parent.relative_to(PLAIN).as_posix()
        ours.setdefault(f"{ds}_{img.stem}", []).append((xml_boxes(etree.tostring(xml)), ann))
    compared = 0
    for sdk_xml in sorted((SDK_VOC / "Annotations").glob("*.xml")):
        sdk = xml_boxes(sdk_xml.read_bytes())
        candidates = [(o, a) for o, a in ours[sdk_xml.stem] if [n for n, _ in o] == [n for n, _ in sdk]]
        assert candidates, sdk_xml.name  # val_dup: the SDK kept only one of dup.jpg / dup.png
        mine, ann = candidates[0]
        for (name, s), (_, m), obj in zip(sdk, mine, ann["objects"]):
            if obj["geometryType"] == "oriented_bbox":
                assert s[0] <= m[0] - 1 and s[1] <= m[1] - 1 and m[2] - 1 <= s[2] and m[3] - 1 <= s[3]
            else:
                assert tuple(v - 1 for v in m) == s, (sdk_xml.name, name)
            compared += 1
    assert compared == 20


# ---------------------------------------------------------------- end to end through the kernel


def test_mount_blob_as_voc(mount):
    with mount(BLOB, "--format", "voc") as mnt:
        files = read_tree(mnt)
        assert files == render(BLOB)
        for path, data in files.items():
            assert os.stat(mnt / path).st_size == len(data)
        sources = {hashlib.sha1(p.read_bytes()).hexdigest() for p in PLAIN.rglob("img/*")}
        served = {hashlib.sha1(d).hexdigest() for p, d in files.items() if p.startswith("JPEGImages/")}
        assert served == sources
        _datumaro_counts(mnt, BLOB, files)


def test_mask_of_an_image_of_unknown_size_reads_eio_and_the_rest_is_served(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture):
    root = tmp_path / "p"
    shutil.copytree(PLAIN, root)
    (root / "val/img/val_001.jpg").unlink()  # no image and an annotation cut short: no size anywhere
    ann = root / "val/ann/val_001.jpg.json"
    ann.write_bytes(ann.read_bytes()[:40])
    tree = VirtualTree(LayoutView(voc.layout, read_project(str(root)), ViewOptions()))
    failed = []
    for path in tree.walk_files():
        try:
            assert len(tree.read_file(path)) == tree.attr(path).size
        except Unreadable:
            failed.append(path)
    # the image is EIO (it is gone), its two masks too (no size to draw them in), nothing else
    assert failed == ["JPEGImages/val_001.jpg", "SegmentationClass/val_001.png", "SegmentationObject/val_001.png"]
    assert "image size unknown" in caplog.text
