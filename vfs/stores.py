"""Byte stores: where served source bytes are read (the ``ByteStore`` seam of formats/contract.py).

``LocalStore`` reads by ``pread`` from the very file that was indexed; object storage (byte ranges
of a bucket's objects) is the next store behind the same four calls. ``SharedHandles`` keeps one
handle of a store open per source file version for the tree, whatever the store.
"""

from __future__ import annotations

import os
import resource
import threading
from collections import OrderedDict
from dataclasses import dataclass

from slyfs.formats.contract import ByteStore
from slyfs.formats.model import ImageRef, file_stamp
from slyfs.formats.source_bytes import SourceUnreadable, open_source, read_bytes, read_source

KEPT_HANDLES = 256  # source files kept open at once: every tar of a project, the recent plain images


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

    def is_current(self, ref: ImageRef) -> bool:
        """Whether ``ref``'s path still names the version indexed (a handle kept open on it reads
        that version even after the file was deleted or replaced)."""
        try:
            return not ref.stamp or ref.stamp.same_bytes(file_stamp(os.stat(ref.path)))
        except OSError:
            return False


@dataclass(eq=False)
class SharedHandle:
    """A store handle on one version of one source file, and how many opens and reads use it."""

    key: tuple[str, object]
    handle: object
    users: int = 1
    retired: bool = False  # out of the table: closed by its last user


class SharedHandles:
    """One store handle per source file version, shared by every open and read of every image in
    it (all the images of a blob are in one tar): serving a file then opens and closes nothing.
    The ``KEPT_HANDLES`` most recently used stay open; one that falls out while in use is closed
    by its last user, and one whose file proves another version is dropped at once."""

    def __init__(self, store: ByteStore, keep: int = KEPT_HANDLES) -> None:
        self.store = store
        # a quarter of the descriptors the process may have at most (the daemon raises its limit to that)
        self.keep = max(1, min(keep, resource.getrlimit(resource.RLIMIT_NOFILE)[1] // 4))
        self._table: OrderedDict[tuple[str, object], SharedHandle] = OrderedDict()
        self._lock = threading.Lock()  # FUSE callbacks run on several threads

    def acquire(self, ref: ImageRef, current: bool = True) -> SharedHandle:
        """A handle on ``ref``'s file; ``current``: only if its path still names that version (an
        open must not start reading a file deleted or replaced since, which a kept handle still can)."""
        key = (ref.path, ref.stamp)
        with self._lock:
            shared = self._table.get(key)
            if shared is not None:
                shared.users += 1
                self._table.move_to_end(key)
        if shared is not None:
            if not current or self.store.is_current(ref):
                return shared
            self.drop(shared)
            self.release(shared)
        handle = self.store.open(ref)  # unlocked: an open may wait on a slow disk or endpoint
        with self._lock:
            shared = self._table.get(key)
            if shared is not None:  # another thread opened it meanwhile
                shared.users += 1
                spare: object | None = handle
            else:
                shared = self._table[key] = SharedHandle(key, handle)
                spare = None
                while len(self._table) > self.keep:
                    _, old = self._table.popitem(last=False)
                    self._retire(old)
        if spare is not None:
            self.store.close(spare)
        return shared

    def read(self, shared: SharedHandle, ref: ImageRef, size: int, offset: int) -> bytes:
        try:
            return self.store.read(shared.handle, ref, size, offset)
        except SourceUnreadable:
            self.drop(shared)  # the next open tries the file afresh
            raise

    def release(self, shared: SharedHandle) -> None:
        with self._lock:
            shared.users -= 1
            close = shared.retired and shared.users == 0
        if close:
            self.store.close(shared.handle)

    def drop(self, shared: SharedHandle) -> None:
        with self._lock:
            if self._table.get(shared.key) is shared:
                del self._table[shared.key]
                self._retire(shared)

    def _retire(self, shared: SharedHandle) -> None:
        """Out of the table (the lock held): closed now if unused, else by its last user."""
        shared.retired = True
        if shared.users == 0:
            self.store.close(shared.handle)

    def close(self) -> None:
        with self._lock:
            while self._table:
                self._retire(self._table.popitem()[1])
