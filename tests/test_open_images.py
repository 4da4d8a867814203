"""The Open Images view: helpers with numbers; through real mounts of both SDK fixtures and a
generated project (plain and blob, with format tags), Datumaro's ``open_images`` importer (the one
CVAT runs, after its detect step) against image labels, boxes, flags and masks the test computes
from the reader's model itself, masks pixel for pixel and paired with their boxes."""

from __future__ import annotations

import csv
import io
import shlex
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.naming import backslashless_component
from slyfs.formats.common.splits import item_names, plain_subset_names, splits
from slyfs.formats.common.text import csv_rows
from slyfs.formats.model import Annotation, Label, Mask, PointGeom, Polygon, Project, Tag
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import open_images as oi
from tests.conftest import PLAIN
from tests.helpers.dm_shapes import edge_boxes
from tests.helpers.hostile import odd_names_project
from tests.helpers.mounts import SOURCES, assert_clean_import, mounts_fixture, sources_fixture, views_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.views import view_files, write_view
from tests.test_coco_masks import painted

FLAG_ATTRIBUTES = ("occluded", "truncated", "is_group_of", "is_depiction", "is_inside")


# ---------------------------------------------------------------- pure helpers


def test_edges_are_normalised_continuous_box_edges():
    assert oi.normalised_edges((10, 5, 41, 31), 100, 50) == (0.1, 0.41, 0.1, 0.62)


def test_flags_and_confidence_from_tags():
    tags = (Tag("occluded", "1"), Tag("truncated", "0"), Tag("is_group_of"), Tag("score", 0.3), Tag("big", 7))
    assert [oi.flag_field(tags, n) for n in ("occluded", "truncated", "is_group_of", "is_inside")] == [1, 0, 1, -1]
    assert oi.confidence(tags, "score") == 0.3
    assert oi.confidence(tags, "big") == 1.0 and oi.confidence(tags, "none") == 1.0
    assert oi.confidence((Tag("score", "0.25"),), "score") == 0.25


def test_mask_names_keep_the_box_id_readable():
    assert oi.mask_name("img 1", 10) == "img 1_0000000a.png" and oi.mask_position("img 1_0000000a.png") == 10
    long = oi.mask_name("ü" * 200, 3)
    assert len(long.encode()) <= 255 and long.endswith("_00000003.png") and oi.mask_position(long) == 3
    assert oi.mask_name("ü" * 200, 3) != oi.mask_name("ü" * 199 + "x", 3)


def test_label_names_survive_csv_and_stay_distinct():
    names = oi.label_names(["traffic sign", 'a,"b"', "tab\there", " pad", "%20pad"])
    assert names[:2] == ["traffic sign", 'a,"b"'] and names[2] == "tab%09here"
    assert names[3].startswith("%20pad") and names[3] != names[4] == "%20pad"
    rows = list(csv.reader(io.StringIO(csv_rows([[n, n] for n in names]), newline="")))
    assert rows == [[n, n] for n in names]


def test_images_meta_reads_back_with_shlex():
    text = oi.images_meta([("a b", 10, 20), ("it's", 1, 2), ("#x", 3, 4)]).decode()
    lines = [shlex.split(line, comments=True) for line in text.splitlines()]
    assert [line for line in lines if line] == [["a b", "10", "20"], ["it's", "1", "2"], ["#x", "3", "4"]]


def test_tag_options_rename_the_tags_read():
    project = read_project(str(PLAIN))
    path = "annotations/train-annotations-bbox.csv"
    plain = view_files(oi, project, ViewOptions())[path]
    renamed = view_files(oi, project, ViewOptions(params={"open-images.score-tag": "confidence",
                                                          "open-images.occluded-tag": "comment"}))[path]
    assert plain.key != renamed.key
    before = {(r["ImageID"], r["LabelName"]): r for r in csv.DictReader(io.StringIO(plain.render().decode()))}
    after = {(r["ImageID"], r["LabelName"]): r for r in csv.DictReader(io.StringIO(renamed.render().decode()))}
    assert before[("img_001", "car")]["Confidence"] == "1.0" and after[("img_001", "car")]["Confidence"] == "0.87"
    assert before[("img_001", "building")]["IsOccluded"] == "-1" and after[("img_001", "building")]["IsOccluded"] == "1"


