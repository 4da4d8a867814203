"""Shared fixtures: the SDK-written projects, and real mounts through the kernel."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from slyfs.vfs.daemon import MountError, _load_fuse, is_mounted

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"  # copied from the project's shared material; see its README.md
PLAIN = FIXTURES / "sdk_project_plain"
BLOB = FIXTURES / "sdk_project_blob"
SDK_REFERENCE = FIXTURES / "sdk_reference"


def slyfs(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI of this checkout in a child process."""
    return subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def fuse_usable() -> bool:
    return os.path.exists("/dev/fuse") and any(
        os.path.exists(os.path.join(d, lib)) for lib in ("libfuse3.so.3", "libfuse.so.2")
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib"))


MOUNTPOINT_PREFIX = "slyfs-mnt-"  # then the pid of the test process that made it


def new_mountpoint() -> Path:
    """A fresh empty mountpoint named after this process, so that a later run can tell a mount
    left by a test process that was killed (no teardown ran) from one another run still uses."""
    return Path(tempfile.mkdtemp(prefix=f"{MOUNTPOINT_PREFIX}{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def unmount_left_by_dead_runs() -> list[str]:
    """Unmount every test mountpoint whose test process is gone (killed before its teardown)."""
    left = []
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    for point in points:
        m = re.fullmatch(rf".*/{MOUNTPOINT_PREFIX}(\d+)-[^/]*", point)
        if m and not _alive(int(m.group(1))):
            subprocess.run(["fusermount3", "-u", "-z", point], check=False, capture_output=True)
            with contextlib.suppress(OSError):
                os.rmdir(point)
            left.append(point)
    return left


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (a timeout, CI cancelling) tears down as one stopped by ^C does, so its
    mounts are unmounted; mounts of a run killed outright go at the next run's start (below)."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    left = unmount_left_by_dead_runs()
    if left:
        print(f"unmounted {len(left)} mount(s) left by killed test runs: {', '.join(left)}", file=sys.stderr)


@contextlib.contextmanager
def mounted(source: Path, *options: str) -> Iterator[Path]:
    """Mount ``source`` with the CLI on a fresh mountpoint; unmount and check on exit."""
    mnt = new_mountpoint()
    log = mnt.with_suffix(".log")
    r = slyfs("mount", str(source), str(mnt), "--log-file", str(log), *options, check=False)
    assert r.returncode == 0, f"mount failed: {r.stderr}"
    try:
        yield mnt
    finally:
        slyfs("umount", str(mnt), check=False)
        deadline = time.monotonic() + 10
        while is_mounted(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        still = is_mounted(mnt)
        if still:
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], check=False)
        assert not still, f"{mnt} stayed mounted"
        mnt.rmdir()


@pytest.fixture
def mount() -> Callable[..., contextlib.AbstractContextManager[Path]]:
    if not fuse_usable():
        pytest.fail("FUSE is not usable here (/dev/fuse and libfuse 3 or 2 are required for the end-to-end tests)")
    return mounted


@pytest.fixture(params=["3", "2"], ids=["libfuse3", "libfuse2"])
def libfuse(request: pytest.FixtureRequest) -> str:
    """Both backends: libfuse 3 invalidates stale paths under long timeouts, libfuse 2 relies on 1 s ones."""
    try:  # as the daemon loads it: a bare import of mfusepy would bind it to libfuse 2 for the whole session
        _load_fuse(request.param)
    except MountError as e:
        pytest.skip(str(e))
    return request.param


@pytest.fixture
def blob_copy(tmp_path: Path) -> Path:
    """A writable copy of the SDK's blob project: tests edit it."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(BLOB, copy)
    return copy


def eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether ``condition`` holds within ``seconds`` (polled; the last look decides)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


WAIT_SECONDS = 15.0  # generous: a change shows after the rebuild (and a retry's backoff) plus the kernel's timeout


def wait_for(condition: Callable[[], bool], what: str, mnt: Path, seconds: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` (a read may fail meanwhile) until it holds; fail with the daemon's log, never hang."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.1)
    log = mnt.with_suffix(".log")  # the daemon's log, as the mount fixture names it
    pytest.fail(f"not seen within {seconds} s: {what}\n{log.read_text() if log.exists() else ''}")


@pytest.fixture
def plain_copy(tmp_path: Path) -> Path:
    """A writable copy of the SDK's plain project, on the same file system as tmp_path."""
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(PLAIN, copy)
    return copy


def read_errno(path: Path) -> int | None:
    """The errno of reading ``path`` whole, or None when it reads."""
    try:
        path.read_bytes()
    except OSError as e:
        return e.errno
    return None


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (read through whatever serves it), by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _fixtures_digest() -> dict[str, str]:
    """sha256 and mode of every file under the shared fixtures, by relative path."""
    import hashlib

    out = {}
    for dirpath, dirs, files in os.walk(FIXTURES):
        dirs.sort()
        for name in sorted(files):
            p = Path(dirpath) / name
            out[str(p.relative_to(FIXTURES))] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.lstat().st_mode:o}"
    return out


@pytest.fixture(scope="session", autouse=True)
def fixtures_untouched() -> Iterator[None]:
    """Nothing in the suite may change a source: the fixtures are byte-identical afterwards."""
    before = _fixtures_digest()
    assert before, f"no fixtures found under {FIXTURES}"
    yield
    after = _fixtures_digest()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the suite modified the fixtures: {changed[:10]}"


# Property tests explore the same examples on every run, so CI cannot pass or fail by luck.
hypothesis_settings.register_profile("slyfs", derandomize=True, deadline=None)
hypothesis_settings.load_profile("slyfs")
