"""The Segmentation Mask view (``--format segmask``): mounted SDK fixtures and generated projects
read by Datumaro's ``voc_segmentation`` / ``voc_instance_segmentation`` importers, every class and
instance PNG decoded and compared pixel for pixel with rasters painted here from the reader's model,
labels without pixels reported, and the names readers would split or strip mapped."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.naming import spaceless_component, split_ext
from slyfs.formats.common.splits import item_names, splits
from slyfs.formats.contract import Generated, SourceBytes
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.source_bytes import read_bytes
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import segmask
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN
from tests.helpers.hostile import ann, plain_project, png, rect
from tests.helpers.mask_oracle import SOURCES, expected, imports_by_backend, make_samples, mounted_all, source_root
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.views import view_files


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_samples(tmp_path_factory.mktemp("segmask-samples"))


@pytest.fixture(scope="module")
def mounts(samples: dict[str, Path]):
    with mounted_all("segmask", samples) as mnts:
        yield mnts


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
    require("datumaro")
    project = read_project(str(root))
    n_images = sum(1 for _ in project.items())
    for importer in ("voc_segmentation", "voc_instance_segmentation", "voc"):  # voc: as CVAT imports it
        for report in imports_by_backend(tree, importer):
            assert report.errors == [] and report.missing_media() == []
            assert len(report.dataset) == n_images
            assert report.label_counts() == counts


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_view_reads_back_exactly(source: str, samples: dict[str, Path], mounts: dict[str, Path]) -> None:
    root, tree = source_root(source, samples), mounts[source]
    counts = check_view(root, tree)
    assert counts  # every source has painted objects
    datumaro_reads(tree, root, counts)


def test_datumaro_detects_it_as_cvat_does(mounts: dict[str, Path]) -> None:
    """CVAT runs detection for format ``voc`` before importing; Datumaro's own finds the segmentation tasks."""
    require("datumaro")
    found = datumaro_detect(mounts["fixture-blob"])
    assert {"voc", "voc_segmentation", "voc_instance_segmentation"} <= set(found)


def test_instances_come_back_as_groups(samples: dict[str, Path], mounts: dict[str, Path]) -> None:
    """voc_instance_segmentation: one mask per visible instance, its pixels those the model gives it."""
    dm = require("datumaro")
    project = read_project(str(samples["blob"]))
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
    log = ProblemLog()
    project = read_project(str(PLAIN), report=log)
    titles = [c.title for c in project.meta.classes]
    tree = VirtualTree(view_files(segmask, project, ViewOptions()))
    for path in tree.walk_files():
        tree.read_file(path)
    got = Counter()
    for problem in log.all():
        if "cannot be expressed in segmask" in problem.message:
            n, kind = problem.message.split(" label(s)")[0].split(" ", 1)
            got[(problem.item, kind)] += int(n)
    want = Counter()
    for item in project.items():
        for kind, n in expected(project, item, titles).left_out.items():
            want[(item.name, kind)] += n
    assert got == want and sum(want.values()) >= 3


def test_keys_name_their_inputs_and_images_are_source_bytes() -> None:
    project = read_project(str(BLOB))
    files = view_files(segmask, project, ViewOptions())
    keys = [n.key for n in files.values() if isinstance(n, Generated)]
    assert len(keys) == len(set(keys))
    assert all(isinstance(n, SourceBytes) for p, n in files.items() if p.startswith("JPEGImages/"))
    other = view_files(segmask, project, ViewOptions(classes=("road", "car")))
    assert files["SegmentationClass/img_001.png"].key != other["SegmentationClass/img_001.png"].key


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
    root = plain_project(tmp_path / "p", {
        "a b.png": ann(rect(1, 1, 4, 4, "a:b"), rect(3, 3, 8, 8, "#x")),
        "c.png": ann(rect(0, 0, 9, 2, "traffic sign"), rect(5, 5, 6, 6, "a%3Ab")),
        "d.png": ann()}, classes=classes, dataset="my_train")
    meta = json.loads((root / "meta.json").read_text())
    meta["classes"][2]["color"] = "#000000"
    (root / "meta.json").write_text(json.dumps(meta))
    files = VirtualTree(view_files(segmask, read_project(str(root)), ViewOptions()))
    out = tmp_path / "out"
    for path in files.walk_files():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(files.read_file(path))
    assert sorted(p.name for p in (out / "ImageSets/Segmentation").iterdir()) == ["my-train.txt"]
    assert (out / "JPEGImages/a%20b.png").is_file()
    names = [n for n, _ in read_labelmap((out / "labelmap.txt").read_text())]
    assert names[0] == "background" and names[1].startswith("a%3Ab~") and names[2:] == ["a%3Ab", "%23x", "traffic sign"]
    counts = check_view(root, out)
    assert counts == {("mask", t): 1 for t in classes}
    require("datumaro")
    report = datumaro_import_all(out, "voc_segmentation")
    assert report.errors == [] and report.missing_media() == [] and len(report.dataset) == 3
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
    out = tmp_path / "out"
    for path in tree.walk_files():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(tree.read_file(path))
    assert (out / "ImageSets/Segmentation/train.txt").read_bytes() == b""
    require("datumaro")
    report = datumaro_import_all(out, "voc_segmentation")
    assert report.errors == [] and len(report.dataset) == 0
