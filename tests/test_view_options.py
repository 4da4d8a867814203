"""Options every view honours (--split, --classes, --no-empty) and several formats at once,
checked over every registered format."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from slyfs.formats.common.splits import splits
from slyfs.formats.contract import SourceBytes
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import FORMATS, build_view, check_params, format_module, format_options, parse_formats
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, read_tree
from tests.helpers.views import view_files
from tests.test_yolo import expected_box

SDK_PROJECTS = {"plain": PLAIN, "blob": BLOB}
KEPT = ("car", "road", "person_kp", "vehicle")  # rectangle, bitmap, graph (for pose views), any
DROP_MARK = "_dropped_"  # cannot occur in base64 nor in COCO RLE strings, so any hit is a real leak


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plain_path(ds: str) -> Path:
    return PLAIN / ds.replace("/", "/datasets/")


def source_objects() -> dict[str, list[dict]]:
    """Image sha → its raw annotation objects, read from the plain project's JSON."""
    out = {}
    for ann in PLAIN.rglob("ann/*.json"):
        image = ann.parent.parent / "img" / ann.name[: -len(".json")]
        out[sha(image.read_bytes())] = json.loads(ann.read_bytes())["objects"]
    return out


def served(source: Path, names: list[str], options: ViewOptions) -> tuple[dict[str, bytes], dict]:
    """Every file of the view (read as a reader would) and the view's nodes."""
    view = view_files(names, read_project(str(source)), options)
    tree = VirtualTree(view)
    return {p: tree.read_file(p) for p in tree.walk_files()}, view


def served_images(files: dict[str, bytes], view: dict) -> set[str]:
    """Shas of the source images a view serves unchanged."""
    images = set(source_objects())
    return {h for p, node in view.items() if isinstance(node, SourceBytes) and (h := sha(files[p])) in images}


# ---------------------------------------------------------------- several formats at once


def test_parse_formats_all_and_lists() -> None:
    assert parse_formats("all") == list(FORMATS)
    names = list(FORMATS)
    assert parse_formats(",".join(reversed(names))) == list(reversed(names))



def test_an_opt_key_no_chosen_format_reads_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(OptionError, match=r"voc\.jpg\b.*valid: voc\.jpeg"):
        check_params(["voc"], {"voc.jpg": "1"})
    with pytest.raises(OptionError, match=r"pose\.class.*valid: none"):
        check_params(["yolo"], {"pose.class": "person_kp"})
    check_params(["voc"], {"voc.jpeg": "1"})
    check_params(["coco", "yolo-pose"], {"pose.class": "person_kp", "coco.disabled_visibility": "0"})


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_declares_every_opt_key_it_reads(fmt: str, monkeypatch) -> None:
    asked = set()
    real = ViewOptions.param
    monkeypatch.setattr(ViewOptions, "param", lambda self, option: asked.add(option) or real(self, option))
    view_files(format_module(fmt), read_project(str(BLOB)), ViewOptions())
    assert asked == set(format_options(fmt))

@pytest.mark.parametrize("source", SDK_PROJECTS.values(), ids=SDK_PROJECTS.keys())
def test_all_formats_on_one_mount_each_in_its_folder(source: Path, mount) -> None:
    expected = {}
    for name in FORMATS:
        files, _ = served(source, [name], ViewOptions())
        expected.update({f"{name}/{path}": data for path, data in files.items()})
    with mount(source, "--format", "all") as mnt:
        assert sorted(p.name for p in mnt.iterdir()) == sorted(FORMATS)
        assert read_tree(mnt) == expected


# ---------------------------------------------------------------- --split


def split_of_items(root: Path, spec: str) -> dict[tuple[str, str], str]:
    by_split = splits(read_project(str(root)), ViewOptions(split=spec))
    return {(i.dataset, i.name): s for s, items in by_split.items() for i in items}


@pytest.mark.parametrize("spec", ["ratio:0.5", "ratio:0.7,0.2"])
def test_ratio_split_is_stable_when_images_are_added(plain_copy: Path, spec: str) -> None:
    before = split_of_items(plain_copy, spec)
    for ds, new in (("train", "added.jpg"), ("train/datasets/sub", "zz_added.jpg"), ("val", "a.jpg")):
        shutil.copy(plain_copy / ds / "img" / "dup.jpg", plain_copy / ds / "img" / new)
        shutil.copy(plain_copy / ds / "ann" / "dup.jpg.json", plain_copy / ds / "ann" / f"{new}.json")
    after = split_of_items(plain_copy, spec)
    assert len(after) == len(before) + 3
    assert {k: after[k] for k in before} == before
    assert split_of_items(plain_copy, spec) == after  # and the same on every scan


@pytest.mark.parametrize("spec, only", [("ratio:1", "train"), ("ratio:0,1", "val"), ("ratio:0,0", "test")])
def test_ratio_extremes_put_everything_in_one_split(spec: str, only: str) -> None:
    assert set(split_of_items(PLAIN, spec).values()) == {only}


