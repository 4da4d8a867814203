"""Reading the bytes an ImageRef describes, only ever from the very file that was indexed.

A source replaced or changed in place since it was indexed (its stamp differs) is refused,
so no reader (the mount, export, the views' header probes) can serve another file's bytes.

Every source file (meta.json, annotations, sidecars, offsets files, tars, images) is opened by
:func:`open_regular`: a FIFO, socket or device put where a source file was expected is refused
instead of opened, so it can never block the (single-threaded) daemon, ``check`` or ``export``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Protocol

from slyfs.formats.model import ImageRef, file_stamp

_SPECIAL_KINDS = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"))


class SourceUnreadable(OSError):
    """The bytes of a source file cannot be read as indexed (gone, replaced, short, I/O error)."""


class NotRegularFile(OSError):
    """A source path names something other than a regular file; ``str()`` is the bare reason."""

    def __init__(self, mode: int) -> None:
        kind = next((name for is_kind, name in _SPECIAL_KINDS if is_kind(mode)), "special file")
        self.reason = f"not a regular file ({kind})"
        super().__init__(errno.EIO, self.reason)

    def __str__(self) -> str:
        return self.reason


def is_special(mode: int) -> bool:
    """A FIFO, socket or device: what a scan reports instead of listing (directories are just not files)."""
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor on the regular file ``path`` and its stat; the caller closes it.
    Anything else raises NotRegularFile without being opened (a device is never opened), and
    the open itself cannot block (O_NONBLOCK), should a FIFO take the file's place meanwhile."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(st.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(st.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


class RangeReader(Protocol):
    """Reads what a placeholder of object storage stands for (vfs/stores.py's ObjectStore)."""

    def is_placeholder(self, path: str) -> bool: ...

    def read_range(self, ref: ImageRef, size: int, offset: int) -> bytes: ...


# Mirror folders of projects in object storage (formats/readers/supervisely/remote.py) -> the
# reader of their objects: a file there is a placeholder, never read as a local file.
_REMOTE: dict[str, RangeReader] = {}


def serve_remote(folder: str, reader: RangeReader) -> None:
    """Send every read of a source path below ``folder`` to ``reader``."""
    _REMOTE[os.path.join(folder, "")] = reader


def remote_reader(path: str) -> RangeReader | None:
    """The reader of a placeholder's object; None for a file whose bytes are local."""
    for folder, reader in _REMOTE.items():
        if path.startswith(folder):
            return reader if reader.is_placeholder(path) else None
    return None


def holds_version(ref: ImageRef, st: os.stat_result) -> bool:
    """Whether the file stat'ed ``st`` is the version ``ref`` was indexed at (an empty stamp: any)."""
    return not ref.stamp or ref.stamp.same_bytes(file_stamp(st))


def open_source(ref: ImageRef) -> int:
    """A read-only descriptor on the indexed file; the caller closes it."""
    if _REMOTE and remote_reader(ref.path) is not None:
        raise SourceUnreadable(f"{ref.path}: in object storage: read through its store, not as a local file")
    try:
        fd, st = open_regular(ref.path)
    except OSError as e:
        raise SourceUnreadable(f"{ref.path}: {e.strerror}") from None
    if not holds_version(ref, st):
        os.close(fd)
        raise SourceUnreadable(f"{ref.path}: replaced or changed since it was indexed")
    return fd


def read_source(fd: int, ref: ImageRef, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` within the bytes ``ref`` describes, from ``fd``, a descriptor
    ``open_source`` gave. Each read checks the file still holds the indexed version: a descriptor
    may be kept open for long (a blob's tar serves every read of the mount) while the file is
    rewritten in place, and its new bytes at the old offsets would be another image's."""
    if offset >= ref.size or size <= 0:
        return b""
    size = min(size, ref.size - offset)
    try:
        data = os.pread(fd, size, ref.offset + offset)
        now = os.fstat(fd)  # after the read: a write during it has moved the stamp
    except OSError as e:
        raise SourceUnreadable(f"{ref.path}: {e.strerror}") from None
    if not holds_version(ref, now):
        raise SourceUnreadable(f"{ref.path}: changed in place since it was indexed")
    if len(data) != size:
        raise SourceUnreadable(f"{ref.path}: file is shorter than its index says")
    return data


def read_bytes(ref: ImageRef, limit: int | None = None) -> bytes:
    """The first ``limit`` bytes (default: all) of what ``ref`` describes."""
    remote = remote_reader(ref.path) if _REMOTE else None
    if remote is not None:
        return remote.read_range(ref, ref.size if limit is None else min(limit, ref.size), 0)
    fd = open_source(ref)
    try:
        return read_source(fd, ref, ref.size if limit is None else limit, 0)
    finally:
        os.close(fd)
