"""A slow render does not stall other files; renders, reads and caches are bounded (limits
refused per item with a problem naming them; every cache within a byte budget)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.contract import Generated
from slyfs.formats.readers.supervisely import ProblemLog, SourceError, read_project
from slyfs.formats.readers.supervisely.annotation import MAX_LABELLED_PIXELS
from slyfs.formats.readers.supervisely.project import (
    ANNOTATION_CACHE_BYTES,
    MAX_ANN_BYTES,
    MAX_META_BYTES,
)
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree
from tests.conftest import REPO, slyfs

CLASSES = [{"title": "hall", "shape": "polygon", "color": "#00FF00"},
           {"title": "box", "shape": "rectangle", "color": "#FF0000"}]


def holed_square(width: int, height: int) -> dict:
    """A polygon over the whole image with a hole: COCO must rasterise it (an RLE), pixel by pixel."""
    return {"classTitle": "hall", "geometryType": "polygon", "tags": [],
            "points": {"exterior": [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]],
                       "interior": [[[10, 10], [20, 10], [20, 20]]]}}


def box(i: int) -> dict:
    return {"classTitle": "box", "geometryType": "rectangle", "tags": [],
            "points": {"exterior": [[i % 50, 1], [i % 50 + 5, 9]], "interior": []}}


def make_project(root: Path, anns: dict[str, dict | None]) -> Path:
    """A plain project: dataset ``ds``, an 8x8 PNG per item, ``ann/<item>.json`` unless None."""
    (root / "ds" / "img").mkdir(parents=True)
    (root / "ds" / "ann").mkdir()
    (root / "meta.json").write_text(json.dumps({"classes": CLASSES, "tags": []}))
    for name, ann in anns.items():
        Image.new("RGB", (8, 8)).save(root / "ds" / "img" / name)
        if ann is not None:
            (root / "ds" / "ann" / f"{name}.json").write_text(json.dumps(ann))
    return root


def annotation(width: int, height: int, objects: list[dict]) -> dict:
    return {"size": {"width": width, "height": height}, "objects": objects, "tags": []}


def timed(action: Callable[[], Any], out: dict[str, float], name: str) -> None:
    start = time.monotonic()
    action()
    out[name] = time.monotonic() - start
    out[name + " done"] = time.monotonic()


# ---------------------------------------------------------------- a slow render stalls nothing else


def test_a_slow_render_does_not_stall_a_stat_of_another_file(tmp_path: Path, mount) -> None:
    side = 11000  # within MAX_LABELLED_PIXELS: rendered, but each object's RLE takes seconds
    assert side * (side + 1000) <= MAX_LABELLED_PIXELS
    slow = annotation(side, side + 1000, [holed_square(side, side + 1000)] * 5)
    src = make_project(tmp_path / "src", {"a.png": slow})
    with mount(src, "--format", "coco,yolo", "--no-watch", "--no-index") as mnt:
        times: dict[str, float] = {}
        slow = threading.Thread(target=timed, args=(
            lambda: (mnt / "coco" / "annotations" / "instances_ds.json").read_bytes(), times, "render"))
        slow.start()
        time.sleep(0.5)  # the render is under way
        timed(lambda: ((mnt / "yolo" / "data.yaml").stat(), (mnt / "yolo" / "data.yaml").read_bytes()), times, "stat")
        slow.join()
    assert times["render"] >= 3, times  # the render is slow indeed...
    assert times["stat"] <= 1, times  # ...and the other file answered meanwhile
    assert times["stat done"] < times["render done"], times


def test_one_key_rendered_once_for_concurrent_readers() -> None:
    renders = []

    def render() -> bytes:
        renders.append(1)
        time.sleep(0.3)
        return b"x" * 10

    cache = RenderCache(max_bytes=5)  # smaller than the value: not kept, still shared by the waiting reader
    node = Generated(("slow",), render)
    results: list[bytes] = []
    readers = [threading.Thread(target=lambda: results.append(cache.get(node))) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert results == [b"x" * 10] * 4
    assert len(renders) == 1


def test_memo_is_bounded_in_bytes_and_shares_errors() -> None:
    memo: BoundedMemo[bytes] = BoundedMemo(100, len)
    for k in range(10):
        assert memo.get(k, lambda k=k: bytes(30)) == bytes(30)
    assert memo.current_bytes <= 100
    assert memo.get("big", lambda: bytes(101)) == bytes(101)
    assert memo.current_bytes <= 100

    def fail() -> bytes:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        memo.get("f", fail)
    assert memo.get("f", lambda: b"ok") == b"ok"  # a failure is not kept


# ---------------------------------------------------------------- limits, each a per-item problem


def project_problems(root: Path, view: str, path: str) -> tuple[bytes, list[str]]:
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(root), report=log), [view], ViewOptions()))
    return tree.read_file(path), [f"{p.item}: {p.message} -> {p.action}" for p in log.all()]


def test_declared_size_over_max_image_pixels_is_refused_quickly(tmp_path: Path) -> None:
    side = 23170
    src = make_project(tmp_path, {"a.png": annotation(side, side, [holed_square(side, side)]),
                                  "b.png": annotation(8, 8, [box(0)])})
    start = time.monotonic()
    data, problems = project_problems(src, "coco", "annotations/instances_ds.json")
    assert time.monotonic() - start < 3  # 11 s and more before
    coco = json.loads(data)
    by_name = {i["file_name"].rsplit("/", 1)[-1]: i["id"] for i in coco["images"]}
    assert [a["image_id"] for a in coco["annotations"]] == [by_name["b.png"]]  # a.png: no labels, b.png kept
    assert problems == [(f"a.png: image of {side}x{side} = {side * side} pixels is over the limit of "
                         f"{MAX_LABELLED_PIXELS} (MAX_LABELLED_PIXELS) -> served without labels")]


def test_object_count_over_max_objects_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("slyfs.formats.readers.supervisely.annotation.MAX_OBJECTS", 5)
    src = make_project(tmp_path, {"a.png": annotation(8, 8, [box(i) for i in range(6)]),
                                  "b.png": annotation(8, 8, [box(i) for i in range(5)])})
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(src), report=log), ["yolo"], ViewOptions()))
    assert tree.read_file("labels/ds/a.txt") == b""
    assert len(tree.read_file("labels/ds/b.txt").splitlines()) == 5
    assert [(p.item, p.message, p.action) for p in log.all()] == [
        ("a.png", "6 objects, over the limit of 5 (MAX_OBJECTS)", "served without labels")]


def test_annotation_over_max_ann_bytes_names_the_limit(tmp_path: Path) -> None:
    src = make_project(tmp_path, {"a.png": annotation(8, 8, [box(0)])})
    with open(src / "ds" / "ann" / "a.png.json", "r+b") as f:
        f.truncate(MAX_ANN_BYTES + 1)  # sparse
    data, problems = project_problems(src, "yolo", "labels/ds/a.txt")
    assert data == b""
    assert problems[0] == (f"a.png: annotation unreadable: file of {MAX_ANN_BYTES + 1} bytes is over the limit of "
                           f"{MAX_ANN_BYTES} (MAX_ANN_BYTES) -> served without labels")


def test_voc_jpeg_of_a_2gb_sparse_image_is_refused_not_read(tmp_path: Path) -> None:
    src = make_project(tmp_path, {"a.png": annotation(8, 8, [box(0)])})
    with open(src / "ds" / "img" / "a.png", "r+b") as f:
        f.truncate(2 << 30)
    tree = VirtualTree(build_view(read_project(str(src), report=ProblemLog()), ["voc"],
                                  ViewOptions(params={"voc.jpeg": "1"})))
    start = time.monotonic()
    with pytest.raises(Unreadable, match=rf"image of {2 << 30} bytes is over the limit of \d+ \(MAX_REENCODE_BYTES\)"):
        tree.read_file("JPEGImages/a.jpg")
    assert time.monotonic() - start < 1  # 6.7 s before, and 2 GB of memory
    assert b"<xmax>6</xmax>" in tree.read_file("Annotations/a.xml")  # the rest of the item is served


def run_child(code: str, *args: str, address_space: int | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a child (the installed slyfs), optionally with a bounded address space."""
    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300, check=False, cwd=REPO, preexec_fn=limit,
                          env=None)