def test_ratio_split_moves_yolo_images_with_their_split(plain_copy: Path) -> None:
    """Adding an image never moves another one in the served YOLO tree either."""
    def image_splits() -> dict[str, str]:
        files, view = served(plain_copy, ["yolo"], ViewOptions(split="ratio:0.5"))
        return {sha(files[p]): p.split("/")[1] for p, n in view.items() if isinstance(n, SourceBytes)}

    before = image_splits()
    val = plain_copy / "val"
    (val / "img" / "new.png").write_bytes((val / "img" / "dup.png").read_bytes() + b"\0")  # distinct bytes
    shutil.copy(val / "ann" / "dup.png.json", val / "ann" / "new.png.json")
    after = image_splits()
    assert len(after) == len(before) + 1 and {h: after[h] for h in before} == before


# ---------------------------------------------------------------- --classes on YOLO


@pytest.mark.parametrize("source", SDK_PROJECTS.values(), ids=SDK_PROJECTS.keys())
def test_yolo_class_ids_follow_data_yaml_names(source: Path) -> None:
    files, view = served(source, ["yolo"], ViewOptions(classes=tuple(reversed(KEPT))))
    names = yaml.safe_load(files["data.yaml"])["names"]
    meta_order = [c["title"] for c in json.loads((PLAIN / "meta.json").read_bytes())["classes"]]
    assert list(names.values()) == [t for t in meta_order if t in KEPT]
    assert list(names) == list(range(len(KEPT)))
    objects = source_objects()
    checked = 0
    for path, node in view.items():
        if not isinstance(node, SourceBytes):
            continue
        label = "labels/" + path.split("/", 1)[1].rsplit(".", 1)[0] + ".txt"
        got = Counter(names[int(row.split()[0])] for row in files[label].decode().splitlines())
        want = Counter(o["classTitle"] for o in objects[sha(files[path])]
                       if o["classTitle"] in KEPT and expected_box(o) is not None)
        assert got == want, path
        checked += sum(want.values())
    assert checked > 0


# ---------------------------------------------------------------- every view, every option combo

OPTION_COMBOS = [ViewOptions(split=split, classes=classes, include_empty=empty)
                 for split, classes, empty in itertools.product(
                     ["dataset", "tags", "ratio:0.7,0.2"], [None, KEPT], [True, False])]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", SDK_PROJECTS.values(), ids=SDK_PROJECTS.keys())
def test_every_view_builds_with_every_option_combo(source: Path, fmt: str) -> None:
    objects = source_objects()
    with_kept = {h for h, objs in objects.items() if any(o["classTitle"] in KEPT for o in objs)}
    for options in OPTION_COMBOS:
        files, view = served(source, [fmt], options)
        assert files, (fmt, options)
        images = served_images(files, view)
        if options.include_empty:
            assert images == set(objects), (fmt, options)
        else:
            assert images == (with_kept if options.classes else
                              {h for h, objs in objects.items() if objs}), (fmt, options)


@pytest.fixture(params=list(SDK_PROJECTS.values()), ids=list(SDK_PROJECTS))
def marked_copy(request, tmp_path: Path) -> Path:
    """A copy of the project whose classes outside KEPT are renamed to ``<title>_dropped_``."""
    copy = tmp_path / "project"
    shutil.copytree(request.param, copy)
    meta = json.loads((copy / "meta.json").read_bytes())
    dropped = [c["title"] for c in meta["classes"] if c["title"] not in KEPT]
    for path in [copy / "meta.json", *copy.rglob("ann/*.json")]:
        text = path.read_text()
        for title in dropped:
            for key in ("title", "classTitle"):
                text = text.replace(f'"{key}": "{title}"', f'"{key}": "{title}{DROP_MARK}"')
        path.write_text(text)
    assert (copy / "meta.json").read_text().count(DROP_MARK) == len(dropped) > 0
    return copy


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_output_mentions_a_dropped_class(marked_copy: Path, fmt: str) -> None:
    for empty in (True, False):
        files, _ = served(marked_copy, [fmt], ViewOptions(classes=KEPT, include_empty=empty))
        for path, data in files.items():
            assert DROP_MARK not in path and DROP_MARK.encode() not in data, (fmt, path)


def test_dropped_class_marker_is_visible_without_classes(marked_copy: Path) -> None:
    """The control for the test above: the marker does show when nothing is dropped."""
    dropped = [c for c in json.loads((marked_copy / "meta.json").read_bytes())["classes"]
               if c["title"].endswith(DROP_MARK)]
    files, _ = served(marked_copy, ["yolo"], ViewOptions())
    assert files["data.yaml"].count(DROP_MARK.encode()) == len(dropped)


def test_unknown_class_is_refused_by_every_view() -> None:
    project = read_project(str(PLAIN))
    for fmt in FORMATS:
        with pytest.raises(OptionError, match="nope"):
            build_view(project, [fmt], ViewOptions(classes=("car", "nope")))
