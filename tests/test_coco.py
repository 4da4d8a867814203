"""COCO view: pure conversions, the SDK fixtures read back with pycocotools/COCOeval,
the SDK's own export compared object by object, and a real mount read by datumaro."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.rle import rle
from slyfs.formats.common.splits import item_names, splits
from slyfs.formats.model import (
    Cuboid2d,
    Graph,
    GraphNode,
    GraphTemplate,
    Line,
    Mask,
    OrientedBox,
    PointGeom,
    Polygon,
    Project,
    Rectangle,
    Tag,
)
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import build_view
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.formats.writers import coco
from slyfs.vfs.tree import VirtualTree
from tests.helpers.readers import coco_load, datumaro_detect, datumaro_import, require
from tests.helpers.views import view_files

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROJECTS = {"plain": FIXTURES / "sdk_project_plain", "blob": FIXTURES / "sdk_project_blob"}
SDK_COCO = FIXTURES / "sdk_reference" / "coco"
AREA_TYPES = (Rectangle, Polygon, Mask, OrientedBox, Cuboid2d)


def load_coco(data: bytes) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO()
        c.dataset = json.loads(data)
        c.createIndex()
    return c


def view(project: Project, **opts) -> tuple[VirtualTree, dict]:
    files = view_files(["coco"], project, ViewOptions(**opts))
    return VirtualTree(files), files


# ---------------------------------------------------------------- pure conversions


def test_rle_round_trips_through_pycocotools() -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random((13, 9)) > 0.5, np.ones((7, 5), bool), np.zeros((4, 6), bool)]
    full = np.zeros((13, 9), bool)
    full[:, 3:5] = True  # runs that go on from the bottom of one column into the next
    full[0, 0] = full[12, 8] = True
    masks.append(full)
    for m in masks:
        r = rle(m)
        assert sum(r["counts"]) == m.size and r["size"] == list(m.shape)
        decoded = mask_utils.decode(mask_utils.frPyObjects(r, *m.shape)).astype(bool)
        assert np.array_equal(decoded, m)
    crop = rng.random((4, 3)) > 0.3
    placed = rle(crop, origin=(5, 2), size=(10, 8))
    expected = np.zeros((8, 10), bool)
    expected[2:6, 5:8] = crop
    assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(placed, 8, 10)).astype(bool), expected)


def test_rectangle_bbox_area_and_polygon_cover_its_pixels() -> None:
    fields = coco.instance_fields([Rectangle(10, 5, 40, 30)], 96, 64)
    assert fields["bbox"] == [10, 5, 31, 26] and fields["area"] == 31 * 26
    assert fields["segmentation"] == [[10, 5, 41, 5, 41, 31, 10, 31]]
    clipped = coco.instance_fields([Rectangle(-5, -5, 200, 10)], 96, 64)
    assert clipped["bbox"] == [0, 0, 96, 11] and clipped["area"] == 96 * 11
    assert coco.instance_fields([Rectangle(100, 100, 120, 120)], 96, 64) is None


def test_polygons_are_written_along_pixel_edges_and_clipped() -> None:
    triangle = Polygon(((5, 5), (35, 5), (20, 35)))
    seg = coco.instance_fields([triangle], 40, 40)["segmentation"]
    assert len(seg) == 1 and all(isinstance(c, int) for c in seg[0])
    assert np.array_equal(_decoded(seg, 40, 40), geometry_mask(triangle, 40, 40))
    assert (min(seg[0][0::2]), max(seg[0][0::2]), min(seg[0][1::2]), max(seg[0][1::2])) == (5, 36, 5, 36)
    square = Polygon(((-10, 0), (20, 0), (20, 20), (-10, 20)))
    assert coco.instance_fields([square], 40, 40)["segmentation"] == [[0, 0, 0, 21, 21, 21, 21, 0]]
    holed = Polygon(((0, 0), (10, 0), (10, 10)), (((2, 1), (8, 1), (8, 7)),))
    assert isinstance(coco.instance_fields([holed], 20, 20)["segmentation"], dict)


def _decoded(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    rles = mask_utils.frPyObjects(segmentation, height, width)
    return mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles).astype(bool)


def test_holes_become_exact_rle() -> None:
    poly = Polygon(((5, 5), (50, 5), (50, 40), (5, 40)), (((15, 15), (25, 15), (25, 25), (15, 25)),))
    fields = coco.instance_fields([poly], 72, 56)
    assert isinstance(fields["segmentation"], dict)
    decoded = mask_utils.decode(mask_utils.frPyObjects(fields["segmentation"], 56, 72)).astype(bool)
    assert np.array_equal(decoded, geometry_mask(poly, 72, 56))
    assert fields["area"] == int(decoded.sum()) and not decoded[20, 20]


def test_bound_rectangle_gives_the_box_and_the_polygon_the_shape() -> None:
    rect, poly = Rectangle(5, 5, 35, 25), Polygon(((8, 8), (30, 8), (30, 22), (8, 22)))
    fields = coco.instance_fields([rect, poly], 70, 50)
    assert fields["bbox"] == [5, 5, 31, 21]
    assert fields["segmentation"] == [[8, 8, 8, 23, 31, 23, 31, 8]]
    assert fields["area"] == int(geometry_mask(poly, 70, 50).sum())


def test_keypoints_template_order_visibility_and_missing_nodes() -> None:
    template = GraphTemplate(("a", "b", "c", "d"), ("A", "B", "C", "D"), (("a", "b"),))
    graph = Graph({"d": GraphNode(9, 9), "a": GraphNode(1, 2), "b": GraphNode(5, 6, disabled=True),
                   "zz": GraphNode(3, 3)})
    f = coco.keypoint_fields(graph, template, 20, 20, 1)
    assert f["keypoints"] == [1.5, 2.5, 2, 5.5, 6.5, 1, 0, 0, 0, 9.5, 9.5, 2]
    assert f["num_keypoints"] == 3 and f["bbox"] == [1, 2, 9, 8] and f["area"] == 72
    hidden = coco.keypoint_fields(graph, template, 20, 20, 0)
    assert hidden["keypoints"][3:6] == [0, 0, 0] and hidden["num_keypoints"] == 2
    outside = coco.keypoint_fields(Graph({"a": GraphNode(30, 1), "c": GraphNode(2, 2)}), template, 20, 20, 2)
    assert outside["keypoints"][:3] == [0, 0, 0] and outside["num_keypoints"] == 1
    assert coco.keypoint_fields(Graph({"a": GraphNode(-1, 1)}), template, 20, 20, 2) is None


def test_tags_become_attributes() -> None:
    assert coco.attributes([Tag("reviewed"), Tag("score", 0.5), Tag("score", 1)]) == \
        {"reviewed": True, "score": 0.5}


def test_bad_visibility_option_is_refused() -> None:
    with pytest.raises(OptionError):
        build_view(read_project(str(PROJECTS["plain"])), ["coco"],
                   ViewOptions(params={"coco.disabled_visibility": "x"}))


def test_build_reads_no_annotation() -> None:
    project = read_project(str(PROJECTS["plain"]))

    def refuse(item):
        raise AssertionError(f"annotation of {item.name} read at build time")

    lazy = Project(project.root, project.meta, project.datasets, refuse, project.problems)
    files = view_files(["coco"], lazy, ViewOptions())
    assert "annotations/instances_train.json" in files


# ---------------------------------------------------------------- the SDK fixtures, read back


def expected_objects(project: Project, split_items) -> dict[tuple[str, str], list[np.ndarray]]:
    """(file name, class) → masks of the source objects with an area, as the test reads them
    (bound labels of one class are one object whose shape is its non-rectangle members)."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    names = item_names(split_items)
    for item, name in zip(split_items, names):
        ann = project.annotation(item)
        groups: dict = {}
        for label in ann.labels:
            if isinstance(label.geometry, AREA_TYPES):
                key = (label.instance, label.class_title) if label.instance else id(label)
                groups.setdefault(key, []).append(label)
        for labels in groups.values():
            shaped = [lb for lb in labels if not isinstance(lb.geometry, Rectangle)] or labels
            mask = np.zeros((ann.height, ann.width), bool)
            for lb in shaped:
                mask |= geometry_mask(lb.geometry, ann.width, ann.height)
            if mask.any():
                out.setdefault((name, labels[0].class_title), []).append(mask)
    return out


