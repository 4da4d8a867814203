"""Membership facts in the persistent index (index.py, project.AnnotationReader.facts): a remount
with ``--split tags``, ``--no-empty`` or ``--classes``, or of a view that names folders after image-tag
values, parses no annotation of an unchanged project, an edited annotation is parsed again alone (and
its image moves), and a damaged row discards the index with one log line."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.common import identities
from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.splits import splits
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely import project as scanning
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN
from tests.helpers.scripts import load_script

MEMBERSHIP_OPTIONS = {
    "tags": ViewOptions(split="tags"),
    "no-empty": ViewOptions(include_empty=False),
    "classes": ViewOptions(classes=("car",), include_empty=False),
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(PLAIN, copy)
    return copy


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The annotation files read from now on."""
    read: list[str] = []
    load = scanning.load_json_file

    def recording(path: str, *args: Any) -> Any:
        read.append(path)
        return load(path, *args)

    monkeypatch.setattr(scanning, "load_json_file", recording)
    yield read


def mounted(source: Path, db: Path, options: ViewOptions) -> tuple[dict[str, list[tuple[str, str]]], ProblemLog]:
    """The membership a mount computes with the index ``db`` (saved after, as a mount saves it)."""
    index = SourceIndex(db)
    problems = ProblemLog()
    project = read_project(str(source), report=problems, cache=index)
    groups = {split: [(i.dataset, i.name) for i in items] for split, items in splits(project, options).items()}
    index.save()
    index.close()
    return groups, problems


def without_index(source: Path, options: ViewOptions) -> dict[str, list[tuple[str, str]]]:
    project = read_project(str(source), report=ProblemLog())
    return {split: [(i.dataset, i.name) for i in items] for split, items in splits(project, options).items()}


def problem_files(problems: ProblemLog) -> set[str]:
    return {p.path for p in problems.all() if p.path.endswith(".json")}


@pytest.mark.parametrize("option", sorted(MEMBERSHIP_OPTIONS))
def test_a_remount_of_an_unchanged_project_parses_no_annotation(
        option: str, source: Path, tmp_path: Path, parses: list[str]) -> None:
    options = MEMBERSHIP_OPTIONS[option]
    db = tmp_path / "index.sqlite"
    first, problems = mounted(source, db, options)
    assert parses and not problem_files(problems)
    assert first == without_index(source, options)
    parses.clear()
    assert mounted(source, db, options)[0] == first
    assert parses == []


def test_an_annotation_with_problems_is_parsed_and_reported_at_each_mount(
        source: Path, tmp_path: Path, parses: list[str]) -> None:
    broken = source / "val/ann/val_001.jpg.json"
    broken.write_text(broken.read_text()[:40])
    db = tmp_path / "index.sqlite"
    for _ in range(2):
        parses.clear()
        _, problems = mounted(source, db, ViewOptions(include_empty=False))
        assert problem_files(problems) == {str(broken)}
    assert parses == [str(broken)]


def test_an_edited_annotation_is_parsed_again_alone(source: Path, tmp_path: Path, parses: list[str]) -> None:
    options = ViewOptions(split="tags")
    db = tmp_path / "index.sqlite"
    mounted(source, db, options)
    ann = source / "val/ann/val_001.jpg.json"
    data = json.loads(ann.read_text())
    split_tags = [t for t in data["tags"] if t["name"] in ("train", "val", "test")]
    data["tags"] = [t for t in data["tags"] if t not in split_tags] or [{"name": "test", "value": None}]
    ann.write_text(json.dumps(data))
    parses.clear()
    groups, _ = mounted(source, db, options)
    assert parses == [str(ann)]
    assert groups == without_index(source, options)


def test_a_damaged_facts_row_discards_the_index_with_one_line(
        source: Path, tmp_path: Path, parses: list[str], caplog: pytest.LogCaptureFixture) -> None:
    options = ViewOptions(include_empty=False)
    db = tmp_path / "index.sqlite"
    first, _ = mounted(source, db, options)
    conn = sqlite3.connect(db)
    with conn:
        path = conn.execute("SELECT path FROM facts ORDER BY path DESC").fetchone()[0]
        conn.execute("UPDATE facts SET classes = ? WHERE path = ?", ('["car", 7]', path))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="slyfs.index"):
        again, _ = mounted(source, db, options)
    assert again == first
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [
        f"index {db} damaged (row of {path}: tag names or class titles that are not lists of names): "
        "discarded, rebuilding it from the source"]
    mounted(source, db, options)  # records again what the discarded file had served before the damage was met
    parses.clear()
    assert mounted(source, db, options)[0] == first  # the rebuilt index serves the next mounts
    assert parses == []


DISAGREE = "image tags or label kinds that disagree with the tag names or class titles"


