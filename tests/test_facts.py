"""Membership facts in the persistent index (index.py, project.AnnotationReader.facts): a remount
with ``--split tags``, ``--no-empty`` or ``--classes`` parses no annotation of an unchanged project,
an edited annotation is parsed again alone, and a damaged row discards the index with one log line."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.common.splits import splits
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely import project as scanning
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.view import ViewOptions
from tests.conftest import PLAIN

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