@pytest.fixture(params=sorted(PROJECTS), scope="module")
def fixture_view(request):
    project = read_project(str(PROJECTS[request.param]))
    tree, files = view(project)
    return project, tree, files


def test_masks_areas_and_counts_match_the_source(fixture_view) -> None:
    project, tree, files = fixture_view
    for split, items in splits(project, ViewOptions()).items():
        gt = load_coco(tree.read_file(f"annotations/instances_{split}.json"))
        assert len(gt.imgs) == len(items)
        assert [gt.imgs[i]["file_name"] for i in sorted(gt.imgs)] == item_names(items)
        expected = expected_objects(project, items)
        cats = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
        got_counts = Counter(cats[a["category_id"]] for a in gt.anns.values())
        want_counts: Counter = Counter()
        for (_, cls), masks in expected.items():
            want_counts[cls] += len(masks)
        assert got_counts == want_counts
        assert all(a["id"] >= 1 and a["iscrowd"] == 0 for a in gt.anns.values())
        assert len({a["id"] for a in gt.anns.values()}) == len(gt.anns)
        for a in gt.anns.values():
            img = gt.imgs[a["image_id"]]
            got = gt.annToMask(a).astype(bool)
            candidates = expected[(img["file_name"], cats[a["category_id"]])]
            truth = max(candidates, key=lambda m: (m & got).sum() / (m | got).sum())
            assert a["area"] == int(truth.sum())
            x, y, w, h = a["bbox"]
            assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
            ys, xs = np.nonzero(truth)
            assert x <= xs.min() and y <= ys.min() and xs.max() + 1 <= x + w and ys.max() + 1 <= y + h
            assert np.array_equal(got, truth)