# ---------------------------------------------------------------- expectations from the reader's model


def flag(tags: dict, name: str) -> bool | None:
    if name not in tags:
        return None
    return tags[name] not in (0, "0", "false", "no")


def expected_objects(ann: Annotation) -> list[tuple[str, tuple[float, float, float, float], dict, Label]]:
    """(class, (x, y, w, h), box attributes, label) of every object with a box inside the image."""
    out = []
    for label, box, tags in edge_boxes(ann):
        score = tags.get("score")
        attrs = {"score": float(score) if isinstance(score, (int, float)) and 0 <= score <= 1 else 1.0}
        attrs.update((a, flag(tags, a)) for a in FLAG_ATTRIBUTES if flag(tags, a) is not None)
        out.append((label.class_title, box, attrs, label))
    return out


def expected_image_labels(project: Project, ann: Annotation) -> list[tuple[str, float]]:
    metas = {m.name for m in project.meta.tag_metas}
    out = []
    for tag in ann.tags:
        if tag.name in metas:
            v = tag.value
            out.append((tag.name, float(v) if isinstance(v, (int, float)) and 0 <= v <= 1 else 1.0))
    return out


def items_by_id(project: Project) -> dict[str, tuple[str, object]]:
    """ImageID → (subset, item), by the view's naming rules: names unique over every split."""
    parts = splits(project, ViewOptions())
    subsets = plain_subset_names(list(parts))
    everything = [(split, item) for split, items in parts.items() for item in items]
    names = item_names([item for _, item in everything], escape=backslashless_component)
    return {name.rpartition(".")[0] or name: (subsets[split], item) for (split, item), name in zip(everything, names)}


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=11)
mounts = mounts_fixture("open-images")
views = views_fixture()


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_reads_labels_boxes_and_masks(source: str, views) -> None:
    dm = require("datumaro")
    mnt, project = views[source]
    report = datumaro_import_all(mnt, "open_images")
    by_id = items_by_id(project)
    assert_clean_import(report, sum(1 for _ in project.items()))
    assert len(by_id) == len(report.dataset)
    names = report.dataset.categories()[dm.AnnotationType.label]
    want: Counter = Counter()
    seen: Counter = Counter()
    for dm_item in report.dataset:
        subset, item = by_id[dm_item.id]
        assert dm_item.subset == subset
        ann = project.annotation(item)
        labels = [(names[a.label].name, a.attributes["score"]) for a in dm_item.annotations if a.type.name == "label"]
        assert labels == expected_image_labels(project, ann)
        objects = expected_objects(ann)
        boxes = [a for a in dm_item.annotations if a.type.name == "bbox"]
        assert [names[a.label].name for a in boxes] == [c for c, _, _, _ in objects]
        for a, (_, xywh, attrs, _) in zip(boxes, objects):
            assert a.get_bbox() == pytest.approx(xywh, abs=1e-9) and a.attributes == attrs
        groups = {a.group: (a, obj) for a, obj in zip(boxes, objects)}
        masks = [a for a in dm_item.annotations if a.type.name == "mask"]
        masked = [obj for obj in objects if isinstance(obj[3].geometry, (Polygon, Mask))]
        assert len(masks) == len(masked)
        for a in masks:
            box, (title, _, _, label) = groups[a.group]  # paired with its box
            assert names[a.label].name == title == label.class_title
            assert np.array_equal(a.image, painted(label.geometry, ann.width, ann.height)), (dm_item.id, title)
            assert ann.labels[int(a.attributes["box_id"], 16)] is label
        want.update(("label", n) for n, _ in labels)
        want.update(("bbox", c) for c, _, _, _ in objects)
        want.update(("mask", c) for c, _, _, _ in masked)
        seen.update(k for _, _, attrs, _ in objects for k in attrs if k != "score")
        seen.update("score" for _, _, attrs, _ in objects if attrs["score"] != 1.0)
    assert report.label_counts() == dict(want)
    if source.startswith("sample"):  # the generated project exercises the attributes it has tags for
        assert {"occluded", "truncated", "is_group_of", "score"} <= set(seen)


