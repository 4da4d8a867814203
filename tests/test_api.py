"""The Python API (vfs/api.py): every file of every view read through ``open_view`` is what a fresh
build's ``VirtualTree.read_file`` gives and what a real mount of the same view gives; byte ranges,
listings and attributes agree with the mount; errors are the mount's; a watching filesystem follows
an edit, a snapshot does not; closing stops the threads and saves the index; other processes and a
real reader read through it; the README's Dataset example runs."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import random
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from slyfs.formats.contract import UserError
from slyfs.formats.readers.supervisely import ProblemLog, SourceError, read_project
from slyfs.formats.readers.supervisely.index import index_path
from slyfs.formats.registry import FORMATS, UnknownFormat, build_view
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.vfs import ViewFileSystem, open_view
from slyfs.vfs.errors import TreeError
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, REPO, WAIT_SECONDS, eventually, mounted
from tests.helpers.hostile import ann, blob_project, offsets_pickle, plain_project, png, rect
from tests.helpers.mounts import mounts_fixture, require_fuse, sources_fixture
from tests.helpers.readers import require

sources = sources_fixture(seed=19)
mounts = mounts_fixture("all")
Outcome = bytes | int  # a file's bytes, or the errno reading it raised


@pytest.fixture(scope="module")
def views(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ViewFileSystem]]:
    """Every source's ``all`` view through the API (every format in its folder), name → filesystem."""
    cache = tmp_path_factory.mktemp("api-cache")
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(open_view(root, "all", watch=False, cache_dir=cache))
               for name, root in sources.items()}


def outcome(read: Callable[[], bytes]) -> Outcome:
    try:
        return read()
    except TreeError as e:
        return e.errno
    except OSError as e:
        assert e.errno is not None
        return e.errno


