"""The ICDAR views (recognition, localization, segmentation): the escapes and regions they share,
and real mounts of the SDK fixtures (no transcriptions: the note) and a tagged sample, read back
with Datumaro's importers and compared with what the source JSON says, masks pixel for pixel."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from slyfs.formats.common.tagged import HIDDEN_NOTE_FILE, NOTE_FILE
from slyfs.formats.common.tags import positive_int
from slyfs.formats.common.text_regions import (
    affixed_names,
    caption_text,
    char_text,
    clockwise_from_top_left,
    quoted_text,
    subset_labels,
    text_region,
)
from slyfs.formats.model import Item, OrientedBox, Polygon, Rectangle
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.icdar import localization
from tests.helpers.mounts import assert_clean_import, each_mount_fixture, sources_fixture, tagged
from tests.helpers.readers import ImportReport, datumaro_import_all, require
from tests.helpers.sly_json import (
    annotations,
    assert_missing_tag_said,
    close,
    cut_edge_box,
    hostile_text_import,
    inside,
    items_by_split,
    output_stems,
    tag,
)
from tests.helpers.views import view_files
from tests.test_voc import AREA_TYPES, area_raster, pixel_box

VIEWS = ("icdar-recognition", "icdar-localization", "icdar-segmentation")


# ---------------------------------------------------------------- escapes, regions, names


def test_captions_keep_the_recognition_line_whole():
    assert caption_text("one, two") == "one,%20two"
    assert caption_text('say "hi"') == 'say "hi"'
    assert caption_text("a\\b") == "a%5Cb"
    assert caption_text("x\ny") == "x%0Ay"
    assert caption_text(" café ") == " café "  # inside quotes: blanks are kept
    assert caption_text("a,b ,c") == "a,b ,c"


def test_localization_texts_have_no_quote():
    assert quoted_text('say "hi"') == "say %22hi%22"
    assert quoted_text("one, two") == "one, two"
    assert quoted_text("tab\there") == "tab%09here"


def test_segmentation_texts_are_one_token():
    assert char_text("Main St") == "Main%20St"
    assert char_text("a\u00a0b") == "a%C2%A0b"
    assert char_text('"') == '"'


def test_quads_go_clockwise_from_the_top_left():
    tl, tr, br, bl = (0, 0), (10, 1), (9, 8), (-1, 7)
    assert clockwise_from_top_left([tl, tr, br, bl]) == [tl, tr, br, bl]
    assert clockwise_from_top_left([bl, br, tr, tl]) == [tl, tr, br, bl]  # counter-clockwise given
    assert clockwise_from_top_left([br, bl, tl, tr]) == [tl, tr, br, bl]


def test_regions_of_each_geometry():
    assert text_region(Rectangle(2, 3, 9, 7), 20, 20).box == (2, 3, 10, 8)
    assert text_region(Rectangle(15, 15, 30, 30), 20, 20).box == (15, 15, 20, 20)  # cut to the image
    assert text_region(Rectangle(25, 25, 30, 30), 20, 20) is None
    quad = text_region(Polygon(((1, 1), (1, 5), (6, 5), (6, 1))), 20, 20).quad
    assert quad == ((1.5, 1.5), (6.5, 1.5), (6.5, 5.5), (1.5, 5.5))
    five = text_region(Polygon(((1, 1), (6, 1), (7, 3), (6, 5), (1, 5))), 20, 20)
    assert five.quad is None and five.box == (1, 1, 8, 6)
    turned = text_region(OrientedBox(2, 2, 6, 4, 0.0), 20, 20).quad
    assert turned == ((2.5, 2.5), (6.5, 2.5), (6.5, 4.5), (2.5, 4.5))


def _item(dataset: str, name: str) -> Item:
    return Item(dataset, name, None, None)


def test_names_leave_room_for_the_gt_affixes():
    items = [_item("d", "x" * 240 + ".jpg"), _item("d", "x" * 241 + ".jpg"), _item("d", "short.png")]
    names = affixed_names(len("gt_"))(items)
    assert names[2] == "short.png"
    assert len({n.rsplit(".", 1)[0] for n in names}) == 3
    assert all(len(f"gt_{n.rsplit('.', 1)[0]}.txt".encode()) <= 255 for n in names)
    assert subset_labels(["train", ".hidden"]) == {"train": "train", ".hidden": "%2Ehidden"}


def test_positive_ints():
    assert [positive_int(v) for v in (3, 3.0, "7", " 2 ", 0, -1, 2.5, "x", None, True)] == \
        [3, 3, 7, 2, None, None, None, None, None, None]


def test_another_tag_can_hold_the_transcription():
    """``--opt icdar-localization.text-tag=comment``: the fixture's ``comment`` object tags become texts."""
    project = read_project(str(Path(__file__).parent / "fixtures" / "sdk_project_plain"))
    wanted = Counter()
    for items in items_by_split(Path(project.root)).values():
        for _, _, ann in items:
            for obj in ann["objects"]:
                has, value = tag(obj, "comment")
                if has and value is not None and obj["geometryType"] in AREA_TYPES and inside(pixel_box(obj), ann):
                    wanted[quoted_text(str(value))] += 1
    assert wanted
    files = view_files(localization, project, ViewOptions(params={"icdar-localization.text-tag": "comment"}))
    got = Counter()
    for path, node in files.items():
        if path.rsplit("/", 1)[-1].startswith("gt_"):
            for line in node.render().decode().splitlines():
                got[line.split('"')[1]] += 1
    assert got == wanted
    assert HIDDEN_NOTE_FILE not in files  # the fixture declares ``comment``


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=11)
mounted_icdar = each_mount_fixture(",".join(VIEWS))


