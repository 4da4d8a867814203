"""Live updates through a real mount: the source changes, the mount follows without a remount.

No timing is asserted (speed lives in scripts/bench.py): each change is awaited by polling
with a generous timeout.
"""

from __future__ import annotations

import gc
import json
import shutil
import threading
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import FORMATS
from slyfs.formats.view import ViewOptions
from slyfs.vfs.live import ViewSource, Watcher
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, eventually, wait_for


def read(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def source(blob_copy: Path) -> Path:
    return blob_copy


def edit_boxes(ann_file: Path, boxes: int) -> None:
    """Keep only the first rectangle, repeated ``boxes`` times (changes the label file's size)."""
    data = json.loads(ann_file.read_text())
    rect = next(o for o in data["objects"] if o["geometryType"] == "rectangle")
    data["objects"] = [rect] * boxes
    ann_file.write_text(json.dumps(data))


def find_rect_item(src: Path, mnt: Path) -> tuple[Path, Path]:
    """(ann file, label file in the mount) of a top-level item with a rectangle, served under its own name."""
    for ann in sorted(src.glob("*/ann/*.json")):
        data = json.loads(ann.read_text())
        label = mnt / "labels" / ann.parent.parent.name / (ann.name[:-5].rsplit(".", 1)[0] + ".txt")
        if any(o["geometryType"] == "rectangle" for o in data["objects"]) and label.exists():
            return ann, label
    raise AssertionError("fixture has no suitable item")


def test_edited_annotation_shows_and_open_handle_keeps_old_version(source: Path, mount, libfuse: str) -> None:
    with mount(source, "--format", "yolo", "--no-index", "--libfuse", libfuse) as mnt:
        ann, label = find_rect_item(source, mnt)
        before = read(label)
        assert before
        old_handle = open(label, "rb")  # noqa: SIM115 (held open across the edit)
        try:
            edit_boxes(ann, 5)
            # Content first (generated files bypass the page cache), then the kernel's cached size
            # (libfuse 3: invalidated at the rebuild; libfuse 2: expires after the 1 s timeout).
            wait_for(lambda: len(read(label).splitlines()) == 5 and label.stat().st_size == len(read(label)),
                     "edited annotation in the label file and its size", mnt)
            after = read(label)
            assert len(set(after.splitlines())) == 1
            assert old_handle.read() == before  # a reader that opened before keeps its version
        finally:
            old_handle.close()
        edit_boxes(ann, 1)  # shorter than before: size shrinks, content still exact
        wait_for(lambda: len(read(label).splitlines()) == 1 and label.stat().st_size == len(read(label)),
                 "second edit", mnt)


def test_added_image_removed_dataset_and_changed_meta(source: Path, mount, libfuse: str) -> None:
    # A plain image added to a dataset next to the blob images.
    donor = sorted(PLAIN.glob("train/img/*.jpg"))[0]
    with mount(source, "--format", "yolo", "--no-index", "--libfuse", libfuse) as mnt:
        datasets = sorted(p.name for p in (mnt / "images").iterdir())
        assert len(datasets) >= 2
        img_dir = source / datasets[0] / "img"
        img_dir.mkdir(exist_ok=True)
        shutil.copy(donor, img_dir / "added_live.jpg")
        added = mnt / "images" / datasets[0] / "added_live.jpg"
        wait_for(added.exists, "added image", mnt)
        assert read(added) == donor.read_bytes()

        # A whole dataset removed.
        gone = datasets[-1]
        inside = sorted((mnt / "labels" / gone).iterdir())[0]  # the kernel now caches it
        assert inside.stat().st_size == len(read(inside))
        shutil.rmtree(source / gone)
        wait_for(lambda: not (mnt / "images" / gone).exists() and not inside.exists(), "removed dataset", mnt)
        assert gone not in [p.name for p in (mnt / "labels").iterdir()]

        # A class renamed in meta.json: data.yaml follows.
        meta = json.loads((source / "meta.json").read_text())
        old_name = meta["classes"][0]["title"]
        meta["classes"][0]["title"] = "renamed_live"
        (source / "meta.json").write_text(json.dumps(meta))
        for ann in source.glob("**/ann/*.json"):  # keep annotations consistent with the meta
            text = ann.read_text().replace(json.dumps(old_name), json.dumps("renamed_live"))
            ann.write_text(text)
        wait_for(lambda: b"renamed_live" in read(mnt / "data.yaml"), "meta.json change", mnt)
        assert old_name.encode() not in read(mnt / "data.yaml")


def test_rebuilds_freeze_no_garbage() -> None:
    view = ViewSource(SuperviselySource(str(BLOB), SourceIndex(None)), list(FORMATS), ViewOptions())
    frozen = []
    for _ in range(8):
        view.build()
        frozen.append(gc.get_freeze_count())
    assert frozen[-1] <= frozen[1], frozen  # each rebuild's garbage is collected, not kept frozen


class SlowSavingSource(SuperviselySource):
    """A source whose index save waits for a signal, as a big index takes seconds to write."""

    def __init__(self, root: str) -> None:
        super().__init__(root, SourceIndex(None))
        self.saving = threading.Event()
        self.may_finish = threading.Event()

    def save(self) -> None:
        self.saving.set()
        self.may_finish.wait(10)


def test_an_edit_made_while_the_index_saves_is_seen(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PLAIN, source)
    reader = SlowSavingSource(str(source))
    view = ViewSource(reader, ["yolo"], ViewOptions())
    tree = VirtualTree(view.build())
    label = next(p for p in tree.walk_files() if p.startswith("labels/") and tree.read_file(p))
    watcher = Watcher(view, tree)
    watcher.start()
    try:
        assert reader.saving.wait(10)
        for ann in source.glob("**/ann/*.json"):  # the mount is announced: edits come at once
            data = json.loads(ann.read_text())
            data["objects"] = []
            ann.write_text(json.dumps(data))
        reader.may_finish.set()
        assert eventually(lambda: tree.read_file(label) == b""), "an edit made before the watcher's loop ran was lost"
    finally:
        reader.may_finish.set()
        watcher.stop()
