"""The LabelMe view: attribute text, names and masks unit by unit, then real mounts of both SDK
fixtures and a generated project read by Datumaro's ``label_me`` importer (and its detector, which
CVAT runs first), with every count and every mask checked against the annotation JSON itself."""

from __future__ import annotations

import io
import json
import math
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from slyfs.formats.layout import LayoutView
from slyfs.formats.model import Annotation, Label, Rectangle, Tag
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import labelme
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN, read_tree
from tests.helpers.mounts import SOURCES, assert_clean_import, mount_once, plain_twin, sources_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.source import polygon_is_mask, source_annotations
from tests.test_voc import _bitmap, _hull, _obb_corners, area_raster

LEFT_OUT = ("line", "point", "graph")


# ---------------------------------------------------------------- expectations from the JSON alone


def source_anns(root: Path) -> Iterator[dict]:
    """Every annotation JSON of a project (plain or blob: the ann/ folders are the same)."""
    return (a.data for a in source_annotations(root))


def raster(obj: dict, w: int, h: int) -> np.ndarray:
    """The object's pixels (test_voc's drawing; bitmaps placed with clipping at the image border)."""
    if obj["geometryType"] not in ("bitmap", "alpha_mask"):
        return area_raster(obj, w, h)
    (ox, oy), m = _bitmap(obj)
    out = np.zeros((h + m.shape[0] * 2, w + m.shape[1] * 2), dtype=bool)
    out[oy + m.shape[0]:oy + 2 * m.shape[0], ox + m.shape[1]:ox + 2 * m.shape[1]] = m
    return out[m.shape[0]:m.shape[0] + h, m.shape[1]:m.shape[1] + w]


def kind(obj: dict) -> str | None:
    """The Datumaro annotation type the object must come back as; None: not representable."""
    t = obj["geometryType"]
    if t in LEFT_OUT:
        return None
    if t == "rectangle":
        return "bbox"
    if t == "polygon":
        return "mask" if polygon_is_mask(obj) else "polygon"
    if t == "cuboid_2d":
        return "polygon" if len(_hull([tuple(v["loc"]) for v in obj["vertices"].values()])) >= 3 else "mask"
    if t == "oriented_bbox":
        return "polygon" if len(set(_obb_corners(obj))) >= 3 else "mask"
    return "mask"  # a polygon of fewer than 3 distinct vertices, holes, bitmaps, alpha masks


def kept_objects(ann: dict) -> list[tuple[dict, str]]:
    """The objects LabelMe holds, in file order: representable and with a pixel inside the image."""
    w, h = ann["size"]["width"], ann["size"]["height"]
    return [(obj, k) for obj in ann["objects"] if (k := kind(obj)) is not None and raster(obj, w, h).any()]


def expected_counts(root: Path) -> Counter:
    counts: Counter = Counter()
    for ann in source_anns(root):
        for obj, k in kept_objects(ann):
            counts[k, obj["classTitle"]] += 1
    return counts


def tag_value(value):
    """A tag's value as Datumaro reads our attribute text back."""
    if value is None:
        return True
    return value  # numbers keep their JSON type: 0.0 is written 0.0 and read back as a float


def expected_attributes(obj: dict) -> dict:
    out: dict = {"occluded": False, "username": ""}
    for tag in obj["tags"]:
        if tag["name"] == "occluded":
            value = tag.get("value")
            out["occluded"] = value is None or str(value).strip().lower() not in ("0", "false", "no", "")
        else:
            out.setdefault(tag["name"], tag_value(tag.get("value")))
    return out


def points_of(obj: dict) -> list[tuple[float, float]]:
    """A polygon object's vertices at pixel centres."""
    t = obj["geometryType"]
    if t == "polygon":
        pts = [tuple(p) for p in obj["points"]["exterior"]]
    elif t == "cuboid_2d":
        pts = _hull([tuple(v["loc"]) for v in obj["vertices"].values()])
    else:
        pts = _obb_corners(obj)
    return [(x + 0.5, y + 0.5) for x, y in pts]


# ---------------------------------------------------------------- pure helpers