@pytest.mark.parametrize(("column", "value", "why"), [
    ("tag_values", '[["train", true]]', "image tags that are not (name, value) pairs"),
    ("tag_values", '[["train"]]', "image tags that are not (name, value) pairs"),
    ("tag_values", '{"train": null}', "image tags that are not (name, value) pairs"),
    ("tag_values", '[["not a tag of it", null]]', DISAGREE),
    ("kinds", '[["car", "Blob", 1]]', "label kinds that are not (class, geometry, count) triples"),
    ("kinds", '[["car", "Rectangle", 0]]', "label kinds that are not (class, geometry, count) triples"),
    ("kinds", '[["car", ["Rectangle"], 1]]', "label kinds that are not (class, geometry, count) triples"),
    ("kinds", '[["not a class of it", "Rectangle", 1]]', DISAGREE),
    ("kinds", "[", "a value that is not valid JSON"),
])
def test_damaged_tag_values_or_label_kinds_discard_the_index(
        column: str, value: str, why: str, source: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = ViewOptions(split="tags")
    db = tmp_path / "index.sqlite"
    first, _ = mounted(source, db, options)
    conn = sqlite3.connect(db)
    with conn:
        path = conn.execute("SELECT path FROM facts ORDER BY path DESC").fetchone()[0]
        conn.execute(f"UPDATE facts SET {column} = ? WHERE path = ?", (value, path))
    conn.close()
    with caplog.at_level(logging.WARNING, logger="slyfs.index"):
        again, _ = mounted(source, db, options)
    assert again == first
    assert [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()] == [
        f"index {db} damaged (row of {path}: {why}): discarded, rebuilding it from the source"]


# The views that name folders after image-tag values, the options that give them the sample's tags,
# and an edit of one such tag (name, new value) that moves an image to another folder.
TAG_VIEWS: dict[str, tuple[dict[str, str], tuple[str, Any]]] = {
    "imagenet": ({"imagenet.class-tag": "species"}, ("species", None)),
    "wider-face": ({"wider-face.event-tag": "species"}, ("species", None)),
    "vggface2": ({}, ("identity", "someone new")),
    "market1501": ({}, ("person_id", 4321)),
    "lfw": ({}, ("identity", "someone new")),
}


@pytest.fixture(scope="module")
def tagged_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tagged") / "src"
    return load_script("make_sample_project").make_project(root, 24, "plain", seed=7, image_kind="tiny",
                                                           format_tags=True)


@pytest.fixture
def tagged(tagged_sample: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(tagged_sample, copy)
    return copy


def view_files(source: Path, db: Path | None, fmt: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file path of the view ``fmt`` (nothing rendered), as a new process lists it: with the
    index ``db`` (saved after), and none of the tag values an earlier build of this process kept."""
    monkeypatch.setattr(identities, "_SCANNED", BoundedMemo(identities.SCAN_MEMO_ENTRIES, lambda value: 1))
    index = SourceIndex(db) if db is not None else None
    project = read_project(str(source), report=ProblemLog(), cache=index)
    tree = VirtualTree(build_view(project, [fmt], ViewOptions(params=TAG_VIEWS[fmt][0])))
    files: list[str] = []

    def walk(path: str) -> None:
        for name in tree.listdir(path):
            sub = f"{path.rstrip('/')}/{name}"
            if tree.node(sub) is None:
                walk(sub)
            else:
                files.append(sub)
    walk("/")
    if index is not None:
        index.save()
        index.close()
    return sorted(files)


@pytest.mark.parametrize("fmt", sorted(TAG_VIEWS))
def test_a_remount_of_a_tag_folder_view_parses_no_annotation(
        fmt: str, tagged: Path, tmp_path: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "index.sqlite"
    first = view_files(tagged, db, fmt, monkeypatch)
    assert parses
    assert first == view_files(tagged, None, fmt, monkeypatch)
    parses.clear()
    assert view_files(tagged, db, fmt, monkeypatch) == first
    assert parses == []


def edit_tag(ann: Path, name: str, value: Any, meta: dict) -> None:
    """Give the image tag ``name`` of ``ann`` the value ``value`` (None: another of its oneof values)."""
    data = json.loads(ann.read_text())
    tag = next(t for t in data["tags"] if t["name"] == name)
    if value is None:
        values = next(m["values"] for m in meta["tags"] if m["name"] == name)
        value = next(v for v in values if v != tag["value"])
    tag["value"] = value
    ann.write_text(json.dumps(data))


@pytest.mark.parametrize("fmt", sorted(TAG_VIEWS))
def test_an_edited_image_tag_moves_the_image_at_a_remount(
        fmt: str, tagged: Path, tmp_path: Path, parses: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "index.sqlite"
    before = view_files(tagged, db, fmt, monkeypatch)
    name, value = TAG_VIEWS[fmt][1]
    ann = next(p for p in sorted(tagged.glob("*/ann/*.json"))
               if {name, "camera_id"} <= {t["name"] for t in json.loads(p.read_text())["tags"]})
    edit_tag(ann, name, value, json.loads((tagged / "meta.json").read_text()))
    parses.clear()
    after = view_files(tagged, db, fmt, monkeypatch)
    assert parses == [str(ann)]
    assert after == view_files(tagged, None, fmt, monkeypatch)
    assert after != before  # the image (or, in Market-1501, its name) moved
