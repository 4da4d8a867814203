"""A long first mount says how it is getting on, on one terminal line; a short one, or one whose
stderr is not a terminal, says nothing."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely import project as scan
from slyfs.vfs.progress import ProgressLine
from tests.conftest import BLOB, is_mounted, new_mountpoint, slyfs


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_said_before_show_after_then_a_line_at_most_every_interval() -> None:
    clock, lines = FakeClock(), []
    progress = ProgressLine(lines.append, show_after=1.5, every=0.5, clock=clock)
    clock.now += 1.0
    progress(5000, "scanning train")
    assert lines == [] and not progress.shown
    clock.now += 1.0  # 2 s in
    progress(20_000, "scanning train")
    clock.now += 0.2  # too soon for another line
    progress(21_000, "scanning train")
    clock.now += 0.3
    progress(30_000, "listing val/img and val/ann")
    assert lines == ["20,000 items scanned (2 s, 10,000/s): scanning train",
                     "30,000 items scanned (2 s, 12,000/s): listing val/img and val/ann"]
    assert progress.shown


def test_a_hostile_dataset_name_reaches_the_terminal_escaped() -> None:
    lines: list[str] = []
    ProgressLine(lines.append, show_after=0, clock=FakeClock())(1, "scanning evil\x1b[2Jname")
    assert lines == ["1 items scanned (0 s): scanning evil\\x1b[2Jname"]


def test_the_scan_reports_each_dataset_and_every_so_many_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "PROGRESS_EVERY_ITEMS", 2)
    heard: list[tuple[int, str]] = []
    project = read_project(str(BLOB), report=ProblemLog(), progress=lambda n, doing: heard.append((n, doing)))
    sizes = {ds.name: len(ds.items) for ds in project.datasets}
    expected, done = [], 0
    for name, size in sizes.items():
        expected += [(done, f"reading the offsets files of {name}"), (done, f"listing {name}/img and {name}/ann")]
        expected += [(done + n, f"scanning {name}") for n in range(2, size + 1, 2)]
        done += size
    assert heard == expected
    assert done == sum(sizes.values()) > 0


def mount_on_a_terminal(mnt: Path, log: Path) -> tuple[int, bytes]:
    """``slyfs mount`` with its stderr on a pseudo-terminal: exit code and what the terminal got."""
    master, slave = pty.openpty()
    env = {**os.environ, "SLYFS_PROGRESS_AFTER": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "slyfs.vfs.cli", "mount", str(BLOB), str(mnt), "--log-file",
                             str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    code = proc.wait(timeout=120)
    seen = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return code, seen


def test_a_mount_on_a_terminal_shows_its_progress_and_clears_it() -> None:
    mnt = new_mountpoint()
    try:
        code, seen = mount_on_a_terminal(mnt, mnt.with_suffix(".log"))
        assert code == 0, seen
        assert b"\r\x1b[Kslyfs: 0 items scanned (" in seen
        assert seen.endswith(b"\r\x1b[K")  # the line is cleared before the mount returns
        assert (mnt / "data.yaml").exists()
    finally:
        slyfs("umount", str(mnt), check=False)
        assert not is_mounted(mnt)
        mnt.rmdir()


def test_a_mount_whose_stderr_is_not_a_terminal_says_nothing_of_it(mount) -> None:
    mnt = new_mountpoint()
    try:
        r = subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "mount", str(BLOB), str(mnt), "--log-file",
                            str(mnt.with_suffix(".log"))], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "SLYFS_PROGRESS_AFTER": "0"})
        assert r.returncode == 0 and "items scanned" not in r.stderr + r.stdout
    finally:
        slyfs("umount", str(mnt), check=False)
        mnt.rmdir()