def ranges(size: int, rng: random.Random) -> list[tuple[int | None, int | None]]:
    """Slices of a file of ``size`` bytes: whole, empty, past the end, from the end, and random ones."""
    a, b = sorted(rng.randrange(size + 1) for _ in range(2))
    return [(None, None), (0, 1), (a, b), (b, a), (a, None), (None, b), (-7, None), (None, -3), (-size - 5, 2),
            (size, size + 10), (size // 2, size * 2)]


# ---------------------------------------------------------------- every file, without FUSE


def test_every_file_is_what_a_fresh_build_of_the_view_reads(views: dict[str, ViewFileSystem],
                                                           sources: dict[str, Path]) -> None:
    for name, fs in views.items():
        tree = VirtualTree(build_view(read_project(str(sources[name]), report=ProblemLog()), list(FORMATS),
                                      ViewOptions()))
        files = tree.walk_files()
        assert len(files) > 500 and fs.find("") == files, name
        for path in files:
            expected = outcome(lambda p=path, t=tree: t.read_file(p))
            assert outcome(lambda p=path, v=fs: v.cat_file(p)) == expected, (name, path)
            assert outcome(lambda p=path, v=fs: v.open(p).read()) == expected, (name, path)
            if isinstance(expected, bytes):
                assert fs.info(path)["size"] == len(expected) and fs.size(path) == len(expected), (name, path)


@pytest.mark.parametrize("name", ["fixture-blob", "sample-plain"])
def test_range_reads_and_seeks_agree_with_the_whole_file(views: dict[str, ViewFileSystem], name: str) -> None:
    fs, rng = views[name], random.Random(name)
    for path in fs.find(""):
        whole = fs.cat_file(path)
        for start, end in ranges(len(whole), rng):
            assert fs.cat_file(path, start, end) == whole[start:end], (path, start, end)
        with fs.open(path, block_size=64) as f:  # small blocks: reads cross the read-ahead's edges
            assert f.seekable() and not f.writable() and f.size == len(whole)
            a, b = sorted(rng.randrange(len(whole) + 1) for _ in range(2))
            f.seek(a)
            assert f.read(b - a) == whole[a:b] and f.tell() == b
            f.seek(-min(5, len(whole)), os.SEEK_END)
            assert f.read() == whole[-5:] and f.read(3) == b""
            f.seek(0)
            assert f.read() == whole


def test_listings_and_attributes_are_the_tree_s(views: dict[str, ViewFileSystem]) -> None:
    fs = views["fixture-plain"]
    assert fs.ls("", detail=False) == sorted(FORMATS) == fs.ls("/", detail=False) == fs.ls("slyfs://", detail=False)
    root = fs.info("")
    assert root["type"] == "directory" and fs.isdir("") and fs.isdir("coco/annotations")
    walked = {folder: (dirs, files) for folder, dirs, files in fs.walk("coco")}
    assert walked["coco"] == (["annotations", "images"], [])
    found = fs.find("coco", withdirs=True, detail=True)
    files = fs.find("coco")
    ancestors = {"/".join(f.split("/")[:n]) for f in files for n in range(1, f.count("/") + 1)}
    assert {p for p, info in found.items() if info["type"] == "directory"} == ancestors
    assert {p for p, info in found.items() if info["type"] == "file"} == set(files)
    a_file = fs.find("coco/annotations")[0]
    assert fs.ls(a_file) == [fs.info(a_file)] and fs.isfile(a_file) and not fs.isdir(a_file)
    assert fs.glob("coco/annotations/instances_*.json") == [p for p in fs.find("coco/annotations")
                                                            if "/instances_" in p]
    assert fs.modified(a_file).timestamp() == pytest.approx(fs.info(a_file)["mtime"], abs=1e-6)  # datetime: µs


# ---------------------------------------------------------------- against a real mount


def mount_walk(mnt: Path) -> tuple[list[str], list[str]]:
    """(folders, files) below ``mnt``, relative, sorted."""
    folders, files = [], []
    for dirpath, dirs, names in os.walk(mnt):
        rel = os.path.relpath(dirpath, mnt)
        folders += [os.path.normpath(os.path.join(rel, d)) for d in dirs]
        files += [os.path.normpath(os.path.join(rel, n)) for n in names]
    return sorted(folders), sorted(files)


def read_mounted(path: Path) -> Outcome:
    return outcome(path.read_bytes)


def test_the_api_returns_the_same_bytes_as_the_mount_for_every_file_of_a_view(
        views: dict[str, ViewFileSystem], mounts: dict[str, Path]) -> None:
    """Every view (``all``: every format in its folder) of the four sources: the same folders and
    files, each file's bytes, size and mode, each folder's listing, and byte ranges by pread."""
    for name, mnt in mounts.items():
        fs, rng = views[name], random.Random(name)
        folders, files = mount_walk(mnt)
        assert len(files) > 500 and fs.find("") == files, name
        assert sorted(p for p in fs.find("", withdirs=True) if fs.isdir(p)) == folders, name
        for folder in ["", *folders]:
            assert [p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)] == sorted(os.listdir(mnt / folder))
            st, info = os.stat(mnt / folder), fs.info(folder)
            assert info["type"] == "directory" and info["mode"] == st.st_mode and info["size"] == st.st_size
        for path in files:
            data = read_mounted(mnt / path)
            assert outcome(lambda p=path, v=fs: v.cat_file(p)) == data, (name, path)
            st, info = os.stat(mnt / path), fs.info(path)
            assert (info["type"], info["size"], info["mode"], info["uid"], info["gid"]) == \
                   ("file", st.st_size, st.st_mode, st.st_uid, st.st_gid), (name, path)
            if isinstance(data, bytes) and data:
                a, b = sorted(rng.randrange(len(data) + 1) for _ in range(2))
                fd = os.open(mnt / path, os.O_RDONLY)
                try:
                    assert os.pread(fd, b - a, a) == fs.cat_file(path, a, b) == data[a:b], (name, path)
                finally:
                    os.close(fd)


@pytest.mark.parametrize("source", [PLAIN, BLOB], ids=["plain", "blob"])
def test_view_options_give_the_mount_s_files(source: Path, tmp_path: Path) -> None:
    """The options as the CLI takes them and as the API takes them make the same files."""
    require_fuse()
    cli = ("--split", "tags", "--no-empty", "--classes", "car,road,pin", "--opt", "imagenet.layout=txt")
    with mounted(source, "--format", "coco,yolo,imagenet", *cli) as mnt, \
            open_view(source, ["coco", "yolo", "imagenet"], split="tags", include_empty=False, classes="car,road,pin",
                      opt={"imagenet.layout": "txt"}, watch=False, cache_dir=tmp_path) as fs:
        _, files = mount_walk(mnt)
        assert files and fs.find("") == files
        for path in files:
            assert fs.cat_file(path) == read_mounted(mnt / path), path


# ---------------------------------------------------------------- errors


@pytest.fixture
def fixture_view(tmp_path: Path) -> Iterator[ViewFileSystem]:
    with open_view(BLOB, "yolo", watch=False, cache_dir=tmp_path / "cache") as fs:
        yield fs


def test_a_missing_path_is_file_not_found(fixture_view: ViewFileSystem) -> None:
    fs = fixture_view
    for call in (fs.info, fs.open, fs.cat_file, fs.ls):
        with pytest.raises(FileNotFoundError) as e:
            call("images/no-such-split/x.jpg")
        assert e.value.errno == errno.ENOENT and e.value.filename == "images/no-such-split/x.jpg"
    assert not fs.exists("nope") and not fs.isdir("nope") and not fs.isfile("nope")
    assert fs.find("nope") == [] and list(fs.walk("nope")) == []


def test_a_folder_is_not_a_file(fixture_view: ViewFileSystem) -> None:
    for call in (fixture_view.open, fixture_view.cat_file):
        with pytest.raises(IsADirectoryError) as e:
            call("images")
        assert e.value.errno == errno.EISDIR


def test_every_write_is_refused_as_a_read_only_file_system(fixture_view: ViewFileSystem, tmp_path: Path) -> None:
    fs = fixture_view
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    before = fs.cat_file("data.yaml")
    writes: list[Callable[[], Any]] = [
        lambda: fs.open("data.yaml", "wb"), lambda: fs.open("data.yaml", "ab"), lambda: fs.open("new.txt", "w"),
        lambda: fs.open("data.yaml", "r+b"), lambda: fs.mkdir("new"), lambda: fs.makedirs("a/b"),
        lambda: fs.rm("data.yaml"), lambda: fs.rm("images", recursive=True), lambda: fs.rm_file("data.yaml"),
        lambda: fs.rmdir("images"), lambda: fs.touch("data.yaml"), lambda: fs.pipe_file("data.yaml", b"x"),
        lambda: fs.pipe({"x": b"x"}), lambda: fs.write_bytes("data.yaml", b"x"), lambda: fs.write_text("x", "x"),
        lambda: fs.put_file(str(outside), "x"), lambda: fs.put(str(outside), "x"),
        lambda: fs.mv("data.yaml", "moved.yaml"), lambda: fs.rename("data.yaml", "moved.yaml"),
        lambda: fs.cp_file("data.yaml", "copy.yaml"), lambda: fs.copy("data.yaml", "copy.yaml"),
    ]
    for write in writes:
        with pytest.raises(PermissionError) as e:
            write()
        assert e.value.errno == errno.EROFS
    assert fs.cat_file("data.yaml") == before and fs.ls("", detail=False) == ["data.yaml", "images", "labels"]


def test_an_image_the_source_cannot_give_is_eio_and_the_rest_still_reads(tmp_path: Path) -> None:
    """As through the mount: b.png's offsets run past the end of its tar."""
    images = {"a.png": png(12, 12), "b.png": png(14, 14)}
    root, entries = blob_project(tmp_path / "src", images, {n: ann(rect(1, 1, 5, 5)) for n in images})
    tar_size = (root / "blob" / "1001.tar").stat().st_size
    (root / "ds" / "1001_offsets.pkl").write_bytes(
        offsets_pickle([entries[0], (entries[1][0], entries[1][1], tar_size + 1)]))
    with open_view(root, "yolo", watch=False, cache_dir=tmp_path / "cache") as fs:
        assert fs.find("images/ds") == ["images/ds/a.png", "images/ds/b.png"]
        for read in (lambda: fs.cat_file("images/ds/b.png"), lambda: fs.open("images/ds/b.png").read(),
                     lambda: fs.cat_file("images/ds/b.png", 0, 10)):
            with pytest.raises(OSError) as e:
                read()
            assert e.value.errno == errno.EIO and e.value.filename == "images/ds/b.png"
        assert fs.cat_file("images/ds/a.png") == images["a.png"]
        fresh = VirtualTree(build_view(read_project(str(root), report=ProblemLog()), ["yolo"], ViewOptions()))
        assert fs.cat_file("labels/ds/a.txt") == fresh.read_file("labels/ds/a.txt") != b""


def test_a_generated_file_that_cannot_be_made_is_eio_and_listed_without_a_size(tmp_path: Path) -> None:
    """a.png has neither a readable image nor a size in its annotation: its VOC masks cannot be drawn.
    As through the mount: stat and read give EIO, the folder still lists it, b.png's masks read."""
    require_fuse()
    root = plain_project(tmp_path / "src", {"a.png": {"tags": [], "objects": [rect(1, 1, 5, 5)]},
                                            "b.png": ann(rect(1, 1, 5, 5))},
                         images={"a.png": b"not an image", "b.png": png()})
    fresh = VirtualTree(build_view(read_project(str(root), report=ProblemLog()), ["voc"], ViewOptions()))
    with open_view(root, "voc", watch=False, cache_dir=tmp_path / "cache") as fs, \
            mounted(root, "--format", "voc") as mnt:
        listed = {entry["name"]: entry["size"] for entry in fs.ls("SegmentationClass")}
        assert listed == {"SegmentationClass/a.png": None,
                          "SegmentationClass/b.png": len(fresh.read_file("SegmentationClass/b.png"))}
        assert sorted(os.listdir(mnt / "SegmentationClass")) == ["a.png", "b.png"]
        for call in (fs.info, fs.cat_file, fs.open):
            with pytest.raises(OSError) as e:
                call("SegmentationClass/a.png")
            assert e.value.errno == errno.EIO
        with pytest.raises(OSError) as e:
            os.stat(mnt / "SegmentationClass" / "a.png")
        assert e.value.errno == errno.EIO
        assert fs.cat_file("SegmentationClass/b.png") == (mnt / "SegmentationClass" / "b.png").read_bytes()


def test_a_source_or_option_that_cannot_be_served_is_refused_before_anything_starts(tmp_path: Path) -> None:
    refused: list[tuple[type[UserError], Callable[[], Any]]] = [
        (SourceError, lambda: open_view(tmp_path / "missing")),
        (UnknownFormat, lambda: open_view(PLAIN, "yolo,nope")),
        (OptionError, lambda: open_view(PLAIN, classes=["car", "no-such-class"])),
        (OptionError, lambda: open_view(PLAIN, split="ratio:2")),
        (OptionError, lambda: open_view(PLAIN, "voc", opt={"voc.nope": "1"})),
        (OptionError, lambda: open_view(PLAIN, "voc", opt={"voc.jpeg": "maybe"})),
    ]
    threads = set(threading.enumerate())
    for error, call in refused:
        with pytest.raises(error):
            call()
    assert set(threading.enumerate()) <= threads


def test_a_closed_view_refuses_every_call(tmp_path: Path) -> None:
    fs = open_view(PLAIN, "yolo", cache_dir=tmp_path)
    f = fs.open("data.yaml")
    fs.close()
    fs.close()  # twice is harmless
    for call in (lambda: fs.ls(""), lambda: fs.info("data.yaml"), lambda: fs.cat_file("data.yaml"),
                 lambda: fs.open("data.yaml")):
        with pytest.raises(ValueError, match="closed"):
            call()
    with pytest.raises(OSError) as e:  # its handles were released by the close
        f.read()
    assert e.value.errno == errno.EBADF


# ---------------------------------------------------------------- live, snapshot, closing


def label_of_a_boxed_item(src: Path, fs: ViewFileSystem) -> tuple[Path, str]:
    """(annotation file, its YOLO label path) of a top-level item with a rectangle."""
    for ann_file in sorted(src.glob("*/ann/*.json")):
        label = f"labels/{ann_file.parent.parent.name}/{ann_file.name[:-5].rsplit('.', 1)[0]}.txt"
        if any(o["geometryType"] == "rectangle" for o in json.loads(ann_file.read_text())["objects"]) \
                and fs.exists(label):
            return ann_file, label
    raise AssertionError("the fixture has no top-level item with a rectangle")


def test_a_watching_view_follows_edits_and_a_snapshot_does_not(blob_copy: Path, tmp_path: Path) -> None:
    with open_view(blob_copy, "yolo", cache_dir=tmp_path / "a") as live, \
            open_view(blob_copy, "yolo", watch=False, cache_dir=tmp_path / "b") as snapshot:
        ann_file, label = label_of_a_boxed_item(blob_copy, live)
        before, listing = live.cat_file(label), live.find("")
        assert snapshot.cat_file(label) == before and snapshot.find("") == listing
        held = live.open(label, cache_type="none")  # every read goes to the handle: the version it opened
        data = json.loads(ann_file.read_text())
        data["objects"] = [next(o for o in data["objects"] if o["geometryType"] == "rectangle")] * 3
        ann_file.write_text(json.dumps(data))
        plain_dataset = next(p for p in sorted(blob_copy.glob("*/img")) if any(p.iterdir())).parent
        image = next(p for p in sorted((plain_dataset / "img").iterdir()))
        shutil.copyfile(image, image.with_name("added_" + image.name))
        assert eventually(lambda: live.cat_file(label) != before and len(live.find("")) > len(listing),
                          WAIT_SECONDS)
        assert len(live.cat_file(label).decode().splitlines()) == 3
        assert held.read() == before
        held.close()
        assert snapshot.cat_file(label) == before and snapshot.find("") == listing


def slyfs_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("slyfs-")}


