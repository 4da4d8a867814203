"""The KITTI view: row and tag helpers with numbers; through real mounts of both SDK fixtures and a
generated project (plain and blob, with format tags), Datumaro's ``kitti_detection`` and
``kitti_segmentation`` importers (and CVAT's detect step) against boxes, attributes and masks the
test computes from the reader's model itself, every mask PNG pixel for pixel."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.naming import backslashless_component
from slyfs.formats.common.splits import item_names, plain_subset_names, splits
from slyfs.formats.model import Annotation, Cuboid2d, Label, Mask, OrientedBox, Polygon, Project, Rectangle
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.source_bytes import read_bytes
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import kitti
from tests.conftest import PLAIN, mounted
from tests.helpers.dm_shapes import edge_boxes
from tests.helpers.hostile import odd_names_project, rect
from tests.helpers.mounts import SOURCES, assert_clean_import, mounts_fixture, sources_fixture, views_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.views import view_files, write_view
from tests.test_coco_masks import painted

AREA = (Rectangle, Polygon, Mask, OrientedBox, Cuboid2d)


# ---------------------------------------------------------------- pure helpers


def test_row_has_sixteen_fields_in_kitti_order():
    row = kitti.kitti_row("car", (10, 5, 41, 31), 0.5, 2, 0.25)
    assert row == "car 0.5 2 -1 10.0 5.0 41.0 31.0 -1 -1 -1 -1 -1 -1 -1 0.25\n"
    fields = row.split()
    assert len(fields) == 16 and int(fields[2]) == 2 and float(fields[6]) - float(fields[4]) == 31


def test_truncated_occluded_and_score_come_from_tags():
    from slyfs.formats.model import Tag

    def label(*tags: Tag) -> Label:
        return Label("car", Rectangle(0, 0, 1, 1), tags)

    assert kitti.truncated_of(label(), "truncated") == 0.0
    assert kitti.truncated_of(label(Tag("truncated")), "truncated") == 1.0
    assert kitti.truncated_of(label(Tag("truncated", 0.3)), "truncated") == 0.3
    assert kitti.truncated_of(label(Tag("truncated", 7)), "truncated") == 1.0
    assert kitti.truncated_of(label(Tag("truncated", "no")), "truncated") == 0.0
    assert kitti.truncated_of(label(Tag("cut", "0.5")), "cut") == 0.5
    assert [kitti.occluded_of(label(Tag("occluded", v)), "occluded") for v in (None, "0", "1", 2.6, 9, "much")] == \
        [1, 0, 1, 3, 3, 1]
    assert kitti.occluded_of(label(), "occluded") == 0
    assert kitti.score_of(label(), "score") == 1.0
    assert kitti.score_of(label(Tag("score", 0.42)), "score") == 0.42
    assert kitti.score_of(label(Tag("score", "high")), "score") == 1.0


def test_instance_values_number_per_image_and_keep_crowds_at_zero():
    from slyfs.formats.model import Line, Tag
    box = Rectangle(0, 0, 1, 1)
    labels = [Label("a", box), Label("b", box, (Tag("is_crowd"),)), Label("a", Line(((0, 0), (3, 3)))),
              Label("b", box), Label("x", box)]
    values, left_out = kitti.instance_values(labels, {"a": 1, "b": 2}, "is_crowd")
    assert [v for _, v in values] == [(1 << 8) + 1, 2 << 8, (2 << 8) + 2] and not left_out
    many = [Label("a", box)] * 257
    values, left_out = kitti.instance_values(many, {"a": 1}, "is_crowd")
    assert len(values) == 255 and values[-1][1] == 256 + 255 and sum(left_out.values()) == 2
    values, left_out = kitti.instance_values([Label("z", box)], {"z": 256}, "is_crowd")
    assert values == [] and sum(left_out.values()) == 1


def test_label_files_and_meta_agree():
    import json
    names, colours = ["background", "car", "traffic_sign"], [(0, 0, 0), (255, 0, 0), (1, 2, 3)]
    assert kitti.label_colors_text(names, colours) == b"0 0 0 background\n255 0 0 car\n1 2 3 traffic_sign\n"
    meta = json.loads(kitti.dataset_meta(names, colours))
    assert meta["labels"] == names and meta["label_map"] == {"0": "background", "1": "car", "2": "traffic_sign"}
    assert meta["segmentation_colors"] == [[0, 0, 0], [255, 0, 0], [1, 2, 3]] and meta["background_label"] == "0"


def test_tag_options_rename_the_tags_read():
    project = read_project(str(PLAIN))
    path = "train/label_2/img_001.txt"
    plain = view_files(kitti, project, ViewOptions())[path]
    renamed = view_files(kitti, project, ViewOptions(params={"kitti.score-tag": "confidence",
                                                             "kitti.truncated-tag": "comment"}))[path]
    assert plain.key != renamed.key
    rows = [row.split() for row in plain.render().decode().splitlines()]
    assert [(r[0], r[1], r[15]) for r in rows] == [("car", "0.0", "1.0"), ("building", "0.0", "1.0"),
                                                   ("road", "0.0", "1.0"), ("person_kp", "0.0", "1.0")]
    rows = [row.split() for row in renamed.render().decode().splitlines()]  # car: confidence 0.87; building: a comment
    assert [(r[0], r[1], r[15]) for r in rows] == [("car", "0.0", "0.87"), ("building", "1.0", "1.0"),
                                                   ("road", "0.0", "1.0"), ("person_kp", "0.0", "1.0")]


def test_subset_names_are_reader_safe():
    names = plain_subset_names(["train", "my_val", "a.b", "instance", "my-val"], reserved=kitti.FOLDERS)
    assert names == {"train": "train", "my_val": "my-val", "a.b": "a-b", "instance": "instance-2",
                     "my-val": "my-val-2"}


# ---------------------------------------------------------------- expectations from the reader's model


def token(title: str) -> str:
    return re.sub(r"\s", "_", title)


def class_names(project: Project) -> list[str]:
    names = [token(c.title) for c in project.meta.classes]
    assert len(set(names)) == len(names) and "background" not in names
    return ["background", *names]


def expected_instances(ann: Annotation, index: dict[str, int]) -> np.ndarray:
    """The instance image the mapping gives: (class << 8) + k for the k-th non-crowd area object."""
    out = np.zeros((ann.height, ann.width), dtype=np.uint16)
    k = 0
    for label in ann.labels:
        if not isinstance(label.geometry, AREA):
            continue
        crowd = [t for t in label.tags if t.name == "is_crowd"]
        assert all(t.value is None for t in crowd)
        if not crowd:
            k += 1
        out[painted(label.geometry, ann.width, ann.height)] = (index[label.class_title] << 8) + (0 if crowd else k)
    return out


def expected_boxes(ann: Annotation) -> list[tuple[str, tuple[float, float, float, float], dict]]:
    """(class, (x, y, w, h), attributes) of every object with a box inside the image."""
    out = []
    for label, box, tags in edge_boxes(ann):
        score = tags.get("score")
        attrs = {"truncated": "truncated" in tags and tags["truncated"] in (None, 1, "1"),
                 "occluded": "occluded" in tags and tags["occluded"] in (None, 1, "1"),
                 "score": float(score) if isinstance(score, (int, float)) else 1.0}
        out.append((token(label.class_title), box, attrs))
    return out


def items_by_output(project: Project) -> dict[tuple[str, str], object]:
    """(subset, id) → item, by the view's naming rules (common/naming, common/splits)."""
    parts = splits(project, ViewOptions())
    subsets = plain_subset_names(list(parts), reserved=kitti.FOLDERS)
    out = {}
    for split, items in parts.items():
        for item, name in zip(items, item_names(items, escape=backslashless_component)):
            out[(subsets[split], name.rpartition(".")[0] or name)] = item
    return out


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=7)
mounts = mounts_fixture("kitti")
views = views_fixture()


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_detection_reads_every_box(source: str, views) -> None:
    require("datumaro")
    mnt, project = views[source]
    report = datumaro_import_all(mnt, "kitti_detection")
    by_output = items_by_output(project)
    assert_clean_import(report, sum(1 for _ in project.items()))
    assert len(by_output) == len(report.dataset)
    want: Counter = Counter()
    seen: Counter = Counter()
    for dm_item in report.dataset:
        ann = project.annotation(by_output[(dm_item.subset, dm_item.id)])
        boxes = expected_boxes(ann)
        got = [a for a in dm_item.annotations if a.type.name == "bbox"]
        names = report.dataset.categories()[require("datumaro").AnnotationType.label]
        assert [(names[a.label].name, tuple(a.get_bbox()), a.attributes) for a in got] == \
            [(n, tuple(map(float, box)), attrs) for n, box, attrs in boxes], dm_item.id
        want.update(("bbox", n) for n, _, _ in boxes)
        seen.update(k for _, _, attrs in boxes for k in ("truncated", "occluded") if attrs[k])
        seen.update("score" for _, _, attrs in boxes if attrs["score"] != 1.0)
    assert report.label_counts() == dict(want)
    if source.startswith("sample"):  # the generated project exercises every attribute
        assert set(seen) == {"truncated", "occluded", "score"}


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_segmentation_reads_every_instance(source: str, views) -> None:
    require("datumaro")
    mnt, project = views[source]
    report = datumaro_import_all(mnt, "kitti_segmentation")
    names = class_names(project)
    index = {c.title: k for k, c in enumerate(project.meta.classes, 1)}
    by_output = items_by_output(project)
    assert_clean_import(report, len(by_output))
    want: Counter = Counter()
    crowds = 0
    for dm_item in report.dataset:
        inst = expected_instances(project.annotation(by_output[(dm_item.subset, dm_item.id)]), index)
        values = [int(v) for v in np.unique(inst)]
        masks = sorted((a for a in dm_item.annotations if a.type.name == "mask"), key=lambda a: (a.label, a.id))
        assert [(a.label, a.id, a.attributes["is_crowd"]) for a in masks] == \
            [(v >> 8, v & 255, v & 255 == 0) for v in values]
        for a in masks:
            assert np.array_equal(a.image, inst == (a.label << 8) + a.id)
        want.update(("mask", names[v >> 8]) for v in values)
        crowds += sum(1 for v in values if v and not v & 255)
    assert report.label_counts() == dict(want)
    assert crowds > 0 or not source.startswith("sample")
    assert [c.name for c in report.dataset.categories()[require("datumaro").AnnotationType.label]] == names


