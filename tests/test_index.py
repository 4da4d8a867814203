"""The persistent index and the per-directory tree index, without FUSE."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from slyfs.formats.compose import FixedView
from slyfs.formats.contract import Change, Generated, SourceBytes
from slyfs.formats.model import ImageRef, file_stamp
from slyfs.formats.readers.supervisely import project as reader
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.vfs.errors import NotADirectory, NotFound
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB


def summary(root: Path, index: SourceIndex | None) -> list[tuple]:
    p = read_project(str(root), cache=index)
    return [(i.dataset, i.name, i.image, i.ann_path, i.fingerprint) for i in p.items()]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(BLOB, dst)
    return dst


def count_offsets_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = reader.read_offsets

    def spy(path: str):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(reader, "read_offsets", spy)
    return calls


def test_remount_reuses_the_index_and_sees_changes(source: Path, tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "index.sqlite"
    expected = summary(source, None)
    calls = count_offsets_reads(monkeypatch)
    first = SourceIndex(db)
    assert summary(source, first) == expected
    first.save()
    first.close()
    n_offsets = len(calls)
    assert n_offsets == len(list(source.glob("**/*_offsets.pkl")))

    again = SourceIndex(db)  # a remount: nothing changed, no offsets file is parsed
    assert summary(source, again) == expected
    assert len(calls) == n_offsets

    pkl = next(source.glob("train/*_offsets.pkl"))  # rewritten: parsed again
    data = pkl.read_bytes()
    pkl.unlink()
    pkl.write_bytes(data)
    ann = next(source.glob("train/ann/*.json"))
    ann.unlink()  # an annotation removed: the folder is re-listed
    third = SourceIndex(db)
    items = summary(source, third)
    assert len(calls) == n_offsets + 1
    assert items == summary(source, None)
    assert str(ann) not in [i[3] for i in items]


def test_watcher_restamp_updates_one_fingerprint(source: Path) -> None:
    index = SourceIndex(None)
    before = {i[1]: i[4] for i in summary(source, index)}
    ann = next(source.glob("train/ann/*.json"))
    ann.write_text(ann.read_text() + " ")  # in place: the folder does not change
    assert {i[1]: i[4] for i in summary(source, index)} == before  # not seen by listing...
    assert index.restamp(str(ann), file_stamp(ann.stat()))
    after = {i[1]: i[4] for i in summary(source, index)}
    changed = [k for k in after if after[k] != before[k]]
    assert changed == [ann.name[:-5]]  # ...but by the watcher's report, for that item only


def test_tree_lists_nested_folders_and_rejects_bad_paths(tmp_path: Path) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"0123456789")
    files = {
        "a/b/c.txt": Generated("k1", lambda: b"hello"),
        "a/d.bin": SourceBytes(ImageRef(str(blob), 2, 4)),
        "top.txt": Generated("k2", lambda: b""),
        "x/y/z/w.txt": Generated("k3", lambda: b"w"),
    }
    tree = VirtualTree(files)
    assert tree.listdir("/") == ["a", "top.txt", "x"]
    assert tree.listdir("/a") == ["b", "d.bin"]
    assert tree.listdir("x/y") == ["z"]
    assert tree.read_file("a/d.bin") == b"2345"
    assert tree.attr("a/b/c.txt").size == 5 and tree.attr("/x/y").is_dir
    assert tree.walk_files() == sorted(files)
    with pytest.raises(NotFound):
        tree.attr("a/nope")
    with pytest.raises(NotFound):
        tree.listdir("nope/deeper")
    with pytest.raises(NotADirectory):
        tree.listdir("top.txt")


def test_replace_marks_moved_source_bytes_once(tmp_path: Path) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"0123456789")
    same, moved = SourceBytes(ImageRef(str(blob), 0, 2)), SourceBytes(ImageRef(str(blob), 2, 2))
    tree = VirtualTree({"i/same": same, "i/moved": same})
    fh = tree.open("i/moved")
    tree.replace(FixedView({"i/same": same, "i/moved": moved, "i/new": moved}), Change())
    assert tree.read(fh, 10, 0) == b"01"  # the open handle keeps its version
    assert tree.read_file("i/moved") == b"23"
    assert tree.take_moved("i/moved") and not tree.take_moved("i/moved")
    assert not tree.take_moved("i/same")
    assert tree.take_moved("/i/new")


def test_replace_reports_stale_paths_and_folders() -> None:
    def gen(key: str) -> Generated:
        return Generated(key, lambda: key.encode())

    tree = VirtualTree({"a/same.txt": gen("s"), "a/edited.txt": gen("e1"), "a/gone.txt": gen("g"),
                        "old/x/deep.txt": gen("d"), "top.txt": gen("t")})
    told: list[list[str]] = []
    tree.on_stale = told.append
    stale = tree.replace(FixedView({"a/same.txt": gen("s"), "a/edited.txt": gen("e2"), "a/added.txt": gen("n"),
                                    "new/f.txt": gen("f"), "top.txt": gen("t")}), Change())
    # changed, new or vanished nodes (down into removed folders), and folders whose entries changed
    assert sorted(stale) == ["", "a", "a/added.txt", "a/edited.txt", "a/gone.txt", "new", "new/f.txt",
                             "old", "old/x", "old/x/deep.txt"]
    assert told == [stale]
    assert tree.replace(FixedView({"a/same.txt": gen("s")}), Change()) != []
    assert tree.replace(FixedView({"a/same.txt": gen("s")}), Change()) == []


def test_restamp_refuses_a_name_not_listed_and_relist_lists_the_folder_again(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    index = SourceIndex(None)
    knowns: list[dict] = []

    def scan(known: dict) -> dict:
        knowns.append(dict(known))
        return {n: file_stamp((tmp_path / n).stat()) for n in os.listdir(tmp_path)}

    first = index.json_files(str(tmp_path), scan)
    assert index.json_files(str(tmp_path), scan) is first and len(knowns) == 1  # the folder unchanged: no listing
    assert not index.restamp(str(tmp_path / "b.json"), first["a.json"])  # not listed: only a listing adds it
    stamp = first["a.json"]._replace(size=99)
    assert index.restamp(str(tmp_path / "a.json"), stamp)
    assert index.json_files(str(tmp_path), scan)["a.json"] == stamp
    index.relist(str(tmp_path / "a.json"))  # listed again, though the folder's stamp is the same...
    index.json_files(str(tmp_path), scan)
    assert knowns == [{}, {}]  # ...and that name stat'ed afresh
