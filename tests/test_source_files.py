"""Source files that are not regular files (a FIFO, socket or device where a source file should be),
edits that keep size and mtime, and folders ``check`` cannot enter: on real mounts and the CLI."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import eventually, slyfs
from tests.helpers.hostile import ann, blob_project, plain_project, png, rect

READ_TIMEOUT = 10  # a read the daemon cannot answer at once is a hang: the test fails instead of blocking
READER = "import os, sys\ntry:\n    sys.stdout.write(open(sys.argv[1], 'rb').read().hex())\nexcept OSError as e:\n" \
         "    sys.stdout.write(f'errno={e.errno}')\n"


def read_through(mnt: Path, rel: str, fifos: list[Path]) -> bytes | int:
    """The bytes of ``mnt/rel``, or the errno of reading it, read by a child process. A daemon that does not
    answer within READ_TIMEOUT is blocked opening one of ``fifos``: a writer opened on each releases it
    (a reader blocked in FUSE cannot be killed, and no test may hang), and the test fails."""
    child = subprocess.Popen([sys.executable, "-c", READER, str(mnt / rel)], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=READ_TIMEOUT)
    except subprocess.TimeoutExpired:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            for fifo in fifos:
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            time.sleep(0.1)
        pytest.fail(f"reading {rel} blocked the mount for {READ_TIMEOUT} s")
    return int(out[6:]) if out.startswith("errno=") else bytes.fromhex(out)


def replace_with_fifo(path: Path) -> None:
    """Put a FIFO where ``path`` was, atomically (as a rename of a prepared file would)."""
    tmp = path.with_name(f".{path.name}.fifo")
    os.mkfifo(tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------- item 4: special files never block


@pytest.mark.parametrize("watch", [(), ("--no-watch",)], ids=["live", "no-watch"])
def test_fifo_replacing_a_source_under_a_mount_gives_eio_promptly(mount, tmp_path: Path, watch: tuple) -> None:
    images = {"a.png": png(), "b.png": png(color=(1, 2, 3)), "c.png": png(color=(4, 5, 6))}
    root = plain_project(tmp_path / "p", {"a.png": ann(), "b.png": ann(rect(1, 1, 4, 4)), "c.png": ann()},
                         images=images)
    blob_root, _ = blob_project(tmp_path / "b", {"x.png": png(color=(7, 7, 7))})
    with mount(root, *watch) as mnt, mount(blob_root, *watch) as bmnt:
        fifos = [root / "ds/img/a.png", root / "ds/ann/b.png.json", blob_root / "blob/1001.tar"]
        for fifo in fifos:
            replace_with_fifo(fifo)
        assert read_through(mnt, "images/ds/a.png", fifos) == errno.EIO
        assert read_through(mnt, "labels/ds/b.txt", fifos) == b""  # its annotation is unreadable: no labels
        assert read_through(bmnt, "images/ds/x.png", fifos) == errno.EIO
        # the rest keeps serving
        assert read_through(mnt, "images/ds/c.png", fifos) == images["c.png"]
        assert read_through(mnt, "images/ds/b.png", fifos) == images["b.png"]
        assert read_through(bmnt, "data.yaml", fifos).startswith(b"# YOLO")
    log = mnt.with_suffix(".log").read_text()
    assert f"{root}/ds/ann/b.png.json" in log and "not a regular file (fifo)" in log


def test_fifo_meta_json_fails_mount_check_and_export_fast(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    replace_with_fifo(root / "meta.json")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    line = f"{root}/meta.json: unusable: not a regular file (fifo)"
    for args in (("mount", str(root), str(mnt)), ("check", str(root)),
                 ("export", str(root), str(tmp_path / "out"))):
        r = slyfs(*args, check=False, timeout=30)
        assert r.returncode != 0 and line in r.stderr, (args, r.stderr)
    assert os.listdir(mnt) == [] and not (tmp_path / "out").exists()


def special_files(folder: Path, name: str) -> dict[str, str]:
    """A FIFO, a socket and (where allowed) a character device named ``name`` with three prefixes;
    returns path -> the kind check must name."""
    made = {}
    os.mkfifo(folder / f"fifo_{name}")
    made[str(folder / f"fifo_{name}")] = "fifo"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder / f"sock_{name}"))
    made[str(folder / f"sock_{name}")] = "socket"
    with contextlib.suppress(PermissionError):
        os.mknod(folder / f"chr_{name}", 0o600 | 0o020000, os.makedev(1, 3))  # a /dev/null
        made[str(folder / f"chr_{name}")] = "character device"
    return made


def test_check_reports_every_special_file_and_never_opens_one(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    specials = {**special_files(root / "ds/img", "x.png"), **special_files(root / "ds/ann", "y.png.json")}
    blob_root, _ = blob_project(tmp_path / "b", {"x.png": png()})
    replace_with_fifo(blob_root / "blob/1001.tar")
    os.mkfifo(blob_root / "ds/1002_offsets.pkl")

    r = slyfs("check", str(root), "--json", check=False, timeout=60)
    found = {(p["path"], p["message"]) for p in json.loads(r.stdout)["problems"]}
    for path, kind in specials.items():
        assert (os.path.relpath(path, root), f"not a regular file ({kind})") in found, (path, found)
    r = slyfs("export", str(root), str(tmp_path / "out"), check=False, timeout=60)
    images = sum("/img/" in path for path in specials)
    assert r.returncode == 1 and f"{images} file(s) cannot be read, first images/ds/" in r.stderr, r.stderr

    r = slyfs("check", str(blob_root), check=False, timeout=60)
    assert ("ds/1002_offsets.pkl\n  problem: not a regular file (fifo)\n"
            "  slyfs:   offsets file ignored; its images are not served\n") in r.stdout
    assert (f"ds/1001_offsets.pkl [x.png]\n  problem: entry for {blob_root}/blob/1001.tar: "
            "the tar is not a regular file (fifo)\n  slyfs:   image served as unreadable (EIO)\n") in r.stdout


# ---------------------------------------------------------------- item 15: edits that keep size and mtime


def edit_in_place(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place with ``data`` (same size) and put its mtime back, as ``rsync --inplace -t`` does."""
    st = path.stat()
    assert len(data) == st.st_size
    time.sleep(0.05)  # the inode change time has a clock tick's resolution
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.mark.parametrize("watch", [(), ("--no-watch",)], ids=["live", "no-watch"])
def test_an_edit_keeping_size_and_mtime_is_seen(mount, tmp_path: Path, watch: tuple) -> None:
    image = png(color=(1, 2, 3))
    root = plain_project(tmp_path / "p", {"a.png": ann(rect(1, 1, 4, 4))}, images={"a.png": image})
    blob_root, entries = blob_project(tmp_path / "b", {"x.png": png(color=(7, 7, 7))})
    tar = blob_root / "blob/1001.tar"
    _, start, end = entries[0]
    with mount(root, "--format", "yolo,supervisely", *watch) as mnt, mount(blob_root, *watch) as bmnt:
        label, meta = mnt / "yolo/labels/ds/a.txt", mnt / "supervisely/meta.json"
        assert label.read_bytes() == b"0 0.300000 0.300000 0.400000 0.400000\n"
        assert b"#FF0000" in meta.read_bytes()
        old_x = (bmnt / "images/ds/x.png").read_bytes()
        assert (mnt / "yolo/images/ds/a.png").read_bytes() == image

        ann_file, meta_file = root / "ds/ann/a.png.json", root / "meta.json"
        edit_in_place(ann_file, ann_file.read_bytes().replace(b"[1, 1]", b"[2, 2]"))
        edit_in_place(meta_file, meta_file.read_bytes().replace(b"#FF0000", b"#00FF00"))
        new_image = flipped(image, 40)
        edit_in_place(root / "ds/img/a.png", new_image)
        new_x = flipped(old_x, len(old_x) // 2)
        edit_in_place(tar, tar.read_bytes()[:start] + new_x + tar.read_bytes()[end:])

        for served, old, new in ((mnt / "yolo/images/ds/a.png", image, new_image),
                                 (mnt / "supervisely/ds/img/a.png", image, new_image),
                                 (bmnt / "images/ds/x.png", old_x, new_x)):
            got = read_through(served.parent, served.name, [])
            if watch:  # a snapshot: the bytes it took (the kernel keeps them) or EIO, never the new ones
                assert got in (errno.EIO, old), served
            else:  # live: never the old bytes
                assert got in (errno.EIO, new), served
                assert eventually(lambda p=served, n=new: read_through(p.parent, p.name, []) == n), served
        if watch:
            assert read_through(label.parent, label.name, []) in (errno.EIO, b"0 0.300000 0.300000 0.400000 0.400000\n")
            got_meta = read_through(meta.parent, meta.name, [])
            assert got_meta == errno.EIO or b"#FF0000" in got_meta
            return
        assert eventually(lambda: label.read_bytes() == b"0 0.350000 0.350000 0.300000 0.300000\n"), label.read_bytes()
        assert eventually(lambda: b"#00FF00" in meta.read_bytes())


# ---------------------------------------------------------------- item 11: folders check cannot enter or read


def without_file_permission_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so
    root's next program is bound by file permissions like any user (its interpreter stays reachable,
    which a switch to ``nobody`` would not keep under a private /root)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; as a non-root user it fails, and is not needed