@pytest.mark.parametrize("source", SOURCES)
def test_masks_are_pixel_exact_and_label_colours_declared(source: str, views) -> None:
    mnt, project = views[source]
    names = class_names(project)
    lines = (mnt / "label_colors.txt").read_text(encoding="utf-8").splitlines()
    colours = [tuple(int(v) for v in line.split()[:3]) for line in lines]
    assert [line.split()[3] for line in lines] == names and colours[0] == (0, 0, 0)
    assert len(set(colours)) == len(colours)
    for cls, colour in zip(project.meta.classes, colours[1:]):
        if list(project.meta.classes).count(cls) == 1 and cls.color != (0, 0, 0) and \
                [c.color for c in project.meta.classes].count(cls.color) == 1:
            assert colour == cls.color
    index = {c.title: k for k, c in enumerate(project.meta.classes, 1)}
    table = np.asarray(colours, dtype=np.uint8)
    for (subset, vid), item in items_by_output(project).items():
        inst = expected_instances(project.annotation(item), index)
        with Image.open(mnt / subset / "instance" / f"{vid}.png") as png:
            assert png.mode == "I;16" and np.array_equal(np.asarray(png), inst), (subset, vid)
        with Image.open(mnt / subset / "semantic" / f"{vid}.png") as png:
            assert np.array_equal(np.asarray(png), inst >> 8)
        with Image.open(mnt / subset / "semantic_rgb" / f"{vid}.png") as png:
            assert png.mode == "RGB" and np.array_equal(np.asarray(png), table[inst >> 8])
        assert (mnt / subset / "image_2" / f"{vid}{item.ext}").read_bytes() == read_bytes(item.image)


