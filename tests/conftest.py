"""Shared fixtures: the SDK-written projects, and real mounts through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
PLAIN = FIXTURES / "sdk_project_plain"
BLOB = FIXTURES / "sdk_project_blob"
SDK_PROJECTS = {"plain": PLAIN, "blob": BLOB}


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``slyfs ARGS`` from this worktree's sources, as a user would run it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "vfs.cli", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"slyfs {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def is_mounted(path: Path) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        return any(line.split()[1].replace("\\040", " ") == real for line in f if len(line.split()) > 1)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path → bytes), read through the file system."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount(source, "--format", "yolo", ...)`` mounts for real and returns the mountpoint;
    everything is unmounted (and checked to be) when the test ends."""
    if not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3") or shutil.which("fusermount")):
        pytest.skip("no FUSE on this machine")
    mounted: list[Path] = []

    def do_mount(source: Path, *args: str) -> Path:
        mnt = tmp_path / f"mnt{len(mounted)}"
        mnt.mkdir()
        run_cli("mount", str(source), str(mnt), "--log-file", str(tmp_path / f"mnt{len(mounted)}.log"), *args)
        mounted.append(mnt)
        assert is_mounted(mnt)
        return mnt

    yield do_mount
    for mnt in mounted:
        run_cli("umount", str(mnt))
        assert not is_mounted(mnt)
