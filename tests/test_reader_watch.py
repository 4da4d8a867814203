"""What the Supervisely reader tells a live mount (formats/readers/supervisely/watch.py): the
folders to watch, the files to poll, which changed paths reach the index, and that a change is
taken in by touching only what it can have changed, with the project a fresh scan would give."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.contract import Change
from slyfs.formats.model import Project, Stamp
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely import project as scanning
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.live import ViewSource, Watcher
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN
from tests.helpers.hostile import blob_project, png


class RecordingIndex(SourceIndex):
    """An in-memory index that notes every path whose stamp it is told to take or forget."""

    def __init__(self) -> None:
        super().__init__(None)
        self.refreshed: list[str] = []

    def restamp(self, path: str, stamp: Stamp) -> bool:
        self.refreshed.append(path)
        return super().restamp(path, stamp)

    def relist(self, path: str) -> None:
        self.refreshed.append(path)
        super().relist(path)


def test_watched_folders_and_polled_files_follow_the_scanned_layout(tmp_path: Path) -> None:
    root, _ = blob_project(tmp_path / "b", {"x.png": png()}, anns={"x.png": {}})
    source = SuperviselySource(str(root), SourceIndex(None))
    assert source.watched_folders() == [str(root), str(root / "blob")]  # before the first scan
    source.scan()
    assert [os.path.normpath(f) for f in source.watched_folders()] == [  # only the subfolders there are
        str(root), str(root / "blob"), str(root / "ds"), str(root / "ds/ann")]
    assert source.poll_files(str(root)) == [str(root / "meta.json")]
    assert source.poll_files(str(root / "blob")) == [str(root / "blob/1001.tar")]
    assert source.poll_files(str(root / "ds")) == [str(root / "ds/1001_offsets.pkl")]
    assert source.poll_files(str(root / "ds/ann")) == []  # edits of annotations come as events
    assert source.poll_files(str(root / "gone")) == []  # a vanished folder: its own stamp tells


def test_only_per_item_json_files_reach_the_index(tmp_path: Path) -> None:
    root, _ = blob_project(tmp_path / "b", {"x.png": png()}, anns={"x.png": {}})
    index = RecordingIndex()
    source = SuperviselySource(str(root), index)
    ann = str(root / "ds/ann/x.png.json")
    info = str(root / "ds/img_info/x.png.json")
    source.scan()
    source.update([ann, str(root / "meta.json"), str(root / "blob/1001.tar"), str(root / "ds/img/x.png"),
                    str(root / "ds/1001_offsets.pkl"), ann, info, str(root)])
    assert sorted(index.refreshed) == [ann, info]  # each once; the rest the scan checks itself


@pytest.fixture(params=["plain", "blob"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A writable copy of an SDK fixture."""
    copy = tmp_path / "src"
    shutil.copytree({"plain": PLAIN, "blob": BLOB}[request.param], copy)
    return copy


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the datasets scanned from now on (by a whole scan or a partial one)."""
    names: list[str] = []
    dataset = scanning._Scanner.dataset

    def recording(self: Any, name: str, ds_dir: str) -> Any:
        names.append(name)
        return dataset(self, name, ds_dir)

    monkeypatch.setattr(scanning._Scanner, "dataset", recording)
    yield names


def updated(source: SuperviselySource, paths: list[Path], scanned: list[str] | None = None
            ) -> tuple[Project, Change]:
    """``source.update`` of these paths, checked against a fresh scan (not counted in ``scanned``):
    the same items, every problem it reports reported, and a change naming exactly the items that differ."""
    before = source.project
    assert before is not None
    project, change = source.update([str(p) for p in paths])
    counted = len(scanned) if scanned is not None else 0
    problems = ProblemLog()
    fresh = read_project(source.root, report=problems)
    if scanned is not None:
        del scanned[counted:]
    assert project.datasets == fresh.datasets
    assert set(problems.all()) <= set(source.problems.all())
    if not change.everything:
        old = {(i.dataset, i.name): i for i in before.items()}
        new = {(i.dataset, i.name): i for i in project.items()}
        assert dict(change.items) == {k: new.get(k) for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    return project, change


def rewrite_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_an_annotation_edited_in_place_is_the_only_item_file_looked_at(
        project: Path, monkeypatch: pytest.MonkeyPatch, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    ann = project / "train/ann/img_001.jpg.json"
    rewrite_json(ann, lambda d: d["objects"].pop())
    scanned.clear()
    looked_at: list[str] = []
    for name in ("stat", "lstat", "scandir", "listdir"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda p=".", *a, _real=real, **k: looked_at.append(os.fsdecode(p))
                            or _real(p, *a, **k))
    project_after, change = source.update([str(ann)])
    monkeypatch.undo()
    assert sorted(looked_at) == sorted([str(ann), str(project / "meta.json")]) and scanned == []
    assert list(change.items) == [("train", "img_001.jpg")]
    updated(source, [])  # and it is what a fresh scan gives


def test_an_img_info_file_edited_in_place_re_stamps_its_item(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    info = project / "val/img_info/dup.png.json"
    rewrite_json(info, lambda d: d.update(added=1))
    scanned.clear()
    _, change = updated(source, [info], scanned)
    assert list(change.items) == [("val", "dup.png")] and scanned == []


def test_an_annotation_replaced_by_rename_is_re_stamped(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    ann = project / "val/ann/val_001.jpg.json"
    tmp = ann.with_name(".val_001.jpg.json.tmp")
    tmp.write_text(ann.read_text().replace("[", "[ "))
    tmp.replace(ann)  # as editors save: the folder changes too, its names do not
    scanned.clear()
    _, change = updated(source, [tmp, ann, ann.parent], scanned)
    assert list(change.items) == [("val", "val_001.jpg")]
    assert scanned == ["val"]  # the folder's own event: listed again, that dataset alone


def test_files_added_or_removed_rescan_their_dataset_alone(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    new_ann = project / "train/datasets/sub/ann/new.jpg.json"
    shutil.copyfile(project / "train/datasets/sub/ann/sub_001.jpg.json", new_ann)
    scanned.clear()
    _, change = updated(source, [new_ann], scanned)
    assert scanned == ["train/sub"] and list(change.items) == [("train/sub", "new.jpg")]
    new_ann.unlink()
    scanned.clear()
    _, change = updated(source, [new_ann], scanned)
    assert scanned == ["train/sub"] and change.items == {("train/sub", "new.jpg"): None}
    image = project / "val/img/empty_002.png"
    image.unlink()
    scanned.clear()
    _, change = updated(source, [image], scanned)
    assert scanned == ["val"] and list(change.items) == [("val", "empty_002.png")]


def test_a_plain_image_rewritten_in_place_is_re_stamped(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    image = project / "val/img/empty_002.png"
    image.write_bytes(png(12, 12))
    scanned.clear()
    _, change = updated(source, [image], scanned)
    assert scanned == [] and list(change.items) == [("val", "empty_002.png")]


def test_a_new_dataset_is_scanned_alone_and_a_removed_one_dropped(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    shutil.copytree(project / "val", project / "more")
    scanned.clear()
    _, change = updated(source, [project / "more"], scanned)
    assert scanned == ["more"] and {k[0] for k in change.items} == {"more"}
    shutil.rmtree(project / "train/datasets/sub")
    scanned.clear()
    _, change = updated(source, [project / "train/datasets/sub", project / "train/datasets"], scanned)
    assert scanned == [] and {k[0] for k in change.items} == {"train/sub"}
    assert all(v is None for v in change.items.values())


def test_irrelevant_files_change_nothing(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    notes = [project / "train/ann/notes.txt", project / "val/img/readme.md", project / "train/notes.txt"]
    for p in notes:
        p.write_text("x")
    scanned.clear()
    _, change = updated(source, notes, scanned)
    assert scanned == [] and not change.items and not change.everything


def test_a_tar_rescans_the_datasets_that_use_it(tmp_path: Path, scanned: list[str]) -> None:
    root = tmp_path / "src"
    shutil.copytree(BLOB, root)
    source = SuperviselySource(str(root), SourceIndex(None))
    source.scan()
    tar = root / "blob/1002.tar"
    data = tar.read_bytes()
    tar.unlink()
    tar.write_bytes(data)  # a new file: every image of it has a new stamp
    scanned.clear()
    _, change = updated(source, [tar], scanned)
    assert scanned == ["val"] and change.items and {k[0] for k in change.items} == {"val"}


def test_meta_the_root_and_lost_events_rescan_everything(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    meta = project / "meta.json"
    rewrite_json(meta, lambda d: d["tags"].append({"name": "extra", "value_type": "none"}))
    _, change = updated(source, [meta], scanned)
    assert change.everything
    datasets = sorted(ds.name for ds in read_project(str(project)).datasets)
    for paths in ([project], [project / "train/ann/img_001.jpg.json"]):
        if paths != [project]:
            source.events_lost()
        scanned.clear()
        _, change = updated(source, paths, scanned)
        assert sorted(scanned) == datasets and not change.everything


def test_problems_of_a_change_are_reported_as_a_scan_reports_them(project: Path, scanned: list[str]) -> None:
    source = SuperviselySource(str(project), SourceIndex(None))
    source.scan()
    orphan = project / "val/ann/orphan.png.json"
    shutil.copyfile(project / "val/ann/val_001.jpg.json", orphan)
    fifo = project / "val/img_info/fifo.png.json"
    os.mkfifo(fifo)
    updated(source, [orphan, fifo], scanned)  # checks them against a fresh scan's problems
    messages = {(p.path, p.message) for p in source.problems.all()}
    assert (str(orphan), "annotation has no image") in messages
    assert any(path == str(fifo) for path, _ in messages)
    orphan.write_text("{ broken")  # in place: re-stamped; reported when parsed, as after a scan
    now, _ = updated(source, [orphan], scanned)
    now.annotation(next(i for i in now.items() if i.name == "orphan.png"))
    assert any(p.path == str(orphan) and p.message.startswith("annotation unreadable")
               for p in source.problems.all())


def test_what_a_poll_reports_takes_the_same_short_ways(project: Path, scanned: list[str]) -> None:
    """Without inotify the watcher reports folders whose stamps moved and the polled files
    (vfs/live.py ``Watcher._signature``): an image added shows as its dataset's folders, a new
    dataset as the root."""
    source = SuperviselySource(str(project), SourceIndex(None))
    tree = VirtualTree(build_view(source.scan(), ["yolo"], ViewOptions()))
    watcher = Watcher(ViewSource(source, ["yolo"], ViewOptions()), tree)  # never started: its poll alone
    if watcher._inotify is not None:
        watcher._inotify.close()

    def polled(change: Callable[[], None]) -> list[Path]:
        before = watcher._signature()
        change()
        now = watcher._signature()
        return [Path(p) for p in now.keys() | before.keys() if now.get(p) != before.get(p)]

    def add_item() -> None:
        shutil.copyfile(project / "val/img/empty_002.png", project / "val/img/new.png")
        shutil.copyfile(project / "val/ann/empty_002.png.json", project / "val/ann/new.png.json")

    scanned.clear()
    _, change = updated(source, polled(add_item), scanned)
    assert scanned == ["val"] and list(change.items) == [("val", "new.png")]
    scanned.clear()
    now, change = updated(source, polled(lambda: shutil.copytree(project / "val", project / "more")), scanned)
    assert sorted(scanned) == sorted(ds.name for ds in now.datasets)  # the root's folder: a whole rescan
    assert {k[0] for k in change.items} == {"more"}
