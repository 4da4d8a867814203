"""The byte-store seam: every source byte the tree serves comes through its ByteStore."""

from __future__ import annotations

from pathlib import Path

import pytest

from slyfs.formats.contract import SourceBytes
from slyfs.formats.model import ImageRef, file_stamp
from slyfs.formats.source_bytes import SourceUnreadable
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.stores import LocalStore, SharedHandles
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
    assert tree.read_path("images/a.jpg", 4, 6) == b"BYTE"  # a no-open read: the kept handle
    assert store.calls == ["open b.tar", "read 5@0", "read 100@5", "read_all b.tar", "read 4@6"]
    tree.close()
    assert store.calls[-1] == "close"


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


def blob_of(tmp_path: Path, images: dict[str, bytes]) -> tuple[Path, dict[str, ImageRef]]:
    """A file of images back to back (as in a tar), and each image's ref into it."""
    blob = tmp_path / "b.tar"
    blob.write_bytes(b"".join(images.values()))
    stamp, refs, at = file_stamp(blob.stat()), {}, 0
    for name, data in images.items():
        refs[name] = ImageRef(str(blob), at, len(data), stamp)
        at += len(data)
    return blob, refs


def test_every_image_of_a_blob_is_served_through_one_kept_handle(tmp_path: Path) -> None:
    _, refs = blob_of(tmp_path, {"a.jpg": b"AAAA", "b.jpg": b"BBBBBB"})
    store = RecordingStore()
    tree = VirtualTree({name: SourceBytes(ref) for name, ref in refs.items()}, store=store)
    for _ in range(3):
        for name in refs:
            fh = tree.open(name)
            assert tree.read(fh, 100, 0) == name[0].upper().encode() * refs[name].size
            tree.release(fh)
    assert store.calls.count("open b.tar") == 1 and "close" not in store.calls
    tree.close()
    assert store.calls.count("close") == 1


def test_an_open_refuses_a_file_deleted_or_replaced_since_its_handle_was_kept(tmp_path: Path) -> None:
    """A kept descriptor still reads a deleted file: an open (a live mount's) checks the path first,
    a read by path (a snapshot's) serves the snapshot's bytes from it."""
    image = tmp_path / "a.jpg"
    image.write_bytes(b"old!")
    tree = VirtualTree({"a.jpg": SourceBytes(ImageRef(str(image), 0, 4, file_stamp(image.stat())))})
    tree.release(tree.open("a.jpg"))
    image.unlink()
    image.write_bytes(b"new!")  # same size, another inode
    with pytest.raises(Unreadable, match="replaced or changed"):
        tree.open("a.jpg")
    snapshot_tree = VirtualTree({"a.jpg": SourceBytes(ImageRef(str(image), 0, 4, file_stamp(image.stat())))})
    assert snapshot_tree.read_path("a.jpg", 10, 0) == b"new!"
    image.unlink()
    assert snapshot_tree.read_path("a.jpg", 10, 0) == b"new!"  # the kept descriptor: the snapshot's version


def test_a_file_rewritten_in_place_under_a_kept_handle_is_eio(tmp_path: Path) -> None:
    """The same inode with new bytes at the old offsets would be another image: each read checks the stamp."""
    blob, refs = blob_of(tmp_path, {"a.jpg": b"AAAA", "b.jpg": b"BBBB"})
    tree = VirtualTree({name: SourceBytes(ref) for name, ref in refs.items()})
    assert tree.read_path("b.jpg", 4, 0) == b"BBBB"
    with open(blob, "r+b") as f:
        f.write(b"BBBBAAAA")
    with pytest.raises(Unreadable, match="changed in place"):
        tree.read_path("a.jpg", 4, 0)
    with pytest.raises(Unreadable, match="replaced or changed"):  # the dropped handle is not opened again
        tree.read_path("b.jpg", 4, 0)


def test_kept_handles_are_bounded_and_one_in_use_is_closed_by_its_last_user(tmp_path: Path) -> None:
    images = {}
    for i in range(5):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(b"%d" % i)
        images[f"{i}.jpg"] = ImageRef(str(path), 0, 1, file_stamp(path.stat()))
    store = RecordingStore()
    shared = SharedHandles(store, keep=2)
    held = shared.acquire(images["0.jpg"])
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        shared.release(shared.acquire(images[name]))
    assert store.calls.count("close") == 1  # 1.jpg: out of the table and unused; 0.jpg is still in use
    assert shared.read(held, images["0.jpg"], 1, 0) == b"0"
    shared.release(held)
    assert store.calls.count("close") == 2
    shared.close()
    assert store.calls.count("close") == 4
