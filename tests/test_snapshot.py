"""Snapshot mounts (``--snapshot``, also ``--no-watch``) on real mounts: the kernel reads without
OPEN or RELEASE, and what the mount serves is the project as it was when the mount became ready.

A live mount's guarantees are tested in test_live.py and test_source_files.py; here, the other
mode: every byte served is the snapshot's or EIO, never a newer version's, never a mix.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree
from tests.conftest import read_errno, read_tree


def opcodes(log: Path, name: str) -> int:
    """How many requests of kind ``name`` libfuse's debug log shows the kernel sent."""
    return len(re.findall(rf"opcode: {name} \(", log.read_text(errors="replace")))


def read_twice(mnt: Path) -> dict[str, bytes]:
    read_tree(mnt)
    return read_tree(mnt)


def test_a_snapshot_is_read_without_open_or_release(mount, blob_copy: Path) -> None:
    """The first OPEN is answered ENOSYS; the kernel sends no other, nor any RELEASE, for the
    mount's life, and every file still reads whole and right (the same bytes as a live mount)."""
    with mount(blob_copy, "--format", "coco,yolo", "--snapshot", "--debug") as mnt:
        served = read_twice(mnt)
        log = mnt.with_suffix(".log")
    with mount(blob_copy, "--format", "coco,yolo", "--debug") as live:
        assert read_tree(live) == served
        live_log = live.with_suffix(".log")
    assert len(served) > 20
    assert opcodes(log, "OPEN") == 1 and opcodes(log, "RELEASE") == 0
    assert opcodes(live_log, "OPEN") == opcodes(live_log, "RELEASE") == len(served)


def test_a_snapshot_serves_every_file_as_the_tree_renders_it(mount, blob_copy: Path) -> None:
    """Reads by path with no handle, of images (byte ranges of the tar) and generated files alike;
    the COCO file is read in many requests (over 128 KiB would be; here at every offset a reader
    asks), each answered from the one render."""
    tree = VirtualTree(build_view(read_project(str(blob_copy)), ["coco", "voc"], ViewOptions()))
    with mount(blob_copy, "--format", "coco,voc", "--snapshot") as mnt:
        assert read_tree(mnt) == {path: tree.read_file(path) for path in tree.walk_files()}
        coco = next(p for p in tree.walk_files() if p.startswith("coco/annotations/instances_"))
        with open(mnt / coco, "rb", buffering=0) as f:
            pieces = []
            while piece := f.read(97):
                pieces.append(piece)
        assert b"".join(pieces) == tree.read_file(coco)


def labelled(served: dict[str, bytes], root: Path) -> list[tuple[Path, str]]:
    """(annotation file, its non-empty YOLO label's path) for items whose label is named after the image."""
    out = []
    for ann in sorted(root.glob("**/ann/*.json")):
        stem = Path(ann.name[:-len(".json")]).stem
        match = [p for p, data in served.items() if p.startswith("labels/") and Path(p).stem == stem and data]
        if len(match) == 1:
            out.append((ann, match[0]))
    return out


def empty_annotation(ann: Path) -> None:
    data = json.loads(ann.read_text())
    data["objects"] = []
    ann.write_text(json.dumps(data))


def test_a_snapshot_never_serves_what_changed_after_it(mount, plain_copy: Path) -> None:
    """An annotation edited, an image rewritten and one added after the mount: the files read before
    keep their bytes, a file first made after the edit is EIO (never made from the new version), the
    added image is not listed. A remount is the new snapshot."""
    with mount(plain_copy, "--format", "yolo", "--snapshot") as mnt:
        before = read_tree(mnt)
    (read_first, read_label), (made_later, later_label) = labelled(before, plain_copy)[:2]
    image = next(p for p in before if p.startswith("images/"))
    source_image = next(plain_copy.glob(f"**/img/{Path(image).name}"))
    with mount(plain_copy, "--format", "yolo", "--snapshot") as mnt:
        assert (mnt / read_label).read_bytes() == before[read_label]
        empty_annotation(read_first)
        empty_annotation(made_later)
        added = source_image.with_name("added_after" + source_image.suffix)
        added.write_bytes(source_image.read_bytes())
        source_image.write_bytes(source_image.read_bytes()[::-1])  # same size, other bytes

        assert (mnt / read_label).read_bytes() == before[read_label]
        assert read_errno(mnt / later_label) == errno.EIO
        got = read_errno(mnt / image)
        assert got in (None, errno.EIO)
        if got is None:
            assert (mnt / image).read_bytes() == before[image]  # the snapshot's, kept by the kernel
        assert added.name not in os.listdir(mnt / Path(image).parent)
        assert "changed after the snapshot was taken" in mnt.with_suffix(".log").read_text()
    with mount(plain_copy, "--format", "yolo", "--snapshot") as mnt:
        assert (mnt / later_label).read_bytes() == b""
        assert added.name in os.listdir(mnt / Path(image).parent)


def test_a_snapshot_remount_checks_what_changed_while_unmounted(mount, plain_copy: Path, tmp_path: Path) -> None:
    """A remount takes the catalog's folders unchecked; a snapshot checks them before it is served
    (it takes no update later), so an edit made while nothing was mounted is in it."""
    cache = tmp_path / "cache"
    with mount(plain_copy, "--format", "yolo", "--snapshot", "--cache-dir", str(cache)) as mnt:
        ann, label = labelled(read_tree(mnt), plain_copy)[0]
    empty_annotation(ann)
    with mount(plain_copy, "--format", "yolo", "--snapshot", "--cache-dir", str(cache)) as mnt:
        assert (mnt / label).read_bytes() == b""
        assert "snapshot taken" in mnt.with_suffix(".log").read_text()