def test_rle_objects_are_exact(fixture_view) -> None:
    project, tree, _ = fixture_view
    for split, items in splits(project, ViewOptions()).items():
        gt = load_coco(tree.read_file(f"annotations/instances_{split}.json"))
        expected = expected_objects(project, items)
        cats = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
        for a in gt.anns.values():
            if isinstance(a["segmentation"], dict) or _is_box(a):
                got = gt.annToMask(a).astype(bool)
                assert any(np.array_equal(got, m) for m in expected[(gt.imgs[a["image_id"]]["file_name"],
                                                                     cats[a["category_id"]])])


def _is_box(a: dict) -> bool:
    seg = a["segmentation"]
    if isinstance(seg, dict) or len(seg) != 1 or len(seg[0]) != 8:
        return False
    x, y, w, h = a["bbox"]
    return seg[0] == [x, y, x + w, y, x + w, y + h, x, y + h]


def _self_ap(gt: COCO, iou_type: str, **params) -> float:
    dets = []
    for a in gt.anns.values():
        d = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0}
        if iou_type == "segm":
            d["segmentation"] = gt.annToRLE(a)
        elif iou_type == "keypoints":
            d["keypoints"] = a["keypoints"]
        else:
            d["bbox"] = a["bbox"]
        dets.append(d)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        for k, v in params.items():
            setattr(ev.params, k, v)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0]


def test_cocoeval_ground_truth_against_itself(fixture_view) -> None:
    project, tree, _ = fixture_view
    gt = load_coco(tree.read_file("annotations/instances_train.json"))
    assert _self_ap(gt, "bbox") == pytest.approx(1.0)
    assert _self_ap(gt, "segm") == pytest.approx(1.0)
    kp = load_coco(tree.read_file("annotations/person_keypoints_train.json"))
    k = len(kp.loadCats(kp.getCatIds())[0]["keypoints"])
    assert _self_ap(kp, "keypoints", kpt_oks_sigmas=np.full(k, 0.05)) == pytest.approx(1.0)


def test_keypoints_file_holds_graphs_in_template_order(fixture_view) -> None:
    project, tree, _ = fixture_view
    kp = json.loads(tree.read_file("annotations/person_keypoints_train.json"))
    template = next(c.template for c in project.meta.classes if c.shape == "graph")
    cat = kp["categories"][0]
    assert [c["name"] for c in kp["categories"]] == ["person_kp"]
    assert cat["keypoints"] == list(template.labels)
    assert cat["skeleton"] == [[template.node_ids.index(a) + 1, template.node_ids.index(b) + 1]
                               for a, b in template.edges]
    by_file = {i["id"]: i["file_name"] for i in kp["images"]}
    anns = {by_file[a["image_id"]]: a for a in kp["annotations"]}
    assert set(anns) == {"img_001.jpg", "sub_001.jpg"}
    # img_001: right_eye is disabled → v=1; coordinates at pixel centres
    assert anns["img_001.jpg"]["keypoints"] == [60.5, 20.5, 2, 55.5, 15.5, 2, 65.5, 15.5, 1, 60.5, 35.5, 2]
    assert anns["img_001.jpg"]["num_keypoints"] == 4
    hidden = VirtualTree(build_view(project, ["coco"], ViewOptions(params={"coco.disabled_visibility": "0"})))
    kp0 = json.loads(hidden.read_file("annotations/person_keypoints_train.json"))
    a0 = next(a for a in kp0["annotations"] if a["image_id"] == anns["img_001.jpg"]["image_id"])
    assert a0["keypoints"][6:9] == [0, 0, 0] and a0["num_keypoints"] == 3


