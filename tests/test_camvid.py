"""The CamVid view (``--format camvid``): mounted SDK fixtures and generated projects read by
Datumaro's ``camvid`` importer, every colour mask decoded through label_colors.txt and compared pixel
for pixel with rasters painted here from the reader's model, and the names its line parser would
split mapped."""

from __future__ import annotations

import io
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
from slyfs.formats.writers import camvid
from slyfs.vfs.tree import VirtualTree
from tests.helpers.hostile import ann, names_project, plain_project, rect
from tests.helpers.mask_oracle import (
    assert_keys_distinct_and_images_source,
    assert_left_out_reported,
    assert_reads_back,
    expected,
    read_label_colors,
)
from tests.helpers.mounts import SOURCES, assert_clean_import, mounts_fixture, sources_fixture
from tests.helpers.readers import datumaro_import_all, require
from tests.helpers.views import view_files, write_view

sources = sources_fixture(seed=7)
mounts = mounts_fixture("camvid")


def check_view(root: Path, tree: Path, titles: list[str] | None = None) -> dict[tuple[str, str], int]:
    """Every list line, image and mask of a camvid tree on disk against the model; the number of
    images holding each label (background included), which is what Datumaro makes masks of."""
    project = read_project(str(root))
    titles = titles or [c.title for c in project.meta.classes]
    labels = read_label_colors((tree / "label_colors.txt").read_text("utf-8"))
    assert labels[0] == ("background", (0, 0, 0)) and len(labels) == len(titles) + 1
    colour_index = {c: k for k, (_, c) in enumerate(labels)}
    assert len(colour_index) == len(labels)
    counts: Counter[tuple[str, str]] = Counter()
    seen = 0
    lists = sorted(p for p in tree.glob("*.txt") if p.name != "label_colors.txt")
    for split, items in splits(project, ViewOptions()).items():
        label = split.replace("_", "-")
        names = item_names(items, escape=lambda n: spaceless_component(n).replace('"', "%22"))
        lines = (tree / f"{label}.txt").read_text("utf-8").splitlines()
        assert lines == [f"/{label}/{n} {label}annot/{split_ext(n)[0]}.png" for n in names]
        for item, name in zip(items, names):
            seen += 1
            assert (tree / label / name).read_bytes() == read_bytes(item.image)
            want = expected(project, item, titles)
            with Image.open(tree / f"{label}annot" / f"{split_ext(name)[0]}.png") as png:
                assert png.mode == "P" and np.array_equal(np.asarray(png), want.cls), name
                rgb = np.asarray(png.convert("RGB"))
            assert np.array_equal(_indices(rgb, colour_index), want.cls), name
            counts.update(("mask", labels[k][0]) for k in np.unique(want.cls))
    assert len(lists) == len(splits(project, ViewOptions())) and seen == sum(1 for _ in project.items())
    return dict(counts)


def _indices(rgb: np.ndarray, colour_index: dict[tuple[int, int, int], int]) -> np.ndarray:
    """Each pixel's label index by its exact colour (a KeyError for an undeclared colour)."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    lut = {(r << 16) | (g << 8) | b: k for (r, g, b), k in colour_index.items()}
    out = np.zeros(packed.shape, dtype=np.int64)
    for value in np.unique(packed):
        out[packed == value] = lut[int(value)]
    return out


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_view_reads_back_exactly(source: str, sources: dict[str, Path], mounts: dict[str, Path]) -> None:
    root, tree = sources[source], mounts[source]
    counts = check_view(root, tree)
    assert len(counts) > 2
    assert_reads_back(tree, root, "camvid", counts)


def test_datumaro_detects_it(mounts: dict[str, Path]) -> None:
    require("datumaro")
    from tests.helpers.readers import datumaro_detect

    assert "camvid" in datumaro_detect(mounts["fixture-blob"])


def test_labels_without_pixels_are_reported() -> None:
    assert_left_out_reported(camvid, "camvid")


def test_keys_name_their_inputs_and_images_are_source_bytes() -> None:
    assert_keys_distinct_and_images_source(camvid, ("train/", "val/"), "trainannot/img_001.png",
                                           ViewOptions(classes=("road",)))


def test_names_its_parser_would_split_are_mapped(tmp_path: Path) -> None:
    """Class names with spaces (beside one already spelt with ``_``) and a leading ``#``, one
    colour for every class and one black, image names with a space and a ``"``, a split with ``_``."""
    classes = ("a b", "a_b", "#x", "traffic sign")
    root = names_project(tmp_path / "p", classes, {
        'a "b".png': ann(rect(1, 1, 4, 4, "a b"), rect(3, 3, 8, 8, "#x")),
        "c d.png": ann(rect(0, 0, 9, 2, "traffic sign"), rect(5, 5, 6, 6, "a_b")),
        "e.png": ann()}, black=1)
    files = VirtualTree(view_files(camvid, read_project(str(root)), ViewOptions()))
    out = write_view(files, tmp_path / "out")
    assert sorted(p.name for p in (out / "my-train").iterdir()) == ["a%20%22b%22.png", "c%20d.png", "e.png"]
    names = [n for n, _ in read_label_colors((out / "label_colors.txt").read_text())]
    assert names[0] == "background" and names[1].startswith("a_b~") and names[2:] == ["a_b", "%23x", "traffic_sign"]
    counts = check_view(root, out)
    assert counts == {("mask", "background"): 3, **{("mask", n): 1 for n in names[1:]}}
    require("datumaro")
    report = datumaro_import_all(out, "camvid")
    assert_clean_import(report, 3)
    assert {i.subset for i in report.dataset} == {"my-train"}
    assert report.label_counts() == counts


def test_labels_of_classes_past_the_255th_are_reported(tmp_path: Path) -> None:
    classes = tuple(f"c{k}" for k in range(300))
    root = plain_project(tmp_path / "p", {"a.png": ann(rect(0, 0, 4, 4, "c299"), rect(5, 5, 9, 9, "c3"))},
                         classes=classes)
    log = ProblemLog()
    files = VirtualTree(view_files(camvid, read_project(str(root), report=log), ViewOptions()))
    with Image.open(io.BytesIO(files.read_file("dsannot/a.png"))) as png:
        assert sorted(np.unique(np.asarray(png))) == [0, 4]  # c3 is index 4; c299 has none
    assert len(files.read_file("label_colors.txt").splitlines()) == 256
    assert [p.message for p in log.all()] == [
        "1 rectangle (class past the 255th) label(s) cannot be expressed in camvid"]


def test_a_view_without_images_is_an_empty_dataset(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    tree = VirtualTree(view_files(camvid, read_project(str(root)), ViewOptions(include_empty=False)))
    assert sorted(tree.walk_files()) == ["label_colors.txt", "train.txt"]
    out = write_view(tree, tmp_path / "out")
    require("datumaro")
    report = datumaro_import_all(out, "camvid")
    assert_clean_import(report, 0)
