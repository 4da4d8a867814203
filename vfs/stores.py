"""Byte stores: where served source bytes are read (the ``ByteStore`` seam of formats/contract.py).

``LocalStore`` reads by ``pread`` from the very file that was indexed; object storage (byte ranges
of a bucket's objects) is the next store behind the same four calls.
"""

from __future__ import annotations

import os

from slyfs.formats.model import ImageRef
from slyfs.formats.source_bytes import open_source, read_bytes, read_source


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Write all of ``data`` to ``fd`` (a write may take less): what export and the disk cache write."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class LocalStore:
    """Source bytes from local files; a handle is a read-only descriptor on the indexed version."""

    def open(self, ref: ImageRef) -> int:
        return open_source(ref)

    def read(self, handle: object, ref: ImageRef, size: int, offset: int) -> bytes:
        assert isinstance(handle, int)
        return read_source(handle, ref, size, offset)

    def close(self, handle: object) -> None:
        assert isinstance(handle, int)
        os.close(handle)

    def read_all(self, ref: ImageRef) -> bytes:
        return read_bytes(ref)
