"""The Segmentation Mask view (``--format segmask``): mounted SDK fixtures and generated projects
read by Datumaro's ``voc_segmentation`` / ``voc_instance_segmentation`` importers, every class and
instance PNG decoded and compared pixel for pixel with rasters painted here from the reader's model,
labels without pixels reported, and the names readers would split or strip mapped."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.naming import spaceless_component, split_ext
from slyfs.formats.common.splits import item_names, splits
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.source_bytes import read_bytes
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import segmask
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN
from tests.helpers.hostile import ann, names_project, plain_project, png, rect
from tests.helpers.mask_oracle import (
    assert_keys_distinct_and_images_source,
    assert_left_out_reported,
    assert_reads_back,
    expected,
)
from tests.helpers.mounts import SOURCES, assert_clean_import, mounts_fixture, sources_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.views import view_files, write_view

sources = sources_fixture(seed=7)
mounts = mounts_fixture("segmask")


def output_items(project, options: ViewOptions = ViewOptions()) -> dict[str, tuple[str, object]]:
    """Output id → (split, item): one flat folder for the whole project, split-major."""
    pairs = [(split, item) for split, items in splits(project, options).items() for item in items]
    names = item_names([item for _, item in pairs], escape=spaceless_component)
    return {split_ext(name)[0]: pair for name, pair in zip(names, pairs)}


def read_labelmap(text: str) -> list[tuple[str, tuple[int, int, int]]]:
    lines = text.splitlines()
    assert lines[0] == "# label:color_rgb:parts:actions"
    out = []
    for line in lines[1:]:
        name, colour, parts, actions = line.split(":")
        assert parts == actions == ""
        out.append((name, tuple(int(v) for v in colour.split(","))))
    return out


def check_view(root: Path, tree: Path, titles: list[str] | None = None) -> dict[tuple[str, str], int]:
    """Every file of a segmask tree on disk against the model; the per-class instance counts."""
    project = read_project(str(root))
    titles = titles or [c.title for c in project.meta.classes]
    labelmap = read_labelmap((tree / "labelmap.txt").read_text("utf-8"))
    assert labelmap[0] == ("background", (0, 0, 0))
    colours = [c for _, c in labelmap]
    assert len(set(colours)) == len(colours)
    ids = output_items(project)
    listed = {}
    for path in (tree / "ImageSets" / "Segmentation").iterdir():
        assert "_" not in path.stem
        listed.update({line: path.stem for line in path.read_text("utf-8").splitlines()})
    assert sorted(listed) == sorted(ids)
    for path in (tree / "ImageSets" / "Segmentation").iterdir():  # CVAT's importer (Datumaro's voc) reads Main
        assert (tree / "ImageSets" / "Main" / path.name).read_bytes() == path.read_bytes()
    counts: Counter[tuple[str, str]] = Counter()
    for vid, (split, item) in ids.items():
        assert listed[vid].replace("-", "_") == split.replace("-", "_")
        want = expected(project, item, titles)
        with Image.open(tree / "SegmentationClass" / f"{vid}.png") as png:
            assert png.mode == "P"
            assert np.array_equal(np.asarray(png), want.cls), vid
            rgb = np.asarray(png.convert("RGB"))
        for k in np.unique(want.cls):
            assert {tuple(p) for p in rgb[want.cls == k]} == {colours[k]}
        with Image.open(tree / "SegmentationObject" / f"{vid}.png") as png:
            assert np.array_equal(np.asarray(png), want.inst), vid
        assert (tree / "JPEGImages" / f"{vid}{item.ext}").read_bytes() == read_bytes(item.image)
        counts.update(("mask", title) for title in want.visible().values())
    return dict(counts)


def datumaro_reads(tree: Path, root: Path, counts: dict[tuple[str, str], int]) -> None:
    for importer in ("voc_segmentation", "voc_instance_segmentation", "voc"):  # voc: as CVAT imports it
        assert_reads_back(tree, root, importer, counts)


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_view_reads_back_exactly(source: str, sources: dict[str, Path], mounts: dict[str, Path]) -> None:
    root, tree = sources[source], mounts[source]
    counts = check_view(root, tree)
    assert counts  # every source has painted objects
    datumaro_reads(tree, root, counts)


def test_datumaro_detects_it_as_cvat_does(mounts: dict[str, Path]) -> None:
    """CVAT runs detection for format ``voc`` before importing; Datumaro's own finds the segmentation tasks."""
    require("datumaro")
    found = datumaro_detect(mounts["fixture-blob"])
    assert {"voc", "voc_segmentation", "voc_instance_segmentation"} <= set(found)


def test_instances_come_back_as_groups(sources: dict[str, Path], mounts: dict[str, Path]) -> None:
    """voc_instance_segmentation: one mask per visible instance, its pixels those the model gives it."""
    dm = require("datumaro")
    project = read_project(str(sources["sample-blob"]))
    titles = [c.title for c in project.meta.classes]
    ids = output_items(project)
    ds = datumaro_import_all(mounts["sample-blob"], "voc_instance_segmentation").dataset
    names = ds.categories()[dm.AnnotationType.label]
    for item in ds:
        want = expected(project, ids[item.id][1], titles)
        got = {a.group: a for a in item.annotations}
        assert {k: names[a.label].name for k, a in got.items()} == want.visible()
        for k, a in got.items():
            assert np.array_equal(a.image, want.inst == k)