def _expected_regions(ann: dict) -> list[tuple[dict, str]]:
    """The objects a localization/segmentation view writes (source order) and their texts."""
    out = []
    for obj in ann["objects"]:
        has, value = tag(obj, "text")
        if has and value is not None and obj["geometryType"] in AREA_TYPES and inside(pixel_box(obj), ann):
            out.append((obj, str(value)))
    return out


def _read_back(mounted_icdar, view: str,
               importer: str) -> tuple[Path, dict[str, list[tuple[str, str, dict]]], ImportReport]:
    """(source, its items by split, Datumaro's clean import of the mounted ``view``, an item per image)."""
    require("datumaro")
    source, mnt, _ = mounted_icdar
    splits = items_by_split(source)
    report = datumaro_import_all(mnt / view, importer)
    assert_clean_import(report, sum(map(len, splits.values())), no_warnings=True)
    return source, splits, report


def test_recognition_reads_back(mounted_icdar):
    source, splits, report = _read_back(mounted_icdar, "icdar-recognition", "icdar_word_recognition")
    total = 0
    for split, items in splits.items():
        captions: Counter = Counter()
        for _, _, ann in items:
            has, value = tag(ann, "text")
            if has and value is not None:
                captions[str(value).replace("\\", "%5C").replace(", ", ",%20")] += 1
        got = Counter(a.caption for item in report.dataset if item.subset == split for a in item.annotations)
        assert got == captions, split
        total += sum(captions.values())
    assert bool(total) == tagged(source)


def test_localization_reads_back(mounted_icdar):
    source, splits, report = _read_back(mounted_icdar, "icdar-localization", "icdar_text_localization")
    total = 0
    for split, items in splits.items():
        wanted: Counter = Counter()
        for _, _, ann in items:
            for obj, text in _expected_regions(ann):
                quad = obj["geometryType"] == "oriented_bbox" or (
                    obj["geometryType"] == "polygon" and len(obj["points"]["exterior"]) == 4
                    and not obj["points"]["interior"])
                wanted[("polygon" if quad else "bbox", text.replace('"', "%22"))] += 1
        got = Counter((a.type.name, a.attributes.get("text"))
                      for item in report.dataset if item.subset == split for a in item.annotations)
        assert got == wanted, split
        total += sum(wanted.values())
    assert bool(total) == tagged(source)
    # boxes of rectangles are their edge boxes, cut to the image
    by_id = _by_view_id(splits)
    for item in report.dataset:
        ann = by_id[(item.subset, item.id)]
        rects = [cut_edge_box(pixel_box(obj), ann) for obj, _ in _expected_regions(ann)
                 if obj["geometryType"] == "rectangle"]
        boxes = [tuple(a.get_bbox()) for a in item.annotations if a.type.name == "bbox"]
        assert all(any(close(r, b) for b in boxes) for r in rects), item.id