@pytest.mark.parametrize("source", ["fixture-plain", "sample-blob"])
def test_mask_files_are_binary_pngs_of_the_image_size(source: str, views) -> None:
    mnt, project = views[source]
    by_id = items_by_id(project)
    rows = []
    for path in sorted((mnt / "annotations").glob("*-annotations-object-segmentation.csv")):
        rows += list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows
    for row in rows:
        subset, item = by_id[row["ImageID"]]
        ann = project.annotation(item)
        with Image.open(mnt / "masks" / subset / row["MaskPath"]) as png:
            assert png.mode == "L" and png.size == (ann.width, ann.height)
            pixels = np.asarray(png)
        label = ann.labels[int(row["BoxID"], 16)]
        assert set(np.unique(pixels)) <= {0, 255}
        assert np.array_equal(pixels == 255, painted(label.geometry, ann.width, ann.height))


@pytest.mark.parametrize("source", ["fixture-blob", "sample-plain"])
def test_images_meta_gives_every_size_and_cvat_detects_the_tree(source: str, views) -> None:
    require("datumaro")
    mnt, project = views[source]
    meta = {}
    for line in (mnt / "annotations" / "images.meta").read_text(encoding="utf-8").splitlines():
        fields = shlex.split(line, comments=True)
        if fields:
            meta[fields[0]] = (int(fields[1]), int(fields[2]))
    by_id = items_by_id(project)
    assert meta == {i: (project.annotation(item).height, project.annotation(item).width)
                    for i, (_, item) in by_id.items()}
    assert "open_images" in datumaro_detect(mnt)


def test_points_are_reported_not_dropped():
    problems = []
    project = read_project(str(PLAIN), report=problems.append)
    files = view_files(oi, project, ViewOptions())
    for path, node in files.items():
        if path.endswith("-annotations-bbox.csv"):
            node.render()
    points = sum(1 for label in (label for item in project.items() for label in project.annotation(item).labels)
                 if isinstance(label.geometry, PointGeom))
    reported = sum(int(p.message.split()[0]) for p in set(problems)  # the mount's log dedupes re-renders
                   if "point label(s) cannot be expressed in Open Images" in p.message)
    assert points > 0 and reported == points


def test_class_selection_keeps_boxes_of_those_classes_only():
    files = view_files(oi, read_project(str(PLAIN)), ViewOptions(classes=("car",)))
    rows = list(csv.DictReader(io.StringIO(files["annotations/train-annotations-bbox.csv"].render().decode())))
    assert rows and {r["LabelName"] for r in rows} == {"car"}


# ---------------------------------------------------------------- names readers split on


def test_hostile_names_are_mapped_to_what_the_reader_keeps(tmp_path: Path) -> None:
    """Labels with commas, quotes, tabs and outer blanks; datasets with ``_`` and ``.``; image names
    with a backslash (Datumaro reads it as ``/``), a comma and quotes, long non-ASCII names, the same
    name in two datasets: every image, box and mask comes back."""
    require("datumaro")
    from slyfs.formats.layout import LayoutView

    classes = ('a,"b"', " pad", "tab\there", "traffic sign")
    root = odd_names_project(tmp_path / "src", classes, lambda k: [{
        "classTitle": classes[k], "geometryType": "polygon", "tags": [],
        "points": {"exterior": [[1, 1], [6, 1], [1, 6]], "interior": []}}])
    out = write_view(LayoutView(oi.layout, read_project(str(root)), ViewOptions()), tmp_path / "out")
    assert sorted(p.name for p in (out / "images").iterdir()) == ["my-set-v2", "other"]
    report = datumaro_import_all(out, "open_images")
    assert_clean_import(report, 8)
    assert not any("\\" in item.id for item in report.dataset)
    names = oi.label_names(list(classes))
    assert names[0] == 'a,"b"' and names[1] == "%20pad" and names[2] == "tab%09here"
    assert report.label_counts() == {(kind, n): 2 for kind in ("bbox", "mask") for n in names}
    for item in report.dataset:
        masks = [a for a in item.annotations if a.type.name == "mask"]
        boxes = [a for a in item.annotations if a.type.name == "bbox"]
        assert len(masks) == len(boxes) == 1 and masks[0].group == boxes[0].group
        assert int(masks[0].image.sum()) == 21  # the triangle (1,1)-(6,1)-(1,6) with its boundary