@pytest.mark.parametrize("source", ["fixture-plain", "sample-blob"])
def test_cvat_detect_finds_kitti(source: str, views) -> None:
    """CVAT runs datumaro's detect before importing: the instance folders satisfy it even where no
    label file name holds the ``_`` its detection pattern asks for."""
    require("datumaro")
    assert {"kitti", "kitti_segmentation"} <= set(datumaro_detect(views[source][0]))


def test_kitti_importer_on_one_subset_reads_detection(tmp_path: Path) -> None:
    """The generic ``kitti`` importer takes detection only when both are present (and, in 1.13.12,
    loses subsets after the first it globs): on a one-subset view it gives the detection boxes."""
    require("datumaro")
    with mounted(PLAIN, "--format", "kitti", "--split", "ratio:1") as mnt:
        both = datumaro_import_all(mnt, "kitti")
        detection = datumaro_import_all(mnt, "kitti_detection")
        assert both.errors == [] and len(both.dataset) == 12
        assert both.label_counts() == detection.label_counts()


# ---------------------------------------------------------------- names readers split on


HOSTILE_CLASSES = ("traffic sign", "traffic_sign", "background", "a\tb")


def hostile_tree(root: Path) -> Path:
    """Class names with spaces and tabs that collide once spaces are ``_``, one called background;
    datasets whose names hold ``_`` and ``.``; image names with a backslash, a comma and quotes,
    long non-ASCII names, the same name in two datasets."""
    return odd_names_project(root, HOSTILE_CLASSES,
                             lambda k: [rect(1, 1, 4 + k, 5, HOSTILE_CLASSES[k]), rect(0, 0, 2, 2, HOSTILE_CLASSES[0])])


def test_hostile_names_are_mapped_to_what_the_readers_keep(tmp_path: Path) -> None:
    require("datumaro")
    from slyfs.formats.layout import LayoutView
    project = read_project(str(hostile_tree(tmp_path / "src")))
    out = write_view(LayoutView(kitti.layout, project, ViewOptions()), tmp_path / "out")
    labels = [line.split()[3] for line in (out / "label_colors.txt").read_text(encoding="utf-8").splitlines()]
    assert labels[0] == "_background" and labels[2] == "traffic_sign" and labels[3] == "background"
    assert labels[1].startswith("traffic_sign~") and labels[4] == "a_b" and len(set(labels)) == 5
    assert sorted(p.name for p in out.iterdir()) == ["dataset_meta.json", "label_colors.txt", "my-set-v2", "other"]
    detection = datumaro_import_all(out, "kitti_detection")
    segmentation = datumaro_import_all(out, "kitti_segmentation")
    for report in (detection, segmentation):
        assert_clean_import(report, 8)
        assert {i.subset for i in report.dataset} == {"my-set-v2", "other"}
    assert detection.label_counts() == {("bbox", labels[1]): 8 + 2, ("bbox", "traffic_sign"): 2,
                                        ("bbox", "background"): 2, ("bbox", "a_b"): 2}
    assert segmentation.label_counts()[("mask", labels[1])] == 8 + 2