def check_without_override(root: Path) -> dict[str, tuple[str, str]]:
    """``slyfs check --json`` run bound by permissions: path -> (message, action)."""

    r = subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "check", str(root), "--json"], capture_output=True,
                       text=True, timeout=60, check=False, env=None,
                       preexec_fn=without_file_permission_override)
    return {p["path"]: (p["message"], p["action"]) for p in json.loads(r.stdout)["problems"]}


def test_check_names_folders_it_cannot_enter_or_read(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    for ds in ("no_x", "no_r_img", "no_x_ann"):
        plain_project(root, {"b.png": ann()}, dataset=ds)
    plain_project(root / "parent/datasets", {"c.png": ann()}, dataset="child")
    (root / "parent/datasets/meta.json").unlink()
    modes = {"no_x": 0o644, "no_r_img/img": 0o311, "no_x_ann/ann": 0o644, "parent/datasets": 0o300}
    for folder, mode in modes.items():
        (root / folder).chmod(mode)
    try:
        bound = subprocess.run([sys.executable, "-c", f"import os; os.listdir({str(root / 'no_r_img/img')!r})"],
                               capture_output=True, check=False,
                               preexec_fn=without_file_permission_override).returncode != 0
        if not bound:
            pytest.skip("no child process bound by file permissions can be started here")
        problems = check_without_override(root)
    finally:
        for folder in modes:
            (root / folder).chmod(0o755)
    denied = os.strerror(errno.EACCES)
    assert problems["no_x"] == (f"dataset folder cannot be entered: {denied}", "its items are not served")
    assert problems["no_r_img/img"] == (f"folder unreadable: {denied}", "its images are not served")
    assert problems["no_x_ann/ann"] == (f"folder unreadable: {denied}", "its items are served without labels")
    assert problems["parent/datasets"] == (f"folder unreadable: {denied}", "its datasets are not served")
    assert "ds/img/a.png" not in problems  # the rest is checked as usual


def test_hard_links_made_by_export_leave_the_images_served(mount, tmp_path: Path) -> None:
    """A link moves the inode change time but never the bytes: an export linking the same image twice
    (two views) works, and a --no-watch mount of the source still serves it."""
    images = {"a.png": png(), "b.png": png(color=(1, 2, 3))}
    root = plain_project(tmp_path / "p", {"a.png": ann(rect(1, 1, 4, 4)), "b.png": None}, images=images)
    with mount(root, "--no-watch") as mnt:
        r = slyfs("export", str(root), str(tmp_path / "out"), "--format", "yolo,supervisely")
        assert "6 hard-linked, 0 copied" in r.stdout, r.stdout  # 2 images in each view, meta.json, a.png.json
        assert os.stat(root / "ds/img/a.png").st_nlink == 3
        for name, data in images.items():
            assert (mnt / "images/ds" / name).read_bytes() == data
            assert (tmp_path / "out/yolo/images/ds" / name).read_bytes() == data
        assert (tmp_path / "out/yolo/labels/ds/b.txt").read_bytes() == b""  # sized from the linked image


def test_the_polling_watcher_sees_an_edit_keeping_size_and_mtime(tmp_path: Path) -> None:
    """Without inotify the watcher compares stamps of the folders, meta.json, offsets files and tars."""
    from slyfs.formats.readers.supervisely.index import SourceIndex
    from slyfs.formats.readers.supervisely.watch import SuperviselySource
    from slyfs.formats.view import ViewOptions
    from slyfs.vfs.live import ViewSource, Watcher
    from slyfs.vfs.tree import VirtualTree

    root, _ = blob_project(tmp_path / "b", {"x.png": png()})
    view = ViewSource(SuperviselySource(str(root), SourceIndex(None)), ["yolo"], ViewOptions())
    watcher = Watcher(view, VirtualTree(view.build()))  # not started: only its poll signature is used
    if watcher._inotify is not None:
        watcher._inotify.close()
    before = watcher._signature()
    tar = root / "blob/1001.tar"
    edit_in_place(tar, flipped(tar.read_bytes(), 600))
    now = watcher._signature()
    assert [p for p in now if now[p] != before[p]] == [str(tar)]
