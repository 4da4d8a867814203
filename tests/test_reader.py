"""The Supervisely reader on the SDK-written fixtures, without FUSE."""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import pickle
from pathlib import Path

import pytest

from slyfs.formats.model import Mask, Problem
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely.offsets import OffsetsError, read_offsets
from slyfs.formats.source_bytes import read_bytes
from tests.conftest import BLOB, PLAIN, SDK_REFERENCE

# Geometries each SDK exporter writes (SDK_NOTES §4, §5); the rest it drops.
SDK_COCO_KINDS = {"rectangle", "polygon", "bitmap", "graph"}
SDK_YOLO_DETECT_KINDS = {"rectangle", "polygon", "bitmap", "graph", "line", "alpha_mask"}


def raw_objects(root: Path) -> list[tuple[str, str, dict]]:
    """(dataset dir, item, object) for every object in every ann file, read with json only."""
    out = []
    for ann in sorted(root.rglob("ann/*.json")):
        for obj in json.loads(ann.read_bytes())["objects"]:
            out.append((str(ann.parent.parent.relative_to(root)), ann.name[:-5], obj))
    return out


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_every_item_found_in_sorted_order(root: Path) -> None:
    log = ProblemLog()
    project = read_project(str(root), report=log)
    assert log.all() == []
    expected = json.loads((SDK_REFERENCE / "item_order.json").read_text())["datasets"]
    got = {ds.name: [i.name for i in ds.items] for ds in project.datasets}
    assert got == {name: sorted(items) for name, items in expected.items()}
    assert [c.title for c in project.meta.classes] == [
        c["title"] for c in json.loads((root / "meta.json").read_text())["classes"]]


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_label_counts_match_the_sdk_yolo_export(root: Path) -> None:
    project = read_project(str(root))
    ours: collections.Counter = collections.Counter()
    for item in project.items():
        if (item.dataset, item.name) == ("val", "dup.png"):
            continue  # SDK bug (SDK_NOTES §5): its label file was overwritten by val/dup.jpg's
        for label in project.annotation(item).labels:
            kind = raw_kind(label)
            if kind in SDK_YOLO_DETECT_KINDS:
                ours[label.class_title] += 1
    names = [c.title for c in project.meta.classes]
    sdk: collections.Counter = collections.Counter()
    for txt in (SDK_REFERENCE / "yolo" / "detect" / "labels").rglob("*.txt"):
        for row in txt.read_text().splitlines():
            sdk[names[int(row.split()[0])]] += 1
    assert ours == sdk


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
def test_label_counts_match_the_sdk_coco_export(root: Path) -> None:
    """COCO merges labels bound by one ``instance`` key into one annotation (SDK_NOTES §4)."""
    project = read_project(str(root))
    ours: collections.Counter = collections.Counter()
    for item in project.items():
        seen_instances = set()
        for label in project.annotation(item).labels:
            if raw_kind(label) not in SDK_COCO_KINDS:
                continue
            if label.instance is not None:
                if label.instance in seen_instances:
                    continue
                seen_instances.add(label.instance)
            ours[label.class_title] += 1
    sdk: collections.Counter = collections.Counter()
    for f in (SDK_REFERENCE / "coco").glob("*/annotations/coco_instances.json"):
        d = json.loads(f.read_text())
        cats = {c["id"]: c["name"] for c in d["categories"]}
        sdk.update(cats[a["category_id"]] for a in d["annotations"])
    assert ours == sdk


def raw_kind(label) -> str:
    g = label.geometry
    if isinstance(g, Mask):
        return "alpha_mask" if g.alpha else "bitmap"
    return {"Rectangle": "rectangle", "Polygon": "polygon", "Line": "line", "PointGeom": "point",
            "Graph": "graph", "Cuboid2d": "cuboid_2d", "OrientedBox": "oriented_bbox"}[type(g).__name__]


def test_every_geometry_and_tag_is_read() -> None:
    project = read_project(str(PLAIN))
    objects = raw_objects(PLAIN)
    kinds_in_json = collections.Counter(o["geometryType"] for _, _, o in objects)
    kinds_read = collections.Counter(raw_kind(lb) for i in project.items() for lb in project.annotation(i).labels)
    assert kinds_read == kinds_in_json
    assert len(kinds_read) == 9
    item = next(i for i in project.items() if i.name == "img_001.jpg")
    ann = project.annotation(item)
    assert ann.tag_value("weather") == "sunny" and "reviewed" in ann.tag_names()
    assert ann.labels[0].tags[0].name == "confidence" and ann.labels[0].tags[0].value == 0.87


def test_bitmap_decodes_to_the_png_alpha() -> None:
    """The mask equals the alpha channel of the PNG inside the base64/zlib payload."""
    import base64
    import zlib

    import numpy as np
    from PIL import Image

    project = read_project(str(PLAIN))
    item = next(i for i in project.items() if i.name == "img_001.jpg" and i.dataset == "train")
    label = next(lb for lb in project.annotation(item).labels if lb.class_title == "road")
    obj = next(o for _, name, o in raw_objects(PLAIN) if name == "img_001.jpg" and o["classTitle"] == "road")
    png = Image.open(io.BytesIO(zlib.decompress(base64.b64decode(obj["bitmap"]["data"]))))
    expected = np.asarray(png.convert("RGBA"))[:, :, 3] > 0
    assert label.geometry.origin == tuple(obj["bitmap"]["origin"])
    assert np.array_equal(label.geometry.pixels, expected)


def test_blob_bytes_equal_plain_bytes() -> None:
    plain = {(i.dataset, i.name): i for i in read_project(str(PLAIN)).items()}
    blob = read_project(str(BLOB))
    kinds = set()
    for item in blob.items():
        kinds.add(item.image.path.endswith(".tar"))
        assert read_bytes(item.image) == Path(plain[(item.dataset, item.name)].image.path).read_bytes()
    assert kinds == {True, False}  # both tar members and the mixed-in img/ file


