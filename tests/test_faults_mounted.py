"""Faults while mounted, through the kernel: sources deleted or replaced under the daemon,
an unwritable log, SIGKILL (stale mount) and SIGTERM (clean unmount)."""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path

from tests.conftest import eventually, is_mounted, new_mountpoint, read_errno, slyfs
from tests.helpers.hostile import ann, blob_project, offsets_pickle, plain_project, png, rect
from tests.helpers.scripts import load_script


def daemon_pid(mnt: Path) -> int:
    """The slyfs daemon serving ``mnt`` (the only process whose command line names it)."""
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(pid) != me and b"slyfs.vfs.cli" in cmd and os.fsencode(str(mnt)) in cmd:
            return int(pid)
    raise AssertionError(f"no daemon found for {mnt}")


def test_unavailable_bytes_give_eio_for_that_file_only(mount, tmp_path: Path) -> None:
    root, entries = blob_project(tmp_path / "p", {"a.png": png(), "b.png": png(color=(1, 2, 3))},
                                 {"a.png": ann(rect(1, 1, 4, 4)), "b.png": ann()})
    tar_size = (root / "blob" / "1001.tar").stat().st_size
    (root / "ds" / "1001_offsets.pkl").write_bytes(
        offsets_pickle([entries[0], (entries[1][0], entries[1][1], tar_size + 1)]))
    with mount(root) as mnt:
        assert read_errno(mnt / "images/ds/b.png") == errno.EIO
        assert (mnt / "images/ds/a.png").read_bytes() == png()
        assert (mnt / "labels/ds/a.txt").read_bytes() == b"0 0.300000 0.300000 0.400000 0.400000\n"


def test_source_deleted_or_replaced_under_the_daemon(mount, tmp_path: Path) -> None:
    images = {"a.png": png(), "b.png": png(color=(9, 9, 9)), "c.png": png(color=(7, 7, 7))}
    root = plain_project(tmp_path / "p", {n: ann() for n in images}, images=images)
    blob_root, _ = blob_project(tmp_path / "b", {"x.png": png(), "y.png": png(color=(5, 5, 5))})
    with mount(root) as mnt, mount(blob_root) as bmnt:
        held = open(mnt / "images/ds/a.png", "rb", buffering=0)  # noqa: SIM115 (held open across the fault)
        (root / "ds/img/a.png").unlink()
        (root / "ds/img/b.png").unlink()
        replacement = png(color=(1, 1, 1))[:-1] + b"!"  # same size, other bytes
        tmp = root / "ds/img/.c.tmp"
        tmp.write_bytes(replacement)
        os.replace(tmp, root / "ds/img/c.png")
        # a handle opened before the deletion holds the very file it indexed, to the end
        with held:
            assert held.read() == images["a.png"]
        # a new open of a deleted image: EIO until the watcher drops it from the view, then ENOENT
        assert read_errno(mnt / "images/ds/a.png") in (errno.EIO, errno.ENOENT)
        assert read_errno(mnt / "images/ds/b.png") in (errno.EIO, errno.ENOENT)
        # replaced: EIO until the watcher has indexed the new file, then the new file's bytes
        got_c = read_errno(mnt / "images/ds/c.png")
        assert got_c == errno.EIO or (got_c is None and (mnt / "images/ds/c.png").read_bytes() == replacement)
        assert (mnt / "labels/ds/a.txt").read_bytes() == b""  # labels still served

        # a tar replaced by another with different content at the same offsets: EIO, not wrong bytes
        tar = blob_root / "blob/1001.tar"
        data = bytearray(tar.read_bytes())
        data[600:700] = b"\xee" * 100
        tmp = tar.with_suffix(".tmp")
        tmp.write_bytes(bytes(data))
        os.replace(tmp, tar)
        assert read_errno(bmnt / "images/ds/x.png") == errno.EIO
        # a tar truncated in place
        with open(tar, "r+b") as f:
            f.truncate(100)
        assert read_errno(bmnt / "images/ds/y.png") == errno.EIO
        assert (bmnt / "data.yaml").read_bytes().startswith(b"# YOLO")  # the rest of the mount lives


