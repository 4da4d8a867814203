"""Unit tests of formats/common/ with small hand-computed numbers: no project on disk, no FUSE."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from slyfs.formats.common.contours import Region, geometry_regions
from slyfs.formats.common.geometry import clipped_box, normalized_cxcywh, pixel_extent, polygonal, translated, union_box
from slyfs.formats.common.labels import class_ids_of, facts_left_out, label_file
from slyfs.formats.common.masks import (
    MAX_OBJECT_INDEX,
    PALETTE,
    background_name,
    labelmap_text,
    palette_png,
    segmentation_arrays,
    voc_colormap,
)
from slyfs.formats.common.naming import spaceless_component
from slyfs.formats.common.raster import has_area, pixel_crop
from slyfs.formats.common.rle import rle
from slyfs.formats.common.splits import (
    MAX_SPLIT_BYTES,
    item_names,
    items_key,
    parse_split,
    split_of,
    split_order,
    splits,
    stable_fraction,
)
from slyfs.formats.common.text import json_bytes, xml_comment_text, xml_text, yaml_str
from slyfs.formats.model import (
    Annotation,
    Geometry,
    Item,
    ItemFacts,
    Label,
    Line,
    Mask,
    ObjClass,
    PointGeom,
    Polygon,
    Problem,
    ProjectMeta,
    Rectangle,
    Tag,
)
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.view import OptionError, ViewOptions
from tests.helpers.hostile import ann, plain_project, rect
from tests.helpers.readers import require
from tests.helpers.views import view_files

# ---------------------------------------------------------------- rle

MASK_3x4 = np.array([[0, 1, 1, 0],
                     [0, 1, 0, 0],
                     [1, 1, 0, 1]], dtype=bool)


def test_rle_counts_run_down_the_columns_zeros_first() -> None:
    # columns top to bottom: 001 111 100 001 -> 2 zeros, 5 ones, 4 zeros, 1 one
    assert rle(MASK_3x4) == {"size": [3, 4], "counts": [2, 5, 4, 1]}


def test_rle_placed_in_a_larger_image() -> None:
    # at (1, 1) in a 6x5 image, columns: 00000 00010 01110 01000 00010 00000
    assert rle(MASK_3x4, origin=(1, 1), size=(6, 5)) == {"size": [5, 6], "counts": [8, 1, 2, 3, 2, 1, 6, 1, 6]}


def test_rle_empty_full_and_trailing_ones() -> None:
    assert rle(np.zeros((2, 3), bool)) == {"size": [2, 3], "counts": [6]}
    assert rle(np.ones((2, 2), bool)) == {"size": [2, 2], "counts": [0, 4]}
    corner = np.zeros((2, 2), bool)
    corner[1, 1] = True
    assert rle(corner) == {"size": [2, 2], "counts": [3, 1]}  # no zero-length run at the end


def test_rle_decodes_back_with_pycocotools() -> None:
    require("pycocotools")
    from pycocotools import mask as mask_utils

    placed = rle(MASK_3x4, origin=(1, 1), size=(6, 5))
    decoded = mask_utils.decode(mask_utils.frPyObjects(placed, 5, 6)).astype(bool)
    expected = np.zeros((5, 6), bool)
    expected[1:4, 1:5] = MASK_3x4
    assert np.array_equal(decoded, expected)


# ---------------------------------------------------------------- geometry and raster


def test_boxes() -> None:
    assert clipped_box(Rectangle(-2, 1, 4, 2), 4, 3) == (0, 1, 4, 3)
    assert clipped_box(Rectangle(5, 0, 6, 1), 4, 3) is None
    assert clipped_box(PointGeom(1, 1), 4, 3) is None
    assert normalized_cxcywh((0, 1, 4, 3), 4, 3) == (0.5, 2 / 3, 1.0, 2 / 3)
    assert union_box([(0, 0, 2, 2), (1, -1, 3, 1)]) == (0, -1, 3, 2)
    assert union_box([(1, 2, 3, 4)]) == (1, 2, 3, 4)


def test_pixel_extent_gives_a_point_its_pixel() -> None:
    assert pixel_extent(PointGeom(2.7, 3.2)) == (2, 3, 2, 3)
    assert pixel_extent(Rectangle(1, 2, 3, 4)) == (1, 2, 3, 4)
    assert pixel_extent(Line(((0, 5), (3, 1)))) == (0, 1, 3, 5)


def test_translated() -> None:
    assert translated(Rectangle(1, 2, 3, 4), 10, 20) == Rectangle(11, 22, 13, 24)
    holed = Polygon(((0, 0), (4, 0), (4, 4)), (((1, 1), (2, 1), (2, 2)),))
    assert translated(holed, -1, 1) == Polygon(((-1, 1), (3, 1), (3, 5)), (((0, 2), (1, 2), (1, 3)),))
    mask = translated(Mask((3, 4), np.ones((1, 1), bool)), 2, -4)
    assert isinstance(mask, Mask) and mask.origin == (5, 0)
    with pytest.raises(TypeError):
        translated(PointGeom(0, 0), 1, 1)


def test_polygonal_and_has_area() -> None:
    assert polygonal(Rectangle(0, 0, 1, 1)) and polygonal(Polygon(((0, 0), (2, 0), (0, 2))))
    assert not polygonal(Polygon(((0, 0), (4, 0), (4, 4)), (((1, 1), (2, 1), (2, 2)),)))
    assert not polygonal(Mask((0, 0), np.ones((1, 1), bool)))
    assert has_area(Rectangle(0, 0, 1, 1)) and has_area(Mask((0, 0), np.ones((1, 1), bool)))
    assert not has_area(PointGeom(0, 0)) and not has_area(Line(((0, 0), (1, 1))))


def test_pixel_crop_draws_only_the_window() -> None:
    crop = pixel_crop(Rectangle(2, 1, 4, 2), (1, 0, 5, 3))  # window x 1..4, y 0..2
    assert crop.tolist() == [[False, False, False, False],
                             [False, True, True, True],
                             [False, True, True, True]]


# ---------------------------------------------------------------- masks and palettes

DEVKIT_COLOURS = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                  5: (128, 0, 128), 6: (0, 128, 128), 7: (128, 128, 128), 8: (64, 0, 0), 9: (192, 0, 0),
                  10: (64, 128, 0), 15: (192, 128, 128), 255: (224, 224, 192)}


def test_colormap_is_the_devkit_one() -> None:
    cmap = voc_colormap()
    assert len(cmap) == 256 and len(PALETTE) == 768
    assert {k: cmap[k] for k in DEVKIT_COLOURS} == DEVKIT_COLOURS
    assert PALETTE[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    assert voc_colormap(3) == cmap[:3]
    require("datumaro")
    from datumaro.plugins.data_formats.voc.format import generate_colormap
    assert [tuple(int(v) for v in c) for c in generate_colormap(256).values()] == cmap


def test_segmentation_arrays_paint_later_objects_on_top() -> None:
    ann = Annotation(4, 3)
    labels = [Label("car", Rectangle(0, 0, 2, 1)), Label("road", Rectangle(1, 1, 3, 2)),
              Label("car", PointGeom(0, 2))]  # no pixels: object 3 paints nothing
    cls, obj = segmentation_arrays(ann, labels, {"car": 1, "road": 2})
    assert cls.tolist() == [[1, 1, 1, 0], [1, 2, 2, 2], [0, 2, 2, 2]]
    assert obj.tolist() == [[1, 1, 1, 0], [1, 2, 2, 2], [0, 2, 2, 2]]
    assert cls.dtype == obj.dtype == np.uint8


def test_objects_past_the_last_index_are_background_in_the_instance_mask() -> None:
    labels = [Label("car", Rectangle(k % 20, k // 20, k % 20, k // 20)) for k in range(MAX_OBJECT_INDEX + 1)]
    cls, obj = segmentation_arrays(Annotation(20, 13), labels, {"car": 1})
    assert obj[0, 0] == 1 and obj.max() == MAX_OBJECT_INDEX == 254
    last = MAX_OBJECT_INDEX  # the 255th object, at x 14, y 12
    assert obj[last // 20, last % 20] == 0 and cls[last // 20, last % 20] == 1


def test_palette_png_decodes_to_its_indices() -> None:
    idx = np.arange(12, dtype=np.uint8).reshape(3, 4)
    with Image.open(io.BytesIO(palette_png(idx))) as img:
        assert img.mode == "P" and img.size == (4, 3) and np.array_equal(np.asarray(img), idx)
        assert (img.getpalette() or [])[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]
    with pytest.raises(ValueError):
        palette_png(np.zeros((0, 3), np.uint8))


def test_labelmap_and_background_name() -> None:
    assert labelmap_text("background", ["car", "a b"]) == (
        b"# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:128,0,0::\na b:0,128,0::\n")
    assert background_name(["car"]) == "background"
    assert background_name(["car", "background", "_background"]) == "__background"


# ---------------------------------------------------------------- text escaping


def test_xml_text_escapes_what_xml_forbids_and_leaves_markup_to_lxml() -> None:
    assert xml_text("a<b&c>\"'") == "a<b&c>\"'"
    el = etree.Element("n")
    el.text = xml_text("a<b&c>\"'")
    assert etree.tostring(el) == b"<n>a&lt;b&amp;c&gt;\"'</n>"
    assert xml_text("a\x00b\x1fc\td\ne\rf") == "a%00b%1Fc\td\ne\rf"
    assert xml_text("\ufffe\uffff") == "%EF%BF%BE%EF%BF%BF"
    assert xml_text("x\ud800") == "x%ED%A0%80"
    assert xml_text("\x85\u2028é") == "\x85\u2028é"  # allowed in XML 1.0 character data
    el.text = xml_text("bad\x01")  # lxml refuses the raw control character
    assert el.text == "bad%01"


def test_xml_comment_text_never_holds_a_double_hyphen() -> None:
    assert xml_comment_text("a -- b\x02") == "a - - b%02"
    etree.Comment(" " + xml_comment_text("a--b") + " ")


def test_json_bytes_are_compact_utf8() -> None:
    assert json_bytes({"name": "café", "box": [1, 2.5], "ok": True}) == \
        b'{"name":"caf\xc3\xa9","box":[1,2.5],"ok":true}'


def test_yaml_str_reads_back() -> None:
    yaml = pytest.importorskip("yaml")
    assert yaml_str("car") == '"car"'
    assert yaml_str('a"b\\') == '"a\\"b\\\\"'
    assert yaml_str("\x01") == '"\\u0001"'
    assert yaml_str("\x85\u2028") == '"\\u0085\\u2028"'
    assert yaml_str("\U000e0001😀") == '"\\U000e0001😀"'
    for s in ("car", 'a"b\\', "\x01", "\x85\u2028", "\U000e0001😀", "# x: [y]"):
        assert yaml.safe_load("k: " + yaml_str(s))["k"] == s


# ---------------------------------------------------------------- splits


def items(*names: str, dataset: str = "ds") -> list[Item]:
    return [Item(dataset, n, None, None) for n in names]


def test_parse_split() -> None:
    assert parse_split("dataset") == ("dataset", ())
    assert parse_split("tags") == ("tags", ())
    assert parse_split("ratio:0.7,0.2") == ("ratio", (0.7, 0.2))
    for bad in ("ratio:x", "ratio:0.8,0.3", "ratio:-0.1", "ratio:0.1,0.1,0.1", "random"):
        with pytest.raises(OptionError):
            parse_split(bad)


def test_stable_fraction_is_the_hash_of_dataset_and_name() -> None:
    a, b = items("a.jpg", "b.jpg")
    assert stable_fraction(a) == pytest.approx(0.26210973330154863, abs=1e-15)  # sha1("ds/a.jpg")[:8] / 2**64
    assert stable_fraction(b) == pytest.approx(0.6135136818328599, abs=1e-15)
    assert stable_fraction(Item("other", "a.jpg", None, None)) != stable_fraction(a)


def test_ratio_split_of_known_items() -> None:
    known = items("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg")  # fractions .262 .614 .520 .057 .190 .630
    assert [split_of(None, i, "ratio", (0.5, 0.3)) for i in known] == ["train", "val", "val", "train", "train", "val"]
    assert [split_of(None, i, "ratio", (0.2, 0.3)) for i in known] == ["val", "test", "test", "train", "train", "test"]
    assert [split_of(None, i, "ratio", (0.2,)) for i in known] == ["val", "val", "val", "train", "train", "val"]


def test_split_by_dataset_is_the_top_level_name_made_safe() -> None:
    assert split_of(None, Item("train/sub", "x.jpg", None, None), "dataset", ()) == "train"
    assert split_of(None, Item("..", "x.jpg", None, None), "dataset", ()) == "%2E%2E"


def test_split_order() -> None:
    assert sorted(["b", "test", "a", "train", "val"], key=split_order) == ["train", "val", "test", "a", "b"]


@dataclass
class TinyProject:
    """What ``splits`` reads of a project: meta, items, annotations."""

    annotations: dict[str, Annotation]
    meta: ProjectMeta = field(default_factory=lambda: ProjectMeta((ObjClass("car", "rectangle", (0, 0, 0)),
                                                                   ObjClass("dog", "rectangle", (0, 0, 0)))))
    problems: list[Problem] = field(default_factory=list)

    def report(self, problem: Problem) -> None:
        self.problems.append(problem)

    def items(self) -> list[Item]:
        return [Item(n.split("/")[0], n.split("/")[1], None, None) for n in self.annotations]

    def annotation(self, item: Item) -> Annotation:
        return self.annotations[f"{item.dataset}/{item.name}"]

    def facts(self, item: Item) -> ItemFacts:
        return ItemFacts.of(self.annotation(item))


def test_splits_by_tags_with_empty_items_left_out() -> None:
    car = (Label("car", Rectangle(0, 0, 1, 1)),)
    project = TinyProject({"d/z.jpg": Annotation(4, 4, (Tag("val"),), car), "d/a.jpg": Annotation(4, 4, (), car),
                           "d/t.jpg": Annotation(4, 4, (Tag("test"),), car),
                           "d/q.jpg": Annotation(4, 4, (Tag("test"), Tag("val")), car),  # val comes first
                           "d/e.jpg": Annotation(4, 4, (Tag("val"),), ()),
                           "c/b.jpg": Annotation(4, 4, (Tag("train"),), (Label("dog", PointGeom(1, 1)),))})
    by_split = splits(project, ViewOptions(split="tags"))
    assert {s: [i.name for i in its] for s, its in by_split.items()} == {
        "train": ["b.jpg", "a.jpg"], "val": ["e.jpg", "q.jpg", "z.jpg"], "test": ["t.jpg"]}  # sorted by (dataset, name)
    assert list(by_split) == ["train", "val", "test"]
    kept = splits(project, ViewOptions(split="tags", classes=("car",), include_empty=False))
    assert {s: [i.name for i in its] for s, its in kept.items()} == {"train": ["a.jpg"], "val": ["q.jpg", "z.jpg"],
                                                                    "test": ["t.jpg"]}


def test_item_names_of_one_folder() -> None:
    assert item_names(items("x.jpg", dataset="a") + items("x.jpg", dataset="b")) == ["a__x.jpg", "b__x.jpg"]
    assert item_names(items("x.jpg", "x.png", "y.jpg")) == ["x_jpg.jpg", "x_png.png", "y.jpg"]
    assert item_names(items("a b.jpg"), lambda n: n.replace(" ", "%20")) == ["a%20b.jpg"]


# ---------------------------------------------------------------- per-item label files


def test_label_file_rows_and_what_is_left_out() -> None:
    labels = (Label("car", Rectangle(0, 0, 1, 1)), Label("dog", PointGeom(1, 1)), Label("dog", PointGeom(2, 1)),
              Label("cat", Rectangle(0, 0, 1, 1)), Label("dog", Line(((0, 0), (3, 1)))))
    project = TinyProject({"d/a.jpg": Annotation(4, 2, (), labels)})

    def rows_of(class_id: int, geometry: Geometry, width: int, height: int) -> list[str] | None:
        return None if isinstance(geometry, PointGeom) else [f"{class_id} {width}x{height}\n"]

    ids = class_ids_of(project, ViewOptions())
    assert ids == {"car": 0, "dog": 1}
    item = project.items()[0]
    assert label_file(project, item, ids, "Test rows", rows_of) == b"0 4x2\n1 4x2\n"  # cat: no kept class
    assert [(p.path, p.message) for p in project.problems] == [
        ("d/a.jpg", "2 point label(s) cannot be expressed in Test rows")]


# ---------------------------------------------------------------- contours


def test_geometry_regions_cut_to_the_image() -> None:
    assert geometry_regions(Rectangle(-2, 1, 9, 2), 4, 3) == [Region(((0, 1), (3, 1), (3, 2), (0, 2)), ())]
    assert geometry_regions(Rectangle(5, 5, 6, 6), 4, 3) == []
    inside = Polygon(((0, 0), (3, 0), (0, 2)))
    assert geometry_regions(inside, 4, 3) == [Region(inside.exterior, ())]  # its own vertices
    (cut,) = geometry_regions(Polygon(((0, 0), (9, 0), (9, 9), (0, 9))), 4, 3)  # traced from the image-sized mask
    assert sorted(cut.exterior) == [(0.0, 0.0), (0.0, 2.0), (3.0, 0.0), (3.0, 2.0)] and cut.holes == ()
    assert geometry_regions(PointGeom(1, 1), 4, 3) == []


# ---------------------------------------------------------------- names in whitespace-separated lists


def test_spaceless_component() -> None:
    assert spaceless_component("plain.jpg") == "plain.jpg"
    assert spaceless_component("a b\tc.jpg") == "a%20b%09c.jpg"
    assert spaceless_component("a/b c") == "a%2Fb%20c"
    assert spaceless_component("x\u3000y\u00a0") == "x%E3%80%80y%C2%A0"  # Unicode blanks str.split() splits at too
    assert "x\u3000y\u00a0".split() == ["x", "y"]  # noqa: SIM905  (what the list readers do)


def test_items_key_changes_exactly_with_the_items() -> None:
    key = items_key(items("a.jpg", "b.jpg"))
    assert key == (("ds", "a.jpg", ()), ("ds", "b.jpg", ()))
    assert items_key(items("a.jpg", "b.jpg")) == key and hash(items_key(items("a.jpg", "b.jpg"))) == hash(key)
    assert items_key(items("a.jpg")) != key
    assert items_key([Item("ds", "a.jpg", None, None, (1, 2)), *items("b.jpg")]) != key  # an edit: new fingerprint



def test_a_split_named_after_a_long_dataset_fits_every_file_named_after_it(tmp_path: Path) -> None:
    long_a, long_b = "d" * 200 + "a", "d" * 200 + "b"
    root = plain_project(tmp_path / "p", {"x.png": ann(rect(1, 1, 3, 3))}, dataset=long_a)
    shutil.copytree(root / long_a, root / long_b)
    project = read_project(str(root), report=ProblemLog())
    names = list(splits(project, ViewOptions()))
    assert len(set(names)) == 2  # cut, yet distinct
    assert all(len(n.encode()) == MAX_SPLIT_BYTES and n.startswith("d" * 40) for n in names)
    for fmt in ("coco", "yolo-darknet", "voc"):
        for path in view_files([fmt], project, ViewOptions()):
            assert all(len(part.encode()) <= 255 for part in path.split("/")), path


def test_item_facts_keep_image_tags_in_order_and_count_labels_per_class_and_geometry() -> None:
    square = Polygon(((0, 0), (3, 0), (3, 3)))
    labels = (Label("car", Rectangle(0, 0, 1, 1)), Label("car", Rectangle(1, 1, 2, 2)), Label("car", square),
              Label("person", Rectangle(0, 0, 2, 2)), Label("tree", Line(((0, 0), (3, 3)))))
    tags = (Tag("species", "red fox"), Tag("frame", 7), Tag("species", "cat"), Tag("flag"))
    facts = ItemFacts.of(Annotation(4, 4, tags, labels))
    assert facts.tags == tags
    assert facts.label_kinds == (("car", "Polygon", 1), ("car", "Rectangle", 2), ("person", "Rectangle", 1),
                                 ("tree", "Line", 1))
    # the labels of the kept classes by geometry, summed over classes; the others not counted
    assert facts_left_out(facts, {"car", "person"}) == Counter({"rectangle": 3, "polygon": 1})
    assert facts_left_out(facts, {"tree", "bus"}) == Counter({"line": 1})
    assert facts_left_out(facts, set()) == Counter()