def test_huge_meta_json_is_refused_before_reading(tmp_path: Path) -> None:
    src = make_project(tmp_path, {"a.png": None})
    with open(src / "meta.json", "r+b") as f:
        f.truncate(2 << 30)  # 2 GB, sparse
    with pytest.raises(SourceError, match=r"over the limit of \d+ \(MAX_META_BYTES\)"):
        read_project(str(src))
    r = slyfs("mount", str(src), str(tmp_path / "mnt"), check=False)  # refused in the CLI, before any mount
    assert r.returncode == 1 and "MAX_META_BYTES" in r.stderr, r.stderr
    assert MAX_META_BYTES < 2 << 30


# ---------------------------------------------------------------- check: bounded reads, its own failures


def test_check_of_a_2gb_sparse_image_reads_its_header_only(tmp_path: Path) -> None:
    src = make_project(tmp_path, {"a.png": None})
    with open(src / "ds" / "img" / "a.png", "r+b") as f:
        f.truncate(2 << 30)  # a PNG header, then 2 GB of zeros
    r = run_child("""
        import sys
        from slyfs.vfs.cli import main
        sys.exit(main(["check", sys.argv[1]]))
    """, str(src), address_space=1536 << 20)
    assert r.returncode == 1, r.stderr
    assert "MemoryError" not in r.stderr
    assert "PNG does not end with an IEND chunk (truncated?)" in r.stdout