def test_corners_centres_and_mask_names():
    assert labelme.box_corners((2, 3, 10, 7)) == ((2, 3), (10, 3), (10, 7), (2, 7))
    assert labelme.pixel_centres([(0, 0), (4, 9)]) == ((0.5, 0.5), (4.5, 9.5))
    assert labelme.mask_name("a b", 3) == "a b_mask_3.png" and labelme.mask_index("a b_mask_3.png") == 3
    assert labelme.mask_index(labelme.mask_name("x_mask_1", 12)) == 12
    long_a, long_b = "é" * 200 + "a", "é" * 200 + "b"
    names = [labelme.mask_name(s, 7) for s in (long_a, long_b)]
    assert names[0] != names[1] and all(len(n.encode()) <= 255 and n.endswith("_mask_7.png") for n in names)


def test_bound_labels_make_one_parts_tree():
    def obj(instance):
        return labelme.LabelmeObject(Label("car", Rectangle(0, 0, 1, 1), instance=instance), ((0, 0),) * 4, True)
    objs = [obj("a"), obj(None), obj("a"), obj("b"), obj("a")]
    assert labelme.parts_of(objs) == [("2,4", ""), ("", ""), ("", "0"), ("", ""), ("", "0")]


def test_attribute_values_keep_their_type_for_the_reader():
    assert labelme.attribute_value(None) is None
    assert labelme.attribute_value(5) == "5" and labelme.attribute_value(0.25) == "0.25"
    assert labelme.attribute_value("5") == '"5"' and labelme.attribute_value("TRUE") == '"TRUE"'
    assert labelme.attribute_value("one, two") == "one\\, two"
    assert labelme.attribute_value(' x"') == '" x\\""'
    assert labelme.attribute_value("end\\") == "end%5C"


ATTRIBUTE_CASES = [Tag("flag"), Tag("n", 5), Tag("f", 0.5), Tag("s5", "5"), Tag("sf", "2.50"), Tag("b", "true"),
                   Tag("quote", 'say "hi"'), Tag("comma", "one, two"), Tag("eq", "a=b"), Tag("bs", "back\\slash"),
                   Tag("bs2", "a\\,b\\=c\\\"d"), Tag("pad", " padded "), Tag("empty", ""), Tag("uni", "café ü"),
                   Tag("k=,\"", "v"), Tag(" spaced key ", "v"), Tag("quoted", '"q"'), Tag("trail", "x\\"),
                   Tag("occluded", "1"), Tag("n", 6)]


def test_datumaro_reads_the_attributes_back(tmp_path: Path):
    require("datumaro")
    label = Label("a class", Rectangle(1, 2, 5, 6), tuple(ATTRIBUTE_CASES))
    parsed = labelme.parse(Annotation(8, 9, (), (label,)), {"a class"})
    xml = labelme.annotation_xml("a.png", "my set", parsed, "a", "occluded", ["a note -- here"])
    (tmp_path / "Annotations/my set").mkdir(parents=True)
    (tmp_path / "Annotations/my set/a.xml").write_bytes(xml)
    report = datumaro_import_all(tmp_path, "label_me")
    assert report.errors == []
    (item,) = report.dataset
    assert item.subset == "my set" and item.id == "a"
    (ann,) = item.annotations
    assert ann.type.name == "bbox" and (ann.x, ann.y, ann.w, ann.h) == (1, 2, 5, 5)
    want = {"flag": True, "n": 5, "f": 0.5, "s5": "5", "sf": "2.50", "b": "true", "quote": 'say "hi"',
            "comma": "one, two", "eq": "a=b", "bs": "back\\slash", "bs2": "a\\,b\\=c\\\"d", "pad": " padded ",
            "empty": "", "uni": "café ü", "k=,\"": "v", "%20spaced key%20": "v", "quoted": '"q"', "trail": "x%5C",
            "occluded": True, "username": ""}
    assert ann.attributes == want


def test_mask_png_is_rgba_with_datumaro_colour():
    pixels = np.zeros((3, 4), dtype=bool)
    pixels[1, 2] = True
    with Image.open(io.BytesIO(labelme.mask_png(pixels))) as png:
        arr = np.asarray(png)
        assert png.mode == "RGBA" and png.size == (4, 3)
    assert tuple(arr[1, 2]) == labelme.MASK_RGBA and not arr[0].any() and np.array_equal(arr.any(axis=2), pixels)


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=3)


@pytest.fixture(scope="module", params=SOURCES)
def mounted_view(request: pytest.FixtureRequest, sources: dict[str, Path]) -> Iterator[tuple[Path, Path, Path]]:
    """(source, mount, the plain project holding the same annotations and images)."""
    source = sources[request.param]
    for mnt, _ in mount_once(source, "labelme"):
        yield source, mnt, plain_twin(source)