def test_left_out_items_and_captions_are_reported(fixture_view) -> None:
    project, tree, files = fixture_view
    for split, items in splits(project, ViewOptions()).items():
        want: Counter = Counter()
        for item in items:
            for label in project.annotation(item).labels:
                if isinstance(label.geometry, (Line, PointGeom)):
                    want[label.class_title] += 1
        info = json.loads(tree.read_file(f"annotations/instances_{split}.json"))["info"]
        left = info.get("slyfs_left_out", {})
        got = Counter({cls: n for reason in left.values() for cls, n in reason.items()})
        assert got == want
    captions = json.loads(tree.read_file("annotations/captions_train.json"))
    names = {i["id"]: i["file_name"] for i in captions["images"]}
    assert [(names[a["image_id"]], a["caption"]) for a in captions["annotations"]] == \
        [("img_001.jpg", "a car near a building")]
    instances = json.loads(tree.read_file("annotations/instances_train.json"))
    car = next(a for a in instances["annotations"] if a["attributes"])
    assert car["attributes"] == {"confidence": 0.87}


# ---------------------------------------------------------------- against the SDK's own export


def test_same_objects_as_the_sdk_export_with_documented_differences() -> None:
    """Every object the SDK exports is ours too, with: bbox w/h +1 (the SDK leaves out the
    last pixel row/column), polygons along the edges of the SDK polygon's pixels, holes kept (RLE instead of
    the SDK's hole-less polygon), rectangles with a box polygon (SDK: none), keypoints +0.5
    with disabled nodes v=1 (SDK: 2) and in person_keypoints_*.json. Ours also has the alpha
    masks, cuboids and oriented boxes the SDK drops."""
    project = read_project(str(PROJECTS["plain"]))
    tree, _ = view(project)
    ours: dict[tuple[str, str], list[dict]] = {}
    sources = {(i.dataset.rsplit("/", 1)[-1], i.name): i for i in project.items()}
    for split, items in splits(project, ViewOptions()).items():
        for kind in ("instances", "person_keypoints"):
            data = json.loads(tree.read_file(f"annotations/{kind}_{split}.json"))
            cats = {c["id"]: c["name"] for c in data["categories"]}
            source = {name: item for item, name in zip(items, item_names(items))}
            files = {i["id"]: i["file_name"] for i in data["images"]}
            for a in data["annotations"]:
                item = source[files[a["image_id"]]]
                sdk_folder = item.dataset.rsplit("/", 1)[-1]
                ours.setdefault((sdk_folder, item.name), []).append({**a, "class": cats[a["category_id"]]})
    matched: set[int] = set()
    for folder in ("train", "val", "sub"):
        sdk = json.loads((SDK_COCO / folder / "annotations" / "coco_instances.json").read_text())
        cats = {c["id"]: c["name"] for c in sdk["categories"]}
        images = {i["id"]: i for i in sdk["images"]}
        for s in sdk["annotations"]:
            img = images[s["image_id"]]
            cands = [a for a in ours[(folder, img["file_name"])] if a["class"] == cats[s["category_id"]]]
            x, y, w, h = s["bbox"]
            cands = [a for a in cands if a["bbox"] == [x, y, w + 1, h + 1]]
            assert len(cands) == 1, (folder, img["file_name"], s)
            a = cands[0]
            matched.add(id(a))
            if "keypoints" in s:
                assert [v + 0.5 for i, v in enumerate(s["keypoints"]) if i % 3 != 2] == \
                    [v for i, v in enumerate(a["keypoints"]) if i % 3 != 2]
                assert [v for v in a["keypoints"][2::3]] == \
                    ([2, 2, 1, 2] if img["file_name"] == "img_001.jpg" else s["keypoints"][2::3])
            elif s["segmentation"] == []:  # rectangle
                assert a["area"] == s["area"] and _is_box(a)
            elif isinstance(s["segmentation"], dict):  # bitmap: the same mask
                assert a["segmentation"] == s["segmentation"] and a["area"] == s["area"]
            elif isinstance(a["segmentation"], dict):  # polygon with holes: the SDK's exterior, holes kept
                h_, w_ = a["segmentation"]["size"]
                exterior = s["segmentation"][0]
                labels = project.annotation(sources[folder, img["file_name"]]).labels
                holes = next(lb.geometry.interiors for lb in labels
                             if isinstance(lb.geometry, Polygon) and lb.geometry.interiors)
                truth = geometry_mask(Polygon(tuple(zip(exterior[0::2], exterior[1::2])), holes), w_, h_)
                assert holes and np.array_equal(mask_utils.decode(mask_utils.frPyObjects(a["segmentation"], h_, w_))
                                                 .astype(bool), truth)
            else:  # polygon: the SDK's outline, written along the edges of its pixels
                truth = geometry_mask(Polygon(tuple(zip(s["segmentation"][0][0::2], s["segmentation"][0][1::2]))),
                                      img["width"], img["height"])
                assert len(s["segmentation"]) == 1 and np.array_equal(_decoded(a["segmentation"], *truth.shape), truth)
    extra = Counter(a["class"] for objs in ours.values() for a in objs if id(a) not in matched)
    assert extra == Counter({"smoke": 2, "box3d": 1, "rotated": 1})


