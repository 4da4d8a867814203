"""Unit tests, with small hand-computed numbers, of the formats/common helpers the KITTI and Open
Images views brought: tag values, integer and RGB mask PNGs, distinct colours, token and subset
names, CSV rows, and label files whose rows see the whole label."""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.labels import tagged_label_file
from slyfs.formats.common.masks import gray_png, painted_indices, rgb_png
from slyfs.formats.common.naming import backslashless_component, token_text, token_texts
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import find_tag, tag_flag, tag_names, tag_number, tag_option
from slyfs.formats.common.text import csv_rows
from slyfs.formats.contract import NotRenderable
from slyfs.formats.model import (
    Annotation,
    Dataset,
    Item,
    Label,
    Line,
    PointGeom,
    Polygon,
    Project,
    ProjectMeta,
    Rectangle,
    Tag,
)
from slyfs.formats.view import ViewOptions


def test_tag_numbers_and_flags() -> None:
    values = (None, 0, 1, 0.25, "0.5", " Yes ", "no", "", "off", "abc", "nan")
    assert [tag_number(v) for v in values] == [1.0, 0.0, 1.0, 0.25, 0.5, 1.0, 0.0, 0.0, 0.0, None, None]
    assert [tag_flag(v) for v in values] == [True, False, True, True, True, True, False, False, False, True, True]
    tags = (Tag("a", 1), Tag("b"), Tag("a", 2))
    assert find_tag(tags, "a") == Tag("a", 1) and find_tag(tags, "c") is None


def test_tag_options_default_to_the_meaning_and_are_renamed_by_opt() -> None:
    options = (tag_option("fmt", "occluded"), tag_option("fmt", "score"))
    assert [o.key for o in options] == ["fmt.occluded-tag", "fmt.score-tag"]
    assert tag_names(ViewOptions(), options) == {"occluded": "occluded", "score": "score"}
    renamed = ViewOptions(params={"fmt.score-tag": "conf"})
    assert tag_names(renamed, options) == {"occluded": "occluded", "score": "conf"}


def test_painted_indices_later_over_earlier_and_no_area_paints_nothing() -> None:
    shapes = [(Label("a", Rectangle(0, 0, 2, 1)), 300), (Label("b", Rectangle(2, 1, 3, 2)), 7),
              (Label("c", Line(((0, 2), (3, 2)))), 9), (Label("d", PointGeom(1, 1)), 9)]
    out = painted_indices(4, 3, shapes)
    assert out.dtype == np.uint16
    assert out.tolist() == [[300, 300, 300, 0], [300, 300, 7, 7], [0, 0, 7, 7]]
    tri = painted_indices(3, 3, [(Label("t", Polygon(((0, 0), (2, 0), (0, 2)))), 1)], np.uint8)
    assert tri.dtype == np.uint8 and tri.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]


def test_gray_png_keeps_8_and_16_bit_values() -> None:
    wide = np.array([[0, 257], [65535, 3]], dtype=np.uint16)
    with Image.open(io.BytesIO(gray_png(wide))) as png:
        assert png.mode == "I;16" and np.asarray(png).tolist() == [[0, 257], [65535, 3]]
    narrow = np.array([[0, 1, 255]], dtype=np.uint8)
    with Image.open(io.BytesIO(gray_png(narrow))) as png:
        assert png.mode == "L" and np.asarray(png).tolist() == [[0, 1, 255]]
    with pytest.raises(TypeError):
        gray_png(np.zeros((1, 1), dtype=np.int32))
    with pytest.raises(NotRenderable):
        gray_png(np.zeros((0, 5), dtype=np.uint8))


def test_rgb_png_paints_each_index_its_colour() -> None:
    with Image.open(io.BytesIO(rgb_png(np.array([[0, 2], [1, 1]], dtype=np.uint16),
                                       [(0, 0, 0), (10, 20, 30), (255, 0, 128)]))) as png:
        assert png.mode == "RGB"
        assert np.asarray(png).tolist() == [[[0, 0, 0], [255, 0, 128]], [[10, 20, 30], [10, 20, 30]]]


def test_token_names_have_no_whitespace_and_stay_distinct() -> None:
    assert token_text("traffic sign") == "traffic_sign" and token_text("") == "_"
    assert token_text("a\tb\x01") == "a_b%01"
    out = token_texts(["a b", "a_b", "c"])
    assert out[1:] == ["a_b", "c"] and out[0].startswith("a_b~") and len(out[0]) == len("a_b~12345678")
    assert all(len(t.split()) == 1 for t in out)


def test_plain_subset_names() -> None:
    assert plain_subset_names(["train", "my_val", "my-val", "a.b", "data set", "ü"], reserved=("instance",)) == \
        {"train": "train", "my_val": "my-val", "my-val": "my-val-2", "a.b": "a-b", "data set": "data-set", "ü": "-"}
    assert plain_subset_names(["instance", "x" * 80], reserved=("instance",), max_bytes=8) == \
        {"instance": "instan-2", "x" * 80: "xxxxxxxx"}


def test_backslashless_names_stay_unique() -> None:
    assert backslashless_component("a\\b/c.png") == "a%5Cb%2Fc.png" and backslashless_component("x.png") == "x.png"
    items = [Item("ds", n, None, None) for n in ("a%5Cb.png", "a\\b.png", "c.png")]
    names = item_names(items, escape=backslashless_component)
    assert len({n.rpartition(".")[0] for n in names}) == 3 and not any("\\" in n for n in names)
    assert names[2] == "c.png" and all(n.startswith("a%5Cb") for n in names[:2])


def test_csv_rows_read_back_with_the_csv_module() -> None:
    rows = [["a", 'say "hi"', "x,y", 1.5, -1, ""], ["line\nbreak", "ü"]]
    text = csv_rows(rows)
    assert text == 'a,"say ""hi""","x,y",1.5,-1,\r\n"line\nbreak",ü\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [[str(v) for v in row] for row in rows]


def test_tagged_label_file_sees_tags_and_counts_what_it_cannot_write() -> None:
    ann = Annotation(10, 10, (), (Label("car", Rectangle(0, 0, 1, 1), (Tag("score", 0.5),)),
                                  Label("car", PointGeom(1, 1)), Label("other", Rectangle(0, 0, 1, 1))))
    item = Item("ds", "a.png", None, None)
    problems = []
    project = Project("/src", ProjectMeta(()), (Dataset("ds", (item,)),), lambda _: ann, report=problems.append)

    def rows(cid: int, label: Label, width: int, height: int) -> list[str] | None:
        if isinstance(label.geometry, PointGeom):
            return None
        return [f"{cid} {find_tag(label.tags, 'score').value}\n"]

    assert tagged_label_file(project, item, {"car": 3}, "TEST", rows) == b"3 0.5\n"
    assert Counter(p.message for p in problems) == {"1 point label(s) cannot be expressed in TEST": 1}
