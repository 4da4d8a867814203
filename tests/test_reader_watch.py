"""What the Supervisely reader tells a live mount (formats/readers/supervisely/watch.py): the
folders to watch, the files to poll, and which changed paths reach the index."""

from __future__ import annotations

import os
from pathlib import Path

from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from tests.helpers.hostile import blob_project, png


class RecordingIndex(SourceIndex):
    """An in-memory index that notes every path it is told to refresh."""

    def __init__(self) -> None:
        super().__init__(None)
        self.refreshed: list[str] = []

    def refresh(self, ann_path: str) -> None:
        self.refreshed.append(ann_path)
        super().refresh(ann_path)


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
    assert sorted(index.refreshed) == [ann, info]  # each once; the rest the next scan checks itself