def test_unwritable_log_does_not_stop_a_mount(tmp_path: Path, mount) -> None:
    root = plain_project(tmp_path / "p", {"a.png": b"{"})
    mnt = new_mountpoint()
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    try:
        # the default log lives under XDG_CACHE_HOME: make that impossible to create
        env_cache = str(blocker / "cache")
        r = _slyfs_env({"XDG_CACHE_HOME": env_cache}, "mount", str(root), str(mnt))
        assert r.returncode == 0, r.stderr
        assert r.stderr.startswith(f"slyfs: cannot write the log {env_cache}/slyfs/logs/")
        assert "mounting without a log" in r.stderr
        assert (mnt / "labels/ds/a.txt").read_bytes() == b""
    finally:
        slyfs("umount", str(mnt), check=False)
        assert eventually(lambda: not is_mounted(mnt))
        mnt.rmdir()
    # a full disk: every log write fails (ENOSPC), the daemon serves on
    with mount(root, "--log-file", "/dev/full") as mnt:
        assert (mnt / "labels/ds/a.txt").read_bytes() == b""
        assert (mnt / "images/ds/a.png").read_bytes() == png()


def _slyfs_env(extra: dict[str, str], *args: str):
    import subprocess

    env = {**os.environ, **extra}
    return subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_sigkill_leaves_a_stale_mount_that_the_next_mount_recovers(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann(rect(1, 1, 4, 4))})
    mnt = new_mountpoint()
    try:
        assert slyfs("mount", str(root), str(mnt), check=False).returncode == 0
        os.kill(daemon_pid(mnt), signal.SIGKILL)
        assert eventually(lambda: _stat_errno(mnt) == errno.ENOTCONN)
        r = slyfs("mount", str(root), str(mnt), check=False)
        assert r.returncode == 0, r.stderr
        assert r.stderr == f"slyfs: {mnt}: stale mount of a daemon that died; unmounting it\n"
        assert (mnt / "labels/ds/a.txt").read_bytes() == b"0 0.300000 0.300000 0.400000 0.400000\n"
    finally:
        slyfs("umount", str(mnt), check=False)
        eventually(lambda: not is_mounted(mnt))
        if is_mounted(mnt):
            os.system(f"fusermount3 -u -z '{mnt}' 2>/dev/null || fusermount -u -z '{mnt}'")
        assert not is_mounted(mnt)
        mnt.rmdir()


def _stat_errno(path: Path) -> int | None:
    """The errno of statfs on ``path`` (a stat of a mount root may be answered from the kernel's cache)."""
    try:
        os.statvfs(path)
    except OSError as e:
        return e.errno
    return None


def test_sigterm_unmounts_cleanly(tmp_path: Path) -> None:
    root = plain_project(tmp_path / "p", {"a.png": ann()})
    mnt = new_mountpoint()
    try:
        assert slyfs("mount", str(root), str(mnt), check=False).returncode == 0
        pid = daemon_pid(mnt)
        os.kill(pid, signal.SIGTERM)
        assert eventually(lambda: not is_mounted(mnt))
        assert eventually(lambda: not Path(f"/proc/{pid}").exists() or
                     Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z")
        assert os.listdir(mnt) == []
    finally:
        if is_mounted(mnt):
            slyfs("umount", str(mnt), check=False)
        mnt.rmdir()


def test_many_plain_images_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    """The daemon holds a descriptor per open file, not per source file: 300 plain images
    read through a daemon limited to 64 descriptors all arrive intact."""
    import resource
    import subprocess
    import sys

    from tests.conftest import is_mounted
    make_project = load_script("make_sample_project").make_project

    root = make_project(tmp_path / "p", 300, form="plain", image_kind="tiny")
    mnt = tmp_path / "m"
    mnt.mkdir()

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "mount", str(root), str(mnt), "--log-file",
                    str(tmp_path / "log")], check=True, env=env, preexec_fn=low_limit, timeout=120)
    try:
        served = sorted(p.read_bytes() for p in (mnt / "images").rglob("*") if p.is_file())
        sources = sorted(p.read_bytes() for p in root.rglob("img/*"))
        assert len(served) == 300 and served == sources
    finally:
        subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "umount", str(mnt)], env=env, check=False)
        assert not is_mounted(mnt)
