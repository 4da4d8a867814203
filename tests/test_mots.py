"""The MOTS view: pixel encoding and names, and real mounts of the SDK fixtures (no track ids:
empty instance images and the note) and a tagged sample, read back with Datumaro's ``mots`` and
compared pixel for pixel with instance images painted here from the source JSON."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from slyfs.formats.common.masks import gray_png
from slyfs.formats.common.tagged import NOTE_FILE
from slyfs.formats.common.tracks import line_names, mots_pixel
from slyfs.formats.model import Annotation, Label, Line, Rectangle, Tag
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.writers import mots
from tests.helpers.hostile import HOSTILE_CLASSES, HOSTILE_NAMES
from tests.helpers.mounts import assert_clean_import, each_mount_fixture, sources_fixture, tagged
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.sly_json import (
    assert_missing_tag_said,
    hostile_text_import,
    items_by_split,
    output_stems,
    tag,
)
from tests.test_voc import AREA_TYPES, area_raster


def test_pixels_say_class_and_track():
    assert mots_pixel(0, 1) == 1001
    assert mots_pixel(2, 999) == 3999
    assert mots_pixel(63, 999) == 64999
    assert mots_pixel(64, 1) is None  # 65001 would not fit in 16 bits with every track id
    assert mots_pixel(0, 1000) is None
    assert mots_pixel(0, 0) is None


def test_sixteen_bit_png_round_trip():
    pixels = np.array([[0, 1001], [64999, 3007]], dtype=np.uint16)
    with Image.open(io.BytesIO(gray_png(pixels))) as img:
        assert np.array_equal(np.asarray(img).astype(np.uint16), pixels)


def test_label_lines_survive_the_readers_strip():
    assert line_names(["car", " car", "", "a\nb"]) == ["car", "%20car", "%00", "a%0Ab"]
    assert len(set(line_names(["%20car", " car"]))) == 2


def test_a_split_named_instances_is_renamed():
    assert mots.split_labels(["train", "instances"]) == {"train": "train", "instances": "instances~"}
    assert mots.split_labels(["instances", "instances~"]) == {"instances": "instances~~", "instances~": "instances~"}


def test_untracked_and_unpaintable_objects_are_reported():
    labels = (Label("a", Rectangle(0, 0, 1, 1), (Tag("track_id", 5),)),
              Label("a", Rectangle(0, 0, 1, 1)),
              Label("b", Rectangle(0, 0, 1, 1), (Tag("track_id", 1000),)),
              Label("b", Line(((0, 0), (3, 3))), (Tag("track_id", 2),)),
              Label("b", Rectangle(0, 0, 1, 1), (Tag("track_id", "x"),)))
    objects, left_out = mots.painted(Annotation(4, 4, labels=labels), {"a": 0, "b": 1}, "track_id")
    assert [value for _, value in objects] == [1005]
    assert left_out == Counter({"untracked rectangle": 1, "track-id-over-999 rectangle": 1, "line": 1,
                                "bad-track-id rectangle": 1})


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=17)
mounted_mots = each_mount_fixture("mots")


def expected_instances(ann: dict, class_index: dict[str, int]) -> np.ndarray:
    """The instance image painted from the JSON: tracked area objects in order, later on top."""
    w, h = ann["size"]["width"], ann["size"]["height"]
    out = np.zeros((h, w), dtype=np.uint16)
    for obj in ann["objects"]:
        _, track = tag(obj, "track_id")
        if obj["geometryType"] in AREA_TYPES and isinstance(track, int) and 1 <= track <= 999:
            out[area_raster(obj, w, h)] = 1000 * (1 + class_index[obj["classTitle"]]) + track
    return out


def test_instance_images_are_the_source_pixels(mounted_mots):
    require("datumaro")
    source, mnt, _ = mounted_mots
    titles = [c.title for c in read_project(str(source)).meta.classes]
    class_index = {t: k for k, t in enumerate(titles)}
    painted = 0
    for split, items in items_by_split(source).items():
        assert (mnt / split / "instances" / "labels.txt").read_text().splitlines() == titles
        report = datumaro_import_all(mnt / split, "mots")
        assert_clean_import(report, len(items), no_warnings=True)
        assert "mots" in datumaro_detect(mnt / split)  # CVAT detects the format before it imports
        by_id = {item.id: item for item in report.dataset}
        wanted_counts: Counter = Counter()
        for (_, name, ann), stem in zip(items, output_stems(items)):
            wanted = expected_instances(ann, class_index)
            with Image.open(mnt / split / "instances" / f"{stem}.png") as img:
                assert img.mode.startswith("I")
                assert np.array_equal(np.asarray(img).astype(np.uint16), wanted), (split, name)
            values = [int(v) for v in np.unique(wanted) if v]
            got = sorted((a.label, a.attributes["track_id"]) for a in by_id[stem].annotations)
            assert got == sorted((v // 1000 - 1, v % 1000) for v in values), (split, name)
            for a in by_id[stem].annotations:
                assert np.array_equal(a.image, wanted == 1000 * (1 + a.label) + a.attributes["track_id"])
            wanted_counts.update(("mask", titles[v // 1000 - 1]) for v in values)
            painted += len(values)
        assert report.label_counts() == dict(wanted_counts), split
    assert bool(painted) == tagged(source)


def test_a_project_without_track_ids_says_so(mounted_mots):
    source, mnt, log = mounted_mots
    assert_missing_tag_said(mnt / NOTE_FILE, log, source, "--opt mots.track-tag=NAME",
                            "no tag 'track_id' in meta.json: mots has no track ids")


def test_hostile_names_read_back(tmp_path: Path):
    """Image names with spaces, ``, ``, long and non-ASCII characters and collisions keep images and
    instance PNGs paired; class names with spaces and blanks come back from labels.txt."""
    root, _, _, report = hostile_text_import(tmp_path, "mots", "mots", "tr_ain x")
    assert HOSTILE_CLASSES == ("traffic sign", " lead", "a_b")
    # the three boxes of an image overlap but each keeps some pixels
    assert report.label_counts() == {("mask", name): len(HOSTILE_NAMES) for name in ("traffic sign", "%20lead", "a_b")}