def test_datumaro_reads_the_mount(mounted_view):
    require("datumaro")
    source, mnt, _ = mounted_view
    assert "label_me" in datumaro_detect(mnt)  # CVAT detects before it imports
    report = datumaro_import_all(mnt, "label_me")
    assert_clean_import(report, sum(1 for _ in source_annotations(source)), no_warnings=True)
    assert report.label_counts() == expected_counts(source)


def test_objects_and_masks_match_the_json(mounted_view):
    """Every object, in order: its type, class, occluded flag, coordinates; every mask pixel for pixel.
    A blob project serves what the view of its plain twin holds, byte for byte."""
    source, mnt, plain = mounted_view
    if source != plain:
        tree = VirtualTree(LayoutView(labelme.layout, read_project(str(plain)), ViewOptions()))
        assert read_tree(mnt) == {p: tree.read_file(p) for p in tree.walk_files()}
        return
    by_image: dict[bytes, list] = {}  # image bytes -> the XMLs of images with those bytes (a pool repeats some)
    for xml_path in sorted(mnt.glob("Annotations/*/*.xml")):
        root = etree.parse(str(xml_path)).getroot()
        image = mnt / "Images" / root.findtext("folder") / root.findtext("filename")
        by_image.setdefault(image.read_bytes(), []).append((root, xml_path))
    seen = masks = 0
    for source_ann in source_annotations(source):
        ann = source_ann.data
        kept = kept_objects(ann)
        candidates = by_image[source_ann.image.read_bytes()]
        names = [obj["classTitle"] for obj, _ in kept]
        match = next(c for c in candidates if [o.findtext("name") for o in c[0].findall("object")] == names)
        candidates.remove(match)  # each XML stands for one source image
        root, xml_path = match
        w, h = ann["size"]["width"], ann["size"]["height"]
        assert (root.findtext("imagesize/ncols"), root.findtext("imagesize/nrows")) == (str(w), str(h))
        objects = root.findall("object")
        for index, (el, (obj, k)) in enumerate(zip(objects, kept)):
            assert el.findtext("id") == str(index)
            occluded = expected_attributes(obj)["occluded"]
            assert el.findtext("occluded") == ("yes" if occluded else "no")
            if k == "mask":
                png = xml_path.parents[2] / "Masks" / root.findtext("folder") / el.findtext("segm/mask")
                with Image.open(png) as im:
                    got = np.asarray(im).any(axis=2)
                assert np.array_equal(got, raster(obj, w, h)), (xml_path.name, index)
                masks += 1
                continue
            pts = [(float(p.findtext("x")), float(p.findtext("y"))) for p in el.iter("pt")]
            if k == "bbox":
                (l, t), (r, b) = obj["points"]["exterior"]
                l, t, r, b = max(0, l), max(0, t), min(w - 1, r), min(h - 1, b)
                assert el.findtext("type") == "bounding_box"
                assert pts == [(l, t), (r + 1, t), (r + 1, b + 1), (l, b + 1)]
            else:
                want = points_of(obj)
                assert len(pts) == len(want) and all(math.isclose(a, round(c, 2), abs_tol=0.006)
                                                     for p, q in zip(sorted(pts), sorted(want)) for a, c in zip(p, q))
        seen += 1
    assert seen and masks and not any(by_image.values())


def test_attributes_through_datumaro(mounted_view):
    """Every object's tags come back as Datumaro attributes of the right type."""
    require("datumaro")
    source, mnt, _ = mounted_view
    report = datumaro_import_all(mnt, "label_me")
    got = sorted(json.dumps(a.attributes, sort_keys=True) for item in report.dataset for a in item.annotations)
    want = sorted(json.dumps(expected_attributes(obj), sort_keys=True)
                  for ann in source_anns(source) for obj, _ in kept_objects(ann))
    assert got == want


def test_groups_follow_instance_bindings(mounted_view):
    require("datumaro")
    source, mnt, _ = mounted_view
    report = datumaro_import_all(mnt, "label_me")
    got = sorted(sorted(Counter(a.group for a in item.annotations if a.group).values())
                 for item in report.dataset)
    want = []
    for ann in source_anns(source):
        bound = Counter(obj["instance"] for obj, _ in kept_objects(ann) if obj.get("instance"))
        want.append(sorted(n for n in bound.values() if n > 1))
    assert sorted(got) == sorted(want)


# ---------------------------------------------------------------- tags and view options


