"""COCO segmentations give back the object's pixels through pycocotools' own rasterisation
(``annToMask``, what detectron2, mmdet and torchvision's Mask R-CNN recipes train from), thin
shapes included: for every instance of the SDK fixtures and of generated sample projects, read
through a real mount, against the raster painted here with PIL from the source geometry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from slyfs.formats.common.splits import item_names, splits
from slyfs.formats.model import Cuboid2d, Geometry, Mask, OrientedBox, Polygon, Project, Rectangle
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import coco
from tests.conftest import BLOB, PLAIN
from tests.helpers.readers import coco_load, datumaro_import, require
from tests.helpers.scripts import load_script

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils

AREA_TYPES = (Rectangle, Polygon, Mask, OrientedBox, Cuboid2d)
SAMPLE_IMAGES = 40


def painted(geometry: Geometry, width: int, height: int) -> np.ndarray:
    """The pixels Supervisely draws for an area geometry: a polygon's inside and boundary, a
    hole's inside cleared but its boundary kept; a cuboid as the convex hull of its vertices."""
    if isinstance(geometry, Mask):
        return geometry.full_mask(width, height)
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    if isinstance(geometry, Rectangle):
        draw.rectangle((geometry.left, geometry.top, geometry.right, geometry.bottom), fill=1)
        return np.asarray(img, dtype=bool)
    holes: tuple = ()
    if isinstance(geometry, Polygon):
        exterior, holes = geometry.exterior, geometry.interiors
    elif isinstance(geometry, Cuboid2d):
        hull = cv2.convexHull(np.array(list(geometry.vertices.values()), dtype=np.float32))
        exterior = tuple(map(tuple, hull.reshape(-1, 2).tolist()))
    else:
        exterior = geometry.corners()
    draw.polygon([(float(x), float(y)) for x, y in exterior], fill=1, outline=1)
    for hole in holes:
        ring = [(float(x), float(y)) for x, y in hole]
        draw.polygon(ring, fill=0)
        draw.line(ring + ring[:1], fill=1)
    return np.asarray(img, dtype=bool)


def interior(pixels: np.ndarray) -> np.ndarray:
    """Pixels whose four neighbours are the object's too: none in a shape at most 1 px thick,
    all of whose pixel centres lie on or next to its outline."""
    inner = np.zeros_like(pixels)
    inner[1:-1, 1:-1] = (pixels[1:-1, 1:-1] & pixels[:-2, 1:-1] & pixels[2:, 1:-1]
                         & pixels[1:-1, :-2] & pixels[1:-1, 2:])
    return inner


def decoded(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """pycocotools' mask of a segmentation (what ``annToMask`` does)."""
    rles = mask_utils.frPyObjects(segmentation, height, width)
    return mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles).astype(bool)


def expected_objects(project: Project, items) -> Iterator[tuple[str, str, np.ndarray]]:
    """(file name, class, pixels) of each object in output order: labels bound by one
    ``instance`` key and class are one object, shaped by its non-rectangle members."""
    for item, name in zip(items, item_names(items)):
        ann = project.annotation(item)
        groups: dict = {}
        for label in ann.labels:
            if isinstance(label.geometry, AREA_TYPES):
                key = (label.instance, label.class_title) if label.instance is not None else id(label)
                groups.setdefault(key, []).append(label)
        for labels in groups.values():
            shaped = [lb for lb in labels if not isinstance(lb.geometry, Rectangle)] or labels
            pixels = np.zeros((ann.height, ann.width), dtype=bool)
            for lb in shaped:
                pixels |= painted(lb.geometry, ann.width, ann.height)
            if pixels.any():
                yield name, labels[0].class_title, pixels


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    make_project = load_script("make_sample_project").make_project

    root = tmp_path_factory.mktemp("coco-samples")
    return {form: make_project(root / form, SAMPLE_IMAGES, form, seed=5) for form in ("plain", "blob")}


