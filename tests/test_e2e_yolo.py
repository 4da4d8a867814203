"""End to end, for real: mount the SDK projects as YOLO, read through the kernel, train-load."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely.project import read_project
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.fuse_ops import SlyfsOperations
from tests.conftest import BLOB, PLAIN, read_tree
from tests.helpers.hostile import plain_project
from tests.helpers.readers import require, ultralytics_load
from tests.test_yolo import EXPECTED_NAMES, expected_box, source_anns


def source_image(root: Path, ds: str, item: str) -> bytes:
    """The image bytes as the plain project holds them (the blob's must be the same)."""
    return (PLAIN / ds.replace("/", "/datasets/") / "img" / item).read_bytes()


def expected_instances(root: Path) -> int:
    return sum(expected_box(o) is not None for a in source_anns(root).values() for o in a["objects"])


@pytest.mark.parametrize("root", [BLOB, PLAIN], ids=["blob", "plain"])
def test_mount_read_everything_and_load_with_ultralytics(root: Path, mount) -> None:
    with mount(root, "--format", "yolo") as mnt:
        files = read_tree(mnt)
        assert len([f for f in files if f.startswith("images/")]) == 12
        for (ds, item) in source_anns(root):
            split, name = EXPECTED_NAMES.get((ds, item), (ds.split("/")[0], item))
            assert files[f"images/{split}/{name}"] == source_image(root, ds, item), (ds, item)
            assert os.stat(mnt / "images" / split / name).st_size == len(files[f"images/{split}/{name}"])
        for path, data in files.items():  # st_size is exact for generated files too
            assert os.stat(mnt / path).st_size == len(data)

        require("ultralytics")
        instances = 0
        for split in ("train", "val"):
            result = ultralytics_load(mnt / "data.yaml", split, task="detect")
            assert result.error is None
            assert result.corrupt == 0 and result.missing == 0, result.msgs
            assert result.n_images == len([f for f in files if f.startswith(f"images/{split}/")])
            instances += result.n_instances
        assert instances == expected_instances(root)

        with pytest.raises(OSError) as err:
            (mnt / "labels" / "train" / "new.txt").write_text("x")
        assert err.value.errno == errno.EROFS
        assert not (mnt / "images" / "missing.jpg").exists()
    assert json.loads((root / "meta.json").read_text())  # the source is untouched and still readable


def test_mount_refuses_bad_arguments(tmp_path: Path) -> None:
    from tests.conftest import is_mounted, slyfs

    r = slyfs("mount", str(tmp_path / "nope"), str(tmp_path), check=False)
    assert r.returncode != 0 and "no such directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "f").write_text("x")
    r = slyfs("mount", str(BLOB), str(busy), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    r = slyfs("mount", str(BLOB), str(tmp_path / "missing"), check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = slyfs("mount", str(BLOB), str(tmp_path), "--format", "nonsense", check=False)
    assert r.returncode != 0 and "unknown format" in r.stderr
    r = slyfs("mount", str(BLOB), str(tmp_path), "--classes", "car,nosuch", check=False)
    assert r.returncode != 0 and r.stderr.startswith("slyfs: unknown class(es) nosuch;")
    assert len(r.stderr.strip().splitlines()) == 1 and not is_mounted(tmp_path)
    r = slyfs("mount", str(BLOB), str(tmp_path), "--format", "voc", "--opt", "voc.jpg=1", check=False)
    assert r.returncode != 0 and r.stderr.startswith("slyfs: unknown --opt voc.jpg for voc; valid: voc.jpeg")
    r = slyfs("mount", str(BLOB), str(tmp_path), "--format", "coco", "--opt", "coco.disabled_visibility=7",
              check=False)
    assert r.returncode != 0 and r.stderr == "slyfs: --opt coco.disabled_visibility='7': accepted values are 0, 1, 2\n"
    assert not is_mounted(tmp_path)
    r = slyfs("mount", str(BLOB), str(tmp_path), "--cache-size", "infM", check=False)
    assert r.returncode != 0 and "not a size" in r.stderr


def test_sigterm_unmounts_cleanly(mount, tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.conftest import is_mounted, slyfs

    mnt = tmp_path / "m"
    mnt.mkdir()
    log = tmp_path / "log"
    assert slyfs("mount", str(BLOB), str(mnt), "--log-file", str(log)).returncode == 0
    try:
        assert (mnt / "data.yaml").read_bytes()
        pid = int(subprocess.run(["pgrep", "-f", f"vfs.cli mount {BLOB} {mnt}"], capture_output=True,
                                 text=True).stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while is_mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not is_mounted(mnt)
    finally:
        if is_mounted(mnt):
            slyfs("umount", str(mnt), check=False)


# ---------------------------------------------------------------- listings


class _Listing:
    """A tree whose one folder's listing is what the test says."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def listdir(self, path: str) -> list[str]:
        return self.names


def test_paged_listing_resumes_at_each_offset_and_keeps_its_listing() -> None:
    tree = _Listing(["a", "b", "c"])
    ops = SlyfsOperations(tree)  # type: ignore[arg-type]  # only listdir is called
    fh = ops.opendir("/")
    full = list(ops.readdir_with_offset("/", 0, fh))
    assert full == [(".", None, 1), ("..", None, 2), ("a", None, 3), ("b", None, 4), ("c", None, 5)]
    for offset in range(len(full) + 1):
        assert list(ops.readdir_with_offset("/", offset, fh)) == full[offset:]
    tree.names = ["a", "c"]  # a new version: the open directory goes on with the listing it started
    assert list(ops.readdir_with_offset("/", 3, fh)) == full[3:]
    other = ops.opendir("/")
    assert [e[0] for e in ops.readdir_with_offset("/", 0, other)] == [".", "..", "a", "c"]
    assert [e[0] for e in ops.readdir_with_offset("/", 0, fh)] == [".", "..", "a", "c"]  # rewinddir: read again
    ops.releasedir("/", fh)
    ops.releasedir("/", other)
    assert not ops._listings


def test_listing_through_the_mount_is_the_views_own(tmp_path: Path, mount, libfuse: str) -> None:
    """Thousands of names (many kernel requests) with colliding stems and odd characters come
    through the kernel once each and in the view's order, on both backends, also while another
    handle lists the same folder."""
    odd = ["dup.png", "dup.jpg", "dup_jpg.png", ".hidden.png", "a.b.c.png", "tab\tand space.png", "x" * 240 + ".png",
           "100%.png", "ü~2.png", "ü.png"]
    root = plain_project(tmp_path / "p", {**{f"img {i:04d} é.png": None for i in range(3000)}, **dict.fromkeys(odd)})
    view = build_view(read_project(root), ["yolo"], ViewOptions())
    with mount(root, "--format", "yolo", "--no-index", "--libfuse", libfuse) as mnt:
        assert {"dup_png.txt", "dup_jpg.txt", "dup_jpg~2.txt"} <= set(view.list("labels/ds") or ())
        for split in view.list("images") or ():
            for folder in (f"images/{split}", f"labels/{split}"):
                expected = list(view.list(folder) or ())
                assert len(expected) == 3010
                with os.scandir(mnt / folder) as first:
                    head = [next(first).name for _ in range(10)]
                    assert os.listdir(mnt / folder) == expected
                    assert head + [e.name for e in first] == expected
