"""The catalog of JSON folders: a remount of an unchanged project takes each folder's listing and
file stamps from the index instead of stat'ing every annotation; what changed while nothing was
mounted is still seen (a folder's own stamp for files added or removed; the reader's fstat and
the background check for an edit in place, even one that keeps the size and the mtime)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import index as index_module
from slyfs.formats.readers.supervisely import project as reader
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.live import BackgroundCheck, Updater, ViewSource
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, fuse_usable, mounted, wait_for

EDITED = "train/ann/dup.jpg.json"  # a rectangle whose right edge (25) the tests move, keeping the size


@pytest.fixture(autouse=True)
def no_racy_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: listings of folders just copied are stored at once (a mount waits RACY_NS)."""
    monkeypatch.setattr(index_module, "RACY_NS", 0)


@pytest.fixture(params=["plain", "blob"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    dst = tmp_path / "src"
    shutil.copytree(PLAIN if request.param == "plain" else BLOB, dst)
    return dst


class StatCounter:
    """The stats made of per-item JSON files (by listing, ``os.stat`` or ``os.lstat``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        listed, stat, lstat = reader._listed, os.stat, os.lstat

        def counted_listed(e: os.DirEntry) -> object:
            self._count(e.path)
            return listed(e)

        def counted_stat(path: object, *args: object, **kw: object) -> os.stat_result:
            self._count(path)
            return stat(path, *args, **kw)  # type: ignore[arg-type]

        def counted_lstat(path: object, *args: object, **kw: object) -> os.stat_result:
            self._count(path)
            return lstat(path, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(reader, "_listed", counted_listed)
        monkeypatch.setattr(os, "stat", counted_stat)
        monkeypatch.setattr(os, "lstat", counted_lstat)

    def _count(self, path: object) -> None:
        if isinstance(path, str) and path.endswith(".json") and os.path.basename(os.path.dirname(path)) in (
                "ann", "img_info", "meta"):
            self.paths.append(path)


def json_files(root: Path) -> list[Path]:
    return [p for p in root.glob("**/*.json") if p.parent.name in ("ann", "img_info", "meta")]


def first_mount(root: Path, db: Path) -> None:
    """What a mount leaves in the index: a scan, a view built, a save."""
    index = SourceIndex(db)
    source = SuperviselySource(str(root), index)
    ViewSource(source, ["yolo"], ViewOptions()).build()
    index.save()
    index.close()


def items(root: Path, index: SourceIndex | None) -> list[tuple]:
    return [(i.dataset, i.name, i.image, i.ann_path, i.fingerprint, i.sidecars)
            for i in read_project(str(root), cache=index).items()]


def edit_in_place(path: Path, old: str, new: str) -> None:
    """Rewrite ``path`` with ``old`` replaced by ``new`` (as long), then give it back its mtime:
    only the inode change time tells the new version apart."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text()
    assert old in text
    with open(path, "r+") as f:  # in place: the same inode, the folder's stamp unchanged
        f.write(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


def right_edge(text: str) -> str:
    """The rectangle's bottom-right x as the SDK writes it (the second point's first value)."""
    found = re.search(r"\],\s*\[\s*(\d+),", text)
    assert found
    return found.group(1)


def test_remount_of_an_unchanged_project_stats_no_json_file(source: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "index.sqlite"
    expected = items(source, None)
    first_mount(source, db)
    stats = StatCounter(monkeypatch)
    index = SourceIndex(db)
    assert items(source, index) == expected
    assert stats.paths == []
    # the background check is what stats them, each once, and finds nothing changed
    checked, changed = SuperviselySource(str(source), index).verify(lambda paths: pytest.fail(f"{paths}"),
                                                                     lambda: None)
    assert (checked, changed) == (len(json_files(source)), 0)
    assert sorted(stats.paths) == sorted(map(str, json_files(source)))


def test_files_added_or_removed_while_unmounted_are_seen(source: Path, tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite"
    first_mount(source, db)
    gone = source / EDITED
    gone.unlink()
    added = source / "val" / "ann" / "orphan.jpg.json"  # an annotation without an image: an item all the same
    shutil.copy(source / "val" / "ann" / "dup.jpg.json", added)
    again = items(source, SourceIndex(db))
    assert again == items(source, None)
    assert str(gone) not in [i[3] for i in again]
    assert str(added) in [i[3] for i in again]


def test_an_edit_while_mounted_keeps_a_catalogued_folder_stored(tmp_path: Path) -> None:
    """Re-stamped by the watcher and saved before the background check: still stored, with the new stamp."""
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    first_mount(src, db)
    index = SourceIndex(db)
    source = SuperviselySource(str(src), index)
    source.scan()
    edit_in_place(src / EDITED, "25,", "27,")
    source.update([str(src / EDITED)])
    source.save(final=True)
    index.close()
    stats_free = SourceIndex(db)
    assert items(src, stats_free) == items(src, None)  # the edited file's new stamp came from the row
    assert str(src / EDITED.rsplit("/", 1)[0]) in stats_free.unverified()  # taken from the row


def test_a_racy_listing_is_not_stored_until_confirmed(source: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "RACY_NS", 3600 * 10**9)  # every listing is racy
    db = tmp_path / "index.sqlite"
    first_mount(source, db)
    stats = StatCounter(monkeypatch)
    index = SourceIndex(db)
    items(source, index)
    assert sorted(stats.paths) == sorted(map(str, json_files(source)))  # listed (and stat'ed) again


@pytest.mark.parametrize(("fmt", "options"), [("yolo", ViewOptions()), ("supervisely", ViewOptions(classes=("car",)))],
                         ids=["yolo", "supervisely-classes"])
def test_an_edit_in_place_is_found_when_opened_and_served_new(fmt: str, options: ViewOptions, tmp_path: Path
                                                              ) -> None:
    """Without FUSE: the tree asks the updater, which updates the source, then reads again (the
    parsed annotation of a label file; the source JSON re-written without the other classes)."""
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    first_mount(src, db)
    before = VirtualTree(build_view(read_project(str(src)), [fmt], options)).walk_files()
    edit_in_place(src / EDITED, "25,", "27,")
    fresh = VirtualTree(build_view(read_project(str(src)), [fmt], options))  # no index: the truth
    view = ViewSource(SuperviselySource(str(src), SourceIndex(db)), [fmt], options)
    tree = VirtualTree(view.build())
    Updater(view, tree)
    assert tree.walk_files() == before
    for path in tree.walk_files():  # each file's first read is of the new version
        assert tree.read_file(path) == fresh.read_file(path), path
    project = view.source.project  # type: ignore[attr-defined]
    assert project is not None
    item = next(i for i in project.items() if i.ann_path == str(src / EDITED))
    assert tuple(item.fingerprint) == tuple(reader.file_stamp(os.stat(src / EDITED)))


def test_the_background_check_updates_what_no_request_opened(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    first_mount(src, db)
    edit_in_place(src / EDITED, "25,", "27,")
    view = ViewSource(SuperviselySource(str(src), SourceIndex(db)), ["coco"], ViewOptions())
    tree = VirtualTree(view.build())
    check = BackgroundCheck(Updater(view, tree))
    check.start()
    check.join(30)
    assert check.updater.checked.is_set()
    project = view.source.project  # type: ignore[attr-defined]
    item = next(i for i in project.items() if i.ann_path == str(src / EDITED))
    assert tuple(item.fingerprint) == tuple(reader.file_stamp(os.stat(src / EDITED)))


def test_membership_converges_after_the_background_check(tmp_path: Path) -> None:
    """--no-empty decides from the facts the index recorded of the catalogued version; an
    annotation emptied in place while unmounted leaves the listing once the check found it."""
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    options = ViewOptions(include_empty=False)
    index = SourceIndex(db)
    ViewSource(SuperviselySource(str(src), index), ["yolo"], options).build()  # records the facts
    index.save()
    index.close()
    label = "labels/train/train__dup.txt"
    ann = src / EDITED
    data = json.loads(ann.read_text())
    data["objects"] = []
    text = json.dumps(data)
    st = ann.stat()
    with open(ann, "r+") as f:  # in place, shorter: still no change to the folder
        f.write(text)
        f.truncate()
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns))
    view = ViewSource(SuperviselySource(str(src), SourceIndex(db)), ["yolo"], options)
    tree = VirtualTree(view.build())
    assert label.rsplit("/", 1)[1] in tree.listdir("labels/train")  # the catalogued facts
    check = BackgroundCheck(Updater(view, tree))
    check.start()
    check.join(30)
    fresh = VirtualTree(build_view(read_project(str(src)), ["yolo"], options))
    assert tree.listdir("labels/train") == fresh.listdir("labels/train")
    assert label.rsplit("/", 1)[1] not in tree.listdir("labels/train")


FOLDER_DAMAGES = {
    "stamps cut short": ("UPDATE folders SET stamps = substr(stamps, 1, length(stamps) - 1)", ()),
    "one stamp too few": ("UPDATE folders SET stamps = substr(stamps, 1, length(stamps) - 48)", ()),
    "names not UTF-8": ("UPDATE folders SET names = ?", (b"\xff\xfe.json",)),
    "a name not a JSON file's": ("UPDATE folders SET names = CAST(replace(CAST(names AS TEXT), '.json', '.jpg')"
                                 " AS BLOB)", ()),
    "a key of the wrong type": ("UPDATE folders SET key = 7", ()),
    "key not JSON": ("UPDATE folders SET key = '['", ()),
    "negative size": ("UPDATE folders SET stamps = CAST(zeroblob(16) || x'ffffffffffffffff' || substr(stamps, 25)"
                      " AS BLOB)", ()),
}


@pytest.mark.parametrize("damage", list(FOLDER_DAMAGES), ids=list(FOLDER_DAMAGES))
def test_a_damaged_folder_row_discards_the_index(damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                 ) -> None:
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    first_mount(src, db)
    sql, args = FOLDER_DAMAGES[damage]
    with sqlite3.connect(db) as conn:
        assert conn.execute(sql, args).rowcount > 0
    conn.close()
    with caplog.at_level(logging.WARNING, logger="slyfs.index"):
        assert items(src, SourceIndex(db)) == items(src, None)
    assert [r for r in caplog.records if "damaged" in r.getMessage()], caplog.text


# ---------------------------------------------------------------- real mounts


@pytest.fixture(scope="module")
def remounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A plain project mounted once (yolo and coco read, so the COCO file is in the disk cache),
    then edited in place while unmounted (size and mtime kept): (source, cache dir)."""
    if not fuse_usable():
        pytest.fail("FUSE is not usable here")
    base = tmp_path_factory.mktemp("catalog")
    src, cache = base / "src", base / "cache"
    shutil.copytree(PLAIN, src)
    time.sleep(index_module.RACY_NS / 1e9 + 0.2)  # the daemon stores listings begun that long after a change
    with mounted(src, "--format", "yolo,coco", "--cache-dir", str(cache)) as mnt:
        (mnt / "coco" / "annotations" / "instances_train.json").read_bytes()
        wait_for(lambda: "catalog checked" in mnt.with_suffix(".log").read_text(), "the check", mnt)
    yield src, cache


def coco_right_edges(data: bytes, file_name_part: str) -> list[float]:
    doc = json.loads(data)
    ids = [im["id"] for im in doc["images"] if file_name_part in im["file_name"]]
    return [a["bbox"][0] + a["bbox"][2] for a in doc["annotations"] if a["image_id"] in ids]


def test_mounted_edit_in_place_is_served_at_first_read_after_remount(remounted: tuple[Path, Path]) -> None:
    src, cache = remounted
    old = right_edge((src / EDITED).read_text())
    new = str(int(old) + 2)
    edit_in_place(src / EDITED, f"{old},", f"{new},")
    fresh = VirtualTree(build_view(read_project(str(src)), ["yolo"], ViewOptions()))
    label = next(p for p in fresh.walk_files() if p == "labels/train/train__dup.txt")
    with mounted(src, "--format", "yolo,coco", "--cache-dir", str(cache)) as mnt:
        # the first read (whether the reader's own check or the background one found the edit:
        # test_an_edit_in_place_is_found_when_opened_and_served_new isolates the former)
        assert (mnt / "yolo" / label).read_bytes() == fresh.read_file(label)


def test_mounted_edit_in_place_reaches_a_cached_coco_file_after_the_check(remounted: tuple[Path, Path]) -> None:
    src, cache = remounted
    coco = Path("annotations") / "instances_train.json"
    with mounted(src, "--format", "coco", "--cache-dir", str(cache)) as mnt:  # its current version, on disk
        wait_for(lambda: "catalog checked" in mnt.with_suffix(".log").read_text(), "the check", mnt)
        (mnt / coco).read_bytes()
    old = right_edge((src / EDITED).read_text())
    new = str(int(old) - 1)
    edit_in_place(src / EDITED, f"{old},", f"{new},")
    with mounted(src, "--format", "coco", "--cache-dir", str(cache)) as mnt:
        wait_for(lambda: re.search(r"catalog checked: \d+ files stat'ed, 1 changed",
                                   mnt.with_suffix(".log").read_text()) is not None, "the check's finding", mnt)
        edges = coco_right_edges((mnt / coco).read_bytes(), "dup")
        assert float(int(new) + 1) in edges  # COCO's bbox ends past the last pixel column


def test_mounted_files_added_or_removed_while_unmounted_are_seen(remounted: tuple[Path, Path]) -> None:
    src, cache = remounted
    (src / "val" / "ann" / "dup.png.json").unlink()  # its image stays: served without labels
    shutil.copy(src / "val" / "ann" / "dup.jpg.json", src / "val" / "ann" / "extra.jpg.json")  # no image: kept
    fresh = VirtualTree(build_view(read_project(str(src)), ["yolo"], ViewOptions()))
    with mounted(src, "--format", "yolo", "--cache-dir", str(cache)) as mnt:
        assert sorted(os.listdir(mnt / "labels" / "val")) == sorted(fresh.listdir("labels/val"))
        for name in fresh.listdir("labels/val"):
            assert (mnt / "labels" / "val" / name).read_bytes() == fresh.read_file(f"labels/val/{name}"), name