@pytest.mark.parametrize("source", ["fixture-plain", "fixture-blob", "sample-plain", "sample-blob"])
def test_every_mounted_instance_decodes_to_its_pixels(source: str, samples: dict[str, Path], mount) -> None:
    kind, form = source.split("-")
    root = {"plain": PLAIN, "blob": BLOB}[form] if kind == "fixture" else samples[form]
    project = read_project(str(root))
    thin = written = 0
    with mount(root, "--format", "coco") as mnt:
        for split, items in splits(project, ViewOptions()).items():
            gt = coco_load(mnt / "annotations" / f"instances_{split}.json")
            cats = {c["id"]: c["name"] for c in gt.dataset["categories"]}
            files = {i["id"]: i["file_name"] for i in gt.dataset["images"]}
            got = [(files[a["image_id"]], cats[a["category_id"]], a) for a in gt.dataset["annotations"]]
            want = list(expected_objects(project, items))
            assert [(f, c) for f, c, _ in got] == [(f, c) for f, c, _ in want]
            written += len(got)
            for (name, cls, a), (_, _, pixels) in zip(got, want):
                mask = gt.annToMask(a).astype(bool)
                assert np.array_equal(mask, pixels), (split, name, cls, a["id"])
                assert a["area"] == int(pixels.sum())
                x, y, w, h = a["bbox"]
                assert mask[y:y + h, x:x + w].sum() == a["area"]
                thin += not interior(pixels).any()
        if kind == "sample":
            assert thin >= 6  # the generator's sliver, 1-px lines, strip and 1-px oriented box are among them
            require("datumaro")  # it reads the traced outlines too (fixtures: tests/test_coco.py)
            ds = datumaro_import(mnt, "coco_instances", allowed_warnings=[r"was skipped, could't match this file"])
            assert sum(1 for i in ds for a in i.annotations if a.type.name == "bbox") == written


def test_the_issues_sliver_keeps_its_five_pixels() -> None:
    sliver = Polygon(((14, 28), (16, 28), (14, 29), (13, 28)))
    fields = coco.instance_fields([sliver], 40, 40)
    assert fields["area"] == 5 and fields["bbox"] == [13, 28, 4, 2]
    mask = decoded(fields["segmentation"], 40, 40)
    assert np.array_equal(mask, painted(sliver, 40, 40)) and mask.sum() == 5


@pytest.mark.parametrize("geometry", [
    Polygon(((2, 5), (30, 5), (16, 5))),  # a horizontal 1-px line drawn as a polygon
    Polygon(((3, 1), (3, 18), (3, 9))),  # vertical
    Polygon(((1, 1), (17, 17), (9, 9))),  # diagonal: pixels touching only at corners
    Polygon(((4, 10), (24, 17), (25, 17), (5, 10))),  # a 1-px diagonal strip
    Polygon(((-6, 3), (45, 9), (45, 10), (-6, 4))),  # a strip partly outside the image, cut to it
    OrientedBox(8, 10, 28, 10, 0.6),  # a 1-px tall box, turned
    Cuboid2d({"face1-topleft": (2, 2), "face1-topright": (20, 2), "face1-bottomright": (20, 2),
              "face1-bottomleft": (2, 2), "face2-topleft": (3, 3), "face2-topright": (21, 3),
              "face2-bottomright": (21, 3), "face2-bottomleft": (3, 3)}),  # a flat cuboid
], ids=["horizontal", "vertical", "diagonal", "strip", "clipped", "obb", "cuboid"])
def test_thin_shapes_decode_to_exactly_their_pixels(geometry: Geometry) -> None:
    fields = coco.instance_fields([geometry], 40, 20)
    pixels = painted(geometry, 40, 20)
    assert isinstance(fields["segmentation"], list) and fields["area"] == int(pixels.sum()) > 0
    assert all(0 <= v <= 40 for part in fields["segmentation"] for v in part[0::2])
    assert all(0 <= v <= 20 for part in fields["segmentation"] for v in part[1::2])
    assert np.array_equal(decoded(fields["segmentation"], 20, 40), pixels)


def test_bound_thin_polygons_are_one_mask_of_their_union() -> None:
    members = [Rectangle(0, 0, 30, 15), Polygon(((2, 3), (28, 3), (15, 3))), Polygon(((5, 1), (25, 12), (15, 6)))]
    fields = coco.instance_fields(members, 40, 20)
    union = painted(members[1], 40, 20) | painted(members[2], 40, 20)
    assert fields["bbox"] == [0, 0, 31, 16] and fields["area"] == int(union.sum())
    assert np.array_equal(decoded(fields["segmentation"], 20, 40), union)


def test_a_hole_enclosed_by_hole_free_shapes_is_exact_rle() -> None:
    frame = [Polygon(((2, 2), (20, 2), (11, 2))), Polygon(((2, 12), (20, 12), (11, 12))),
             Polygon(((2, 2), (2, 12), (2, 7))), Polygon(((20, 2), (20, 12), (20, 7)))]
    fields = coco.instance_fields(frame, 40, 20)
    union = np.logical_or.reduce([painted(g, 40, 20) for g in frame])
    assert isinstance(fields["segmentation"], dict)
    assert np.array_equal(decoded(fields["segmentation"], 20, 40), union) and not union[7, 11]