def test_flag_tags_and_the_first_tag_of_a_name():
    from slyfs.formats.common.tags import find_tag, tag_flag
    assert [tag_flag(v) for v in (None, 1, 0, 0.0, 2.5, "1", "0", " yes ", "No", "FALSE", "", "maybe")] == \
        [True, True, False, False, True, True, False, True, False, False, False, True]
    tags = (Tag("a", 1), Tag("b"), Tag("a", 2))
    assert find_tag(tags, "a") == Tag("a", 1) and find_tag(tags, "c") is None


def view(root: Path, **kwargs) -> dict[str, bytes]:
    tree = VirtualTree(LayoutView(labelme.layout, read_project(str(root)), ViewOptions(**kwargs)))
    return {p: tree.read_file(p) for p in tree.walk_files()}


def test_another_occluded_tag():
    """``--opt labelme.occluded-tag=comment``: that tag becomes the flag, ``occluded`` an attribute."""
    files = view(PLAIN, params={"labelme.occluded-tag": "comment"})
    flags = Counter()
    for path, data in files.items():
        if path.startswith("Annotations/"):
            for el in etree.fromstring(data).iter("object"):
                attrs = el.findtext("attributes")
                flags[el.findtext("occluded")] += 1
                assert "comment=" not in attrs
    comments = sum(1 for ann in source_anns(PLAIN) for obj, _ in kept_objects(ann)
                   if any(t["name"] == "comment" for t in obj["tags"]))
    assert flags["yes"] == comments > 0


def test_classes_splits_and_no_empty_are_honoured():
    files = view(PLAIN, classes=("car", "road"), include_empty=False, split="tags")
    names = Counter(el.findtext("name") for p, d in files.items() if p.startswith("Annotations/")
                    for el in etree.fromstring(d).iter("object"))
    want = Counter(obj["classTitle"] for ann in source_anns(PLAIN) for obj, _ in kept_objects(ann)
                   if obj["classTitle"] in ("car", "road"))
    assert names == want
    holding = sum(1 for ann in source_anns(PLAIN) if any(o["classTitle"] in ("car", "road") for o in ann["objects"]))
    assert len([p for p in files if p.startswith("Annotations/")]) == holding
    assert {p.split("/")[1] for p in files} <= {"train", "val", "test"}
    for path, data in files.items():
        if path.startswith("Annotations/"):
            assert etree.fromstring(data).findtext("folder") == path.split("/")[1]
    masks = [p for p in files if p.startswith("Masks/")]
    assert masks and all(p.endswith(".png") and "_mask_" in p for p in masks)


@pytest.mark.parametrize("memos", ["kept", "none"])
def test_a_removed_mask_object_is_stale_and_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memos: str):
    """Masks/ is listed from the annotations (ItemFile.many): dropping a bitmap label removes its PNG,
    and the stale paths of the live rebuild name it, the XML and the folder. With no memo keeping the
    old annotation, the old files are still known: from the listing that served them."""
    from slyfs.formats.readers.supervisely import project as reader_project
    from slyfs.formats.readers.supervisely.index import SourceIndex
    from slyfs.formats.readers.supervisely.watch import SuperviselySource

    if memos == "none":
        monkeypatch.setattr(labelme, "OBJECTS_MEMO_BYTES", 1)
        monkeypatch.setattr(reader_project, "ANNOTATION_CACHE_BYTES", 1)

    source = tmp_path / "src"
    shutil.copytree(PLAIN, source)
    reader = SuperviselySource(str(source), SourceIndex(tmp_path / "index.sqlite"))
    tree = VirtualTree(LayoutView(labelme.layout, reader.scan(), ViewOptions()))
    before = set(tree.walk_files())
    target = source / "train/ann/img_001.jpg.json"
    ann = json.loads(target.read_text())
    masks_before = {p for p in before if p.startswith("Masks/train/img_001_mask_")}
    ann["objects"] = [o for o in ann["objects"] if o["geometryType"] != "bitmap"]
    target.write_text(json.dumps(ann))
    project, change = reader.update([str(target)])
    stale = set(tree.replace(tree.view.updated(project, change), change))
    after = set(tree.walk_files())
    fresh = VirtualTree(LayoutView(labelme.layout, read_project(str(source)), ViewOptions()))
    assert after == set(fresh.walk_files())
    assert {p: tree.read_file(p) for p in after} == {p: fresh.read_file(p) for p in after}
    gone = before - after
    assert gone and gone <= masks_before and gone <= stale
    assert "Annotations/train/img_001.xml" in stale and "Masks/train" in stale