def test_labels_without_pixels_are_reported() -> None:
    assert_left_out_reported(segmask, "segmask")


def test_keys_name_their_inputs_and_images_are_source_bytes() -> None:
    assert_keys_distinct_and_images_source(segmask, ("JPEGImages/",), "SegmentationClass/img_001.png",
                                           ViewOptions(classes=("road", "car")))


def test_class_selection_renumbers_and_paints_only_those(tmp_path: Path) -> None:
    project = read_project(str(PLAIN))
    options = ViewOptions(classes=("road", "car"))
    tree = VirtualTree(view_files(segmask, project, options))
    labelmap = read_labelmap(tree.read_file("labelmap.txt").decode())
    assert [n for n, _ in labelmap] == ["background", "car", "road"]  # meta.json order
    item = next(i for i in project.items() if i.name == "img_001.jpg")
    want = expected(project, item, ["car", "road"])
    with Image.open(io.BytesIO(tree.read_file("SegmentationClass/img_001.png"))) as png:
        assert np.array_equal(np.asarray(png), want.cls) and set(np.unique(want.cls)) == {0, 1, 2}


def test_names_readers_split_or_strip_are_mapped(tmp_path: Path) -> None:
    """Class names with ``:`` / a leading ``#``, one colour for every class (and one black), a
    split with ``_``, an image name with spaces: Datumaro reads it all back."""
    classes = ("a:b", "a%3Ab", "#x", "traffic sign")
    root = names_project(tmp_path / "p", classes, {
        "a b.png": ann(rect(1, 1, 4, 4, "a:b"), rect(3, 3, 8, 8, "#x")),
        "c.png": ann(rect(0, 0, 9, 2, "traffic sign"), rect(5, 5, 6, 6, "a%3Ab")),
        "d.png": ann()}, black=2)
    files = VirtualTree(view_files(segmask, read_project(str(root)), ViewOptions()))
    out = write_view(files, tmp_path / "out")
    assert sorted(p.name for p in (out / "ImageSets/Segmentation").iterdir()) == ["my-train.txt"]
    assert (out / "JPEGImages/a%20b.png").is_file()
    names = [n for n, _ in read_labelmap((out / "labelmap.txt").read_text())]
    assert names[0] == "background" and names[1].startswith("a%3Ab~") and names[2:] == ["a%3Ab", "%23x", "traffic sign"]
    counts = check_view(root, out)
    assert counts == {("mask", t): 1 for t in classes}
    require("datumaro")
    report = datumaro_import_all(out, "voc_segmentation")
    assert_clean_import(report, 3)
    assert {i.subset for i in report.dataset} == {"my-train"}
    assert report.label_counts() == {("mask", n): 1 for n in names[1:]}
    shutil.rmtree(out)


def test_classes_and_instances_past_the_8_bit_index_are_reported(tmp_path: Path) -> None:
    classes = tuple(f"c{k}" for k in range(256))
    many = [rect(k % 20, k // 20, k % 20, k // 20, "c0") for k in range(300)]  # 300 one-pixel instances
    root = plain_project(tmp_path / "p", {"a.png": ann(*many, width=20, height=20),
                                          "b.png": ann(rect(0, 0, 1, 1, "c254"), rect(2, 2, 3, 3, "c255"),
                                                       rect(4, 4, 5, 5, "c253"))},
                         classes=classes, images={"a.png": png(20, 20), "b.png": png()})
    log = ProblemLog()
    tree = VirtualTree(view_files(segmask, read_project(str(root), report=log), ViewOptions()))
    with Image.open(io.BytesIO(tree.read_file("SegmentationObject/a.png"))) as obj:
        assert np.asarray(obj).max() == 254 and np.count_nonzero(np.asarray(obj)) == 254
    with Image.open(io.BytesIO(tree.read_file("SegmentationClass/b.png"))) as cls:
        assert sorted(np.unique(np.asarray(cls))) == [0, 254]  # c253 is index 254; c254, c255 are not painted
    assert len(read_labelmap(tree.read_file("labelmap.txt").decode())) == 255
    messages = sorted(p.message for p in log.all() if "cannot be expressed" in p.message)
    assert messages == ["2 rectangle (class past the 254th) label(s) cannot be expressed in segmask",
                        "46 rectangle (instance past the 254th) label(s) cannot be expressed in segmask"]


def test_a_view_without_images_is_an_empty_dataset(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    tree = VirtualTree(view_files(segmask, read_project(str(root)), ViewOptions(include_empty=False)))
    out = write_view(tree, tmp_path / "out")
    assert (out / "ImageSets/Segmentation/train.txt").read_bytes() == b""
    require("datumaro")
    report = datumaro_import_all(out, "voc_segmentation")
    assert_clean_import(report, 0)
