"""``slyfs export``: the mounted tree, written to a real directory, hard-linking what it can."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import FORMATS, build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.export import ExportError, export_tree
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, read_tree, slyfs

SDK_PROJECTS = {"plain": PLAIN, "blob": BLOB}
OPTIONS = ("--classes", "car,road,person_kp", "--no-empty", "--split", "ratio:0.5")


def checksums(root: Path) -> dict[str, str]:
    return {p: hashlib.sha256(data).hexdigest() for p, data in read_tree(root).items()}


def export(source: Path, dest: Path, *args: str, check: bool = True):
    return slyfs("export", str(source), str(dest), *args, check=check)


@pytest.mark.parametrize("fixture", SDK_PROJECTS.values(), ids=SDK_PROJECTS.keys())
def test_export_equals_the_mounted_tree_for_every_format(fixture: Path, tmp_path: Path, mount) -> None:
    # a private copy: exports hard-link source files, and other tests' exports (and the removal of
    # their folders) of the shared fixture would change its files' ctime under this mount
    source = tmp_path / "source"
    shutil.copytree(fixture, source)
    before = checksums(source)
    for options in ((), OPTIONS):
        with mount(source, "--format", "all", *options) as mnt:
            for fmt in FORMATS:
                dest = tmp_path / f"{fmt}{len(options)}"
                export(source, dest, "--format", fmt, *options)
                exported = read_tree(dest)
                assert exported and exported == read_tree(mnt / fmt), (fmt, options)
    assert checksums(source) == before


def test_refuses_a_non_empty_dest_unless_forced(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    r = export(PLAIN, dest, "--format", "yolo", check=False)
    assert r.returncode == 1 and "not empty" in r.stderr and "--force" in r.stderr
    assert sorted(os.listdir(dest)) == ["keep.txt"]

    export(PLAIN, dest, "--format", "yolo", "--force")
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / "data.yaml").is_file() and len(list((dest / "images").rglob("*.*"))) == 12
    assert not [n for n in os.listdir(dest) if n.startswith(".")]  # no staging folder left


def test_creates_dest_and_its_parents(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "out"
    export(BLOB, dest, "--format", "yolo")
    assert (dest / "data.yaml").is_file() and len(list((dest / "images").rglob("*.*"))) == 12
    assert sorted(os.listdir(dest.parent)) == ["out"]


def test_refuses_dest_inside_the_source(tmp_path: Path) -> None:
    source = tmp_path / "project"
    shutil.copytree(PLAIN, source)
    before = checksums(source)
    r = export(source, source / "export", "--format", "yolo", check=False)
    assert r.returncode == 1 and "overlap" in r.stderr
    assert checksums(source) == before


@pytest.mark.parametrize("fmt", ["yolo", "supervisely"])
def test_hard_links_for_plain_images_and_copies_with_copy(plain_copy: Path, tmp_path: Path, fmt: str) -> None:
    before = checksums(plain_copy)
    source_inodes = {os.stat(p).st_ino for p in plain_copy.rglob("img/*")}
    linked, copied = tmp_path / "linked", tmp_path / "copied"
    export(plain_copy, linked, "--format", fmt)
    export(plain_copy, copied, "--format", fmt, "--copy")
    images = [p for p in read_tree(linked) if "/img/" in p or p.startswith("images/")]
    assert len(images) == 12
    assert {os.stat(linked / p).st_ino for p in images} == source_inodes
    assert not {os.stat(copied / p).st_ino for p in images} & source_inodes
    assert read_tree(linked) == read_tree(copied)
    assert checksums(plain_copy) == before


def test_blob_images_are_copied_out_of_the_tar(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(BLOB, dest, "--format", "yolo")
    tars = {os.stat(t).st_ino for t in (BLOB / "blob").iterdir()}
    images = list((dest / "images").rglob("*.*"))
    assert len(images) == 12 and not {os.stat(p).st_ino for p in images} & tars
    assert sum(os.stat(p).st_nlink > 1 for p in images) == 1  # val/empty_002.png is a plain file in the blob project


def blob_tree(tmp_path: Path) -> tuple[Path, VirtualTree]:
    source = tmp_path / "blob"
    shutil.copytree(BLOB, source)
    return source, VirtualTree(build_view(read_project(str(source)), ["yolo"], ViewOptions()))


def test_a_failure_midway_leaves_dest_as_it_was(tmp_path: Path) -> None:
    source, tree = blob_tree(tmp_path)
    for tar in (source / "blob").iterdir():  # the tar shrinks after the scan
        os.truncate(tar, 1024)
    dest = tmp_path / "out"
    with pytest.raises(ExportError, match="export stopped at images/.*left as it was"):
        export_tree(tree, str(dest), source=str(source))
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ["blob"]  # no staging folder left behind


def test_unreadable_files_stop_the_export_unless_skipped(tmp_path: Path) -> None:
    source = tmp_path / "blob"
    shutil.copytree(BLOB, source)
    (source / "blob" / "1002.tar").unlink()
    r = export(source, tmp_path / "out", "--format", "yolo", check=False)
    assert r.returncode == 1 and "cannot be read" in r.stderr and "--skip-unreadable" in r.stderr
    assert not (tmp_path / "out").exists()
    r = export(source, tmp_path / "out", "--format", "yolo", "--skip-unreadable")
    assert r.stderr.count("left out (unreadable)") == 3  # val's three tar images; empty_002.png is in img/
    assert len(list((tmp_path / "out" / "images").rglob("*.*"))) == 9


def test_progress_reports_every_file_and_byte(tmp_path: Path) -> None:
    calls = []
    tree = VirtualTree(build_view(read_project(str(PLAIN)), ["yolo"], ViewOptions()))
    result = export_tree(tree, str(tmp_path / "out"), source=str(PLAIN), progress=lambda *a: calls.append(a))
    files = read_tree(tmp_path / "out")
    assert [c[0] for c in calls] == list(range(1, len(files) + 1)) and {c[1] for c in calls} == {len(files)}
    assert calls[-1][2] == result.bytes == sum(len(d) for d in files.values())