def test_closing_stops_the_threads_and_saves_the_index(blob_copy: Path, tmp_path: Path) -> None:
    before = slyfs_threads()
    fs = open_view(blob_copy, "coco", cache_dir=tmp_path)
    started = slyfs_threads() - before
    assert any(t.name == "slyfs-watcher" for t in started)
    with fs:
        assert fs.find("")
    assert not any(t.is_alive() for t in started)
    index = index_path(tmp_path, str(blob_copy))
    offsets_files = sorted(blob_copy.rglob("*_offsets.pkl"))
    assert offsets_files
    with contextlib.closing(sqlite3.connect(index)) as db:
        saved = sorted(Path(p) for (p,) in db.execute("SELECT path FROM offsets"))
    assert saved == offsets_files  # as an unmount leaves it: the next opening reads no offsets file


# ---------------------------------------------------------------- other processes, real readers


def test_a_forked_child_and_an_unpickled_copy_read_the_same_bytes(fixture_view: ViewFileSystem) -> None:
    fs = fixture_view
    files = fs.find("")
    expected = {p: fs.cat_file(p) for p in files}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reads every file through its copy of the filesystem
        code = 1
        try:
            with os.fdopen(write_end, "wb") as out:
                pickle.dump({p: fs.cat_file(p) for p in fs.find("")}, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as got:
        child = pickle.load(got)
    assert os.waitpid(pid, 0)[1] == 0
    assert child == expected
    assert {p: fs.cat_file(p) for p in files} == expected  # the parent's view is untouched by the child
    with pickle.loads(pickle.dumps(fs)) as copy:
        assert copy is not fs and copy.find("") == files and {p: copy.cat_file(p) for p in files} == expected


def test_pycocotools_reads_the_view_through_file_objects(views: dict[str, ViewFileSystem]) -> None:
    from pycocotools.coco import COCO

    for name in ("fixture-plain", "fixture-blob"):
        fs = views[name]
        for path in fs.glob("coco/annotations/instances_*.json"):
            split = re.fullmatch(r"coco/annotations/instances_(.+)\.json", path)
            assert split is not None
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO()
                with fs.open(path, "r", encoding="utf-8") as f:
                    coco.dataset = json.load(f)
                coco.createIndex()
            assert sorted(f"coco/images/{split[1]}/{img['file_name']}" for img in coco.imgs.values()) == \
                   fs.find(f"coco/images/{split[1]}")
            for img in coco.imgs.values():
                with fs.open(f"coco/images/{split[1]}/{img['file_name']}") as f:
                    assert Image.open(f).size == (img["width"], img["height"])


def readme_example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in the README."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"no example {name!r} in the README"
    return found.group(1)


def test_the_readme_dataset_example_runs(fixture_view: ViewFileSystem) -> None:
    scope: dict[str, Any] = {}
    exec(readme_example("dataset"), scope)
    fs = fixture_view
    dataset = scope["ViewImages"](fs)
    images = fs.find("images/train")
    assert len(dataset) == len(images) > 0
    for i, path in enumerate(images):
        rgb, lines = dataset[i]
        label = "labels" + path[len("images"):].rsplit(".", 1)[0] + ".txt"
        assert rgb.mode == "RGB" and rgb.size == Image.open(io.BytesIO(fs.cat_file(path))).size
        assert lines == (fs.cat_file(label).decode().splitlines() if fs.exists(label) else [])


def test_the_readme_dataloader_example_runs_with_worker_processes(fixture_view: ViewFileSystem) -> None:
    require("torch")
    scope: dict[str, Any] = {"fs": fixture_view}
    exec(readme_example("dataset"), scope)
    loop = readme_example("dataloader").replace("    ...", "    batches.append((images, boxes))")
    scope["batches"] = batches = []
    exec(loop, scope)
    dataset = scope["ViewImages"](fixture_view)
    assert sum(len(boxes) for _, boxes in batches) == len(dataset)
    assert all(tuple(images.shape[1:]) == (64, 64, 3) for images, _ in batches)
    assert sorted(int(n) for _, boxes in batches for n in boxes) == sorted(len(dataset[i][1])
                                                                          for i in range(len(dataset)))
