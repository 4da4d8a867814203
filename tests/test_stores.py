"""The byte-store seam: every source byte the tree serves comes through its ByteStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from slyfs.formats.contract import SourceBytes
from slyfs.formats.model import ImageRef, file_stamp
from slyfs.formats.source_bytes import SourceUnreadable
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.stores import LocalStore
from slyfs.vfs.tree import VirtualTree


class RecordingStore(LocalStore):
    """A local store that notes each call, as an object-storage store would be called."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def open(self, ref: ImageRef) -> int:
        self.calls.append(f"open {Path(ref.path).name}")
        return super().open(ref)

    def read(self, handle: object, ref: ImageRef, size: int, offset: int) -> bytes:
        self.calls.append(f"read {size}@{offset}")
        return super().read(handle, ref, size, offset)

    def close(self, handle: object) -> None:
        self.calls.append("close")
        super().close(handle)

    def read_all(self, ref: ImageRef) -> bytes:
        self.calls.append(f"read_all {Path(ref.path).name}")
        return super().read_all(ref)


def test_the_tree_reads_source_bytes_through_its_store(tmp_path: Path) -> None:
    blob = tmp_path / "b.tar"
    blob.write_bytes(b"header" + b"IMAGE-BYTES" + b"trailer")
    ref = ImageRef(str(blob), 6, 11, file_stamp(blob.stat()))
    store = RecordingStore()
    tree = VirtualTree({"images/a.jpg": SourceBytes(ref)}, store=store)
    fh = tree.open("images/a.jpg")
    assert tree.read(fh, 5, 0) + tree.read(fh, 100, 5) == b"IMAGE-BYTES"
    tree.release(fh)
    assert tree.read_file("images/a.jpg") == b"IMAGE-BYTES"
    assert store.calls == ["open b.tar", "read 5@0", "read 100@5", "close", "read_all b.tar"]


def test_a_store_refusing_the_version_is_the_tree_s_eio(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"old")
    ref = ImageRef(str(image), 0, 3, file_stamp(image.stat()))
    image.write_bytes(b"new!")  # another version: size and stamp moved
    tree = VirtualTree({"a.jpg": SourceBytes(ref)}, store=LocalStore())
    with pytest.raises(Unreadable, match="replaced or changed"):
        tree.open("a.jpg")
    with pytest.raises(SourceUnreadable):
        LocalStore().read_all(ref)
