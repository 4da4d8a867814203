"""The catalog of JSON folders: a remount of an unchanged project takes each folder's listing and
file stamps from the index instead of stat'ing every annotation; what changed while nothing was
mounted is still seen (a folder's own stamp for files added or removed; the reader's fstat and
the background check for an edit in place, even one that keeps the size and the mtime)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import index as index_module
from slyfs.formats.readers.supervisely import project as reader
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.live import Updater, ViewSource
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN

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


def test_a_racy_listing_is_not_stored_until_confirmed(source: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "RACY_NS", 3600 * 10**9)  # every listing is racy
    db = tmp_path / "index.sqlite"
    first_mount(source, db)
    stats = StatCounter(monkeypatch)
    index = SourceIndex(db)
    items(source, index)
    assert sorted(stats.paths) == sorted(map(str, json_files(source)))  # listed (and stat'ed) again


def test_an_edit_in_place_is_found_when_opened_and_served_new(tmp_path: Path) -> None:
    """Without FUSE: the tree asks the updater, which updates the source, then reads again."""
    src = tmp_path / "src"
    shutil.copytree(PLAIN, src)
    db = tmp_path / "index.sqlite"
    first_mount(src, db)
    before = VirtualTree(build_view(read_project(str(src)), ["yolo"], ViewOptions())).walk_files()
    edit_in_place(src / EDITED, "25,", "27,")
    fresh = VirtualTree(build_view(read_project(str(src)), ["yolo"], ViewOptions()))  # no index: the truth
    view = ViewSource(SuperviselySource(str(src), SourceIndex(db)), ["yolo"], ViewOptions())
    tree = VirtualTree(view.build())
    Updater(view, tree)
    assert tree.walk_files() == before
    for path in tree.walk_files():  # each file's first read is of the new version
        assert tree.read_file(path) == fresh.read_file(path), path
    project = view.source.project  # type: ignore[attr-defined]
    assert project is not None
    item = next(i for i in project.items() if i.ann_path == str(src / EDITED))
    assert tuple(item.fingerprint) == tuple(reader.file_stamp(os.stat(src / EDITED)))
