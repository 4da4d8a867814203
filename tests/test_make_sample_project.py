"""Tests for scripts/make_sample_project.py: layout, determinism, geometries, blob offsets."""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import pickletools
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_sample_project.py"
N = 60
ALL_SHAPES = {"rectangle", "polygon", "bitmap", "line", "point", "graph", "alpha_mask", "cuboid_2d",
              "oriented_bbox"}


msp = load_script("make_sample_project")


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sample")
    return {
        "blob": msp.make_project(root / "blob", N, "blob", seed=3, tar_members=25),
        "plain": msp.make_project(root / "plain", N, "plain", seed=3),
    }


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _anns(root: Path) -> dict[str, dict]:
    return {p.relative_to(root).as_posix(): json.loads(p.read_text()) for p in root.rglob("ann/*.json")}


class _Entry:
    """Our own record for the SDK's BlobImageInfo."""

    def __setstate__(self, state: dict) -> None:
        self.name = state["name"]
        self.offset_start, self.offset_end = state["offset_start"], state["offset_end"]


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) == ("supervisely.api.image_api", "BlobImageInfo"):
            return _Entry
        raise pickle.UnpicklingError(f"forbidden global {module}.{name}")


def _read_offsets(path: Path) -> list[_Entry]:
    entries = []
    with open(path, "rb") as f:
        while f.peek(1):
            batch = _RestrictedUnpickler(f).load()
            assert isinstance(batch, list) and len(batch) <= msp.PICKLE_LIST_MAX
            entries += batch
    return entries


def test_deterministic(tmp_path: Path, projects: dict[str, Path]) -> None:
    again = msp.make_project(tmp_path / "again", N, "blob", seed=3, tar_members=25)
    assert _files(again) == _files(projects["blob"])
    other = msp.make_project(tmp_path / "other", N, "blob", seed=4, tar_members=25)
    assert _files(other) != _files(projects["blob"])


def test_layout_and_meta(projects: dict[str, Path]) -> None:
    plain = projects["plain"]
    meta_text = (plain / "meta.json").read_text()
    assert meta_text.isascii() and meta_text.startswith('{\n    "classes"')
    meta = json.loads(meta_text)
    shapes = {c["shape"] for c in meta["classes"]}
    assert shapes == ALL_SHAPES | {"any"}
    graph = next(c for c in meta["classes"] if c["shape"] == "graph")
    labels = {n["label"] for n in graph["geometry_config"]["nodes"].values()}
    assert {"left_eye", "right_eye", "left_hip", "right_hip"} <= labels
    assert {t["value_type"] for t in meta["tags"]} == {"none", "any_string", "any_number", "oneof_string"}
    tag_names = {t["name"] for t in meta["tags"]}
    assert {"train", "val", "test", "caption", "difficult", "truncated", "occluded"} <= tag_names
    # nested datasets, two levels deep; every image has an ann file
    deep = plain / "train/datasets/extra/datasets/deep"
    assert (deep / "ann").is_dir() and any((deep / "img").iterdir())
    for top in ("train", "val", "test"):
        assert (plain / top / "ann").is_dir()
    images = {p.relative_to(plain).as_posix() for p in plain.rglob("img/*")}
    anns = {p.relative_to(plain).as_posix().replace("/ann/", "/img/")[:-5] for p in plain.rglob("ann/*.json")}
    assert images == anns and len(images) == N
    assert any((plain / "test/img_info").iterdir())


def test_collisions_and_names(projects: dict[str, Path]) -> None:
    plain = projects["plain"]
    assert (plain / "train/img/dup_0001.jpg").is_file()
    assert (plain / "train/datasets/extra/img/dup_0001.jpg").is_file()
    assert (plain / "val/img/same_stem_0001.jpg").is_file()
    assert (plain / "val/img/same_stem_0001.png").is_file()
    names = [p.name for p in plain.rglob("img/*")]
    assert any(" " in n for n in names) and any(not n.isascii() for n in names)