def _by_view_id(splits: dict[str, list[tuple[str, str, dict]]]) -> dict[tuple[str, str], dict]:
    """(subset, item id) → annotation JSON, the ids being the stems of the items' output names."""
    return {(split, stem): ann for split, items in splits.items()
            for (_, _, ann), stem in zip(items, output_stems(items))}


def test_segmentation_masks_are_the_source_pixels(mounted_icdar):
    source, splits, report = _read_back(mounted_icdar, "icdar-segmentation", "icdar_text_segmentation")
    by_id = _by_view_id(splits)
    masks = 0
    for item in report.dataset:
        ann = by_id[(item.subset, item.id)]
        w, h = ann["size"]["width"], ann["size"]["height"]
        regions = _expected_regions(ann)
        visible = []
        painted = np.zeros((h, w), dtype=bool)
        for obj, _ in reversed(regions):  # later objects are on top
            raster = area_raster(obj, w, h) & ~painted
            painted |= raster
            visible.append(raster)
        visible.reverse()
        got = {int(a.attributes["index"]): a for a in item.annotations}
        assert sorted(got) == [i for i, m in enumerate(visible) if m.any()], item.id
        for i, a in got.items():
            assert np.array_equal(a.image, visible[i]), (item.id, i)
            assert a.attributes["text"] == char_text(regions[i][1]) or regions[i][1] == " "
        masks += len(got)
    assert bool(masks) == tagged(source)


def test_a_project_without_transcriptions_says_so(mounted_icdar):
    source, mnt, log = mounted_icdar
    for view in VIEWS:
        assert_missing_tag_said(mnt / view / HIDDEN_NOTE_FILE, log, source, f"--opt {view}.text-tag=NAME",
                                f"no tag 'text' in meta.json: {view} has no")
        assert not (mnt / view / NOTE_FILE).exists()  # a root file breaks the readers' subset search


# ---------------------------------------------------------------- names readers split on


@pytest.mark.parametrize(("view", "importer"), [("icdar-recognition", "icdar_word_recognition"),
                                                ("icdar-localization", "icdar_text_localization"),
                                                ("icdar-segmentation", "icdar_text_segmentation")])
def test_hostile_names_and_texts_read_back(tmp_path: Path, view: str, importer: str):
    """Spaces, ``_``, ``", "``, quotes, backslashes, long and non-ASCII names, collisions: every image is
    an item with its image, every transcription is read back as its documented escape."""
    root, _, _, report = hostile_text_import(tmp_path, view, importer)
    assert {item.subset for item in report.dataset} == {"tr_ain x"}
    anns = [a for item in report.dataset for a in item.annotations]
    texts = Counter(str(t["value"]) for a in annotations(root).values() for o in a["objects"] for t in o["tags"]
                    if t["name"] == "text")
    if view == "icdar-localization":
        assert Counter(a.attributes.get("text", "") for a in anns) == Counter(
            {quoted_text(t): n for t, n in texts.items()})
    elif view == "icdar-segmentation":
        assert Counter(a.attributes["text"] for a in anns if a.attributes["text"] != " ") == Counter(
            {char_text(t): n for t, n in texts.items() if t != " "})
    else:
        captions = Counter(str(t["value"]) for a in annotations(root).values()
                           for t in a["tags"] if t["name"] == "text")
        assert Counter(a.caption for a in anns) == Counter({caption_text(t): n for t, n in captions.items()})
