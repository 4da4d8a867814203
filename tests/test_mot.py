"""The MOT view: frame names and rows, and real mounts of the SDK fixtures (no track ids: the
note) and a tagged sample, each sequence read back with Datumaro's ``mot_seq`` and compared with
what the source JSON says: frames in order with their own bytes, boxes, track ids, flags."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from slyfs.formats.common.tagged import NOTE_FILE
from slyfs.formats.model import Annotation, Item, Label, PointGeom, Rectangle, Tag
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.writers import mot
from tests.helpers.hostile import HOSTILE_CLASSES, HOSTILE_NAMES
from tests.helpers.mounts import assert_clean_import, each_mount_fixture, sources_fixture, tagged
from tests.helpers.readers import datumaro_import_all, require
from tests.helpers.sly_json import (
    assert_missing_tag_said,
    close,
    cut_edge_box,
    hostile_text_import,
    inside,
    items_by_split,
    tag,
)
from tests.test_voc import pixel_box


def test_frames_are_numbered_in_order_with_their_own_extension():
    items = [Item("d", n, None, None) for n in ("b.png", "a b.JPG", "noext")]
    assert mot.frame_names(items) == ["000001.png", "000002.JPG", "000003"]


def test_rows_carry_track_flags_and_visibility():
    labels = (Label("car", Rectangle(2, 3, 11, 8), (Tag("track_id", 4), Tag("visibility", 0.25))),
              Label("car", Rectangle(-5, 0, 3, 3), (Tag("ignored"), Tag("occluded", "1"))),
              Label("car", PointGeom(1, 1), (Tag("track_id", 2),)),
              Label("other", Rectangle(0, 0, 1, 1)),
              Label("car", Rectangle(50, 50, 60, 60), (Tag("track_id", "x"),)))
    rows, left_out = mot.gt_rows(7, Annotation(20, 10, labels=labels), {"car": 1},
                                 ("track_id", "visibility", "ignored", "occluded"))
    assert rows == ["7,4,2,3,10,6,1,1,0.25\n", "7,-1,0,0,4,4,0,1,0\n"]
    assert left_out == Counter({"point": 1, "outside-image rectangle": 1})


def test_other_tags_can_hold_track_visibility_and_ignored():
    labels = (Label("car", Rectangle(0, 0, 1, 1), (Tag("obj", 9), Tag("vis", "0.5"), Tag("skip", "no"))),
              Label("car", Rectangle(0, 0, 1, 1), (Tag("skip"), Tag("hidden"), Tag("occluded", "1"))))
    rows, _ = mot.gt_rows(1, Annotation(4, 4, labels=labels), {"car": 2}, ("obj", "vis", "skip", "hidden"))
    assert rows == ["1,9,0,0,2,2,1,2,0.5\n", "1,-1,0,0,2,2,0,2,0\n"]


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=13)
mounted_mot = each_mount_fixture("mot")


def _expected_rows(ann: dict) -> list[tuple]:
    """(label, x, y, w, h, track id or None, ignored, visibility) of the rows of one image."""
    out = []
    for obj in ann["objects"]:
        if obj["geometryType"] == "point" or not inside(pixel_box(obj), ann):
            continue
        _, track = tag(obj, "track_id")
        ignored, _ = tag(obj, "ignored")
        has_vis, vis = tag(obj, "visibility")
        has_occ, occ = tag(obj, "occluded")
        visibility = float(vis) if has_vis else (0.0 if has_occ and str(occ) not in ("0", "") else 1.0)
        out.append((obj["classTitle"], *cut_edge_box(pixel_box(obj), ann),
                    int(track) if isinstance(track, (int, float)) and track >= 1 else None, ignored, visibility))
    return out


def test_each_sequence_reads_back(mounted_mot):
    require("datumaro")
    source, mnt, _ = mounted_mot
    project = read_project(str(source))
    images = {(i.dataset, i.name): i.image for i in project.items()}
    tracks = 0
    for split, items in items_by_split(source).items():
        report = datumaro_import_all(mnt / split, "mot_seq")
        assert_clean_import(report, no_warnings=True)
        assert sorted(int(i.id) for i in report.dataset) == list(range(1, len(items) + 1))
        assert (mnt / split / "gt" / "labels.txt").read_text().splitlines() == [c.title for c in project.meta.classes]
        names = [c.title for c in project.meta.classes]
        frames = {int(i.id): i for i in report.dataset}
        wanted_counts: Counter = Counter()
        for frame, (dataset, name, ann) in enumerate(items, 1):
            ref = images[(dataset, name)]
            frame_file = next((mnt / split / "img1").glob(f"{frame:06d}*"))
            with open(ref.path, "rb") as f:
                f.seek(ref.offset)
                assert frame_file.read_bytes() == f.read(ref.size), (split, frame, name)
            got = [(names[a.label], *a.get_bbox(), a.attributes.get("track_id"), a.attributes["ignored"],
                    a.attributes["visibility"]) for a in frames[frame].annotations]
            wanted = sorted(_expected_rows(ann), key=lambda r: (r[0], *r[1:5]))
            assert len(got) == len(wanted), (split, name)
            got.sort(key=lambda r: (r[0], *r[1:5]))
            for g, w in zip(got, wanted):
                assert g[0] == w[0] and close(g[1:5], w[1:5]) and g[5:7] == w[5:7], (split, name, g, w)
                assert math.isclose(g[7], w[7]), (split, name, g, w)
            wanted_counts.update(("bbox", r[0]) for r in wanted)
            tracks += sum(r[5] is not None for r in wanted)
        assert report.label_counts() == dict(wanted_counts), split
    assert bool(tracks) == tagged(source)


def test_a_project_without_track_ids_says_so(mounted_mot):
    source, mnt, log = mounted_mot
    assert_missing_tag_said(mnt / NOTE_FILE, log, source, "--opt mot.track-tag=NAME",
                            "no tag 'track_id' in meta.json: mot has no track ids")


def test_hostile_names_read_back(tmp_path: Path):
    """Image names with spaces, ``, ``, long and non-ASCII characters, collisions become frames that
    keep their bytes; class names with spaces and blanks come back from labels.txt."""
    _, project, out, report = hostile_text_import(tmp_path, "mot", "mot_seq", "tr_ain x")
    assert HOSTILE_CLASSES == ("traffic sign", " lead", "a_b")
    assert report.label_counts() == {("bbox", name): len(HOSTILE_NAMES) for name in ("traffic sign", "%20lead", "a_b")}
    items = sorted(project.items(), key=lambda i: (i.dataset, i.name))
    for frame, item in enumerate(items, 1):
        with open(item.image.path, "rb") as f:
            assert (out / "tr_ain x" / "img1" / f"{frame:06d}{item.ext}").read_bytes() == f.read()


def test_cvat_reads_frames_from_zero_and_tracks_from_ids(mounted_mot):
    """CVAT imports through ``mot_seq`` too, then takes frame − 1 as its frame index and makes a track of
    the rows of each positive track id (the others stay plain boxes): every row must name a frame of the
    sequence and a track id that is -1 or positive, and the tagged objects make tracks."""
    source, mnt, _ = mounted_mot
    tracks: dict[tuple[str, int], list[int]] = {}
    for split, items in items_by_split(source).items():
        rows = [line.split(",") for line in (mnt / split / "gt" / "gt.txt").read_text().splitlines()]
        assert all(len(row) == 9 for row in rows)
        for row in rows:
            frame, track = int(row[0]) - 1, int(row[1])
            assert 0 <= frame < len(items) and (track == -1 or track > 0), row
            if track > 0:
                tracks.setdefault((split, track), []).append(frame)
    assert bool(tracks) == tagged(source)
    assert all(frames == sorted(frames) for frames in tracks.values())