def test_nested_dataset_shares_its_parents_tar() -> None:
    project = read_project(str(BLOB))
    sub = next(ds for ds in project.datasets if ds.name == "train/sub")
    assert {Path(i.image.path).name for i in sub.items} == {"1001.tar"}


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    offsets = tmp_path / "evil_offsets.pkl"
    offsets.write_bytes(pickle.dumps([_RunsCode(str(marker))], protocol=4))
    with pytest.raises(OffsetsError) as err:
        read_offsets(str(offsets))
    assert str(offsets) in str(err.value) and "refused global" in str(err.value)
    assert "system" in str(err.value)
    assert not marker.exists()


def test_hostile_offsets_file_in_a_project_is_reported_and_the_rest_served(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(BLOB, root)
    os.chmod(root / "val", 0o755)
    marker = tmp_path / "pwned"
    evil = root / "val" / "1002_offsets.pkl"
    os.chmod(evil, 0o644)
    evil.write_bytes(pickle.dumps([_RunsCode(str(marker))], protocol=4))
    log = ProblemLog()
    project = read_project(str(root), report=log)
    assert not marker.exists()
    refused = [p for p in log.all() if p.path == str(evil)]
    assert len(refused) == 1 and "refused global posix.system" in refused[0].message
    items = {(i.dataset, i.name): i for i in project.items()}
    assert items[("train", "img_001.jpg")].image is not None  # the rest is served
    assert items[("val", "empty_002.png")].image is not None
    # items of the refused file keep their labels; only their image bytes are unavailable
    assert items[("val", "val_001.jpg")].image is None
    assert len(project.annotation(items[("val", "val_001.jpg")]).labels) == 3


def test_offsets_beyond_the_tar_are_refused(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "proj"
    shutil.copytree(BLOB, root)
    tar = root / "blob" / "1002.tar"
    os.chmod(tar, 0o644)
    with open(tar, "r+b") as f:
        f.truncate(3000)  # cuts val_001.jpg (3584..5041), keeps dup.jpg (512..1616)
    log = ProblemLog()
    project = read_project(str(root), report=log)
    items = {(i.dataset, i.name): i for i in project.items()}
    assert items[("val", "val_001.jpg")].image is None
    assert items[("val", "dup.jpg")].image is not None
    assert any("beyond the tar" in p.message and p.item == "val_001.jpg" for p in log.all())


def test_an_annotation_is_parsed_once_until_its_file_changes(plain_copy: Path, monkeypatch) -> None:
    from slyfs.formats.readers.supervisely import project as reader

    parses = []
    real_parse = reader.parse_annotation
    monkeypatch.setattr(reader, "parse_annotation", lambda *a: parses.append(1) or real_parse(*a))
    project = read_project(str(plain_copy))
    item = next(i for i in project.items() if i.ann_path)
    first = project.annotation(item)
    assert project.annotation(item) == first and len(parses) == 1

    data = json.loads(Path(item.ann_path).read_bytes())
    data["objects"] = []
    Path(item.ann_path).write_text(json.dumps(data))
    changed = next(i for i in read_project(str(plain_copy)).items() if i.ann_path == item.ann_path)
    assert changed != item
    assert project.annotation(changed).labels == () != first.labels and len(parses) == 2


def test_a_legacy_annotation_shared_or_also_an_items_own_is_no_orphan(tmp_path: Path) -> None:
    """``<stem>.json`` may serve several images, and be another item's own ``<item>.json``: taken
    either way, so only a file no item takes is reported as having no image."""
    project = tmp_path / "p"
    (project / "ds/img").mkdir(parents=True)
    (project / "ds/ann").mkdir()
    (project / "meta.json").write_bytes((PLAIN / "meta.json").read_bytes())
    for name in ("q.jpg", "q.png", "r.jpg", "r.jpg.png"):
        (project / "ds/img" / name).write_bytes((PLAIN / "train/img/img_001.jpg").read_bytes())
    for name in ("q.json", "r.jpg.json", "lone.png.json"):
        (project / "ds/ann" / name).write_text("{}")
    problems = ProblemLog()
    items = {i.name: i for i in read_project(str(project), report=problems).items()}
    assert {n: os.path.basename(i.ann_path or "") for n, i in items.items()} == {
        "q.jpg": "q.json", "q.png": "q.json", "r.jpg": "r.jpg.json", "r.jpg.png": "r.jpg.json",
        "lone.png": "lone.png.json"}
    orphans = [p.item for p in problems.all() if p.message == "annotation has no image"]
    assert orphans == ["lone.png"]


def test_problem_log_remembers_a_bounded_number_of_problems_and_logs_each_once_while_remembered(
        caplog: pytest.LogCaptureFixture) -> None:
    """A mount's log keeps the most recently reported problems (a view may report one for every image
    of a million); ``slyfs check`` keeps all of them."""
    bounded, everything = ProblemLog(keep=3), ProblemLog(keep=None)
    problems = [Problem(f"ann/{i}.json", "1 point label(s) cannot be expressed", "left out", f"{i}.jpg")
                for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="slyfs"):
        for problem in [*problems, problems[4], problems[3]]:
            bounded(problem)
            everything(problem)
    assert [p.path for p in bounded.all()] == ["ann/2.json", "ann/4.json", "ann/3.json"]
    assert [p.path for p in everything.all()] == [p.path for p in problems]
    assert sum("ann/4.json" in r.getMessage() for r in caplog.records) == 2  # once per log, not again
    bounded(problems[0])  # forgotten, so logged again
    assert sum("ann/0.json" in r.getMessage() for r in caplog.records) == 3