# ---------------------------------------------------------------- a real mount


def test_mounted_blob_project_reads_with_pycocotools_and_datumaro(mount) -> None:
    project = read_project(str(PROJECTS["blob"]))
    with mount(PROJECTS["blob"], "--format", "coco") as mnt:
        for split, items in splits(project, ViewOptions()).items():
            gt = coco_load(mnt / "annotations" / f"instances_{split}.json")
            names = item_names(items)
            assert sorted(i["file_name"] for i in gt.imgs.values()) == sorted(names)
            for item, name in zip(items, names):
                ref = item.image
                with open(ref.path, "rb") as f:
                    f.seek(ref.offset)
                    assert (mnt / "images" / split / name).read_bytes() == f.read(ref.size)
        require("datumaro")
        assert "coco" in datumaro_detect(mnt)
        # datumaro takes one label-bearing task (instances, alphabetically first) and says so
        ds = datumaro_import(mnt, "coco", allowed_warnings=[r"Multiple COCO tasks", r"conflicting source"])
        assert len(ds) == len(list(project.items()))
        assert set(ds.subsets()) == {"train", "val"}
        want = sum(len(json.loads((mnt / "annotations" / f"instances_{s}.json").read_bytes())["annotations"])
                   for s in ("train", "val"))
        masks_and_boxes = sum(1 for item in ds for a in item.annotations if a.type.name == "bbox")
        assert masks_and_boxes == want
        captions = [a.caption for item in ds for a in item.annotations if a.type.name == "caption"]
        assert captions == ["a car near a building"]


# ---------------------------------------------------------------- score and crowd (CVAT/Datumaro conventions)


def test_score_and_crowd_tags_leave_the_attributes() -> None:
    split = coco.object_tags([Tag("score", 0.75), Tag("is_crowd"), Tag("reviewed"), Tag("score", 0.1),
                              Tag("iscrowd", "0")])
    assert (split.score, split.crowd, split.attributes, split.problems) == (0.75, True, {"reviewed": True}, ())
    assert split.fields() == {"iscrowd": 1, "score": 0.75, "attributes": {"reviewed": True}}
    assert coco.object_tags([Tag("iscrowd", "No"), Tag("score", "0.5")]).fields() == \
        {"iscrowd": 0, "score": 0.5, "attributes": {}}
    assert coco.object_tags([Tag("iscrowd", 1.0)]).crowd and not coco.object_tags([Tag("comment", "x")]).crowd
    bad = coco.object_tags([Tag("score", "high"), Tag("is_crowd", "maybe"), Tag("score", 0.3)])
    assert bad.fields() == {"iscrowd": 0, "attributes": {"score": "high", "is_crowd": "maybe"}}
    assert bad.problems == ("tag 'score' value 'high' is not a finite number",
                            "tag 'is_crowd' value 'maybe' is not one of 1, true, yes, 0, false, no")
    assert coco.object_tags([Tag("score", "nan")]).score is None


