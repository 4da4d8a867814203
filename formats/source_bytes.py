"""Reading the bytes an ImageRef describes, only ever from the very file that was indexed.

A source replaced or changed in place since it was indexed (its stamp differs) is refused,
so no reader (the mount, export, the views' header probes) can serve another file's bytes.
"""

from __future__ import annotations

import os

from formats.model import ImageRef, file_stamp


class SourceUnreadable(OSError):
    """The bytes of a source file cannot be read as indexed (gone, replaced, short, I/O error)."""


def open_source(ref: ImageRef) -> int:
    """A read-only descriptor on the indexed file; the caller closes it."""
    try:
        fd = os.open(ref.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SourceUnreadable(f"{ref.path}: {e.strerror}") from None
    if ref.stamp:
        try:
            same = file_stamp(os.fstat(fd)) == ref.stamp
        except OSError:
            same = False
        if not same:
            os.close(fd)
            raise SourceUnreadable(f"{ref.path}: replaced or changed since it was indexed")
    return fd


def read_source(fd: int, ref: ImageRef, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` within the bytes ``ref`` describes, from ``fd``."""
    if offset >= ref.size or size <= 0:
        return b""
    size = min(size, ref.size - offset)
    try:
        data = os.pread(fd, size, ref.offset + offset)
    except OSError as e:
        raise SourceUnreadable(f"{ref.path}: {e.strerror}") from None
    if len(data) != size:
        raise SourceUnreadable(f"{ref.path}: file is shorter than its index says")
    return data


def read_bytes(ref: ImageRef, limit: int | None = None) -> bytes:
    """The first ``limit`` bytes (default: all) of what ``ref`` describes."""
    fd = open_source(ref)
    try:
        return read_source(fd, ref, ref.size if limit is None else limit, 0)
    finally:
        os.close(fd)
