"""The Datumaro 1.0 JSON view: pure conversions, the compressed RLE against pycocotools, and real
mounts of the SDK fixtures and of generated projects read back by Datumaro's own importer, with
the expected annotations computed here from the source JSON."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.common.rle import compressed_counts, rle, row_runs
from slyfs.formats.common.splits import splits, subset_names
from slyfs.formats.common.tags import flag_value, tag_attributes, whole_number
from slyfs.formats.model import (
    Cuboid2d,
    Graph,
    GraphNode,
    GraphTemplate,
    Label,
    Line,
    Mask,
    OrientedBox,
    PointGeom,
    Polygon,
    Rectangle,
    Tag,
)
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import datumaro
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN
from tests.helpers.dm_shapes import assert_shape_is_label, items_by_subset
from tests.helpers.mounts import SOURCES, assert_clean_import, imports_fixture, mounts_fixture, sources_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.source import (
    assert_odd_names_read_back,
    meta_of,
    odd_names_view,
    polygon_is_mask,
    source_annotations,
)
from tests.helpers.views import view_files

# ---------------------------------------------------------------- pure conversions


def test_compressed_counts_are_pycocotools_strings() -> None:
    mask_utils = require("pycocotools.mask")
    rng = np.random.default_rng(7)
    for shape in ((1, 1), (5, 7), (40, 33), (64, 3)):
        for p in (0.0, 0.05, 0.5, 0.95, 1.0):
            m = rng.random(shape) < p
            expected = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode()
            assert compressed_counts(rle(m)["counts"]) == expected
    big = {"size": [1000, 200], "counts": [100000, 3, 99997]}  # long runs: several 5-bit groups each
    assert compressed_counts(big["counts"]) == mask_utils.frPyObjects(big, 1000, 200)["counts"].decode()


def test_row_runs_start_with_background_and_cover_the_box() -> None:
    m = np.array([[1, 1, 0], [0, 0, 1]], bool)
    assert row_runs(m) == [0, 2, 3, 1]
    assert row_runs(np.zeros((2, 2), bool)) == [4]
    assert row_runs(np.array([[0, 1], [1, 0]], bool)) == [1, 2, 1]


def test_subset_names_are_reader_safe_and_distinct() -> None:
    names = subset_names(["train", "my_split", "my-split", "données", "a b", "a-b"])
    assert names["train"] == "train" and names["my-split"] == "my-split" and names["a-b"] == "a-b"
    assert all(n and set(n) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
               for n in names.values())
    assert len(set(names.values())) == len(names)


def test_tag_values() -> None:
    assert tag_attributes([Tag("a"), Tag("b", 2), Tag("a", "x"), Tag("skip", 1)], skip=("skip",)) == \
        {"a": True, "b": 2}
    assert [flag_value(v) for v in (None, "1", 0, 1.0, "no", "maybe")] == [True, True, False, True, False, None]
    assert [whole_number(v) for v in ("12", 3.0, 3.5, "x", None, "7.0", "-1", True, float("nan"))] == \
        [12, 3, None, None, None, 7, -1, None, None]


TEMPLATE = GraphTemplate(("a", "b", "c"), ("A", "B", "C"), (("a", "b"), ("b", "c")))


def test_shape_fields_follow_the_mapping() -> None:
    def fields(g, template=None, w=50, h=40):
        return datumaro.shape_fields(Label("x", g), template, w, h)

    assert fields(Rectangle(3, 4, 10, 20)) == {"type": "bbox", "bbox": [3, 4, 8, 17]}
    assert fields(Polygon(((1, 1), (9, 1), (5, 7)))) == \
        {"type": "polygon", "points": [1.5, 1.5, 9.5, 1.5, 5.5, 7.5]}
    assert fields(Line(((0, 0), (4, 2)))) == {"type": "polyline", "points": [0.5, 0.5, 4.5, 2.5]}
    assert fields(PointGeom(3, 4)) == {"type": "points", "points": [3.5, 4.5], "visibility": [2]}
    graph = Graph({"c": GraphNode(1, 2, disabled=True), "a": GraphNode(5, 6)})
    assert fields(graph, TEMPLATE) == {"type": "points", "points": [5.5, 6.5, 0, 0, 1.5, 2.5], "visibility": [2, 0, 1]}
    assert fields(graph) == "graph"
    turned = fields(OrientedBox(10, 10, 19, 14, math.pi / 6))
    assert turned["bbox"] == [10, 10, 10, 5] and turned["rotation"] == pytest.approx(30)
    assert fields(OrientedBox(0, 0, 3, 3, -math.pi / 2))["rotation"] == pytest.approx(270)
    keys = [f"face{f}-{c}" for f in (1, 2) for c in ("topleft", "topright", "bottomright", "bottomleft")]
    cuboid = Cuboid2d({k: (i, 10 * i) for i, k in enumerate(keys)})
    got = fields(cuboid)
    assert got["type"] == "cuboid_2d" and got["points"][0] == [0.5, 0.5] and got["points"][1] == [4.5, 40.5]
    holed = Polygon(((0, 0), (20, 0), (20, 20), (0, 20)), (((5, 5), (10, 5), (10, 10)),))
    assert fields(holed)["type"] == "mask" and fields(holed, w=0, h=0) == "mask"
    assert fields(Polygon(((1, 1), (5, 5))))["type"] == "mask"  # too few vertices for a polygon


def test_masks_decode_to_the_source_pixels() -> None:
    mask_utils = require("pycocotools.mask")
    rng = np.random.default_rng(3)
    shapes = [Mask((-3, 5), rng.random((12, 9)) > 0.4), Mask((30, 20), rng.random((30, 30)) > 0.5, alpha=True),
              Polygon(((2, 2), (40, 3), (30, 35), (4, 30)), (((10, 10), (20, 10), (15, 20)),)),
              Mask((100, 100), np.ones((3, 3), bool))]
    for g in shapes:
        out = datumaro.shape_fields(Label("x", g), None, 48, 36)
        assert out["type"] == "mask"
        r = out["rle"]
        decoded = mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}).astype(bool)
        assert np.array_equal(decoded, geometry_mask(g, 48, 36))


# ---------------------------------------------------------------- what the source says the view holds


def shape_kind(obj: dict) -> str:
    """The Datumaro annotation type of one source object, by the mapping (from the JSON alone)."""
    kind = obj["geometryType"]
    if kind == "polygon":
        return "mask" if polygon_is_mask(obj) else "polygon"
    return {"rectangle": "bbox", "oriented_bbox": "bbox", "bitmap": "mask", "alpha_mask": "mask",
            "line": "polyline", "point": "points", "graph": "points", "cuboid_2d": "cuboid_2d"}[kind]


def expected_counts(root: Path) -> tuple[int, Counter]:
    """(number of items, {(annotation type, label name): n}) the view must give Datumaro."""
    titles = {c["title"] for c in meta_of(root)["classes"]}
    counts: Counter = Counter()
    n = 0
    for source in source_annotations(root):
        n += 1
        for tag in source.data.get("tags", []):
            name = tag["name"]
            counts["caption" if name == "caption" else "label", "" if name == "caption" else
                   f"tag:{name}" if name in titles else name] += 1
        for obj in source.data.get("objects", []):
            counts[shape_kind(obj), obj["classTitle"]] += 1
    return n, counts


sources = sources_fixture(seed=11)
mounts = mounts_fixture("datumaro")
imports = imports_fixture("datumaro")


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_imports_the_mount_with_every_item_and_annotation(source: str, sources, mounts, imports) -> None:
    root, mnt = sources[source], mounts[source]
    assert "datumaro" in datumaro_detect(mnt)  # what CVAT runs before it imports
    report = imports[source]
    n, counts = expected_counts(root)
    assert_clean_import(report, n)
    assert report.label_counts() == dict(counts)


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_annotations_are_the_source_geometries(source: str, sources, imports) -> None:
    """Object by object, in order: boxes, polygons at pixel centres, masks pixel for pixel."""
    project = read_project(str(sources[source]))
    dataset = imports[source].dataset
    by_subset = items_by_subset(dataset)
    checked = Counter()
    for split, items in splits(project, ViewOptions()).items():
        read = by_subset[split]
        assert len(read) == len(items)
        for item, got in zip(items, read):
            ann = project.annotation(item)
            shapes = [a for a in got.annotations if a.type.name not in ("label", "caption")]
            assert len(shapes) == len(ann.labels)
            for label, shape in zip(ann.labels, shapes):
                assert dataset.categories()[datumaro_label_type()][shape.label].name == label.class_title
                assert_shape_is_label(shape, label, ann.width, ann.height)
                checked[shape.type.name] += 1
    assert checked["mask"] and checked["bbox"]


def datumaro_label_type():
    return require("datumaro").AnnotationType.label


def dm_annotations(root: Path, **params: str) -> list[dict]:
    """Every annotation of the datumaro view of ``root``, as its JSON files hold them."""
    files = view_files(["datumaro"], read_project(str(root)), ViewOptions(params=params))
    tree = VirtualTree(files)
    return [a for path in files if path.startswith("annotations/")
            for item in json.loads(tree.read_file(path))["items"] for a in item["annotations"]]


def test_sample_object_tags_become_attributes_object_ids_and_groups(sources: dict[str, Path]) -> None:
    root = sources["sample-plain"]
    tags: dict[str, Counter] = {"track_id": Counter(), "score": Counter(), "is_crowd": Counter(), "occluded": Counter()}
    bound = Counter()
    for source in source_annotations(root):
        for obj in source.data["objects"]:
            for tag in obj.get("tags", []):
                if tag["name"] in tags:
                    tags[tag["name"]][tag.get("value")] += 1
            if obj.get("instance"):
                bound[source.dataset, source.name, obj["instance"]] += 1
    annotations = dm_annotations(root)
    assert tags["track_id"] and Counter(a["object_id"] for a in annotations if "object_id" in a) == \
        Counter({int(v): n for v, n in tags["track_id"].items()})
    assert Counter(a["attributes"]["score"] for a in annotations if "score" in a["attributes"]) == tags["score"]
    assert tags["is_crowd"] and Counter(a["attributes"].get("is_crowd") for a in annotations
                                        if "is_crowd" in a["attributes"]) == {True: sum(tags["is_crowd"].values())}
    occluded = Counter(a["attributes"]["occluded"] for a in annotations if "occluded" in a["attributes"])
    assert occluded == {True: tags["occluded"]["1"], False: tags["occluded"]["0"]}
    grouped = Counter(a["group"] for a in annotations if a["group"])
    assert bound and sum(grouped.values()) == sum(bound.values())

    renamed = dm_annotations(root, **{"datumaro.track-tag": "no-such-tag", "datumaro.score-tag": "visibility"})
    assert not any("object_id" in a for a in renamed)
    assert sum("track_id" in a["attributes"] for a in renamed) == sum(tags["track_id"].values())
    assert all(isinstance(a["attributes"]["score"], float) for a in renamed if "score" in a["attributes"])
    assert not any("visibility" in a["attributes"] for a in renamed)


def test_build_reads_no_annotation_and_file_starts_with_the_version() -> None:
    project = read_project(str(PLAIN))

    def refuse(item):
        raise AssertionError(f"annotation of {item.name} read at build time")

    lazy = type(project)(project.root, project.meta, project.datasets, refuse, project.problems)
    assert "annotations/train.json" in view_files(["datumaro"], lazy, ViewOptions())
    data = VirtualTree(view_files(["datumaro"], project, ViewOptions())).read_file("annotations/val.json")
    assert data.startswith(b'{"dm_format_version":"1.0"')


def test_odd_dataset_and_image_names_become_reader_safe_subsets(tmp_path: Path) -> None:
    """Spaces, ``_``, non-ASCII and a long name in datasets; spaces, non-ASCII and collisions in images."""
    root, out = odd_names_view("datumaro", tmp_path)
    subsets = sorted(p.stem for p in (out / "annotations").glob("*.json"))
    assert len(subsets) == 2 and all(re.fullmatch(r"[A-Za-z0-9-]{1,64}", s) for s in subsets)
    assert_odd_names_read_back(datumaro_import_all(out, "datumaro"), root, subsets)
