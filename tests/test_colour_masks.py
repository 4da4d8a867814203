"""The shared helpers of the colour-coded and integer mask views (common/colour_masks.py, the
labelmap names of common/masks.py, flag tags, dashed split names), checked with numbers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from slyfs.formats.common.colour_masks import (
    distinct_colours,
    instance_numbers,
    label_colors_text,
    token_label_name,
    token_label_names,
)
from slyfs.formats.common.masks import gray_png, labelmap_name, labelmap_names, painted_layers, rgb_png, spread_colour
from slyfs.formats.common.splits import dashed_split_names
from slyfs.formats.common.tags import flag_tag
from slyfs.formats.contract import NotRenderable
from slyfs.formats.model import Label, PointGeom, Rectangle, Tag


def test_spread_colour_is_the_voc_colour_map_and_goes_on_past_256() -> None:
    assert [spread_colour(k) for k in range(9)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128),
                                                    (128, 0, 128), (0, 128, 128), (128, 128, 128), (64, 0, 0)]
    assert spread_colour(255) == (224, 224, 192)  # VOC's void colour
    assert len({spread_colour(k) for k in range(5000)}) == 5000


def test_distinct_colours_keep_the_wanted_ones_and_replace_clashes_in_order() -> None:
    red = (255, 0, 0)
    assert distinct_colours([red, red, (0, 0, 0), (1, 2, 3)]) == [red, (128, 0, 0), (0, 128, 0), (1, 2, 3)]
    # a later label's own colour is kept even when it is the first spare one
    assert distinct_colours([red, red, (128, 0, 0)]) == [red, (0, 128, 0), (128, 0, 0)]
    assert distinct_colours([(0, 0, 0)], reserved=()) == [(0, 0, 0)]
    many = distinct_colours([red] * 600)
    assert len(set(many)) == 600 and (0, 0, 0) not in many


def test_colour_png_draws_each_index_in_its_colour() -> None:
    idx = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint16)
    colours = [(0, 0, 0), (10, 20, 30), (200, 100, 0)]
    with Image.open(io.BytesIO(rgb_png(idx, colours))) as img:
        assert img.mode == "RGB" and img.size == (3, 2)
        assert np.asarray(img).tolist() == [[[0, 0, 0], [10, 20, 30], [200, 100, 0]],
                                            [[200, 100, 0], [10, 20, 30], [0, 0, 0]]]
    with pytest.raises(NotRenderable):
        rgb_png(np.zeros((0, 4), np.uint8), colours)


def test_gray_png_is_8_bit_for_uint8_and_16_bit_otherwise() -> None:
    with Image.open(io.BytesIO(gray_png(np.array([[0, 7, 255]], dtype=np.uint8)))) as img:
        assert img.mode == "L" and np.asarray(img).tolist() == [[0, 7, 255]]
    with Image.open(io.BytesIO(gray_png(np.array([[0, 1001], [26002, 65535]], dtype=np.uint16)))) as img:
        assert img.mode.startswith("I") and np.asarray(img).tolist() == [[0, 1001], [26002, 65535]]
    with pytest.raises(NotRenderable):
        gray_png(np.zeros((3, 0), np.uint16))


def test_painted_layers_paint_later_over_earlier_in_every_layer() -> None:
    geometries = [Rectangle(0, 0, 2, 1), PointGeom(1, 1), Rectangle(2, 1, 3, 2)]
    cls, inst = painted_layers(4, 3, geometries, [([5, 6, 7], np.uint8), ([1001, 1002, 2001], np.uint16)])
    assert cls.dtype == np.uint8 and inst.dtype == np.uint16
    assert cls.tolist() == [[5, 5, 5, 0], [5, 5, 7, 7], [0, 0, 7, 7]]
    assert inst.tolist() == [[1001, 1001, 1001, 0], [1001, 1001, 2001, 2001], [0, 0, 2001, 2001]]


def test_instance_numbers_join_labels_of_one_instance_key_and_class() -> None:
    box = Rectangle(0, 0, 1, 1)
    labels = [Label("a", box), Label("a", box, instance="k"), Label("b", box, instance="k"),
              Label("a", box, instance="k"), Label("a", box)]
    assert instance_numbers(labels) == [1, 2, 3, 2, 4]


def test_token_label_names_hold_no_whitespace_and_stay_distinct() -> None:
    assert token_label_name("traffic sign") == "traffic_sign"
    assert token_label_name("tab\there\n") == "tab_here_"
    assert token_label_name("#x") == "%23x" and token_label_name("bell\x07") == "bell%07"
    a, b = token_label_names(["a b", "a_b"])
    assert b == "a_b" and a.startswith("a_b~") and len(a) == len("a_b~12345678")
    assert label_colors_text(["background", "a_b"], [(0, 0, 0), (1, 2, 3)]) == b"0 0 0 background\n1 2 3 a_b\n"


def test_labelmap_names_escape_what_the_labelmap_reader_splits_or_strips() -> None:
    assert labelmap_name("traffic sign") == "traffic sign"
    assert labelmap_name("a:b") == "a%3Ab" and labelmap_name(" x ") == "%20x%20" and labelmap_name("#c") == "%23c"
    a, b = labelmap_names(["a:b", "a%3Ab"])
    assert b == "a%3Ab" and a.startswith("a%3Ab~")


def test_flag_tags() -> None:
    values = (None, 1, 0, 0.0, "1", "0", "yes", "No", "false", "", 0.5)
    assert [flag_tag((Tag("other"), Tag("is_crowd", v)), "is_crowd") for v in values] == \
        [True, True, False, False, True, False, True, False, False, False, True]
    assert flag_tag((Tag("other"),), "is_crowd") is False


def test_dashed_split_names() -> None:
    assert dashed_split_names(["train", "my_val", "my-val", "a b"]) == {
        "train": "train", "my_val": "my-val", "my-val": "my-val~2", "a b": "a%20b"}