def test_a_crowd_object_is_exact_rle_even_as_a_rectangle() -> None:
    for geometry in (Rectangle(3, 2, 9, 5), Polygon(((1, 1), (12, 1), (6, 8)))):
        fields = coco.instance_fields([geometry], 16, 10, crowd=True)
        assert isinstance(fields["segmentation"], dict)
        assert np.array_equal(_decoded(fields["segmentation"], 10, 16), geometry_mask(geometry, 16, 10))


def _tag_objects(root: Path) -> None:
    """Give img_001's objects CVAT's score/crowd tags, one of them unreadable."""
    path = root / "train" / "ann" / "img_001.jpg.json"
    data = json.loads(path.read_text())
    extra = {"car": [{"name": "score", "value": 0.9}, {"name": "is_crowd"}],
             "building": [{"name": "iscrowd", "value": "1"}, {"name": "score", "value": "0.25"}],
             "road": [{"name": "score", "value": "high"}],
             "person_kp": [{"name": "score", "value": 0.5}]}
    for obj in data["objects"]:
        obj["tags"] += extra.get(obj["classTitle"], [])
    path.write_text(json.dumps(data))


def test_mounted_score_and_crowd_read_back_with_pycocotools_and_datumaro(plain_copy: Path, mount) -> None:
    _tag_objects(plain_copy)
    project = read_project(str(plain_copy))
    item = next(i for i in project.items() if i.name == "img_001.jpg")
    truth = {lb.class_title: geometry_mask(lb.geometry, 96, 64) for lb in project.annotation(item).labels
             if lb.class_title in ("car", "building")}
    with mount(plain_copy, "--format", "coco") as mnt:
        gt = coco_load(mnt / "annotations" / "instances_train.json")
        image_id = next(i for i, img in gt.imgs.items() if img["file_name"] == "img_001.jpg")
        cats = {c["id"]: c["name"] for c in gt.dataset["categories"]}
        anns = {cats[a["category_id"]]: a for a in gt.imgToAnns[image_id]}
        car, building, road = anns["car"], anns["building"], anns["road"]
        assert (car["score"], car["iscrowd"], car["attributes"]) == (0.9, 1, {"confidence": 0.87})
        assert (building["score"], building["iscrowd"], building["attributes"]) == (
            0.25, 1, {"comment": "has courtyard"})
        assert "score" not in road and road["iscrowd"] == 0 and road["attributes"] == {"score": "high"}
        for name in ("car", "building"):
            assert isinstance(anns[name]["segmentation"], dict)
            assert np.array_equal(gt.annToMask(anns[name]).astype(bool), truth[name])
        assert sum(a["iscrowd"] for a in gt.anns.values()) == 2
        kp = coco_load(mnt / "annotations" / "person_keypoints_train.json")
        person = next(a for a in kp.anns.values() if a["image_id"] == image_id)
        assert (person["score"], person["iscrowd"], person["attributes"]) == (0.5, 0, {})
        log = mnt.with_suffix(".log").read_text()
        assert "'road' object: tag 'score' value 'high' is not a finite number -> kept in attributes" in log

        require("datumaro")
        from datumaro.components.annotation import AnnotationType

        skipped = [r"was skipped, could't match this file"]  # the other tasks' files, by design
        ds = datumaro_import(mnt, "coco_instances", allowed_warnings=skipped)
        dm_item = next(i for i in ds if i.id.endswith("img_001") and i.subset == "train")
        labels = ds.categories()[AnnotationType.label].items
        by_class = {}
        for a in dm_item.annotations:
            by_class.setdefault(labels[a.label].name, {})[a.type.name] = a.attributes
        assert by_class["car"]["mask"] == {"confidence": 0.87, "score": 0.9, "is_crowd": True}
        assert by_class["building"]["mask"] == {"comment": "has courtyard", "score": 0.25, "is_crowd": True}
        assert by_class["road"]["mask"] == {"score": "high", "is_crowd": False}
        # a keypoint annotation carries no segmentation, which datumaro mentions
        dm_kp = datumaro_import(mnt, "coco_person_keypoints", allowed_warnings=[*skipped, "field 'segmentation'"])
        points = [a for i in dm_kp if i.id.endswith("img_001") for a in i.annotations if a.type.name == "points"]
        assert [p.attributes["score"] for p in points] == [0.5]

