"""Streamed renders and the disk tier of the render cache: a streamed COCO file holds the bytes
``json.dumps`` of the whole document writes; a large render is a file under ``render/`` that a
second tree (or mount) over the same cache folder serves without rendering; the folder keeps to
its size; a damaged entry is rendered again, never served."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slyfs.formats.common.text import JsonArraySpool, json_bytes, json_object_chunks
from slyfs.formats.contract import Generated, streamed
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import coco
from slyfs.vfs import cache
from slyfs.vfs.cache import DiskRenders, stable_text
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN
from tests.helpers.hostile import ann, plain_project, rect
from tests.helpers.views import view_files

# ---------------------------------------------------------------- streamed == json.dumps of the document

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


def _streamed(fields: list[tuple[str, object]]) -> bytes:
    """The fields written with json_object_chunks, every list value spooled element by element."""
    spooled: list[tuple[str, object]] = []
    for name, value in fields:
        if isinstance(value, list):
            spool = JsonArraySpool()
            for element in value:
                spool.append(element)
            spooled.append((name, spool))
        else:
            spooled.append((name, value))
    return b"".join(json_object_chunks(spooled))


@given(st.lists(st.tuples(st.text(), json_values), max_size=5, unique_by=lambda kv: kv[0]))
def test_spooled_object_is_the_bytes_json_bytes_writes(fields: list[tuple[str, object]]) -> None:
    assert _streamed(fields) == json_bytes(dict(fields))


def test_a_spool_larger_than_memory_reads_back_whole() -> None:
    elements = [{"id": i, "name": f"ü\u2028\"{i}\"\x00", "area": i / 7} for i in range(40_000)]  # ~2.6 MB
    fields = [("info", {"a": 1}), ("images", elements), ("empty", []), ("tail", "end")]
    assert _streamed(fields) == json_bytes(dict(fields))


def hostile_coco_project(root: Path) -> Path:
    """Odd text everywhere COCO writes text: class titles, image names, tag names and values
    (quotes, controls, U+2028, non-BMP), and scores and crowd flags that parse or do not."""
    classes = ("car", 'qu"ote\\', "\u2028sep\x7f", "emoji😀")
    odd_tags = [{"name": "score", "value": "nan"}, {"name": "iscrowd", "value": "maybe"},
                {"name": "note\n", "value": 'a"b\u2028c\x01'}, {"name": "big", "value": 1e308}]
    items = {}
    for i, title in enumerate(classes):
        obj = rect(1, 1, 5 + i, 6, cls=title)
        obj["tags"] = odd_tags[i:] + [{"name": "score", "value": f"{0.1 * i}"}]
        items[f"{title}\u00e9 {i}.png"] = ann(obj, rect(0, 0, 9, 9, cls="car"), rect(20, 20, 30, 30))
    return plain_project(root, items, classes=classes)


@pytest.mark.parametrize("source", ["plain", "blob", "hostile"])
def test_coco_split_files_stream_the_bytes_of_the_whole_document(tmp_path: Path, source: str) -> None:
    root = {"plain": PLAIN, "blob": BLOB}.get(source) or hostile_coco_project(tmp_path / "p")
    files = view_files(["coco"], read_project(str(root), report=ProblemLog()), ViewOptions())
    split_files = {p: n for p, n in files.items() if p.startswith("annotations/")}
    assert split_files
    for path, node in split_files.items():
        assert isinstance(node, Generated) and node.stream is not None, path
        pieces = list(node.stream())
        data = b"".join(pieces)
        assert len(pieces) > 1, path  # made a piece at a time
        assert data == json_bytes(json.loads(data)), path  # what json.dumps of the whole document writes
        assert data == node.render()


# ---------------------------------------------------------------- the disk tier


class Counted:
    """A streamed render that counts its runs."""

    def __init__(self, data: bytes, pieces: int = 8) -> None:
        self.data, self.pieces, self.runs = data, pieces, 0

    def __call__(self) -> list[bytes]:
        self.runs += 1
        step = -(-len(self.data) // self.pieces)
        return [self.data[i:i + step] for i in range(0, len(self.data), step)]


BIG = bytes(range(256)) * 64  # 16 KiB


def disk(folder: Path, max_bytes: int = 1 << 20) -> DiskRenders:
    return DiskRenders(folder, max_bytes=max_bytes, min_bytes=4096, version="test")


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.render"))


def read_through_handle(tree: VirtualTree, path: str) -> bytes:
    fh = tree.open(path)
    try:
        out, offset = b"", 0
        while piece := tree.read(fh, 3000, offset):
            out, offset = out + piece, offset + len(piece)
        return out
    finally:
        tree.release(fh)


def test_a_large_render_is_a_disk_file_a_second_tree_serves_without_rendering(tmp_path: Path) -> None:
    big, small = Counted(BIG), Counted(b"small")
    nodes = {"big.json": streamed(("big", 1), big), "small.txt": streamed(("small", 1), small)}
    first = VirtualTree(nodes, disk=disk(tmp_path))
    assert first.attr("big.json").size == len(BIG)
    assert read_through_handle(first, "big.json") == BIG and first.read_file("small.txt") == b"small"
    [entry] = entries(tmp_path)  # the small file stays in memory
    assert big.runs == 1

    second = VirtualTree(nodes, disk=disk(tmp_path))
    assert second.attr("big.json").size == len(BIG)
    assert read_through_handle(second, "big.json") == BIG and second.read_file("big.json") == BIG
    assert big.runs == 1 and entries(tmp_path) == [entry]
    assert second.read_file("small.txt") == b"small" and small.runs == 2  # memory is each tree's own


def test_another_code_version_or_key_never_finds_the_entry(tmp_path: Path) -> None:
    render = Counted(BIG)
    VirtualTree({"f": streamed(("k", 1), render)}, disk=disk(tmp_path)).read_file("f")
    other = DiskRenders(tmp_path, min_bytes=4096, version="next")
    VirtualTree({"f": streamed(("k", 1), render)}, disk=other).read_file("f")
    VirtualTree({"f": streamed(("k", 2), render)}, disk=disk(tmp_path)).read_file("f")
    assert render.runs == 3 and len(entries(tmp_path)) == 3


def test_readers_at_once_wait_for_one_render(tmp_path: Path) -> None:
    gate = threading.Event()
    runs = []

    def slow() -> list[bytes]:
        runs.append(1)
        gate.wait(5)
        return [BIG]

    tree = VirtualTree({"f": streamed(("slow",), slow)}, disk=disk(tmp_path))
    results: list[bytes] = []
    readers = [threading.Thread(target=lambda: results.append(read_through_handle(tree, "f"))) for _ in range(4)]
    for t in readers:
        t.start()
    gate.set()
    for t in readers:
        t.join(10)
    assert results == [BIG] * 4 and len(runs) == 1


def test_eviction_keeps_the_folder_within_its_size_least_recently_used_first(tmp_path: Path) -> None:
    store = disk(tmp_path, max_bytes=3 * (len(BIG) + 100))
    renders = {i: Counted(BIG[i:] + BIG[:i]) for i in range(7)}
    nodes = {f"f{i}": streamed(("f", i), r) for i, r in renders.items()}
    tree = VirtualTree(nodes, disk=store)
    for i in range(6):
        tree.read_file(f"f{i}")
        assert sum(p.stat().st_size for p in entries(tmp_path)) <= store.max_bytes
    assert len(entries(tmp_path)) == 3
    tree.release(tree.open("f3"))  # an open makes f3 the most recently used: f4 goes next
    tree.read_file("f6")
    fresh = VirtualTree(nodes, disk=store)
    for i in (3, 5, 6):
        assert fresh.read_file(f"f{i}") == renders[i].data and renders[i].runs == 1
    assert fresh.read_file("f4") == renders[4].data and renders[4].runs == 2


def test_an_open_handle_reads_on_after_its_entry_is_evicted(tmp_path: Path) -> None:
    render = Counted(BIG)
    tree = VirtualTree({"f": streamed(("f",), render)}, disk=disk(tmp_path))
    fh = tree.open("f")
    for path in entries(tmp_path):
        path.unlink()
    assert tree.read(fh, len(BIG), 0) == BIG
    tree.release(fh)
    assert read_through_handle(tree, "f") == BIG and render.runs == 2  # gone: rendered again
    assert len(entries(tmp_path)) == 1


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no trailer", "empty", "grown"])
def test_a_damaged_entry_is_rendered_again_never_served(tmp_path: Path, damage: str) -> None:
    render = Counted(BIG)
    VirtualTree({"f": streamed(("f",), render)}, disk=disk(tmp_path)).read_file("f")
    [entry] = entries(tmp_path)
    data = entry.read_bytes()
    damaged = {"truncated": data[:-1000], "flipped byte": data[:100] + bytes([data[100] ^ 1]) + data[101:],
               "no trailer": data[:len(BIG)], "empty": b"", "grown": data + b"\0"}[damage]
    entry.write_bytes(damaged)
    again = VirtualTree({"f": streamed(("f",), render)}, disk=disk(tmp_path))
    assert again.attr("f").size == len(BIG)
    assert read_through_handle(again, "f") == BIG and render.runs == 2
    assert entry.read_bytes() == data  # written again whole


def test_an_entry_cut_short_while_open_gives_eio_not_short_bytes(tmp_path: Path) -> None:
    render = Counted(BIG)
    tree = VirtualTree({"f": streamed(("f",), render)}, disk=disk(tmp_path))
    fh = tree.open("f")
    [entry] = entries(tmp_path)
    os.truncate(entry, 100)
    with pytest.raises(Unreadable):
        tree.read(fh, 4096, 8192)
    tree.release(fh)
    assert tree.read_file("f") == BIG and render.runs == 2


def test_a_full_disk_keeps_the_render_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache, "write_all", full)
    render = Counted(BIG)
    assert VirtualTree({"f": streamed(("f",), render)}, disk=disk(tmp_path)).read_file("f") == BIG
    assert render.runs == 2 and not list(tmp_path.iterdir())  # no entry, no temporary file


def test_an_error_of_the_render_itself_passes_through_and_leaves_nothing(tmp_path: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield BIG
        raise OSError(errno.EIO, "source went away")

    tree = VirtualTree({"f": streamed(("f",), failing)}, disk=disk(tmp_path))
    with pytest.raises(OSError, match="source went away"):
        tree.read_file("f")
    assert not list(tmp_path.iterdir())


def test_temporary_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "abc.99999999.tmp"  # above any pid_max: no such process
    mine = tmp_path / f"def.{os.getpid()}.tmp"
    dead.write_bytes(b"x")
    mine.write_bytes(b"x")
    disk(tmp_path)
    assert not dead.exists() and mine.exists()


def test_keys_have_the_same_text_in_every_process() -> None:
    key = ("k", frozenset({"a", "b", "c", "d"}), b"\x00\xff", 1.5, None, (True, ("x",)), coco.ObjectTags({}, 1.0))
    script = "import sys; from slyfs.vfs.cache import stable_text; " \
             "from slyfs.formats.writers import coco; print(stable_text(eval(sys.argv[1])))"
    texts = {subprocess.run([sys.executable, "-c", script, repr(key).replace("ObjectTags", "coco.ObjectTags")],
                            env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                            check=True).stdout.strip() for seed in ("1", "2", "3")}
    assert texts == {stable_text(key)}


def test_a_key_without_stable_text_stays_in_memory(tmp_path: Path) -> None:
    render = Counted(BIG)
    tree = VirtualTree({"f": streamed(("f", object()), render)}, disk=disk(tmp_path))
    assert tree.read_file("f") == BIG and not entries(tmp_path)


def test_coco_file_of_a_remount_is_served_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = []
    instances = coco.SplitFiles.instances

    def counted(self: coco.SplitFiles) -> object:
        runs.append(self.split)
        return instances(self)

    monkeypatch.setattr(coco.SplitFiles, "instances", counted)

    def tree() -> VirtualTree:
        view = build_view(read_project(str(BLOB), report=ProblemLog()), ["coco"], ViewOptions())
        return VirtualTree(view, disk=DiskRenders(tmp_path, min_bytes=100, version="test"))

    first = tree()
    paths = [p for p in first.walk_files() if p.startswith("annotations/instances_")]
    served = {p: first.read_file(p) for p in paths}
    assert len(runs) == len(paths) and len(entries(tmp_path)) == len(paths)
    second = tree()
    assert {p: read_through_handle(second, p) for p in paths} == served
    assert len(runs) == len(paths)  # nothing rendered again


def test_an_edit_renders_again_only_its_split_file(blob_copy: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []
    instances = coco.SplitFiles.instances

    def counted(self: coco.SplitFiles) -> object:
        runs.append(self.split)
        return instances(self)

    monkeypatch.setattr(coco.SplitFiles, "instances", counted)
    reader = SuperviselySource(str(blob_copy), SourceIndex(None))
    tree = VirtualTree(build_view(reader.scan(), ["coco"], ViewOptions()),
                       disk=DiskRenders(tmp_path / "render", min_bytes=100, version="test"))
    paths = ["annotations/instances_train.json", "annotations/instances_val.json"]
    before = {p: tree.read_file(p) for p in paths}
    edited = blob_copy / "val" / "ann" / "val_001.jpg.json"
    edited.write_text(json.dumps(json.loads(edited.read_text()), indent=2))  # a new version, same labels
    project, change = reader.update([str(edited)])
    tree.replace(tree.view.updated(project, change), change)
    assert {p: read_through_handle(tree, p) for p in paths} == before
    assert sorted(runs) == ["train", "val", "val"]


def test_mounted_coco_files_are_disk_entries_a_remount_serves_unrendered(tmp_path: Path, mount) -> None:
    expected_tree = VirtualTree(build_view(read_project(str(BLOB), report=ProblemLog()), ["coco"], ViewOptions()))
    expected = {p: expected_tree.read_file(p) for p in expected_tree.walk_files() if p.startswith("annotations/")}
    assert expected and all(len(data) > 256 for data in expected.values())
    cache = tmp_path / "cache"
    options = ("--format", "coco", "--cache-dir", str(cache), "--disk-cache-threshold", "256", "--no-watch")
    with mount(BLOB, *options) as mnt:
        assert {p: (mnt / p).read_bytes() for p in expected} == expected
    stored = {p: p.stat().st_ino for p in entries(cache / "render")}
    assert len(stored) == len(expected)
    with mount(BLOB, *options) as mnt:
        assert {p: (mnt / p).read_bytes() for p in expected} == expected
    assert {p: p.stat().st_ino for p in entries(cache / "render")} == stored  # served, not written again