def test_geometries_and_tags(projects: dict[str, Path]) -> None:
    shapes, image_tags, object_tags = set(), set(), set()
    holes = disabled = empty = bound = 0
    for ann in _anns(projects["plain"]).values():
        w, h = ann["size"]["width"], ann["size"]["height"]
        image_tags |= {t["name"] for t in ann["tags"]}
        empty += not ann["objects"]
        for obj in ann["objects"]:
            shape = obj["geometryType"]
            assert obj["shape"] == shape
            shapes.add((obj["classTitle"] == "vehicle", shape))
            object_tags |= {t["name"] for t in obj["tags"]}
            bound += "instance" in obj
            for x, y in _points(obj, shape):
                assert isinstance(x, int) and isinstance(y, int), (shape, x, y)
                assert 0 <= x < w and 0 <= y < h, (shape, x, y, w, h)
            if shape == "polygon":
                holes += bool(obj["points"]["interior"])
            if shape == "graph":
                disabled += any(n.get("disabled") for n in obj["nodes"].values())
            if shape == "bitmap":
                mask = _decode(obj["bitmap"]["data"]).convert("RGBA").getchannel("A")
                arr = np.asarray(mask) > 0
                assert arr[0].any() and arr[-1].any() and arr[:, 0].any() and arr[:, -1].any()  # tight crop
            if shape == "alpha_mask":
                assert _decode(obj["bitmap"]["data"]).mode == "L"
            if shape == "oriented_bbox":
                assert isinstance(obj["angle"], float)
    assert {s for vehicle, s in shapes if not vehicle} == ALL_SHAPES
    assert {s for vehicle, s in shapes if vehicle} == {"rectangle", "polygon", "bitmap"}
    assert holes and disabled and empty and bound
    assert {"train", "val", "test", "caption", "weather", "confidence"} <= image_tags
    assert {"difficult", "truncated", "occluded"} <= object_tags


def test_showcase_has_thin_shapes(projects: dict[str, Path]) -> None:
    """Slivers, 1-px lines drawn as polygons (all vertices on one line) in three directions, a
    diagonal strip one pixel wide and an oriented box one pixel tall, whatever the image size."""
    for root in projects.values():
        ann = json.loads((root / "train/ann/showcase_0001.jpg.json").read_text())
        lines, slivers, strips = set(), 0, 0
        for obj in ann["objects"]:
            if obj["geometryType"] != "polygon" or obj["points"]["interior"]:
                continue
            pts = obj["points"]["exterior"]
            (x0, y0), (x1, y1) = pts[0], pts[1]
            twice_area = abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(pts, pts[1:] + pts[:1])))
            if twice_area == 0:
                lines.add("horizontal" if y0 == y1 else "vertical" if x0 == x1 else "diagonal")
            slivers += twice_area > 0 and max(p[1] for p in pts) - min(p[1] for p in pts) == 1
            strips += twice_area > 0 and len(pts) == 4 and abs(pts[2][0] - pts[1][0]) == 1 and y0 != y1
        assert lines == {"horizontal", "vertical", "diagonal"} and slivers and strips
        assert any(o["geometryType"] == "oriented_bbox" and o["points"][0][1] == o["points"][1][1] and o["angle"]
                   for o in ann["objects"])


def _points(obj: dict, shape: str) -> list[list[int]]:
    if shape in ("rectangle", "line", "point"):
        return obj["points"]["exterior"]
    if shape == "polygon":
        return obj["points"]["exterior"] + [p for hole in obj["points"]["interior"] for p in hole]
    if shape == "oriented_bbox":
        return obj["points"]
    if shape == "graph":
        return [n["loc"] for n in obj["nodes"].values()]
    if shape == "cuboid_2d":
        assert len(obj["vertices"]) == 8
        return [v["loc"] for v in obj["vertices"].values()]
    img = _decode(obj["bitmap"]["data"])
    (x, y), (bw, bh) = obj["bitmap"]["origin"], img.size
    return [[x, y], [x + bw - 1, y + bh - 1]]


def _decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(zlib.decompress(base64.b64decode(data))))


