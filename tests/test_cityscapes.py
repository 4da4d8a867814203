"""The Cityscapes view (``--format cityscapes``): mounted SDK fixtures and generated projects read
by Datumaro's ``cityscapes`` importer in both instance-id modes, every color / labelIds / instanceIds
PNG decoded and compared pixel for pixel with rasters painted here from the reader's model, images
renamed ``_leftImg8bit`` with their bytes, and the names the reader would take apart mapped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.naming import escape_component, fit_name, split_ext
from slyfs.formats.common.splits import item_names, splits
from slyfs.formats.model import Item, Project
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.source_bytes import read_bytes
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.formats.writers import cityscapes
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN
from tests.helpers.hostile import ann, names_project, rect
from tests.helpers.mask_oracle import (
    AREA_TYPES,
    assert_keys_distinct_and_images_source,
    assert_left_out_reported,
    assert_reads_back,
    expected,
    read_label_colors,
)
from tests.helpers.mounts import SOURCES, assert_clean_import, mounted_sources, mounts_fixture, sources_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.views import view_files, write_view
from tests.test_coco_masks import painted

LONGEST_SUFFIX = len("_gtFine_instanceIds.png")


sources = sources_fixture(seed=7)
mounts = mounts_fixture("cityscapes")


@pytest.fixture(scope="module")
def class_mounts(sources: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """Two sources mounted with ``cityscapes.instance-ids=classes``."""
    with mounted_sources({s: sources[s] for s in ("fixture-plain", "sample-blob")}, "cityscapes",
                         "--opt", "cityscapes.instance-ids=classes") as mnts:
        yield mnts


def is_set(value: object) -> bool:
    return value is None or (str(value).strip().lower() not in ("0", "false", "no", "") and value != 0)


def expected_ids(project: Project, item: Item, titles: list[str], crowd_tag: str = "is_crowd",
                 classes_only: bool = False) -> np.ndarray:
    """instanceIds as cityscapesScripts reads it: class*1000+k, k = 1.. per class (one k for labels
    bound by one instance key), the class alone for crowd objects (for all with ``classes_only``)."""
    a = project.annotation(item)
    index = {t: k for k, t in enumerate(titles, 1)}
    out = np.zeros((a.height, a.width), dtype=np.int64)
    numbers: dict[str, dict[object, int]] = {}
    for i, label in enumerate(a.labels):
        if label.class_title not in index or not isinstance(label.geometry, AREA_TYPES):
            continue
        c = index[label.class_title]
        if classes_only or any(t.name == crowd_tag and is_set(t.value) for t in label.tags):
            value = c
        else:
            mine = numbers.setdefault(label.class_title, {})
            k = mine.setdefault((label.instance, 0) if label.instance is not None else (i, 1), len(mine) + 1)
            value = c * 1000 + k
        out[painted(label.geometry, a.width, a.height)] = value
    return out


def output_names(items: list[Item]) -> list[str]:
    def escape(n: str) -> str:
        return escape_component(n).replace("_leftImg8bit", "-leftImg8bit").replace("_gtFine_", "-gtFine_")

    return [fit_name(n, 255 - LONGEST_SUFFIX - 32) for n in item_names(items, escape=escape)]


def check_view(root: Path, tree: Path, classes_only: bool = False, crowd_tag: str = "is_crowd"
               ) -> dict[tuple[str, str], int]:
    """Every image and PNG of a cityscapes tree on disk against the model; the masks Datumaro must
    make: one per image and label index below 1000 (not 0) that is a pixel value of instanceIds."""
    project = read_project(str(root))
    titles = [c.title for c in project.meta.classes]
    labels = read_label_colors((tree / "label_colors.txt").read_text("utf-8"))
    assert labels[0] == ("background", (0, 0, 0)) and len(labels) == len(titles) + 1
    colour_of = [c for _, c in labels]
    assert len(set(colour_of)) == len(colour_of)
    counts: Counter[tuple[str, str]] = Counter()
    split_items = splits(project, ViewOptions())
    assert sorted(p.name for p in (tree / "gtFine").iterdir()) == sorted(s.replace("_", "-") for s in split_items)
    for split, items in split_items.items():
        label = split.replace("_", "-")
        assert [p.name for p in (tree / "gtFine" / label).iterdir()] == [label]  # one city per split
        gt, images = tree / "gtFine" / label / label, tree / "leftImg8bit" / label / label
        names = output_names(items)
        assert len(list(gt.iterdir())) == 3 * len(items) and len(list(images.iterdir())) == len(items)
        for item, name in zip(items, names):
            stem, ext = split_ext(name)
            assert (images / f"{stem}_leftImg8bit{ext}").read_bytes() == read_bytes(item.image)
            want = expected(project, item, titles)
            ids = expected_ids(project, item, titles, crowd_tag, classes_only)
            with Image.open(gt / f"{stem}_gtFine_labelIds.png") as png:
                assert png.mode == "L" and np.array_equal(np.asarray(png), want.cls), name
            with Image.open(gt / f"{stem}_gtFine_color.png") as png:
                assert png.mode == "RGB"
                rgb = np.asarray(png)
            for k in range(len(labels)):
                assert np.array_equal((rgb == colour_of[k]).all(axis=2), want.cls == k), (name, k)
            with Image.open(gt / f"{stem}_gtFine_instanceIds.png") as png:
                assert png.mode.startswith("I") and np.array_equal(np.asarray(png).astype(np.int64), ids), name
            counts.update(("mask", labels[v][0]) for v in np.unique(ids) if 0 < v < len(labels))
    return dict(counts)


def loader_pairs(tree: Path, split: str) -> list[tuple[Path, Path, Path]]:
    """Image and target files as torchvision's ``Cityscapes`` and cityscapesScripts pair them: each city
    folder of ``leftImg8bit/<split>``, each image in it, its ``gtFine`` files from the name before
    ``_leftImg8bit``."""
    out = []
    for city in sorted((tree / "leftImg8bit" / split).iterdir()):
        for image in sorted(city.iterdir()):
            base = tree / "gtFine" / split / city.name / image.name.split("_leftImg8bit")[0]
            out.append((image, Path(f"{base}_gtFine_instanceIds.png"), Path(f"{base}_gtFine_labelIds.png")))
    return out


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_view_reads_back_exactly(source: str, sources: dict[str, Path], mounts: dict[str, Path]) -> None:
    root, tree = sources[source], mounts[source]
    counts = check_view(root, tree)
    project = read_project(str(root))
    for split, items in splits(project, ViewOptions()).items():
        pairs = loader_pairs(tree, split.replace("_", "-"))
        assert len(pairs) == len(items) and all(a.is_file() and b.is_file() for _, a, b in pairs)
    if source.startswith("sample"):
        assert counts  # the generator tags some objects is_crowd: Datumaro reads those back
    assert_reads_back(tree, root, "cityscapes", counts)


@pytest.mark.parametrize("source", ["fixture-plain", "sample-blob"])
def test_class_ids_mode_is_what_datumaro_reads_back_whole(source: str, sources: dict[str, Path],
                                                         class_mounts: dict[str, Path]) -> None:
    root, tree = sources[source], class_mounts[source]
    counts = check_view(root, tree, classes_only=True)
    project = read_project(str(root))
    titles = [c.title for c in project.meta.classes]
    present = Counter(t for item in project.items() for t in set(expected(project, item, titles).visible().values()))
    assert counts == {("mask", t.replace(" ", "_")): n for t, n in present.items()}
    assert_reads_back(tree, root, "cityscapes", counts)


def test_datumaro_detects_it(mounts: dict[str, Path]) -> None:
    require("datumaro")
    assert "cityscapes" in datumaro_detect(mounts["fixture-blob"])


def test_crowd_tag_option(tmp_path: Path) -> None:
    project = read_project(str(PLAIN))
    with pytest.raises(OptionError):
        view_files(cityscapes, project, ViewOptions(params={"cityscapes.instance-ids": "both"}))
    tree = VirtualTree(view_files(cityscapes, project, ViewOptions(params={"cityscapes.crowd-tag": "confidence"})))
    out = write_view(tree, tmp_path / "out")
    counts = check_view(PLAIN, out, crowd_tag="confidence")
    assert counts  # the fixture tags some objects with a confidence
    assert_reads_back(out, PLAIN, "cityscapes", counts)


def test_labels_without_pixels_are_reported() -> None:
    assert_left_out_reported(cityscapes, "cityscapes")


def test_instance_ids_past_16_bits_fall_back_to_the_class() -> None:
    from slyfs.formats.model import Label, Rectangle, Tag

    box = Rectangle(0, 0, 1, 1)
    labels = [Label("a", box), Label("b", box, instance="x"), Label("b", box, instance="x"), Label("b", box),
              Label("a", box, (Tag("is_crowd"),)), Label("z", box)]
    ids, unheld = cityscapes.instance_ids(labels, {"a": 1, "b": 2, "z": 66}, [False, False, False, False, True, False])
    assert ids == [1001, 2001, 2001, 2002, 1, 66] and unheld == 1  # 66*1000+1 > 65535


def test_keys_name_their_inputs_and_images_are_source_bytes() -> None:
    assert_keys_distinct_and_images_source(cityscapes, ("leftImg8bit/",),
                                           "gtFine/train/train/img_001_gtFine_instanceIds.png",
                                           ViewOptions(params={"cityscapes.instance-ids": "classes"}))


def test_names_the_reader_would_take_apart_are_mapped(tmp_path: Path) -> None:
    """Class names with spaces (beside one spelt with ``_``) and a leading ``#``, one colour for
    every class and one black, image names holding ``_leftImg8bit`` / ``_gtFine_``, long and
    non-ASCII names, and a split with ``_``: Datumaro pairs every image with its masks."""
    classes = ("a b", "a_b", "#x", "traffic sign")
    long_name = "ü" * 120 + ".png"  # 240 bytes: past the room left for the suffixes
    root = names_project(tmp_path / "p", classes, {
        "x_leftImg8bit.png": ann(rect(1, 1, 4, 4, "a b"), rect(3, 3, 8, 8, "#x")),
        "y_gtFine_z.png": ann(rect(0, 0, 9, 2, "traffic sign"), rect(5, 5, 6, 6, "a_b")),
        long_name: ann(rect(2, 2, 3, 3, "a b")), "e.png": ann()}, black=1)
    tree = VirtualTree(view_files(cityscapes, read_project(str(root)),
                                  ViewOptions(params={"cityscapes.instance-ids": "classes"})))
    assert all(len(part.encode()) <= 255 for path in tree.walk_files() for part in path.split("/"))
    out = write_view(tree, tmp_path / "out")
    assert sorted(p.name for p in (out / "leftImg8bit/my-train/my-train").iterdir())[:3] == \
        ["e_leftImg8bit.png", "x-leftImg8bit_leftImg8bit.png", "y-gtFine_z_leftImg8bit.png"]
    names = [n for n, _ in read_label_colors((out / "label_colors.txt").read_text())]
    assert names[0] == "background" and names[1].startswith("a_b~") and names[2:] == ["a_b", "%23x", "traffic_sign"]
    counts = check_view(root, out, classes_only=True)
    assert counts == {("mask", names[1]): 2, **{("mask", n): 1 for n in names[2:]}}
    require("datumaro")
    report = datumaro_import_all(out, "cityscapes")
    assert_clean_import(report, 4)
    assert {i.subset for i in report.dataset} == {"my-train"}
    assert report.label_counts() == counts