def test_a_crash_of_check_is_exit_3_not_a_finding(tmp_path: Path, monkeypatch, capsys) -> None:
    from slyfs.vfs.cli import main

    def out_of_memory(*args: object) -> None:
        raise MemoryError()

    monkeypatch.setattr("slyfs.formats.readers.supervisely.check.probe_image", out_of_memory)
    src = make_project(tmp_path, {"a.png": annotation(8, 8, [box(0)])})
    assert main(["check", str(src)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "slyfs: check failed: MemoryError: \n"


# ---------------------------------------------------------------- caches within their budgets

MEASURE = """
    import gc, json, os, sys
    import slyfs.formats.readers.supervisely.project
    from slyfs.formats.registry import build_view
    from slyfs.formats.readers.supervisely import ProblemLog, read_project
    from slyfs.formats.view import ViewOptions
    from slyfs.vfs.tree import VirtualTree

    def rss() -> int:
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    slyfs.formats.readers.supervisely.project.ANNOTATION_CACHE_BYTES = int(sys.argv[3])
    tree = VirtualTree(build_view(read_project(sys.argv[1], report=ProblemLog()), [sys.argv[2]], ViewOptions()),
                       cache_bytes=16 << 20)
    paths = sys.argv[4:]
    before = rss()
    tree.read_file(paths[0])
    one = rss()
    for p in paths[1:]:
        tree.read_file(p)
    print(json.dumps({"first": one - before, "rest": rss() - one}))
"""


def rss_growth(src: Path, view: str, paths: list[str], annotation_budget: int = ANNOTATION_CACHE_BYTES
               ) -> dict[str, int]:
    """How much resident memory grows with the first of ``paths`` read, and then with the others."""
    r = run_child(MEASURE, str(src), view, str(annotation_budget), *paths)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_parsed_annotations_stay_within_their_budget(tmp_path: Path) -> None:
    """Five annotations of 90,000 objects (10 MB of JSON, ~20 MB parsed each) under a budget none
    fits in: before, every parse stayed in memory (the bound was an item count); now none is kept."""
    names = [f"{k}.png" for k in range(5)]
    src = make_project(tmp_path, {n: annotation(100, 100, [box(i) for i in range(90_000)]) for n in names})
    json_bytes = sum((src / "ds" / "ann" / f"{n}.json").stat().st_size for n in names[1:])
    growth = rss_growth(src, "yolo", [f"labels/ds/{n[:-4]}.txt" for n in names], annotation_budget=1 << 20)
    assert growth["rest"] < json_bytes, growth  # before: ~2 x their JSON, the four parses kept


def test_voc_masks_stay_within_their_budget(tmp_path: Path) -> None:
    """Five items of 6000x6000 px (72 MB of index images each, over MASK_CACHE_BYTES): none is kept."""
    side = 6000
    names = [f"{k}.png" for k in range(5)]
    whole = {"classTitle": "box", "geometryType": "rectangle", "tags": [],
             "points": {"exterior": [[0, 0], [side - 1, side - 1]], "interior": []}}
    src = make_project(tmp_path, {n: annotation(side, side, [whole]) for n in names})
    growth = rss_growth(src, "voc", [f"SegmentationClass/{n[:-4]}.png" for n in names])
    # before: the four other items' masks kept, 4 x 72 MB; now at most heap left unreturned by malloc
    assert growth["rest"] < 2 * (2 * side * side), growth