def test_blob_offsets_match_plain_images(projects: dict[str, Path]) -> None:
    blob, plain = projects["blob"], projects["plain"]
    tars = sorted(p.name for p in (blob / "blob").iterdir())
    assert len(tars) == math.ceil((N - 1) / 25)  # one item stays in val/img
    seen = set()
    for pkl in sorted(blob.rglob("*_offsets.pkl")):
        ds_dir = pkl.parent
        tar_path = blob / "blob" / (pkl.name[: -len("_offsets.pkl")] + ".tar")
        with tarfile.open(tar_path) as tar:
            members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers()
                       if m.name.rsplit("/", 1)[0] == _ds_name(blob, ds_dir)}
        data = tar_path.read_bytes()
        for e in _read_offsets(pkl):
            assert e.offset_start == members[e.name].offset_data
            expected = (plain / ds_dir.relative_to(blob) / "img" / e.name).read_bytes()
            assert data[e.offset_start:e.offset_end] == expected
            seen.add((ds_dir, e.name))
    mixed = list(blob.rglob("img/*"))
    assert [p.relative_to(blob).as_posix() for p in mixed] == ["val/img/mixed_0001.png"]
    assert len(seen) + len(mixed) == N
    assert len({d for d, _ in seen}) == 5  # every dataset has blob items
    shared = [p for p in (blob / "blob").iterdir() if len(list(blob.rglob(p.stem + "_offsets.pkl"))) > 1]
    assert shared  # datasets share a tar


def _ds_name(root: Path, ds_dir: Path) -> str:
    return ds_dir.relative_to(root).as_posix().replace("/datasets/", "/")


def test_pickle_opcodes_match_sdk() -> None:
    fixture = Path(__file__).resolve().parent / "fixtures" / "sdk_project_blob" / "val" / "1002_offsets.pkl"
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "x_offsets.pkl"
        entries = [("dup.jpg", 512, 1616), ("dup.png", 2560, 2807), ("val_001.jpg", 3584, 5041)]
        msp.write_offsets_pkl(ours, entries)
        assert ours.read_bytes() == fixture.read_bytes()
        assert "supervisely" not in sys.modules  # the module alias does not leak
    ops = [op.name for op, _, _ in pickletools.genops(fixture.read_bytes())]
    assert ops[:8] == ["PROTO", "FRAME", "EMPTY_LIST", "MEMOIZE", "MARK", "SHORT_BINUNICODE", "MEMOIZE",
                       "SHORT_BINUNICODE"]


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        msp.make_project(tmp_path / "a", msp.MIN_IMAGES - 1)
    with pytest.raises(ValueError):
        msp.make_project(tmp_path / "b", N, form="zip")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("")
    with pytest.raises(FileExistsError):
        msp.make_project(tmp_path / "c", N)


def test_format_tags(tmp_path: Path, projects: dict[str, Path]) -> None:
    """--format-tags: every added tag is declared with the right target, the reader finds no problem,
    the images are those of the untagged project, and the same arguments give the same tree."""
    from slyfs.formats.readers.supervisely import ProblemLog, read_project

    tagged = msp.make_project(tmp_path / "tagged", N, "blob", seed=3, tar_members=25, format_tags=True)
    again = msp.make_project(tmp_path / "again", N, "blob", seed=3, tar_members=25, format_tags=True)
    assert _files(tagged) == _files(again)
    untagged = _files(projects["blob"])
    assert {p: d for p, d in _files(tagged).items() if p.startswith("blob/")} == \
        {p: d for p, d in untagged.items() if p.startswith("blob/")}
    meta = json.loads((tagged / "meta.json").read_text())
    applicable = {t["name"]: t["applicable_type"] for t in meta["tags"]}
    graphs = {c["title"]: c for c in meta["classes"]}
    assert [n["label"] for n in graphs["face_landmarks"]["geometry_config"]["nodes"].values()] == \
        ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    seen_image, seen_object, faces = set(), set(), []
    for path in tagged.rglob("ann/*.json"):
        ann = json.loads(path.read_text())
        seen_image |= {t["name"] for t in ann["tags"]}
        seen_object |= {t["name"] for o in ann["objects"] for t in o["tags"]}
        faces.append(sum(o["classTitle"] == "face" for o in ann["objects"]))
    assert all(applicable[n] != "objectsOnly" for n in seen_image)
    assert all(applicable[n] != "imagesOnly" for n in seen_object)
    assert {"identity", "person_id", "camera_id", "text", "species", "pair_with"} <= seen_image
    assert {"track_id", "text", "score", "visibility"} <= seen_object
    assert max(faces) == 2 and faces.count(1) > len(faces) // 2
    report = ProblemLog()
    project = read_project(str(tagged), report=report)
    assert report.all() == [] and sum(len(d.items) for d in project.datasets) == N
