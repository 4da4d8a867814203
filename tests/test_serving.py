"""How a mount is served to the kernel, on real mounts (speed itself is measured by scripts/bench.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import eventually


def readahead_kib(mnt: Path) -> int:
    dev = os.stat(mnt).st_dev
    return int(Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb").read_text())


@pytest.mark.parametrize("mode", [(), ("--snapshot",)], ids=["live", "snapshot"])
def test_a_mount_raises_its_readahead_so_an_image_is_one_read(mount, blob_copy: Path, mode: tuple) -> None:
    """The kernel offers a FUSE mount 128 KiB of readahead; the daemon raises the mount's own setting
    (root can) once the kernel has taken init's answer, so a 500 KB image is one READ, not five."""
    if os.geteuid() != 0:
        pytest.skip("only root may raise a mount's readahead; others keep the kernel's 128 KiB")
    from slyfs.vfs.daemon import READAHEAD_KIB

    with mount(blob_copy, *mode) as mnt:
        assert eventually(lambda: readahead_kib(mnt) == READAHEAD_KIB)
