"""Byte stores: where served source bytes are read (the ``ByteStore`` seam of formats/contract.py).

``LocalStore`` reads by ``pread`` from the very file that was indexed; ``ObjectStore`` reads byte
ranges of a bucket's objects (a project in object storage, formats/readers/supervisely/remote.py).
``SharedHandles`` keeps one handle of a store open per source file version for the tree, whatever
the store: a handle stands for a file, never for one image in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import resource
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache

from slyfs.formats.contract import ByteStore, RemoteObjects
from slyfs.formats.contract import ObjectLocation as Location
from slyfs.formats.model import ImageRef
from slyfs.formats.source_bytes import (
    SourceUnreadable,
    holds_version,
    open_source,
    read_bytes,
    read_source,
    serve_remote,
)

log = logging.getLogger("slyfs.source")

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
            return holds_version(ref, os.stat(ref.path))
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

# Image bytes of object storage. A read waits at most REQUEST_DEADLINE seconds in all, retries
# included (connect and read timeouts and the retry count are the file system's, set in
# vfs/sources.py); a read that still fails is EIO for that file alone.
REQUEST_DEADLINE = 30.0
WHOLE_IMAGE_BYTES = 8 << 20  # an image up to this size is fetched whole at its first read (one request)
WHOLE_IMAGES_KEPT_BYTES = 64 << 20  # the images so fetched, kept for the reads that follow


class _Remote:
    """An open placeholder: where its object is (a tar's handle serves every image in it)."""

    __slots__ = ("location",)

    def __init__(self, location: Location) -> None:
        self.location = location


class ObjectStore:
    """Source bytes of a project in object storage (``remote``: its mirror, whose fetched files are
    read locally like LocalStore's). A placeholder's bytes are byte ranges of its object, asked of
    the server exactly as they are read, never through fsspec's read-ahead file objects, and only
    of the version indexed: on S3 each GET carries ``If-Match: <ETag>``, and an answer of another
    ETag or length is refused, so a replaced object reads EIO, never old or mixed bytes.
    ``ranges`` (``--cache-images``) keeps fetched images on disk; ``on_changed`` hears of an
    object found replaced (the live mount then syncs at once instead of at the next poll)."""

    def __init__(self, remote: RemoteObjects, ranges: RangeCache | None = None,
                 deadline: float = REQUEST_DEADLINE) -> None:
        self.remote = remote
        self.fs = remote.fs
        self.ranges = ranges
        self.deadline = deadline
        self.on_changed: Callable[[], None] | None = None
        self._local = LocalStore()
        self.fetched_bytes = 0  # what the server sent (the benchmark's bytes per image)
        self._s3 = hasattr(self.fs, "_call_s3")
        # images fetched whole, while the kernel reads them in pieces (by the image's place in its object)
        self._whole: LRUCache[tuple[str, str, int, int], bytes] = LRUCache(WHOLE_IMAGES_KEPT_BYTES, getsizeof=len)
        self._whole_lock = threading.Lock()
        serve_remote(remote.tree, self)

    def is_placeholder(self, path: str) -> bool:
        return self.remote.is_placeholder(path)

    def _locate(self, ref: ImageRef) -> Location:
        try:
            return self.remote.locate(ref)
        except LookupError as e:
            raise SourceUnreadable(str(e)) from None

    def open(self, ref: ImageRef) -> object:
        if not self.remote.is_placeholder(ref.path):
            return self._local.open(ref)
        return _Remote(self._locate(ref))

    def read(self, handle: object, ref: ImageRef, size: int, offset: int) -> bytes:
        if not isinstance(handle, _Remote):
            return self._local.read(handle, ref, size, offset)
        if offset >= ref.size or size <= 0:
            return b""
        size = min(size, ref.size - offset)
        if ref.size > WHOLE_IMAGE_BYTES:
            return self._get(handle.location, ref, offset, size)
        key = (handle.location.path, handle.location.etag, ref.offset, ref.size)
        with self._whole_lock:
            data = self._whole.get(key)
        if data is None:
            data = self._get(handle.location, ref, 0, ref.size)
            with self._whole_lock:
                self._whole[key] = data
        return data[offset:offset + size]

    def is_current(self, ref: ImageRef) -> bool:
        """A placeholder's object is checked by every GET (If-Match): no request is spent here."""
        return self.remote.is_placeholder(ref.path) or self._local.is_current(ref)

    def close(self, handle: object) -> None:
        if not isinstance(handle, _Remote):
            self._local.close(handle)

    def read_all(self, ref: ImageRef) -> bytes:
        if not self.remote.is_placeholder(ref.path):
            return self._local.read_all(ref)
        return self.read_range(ref, ref.size, 0)

    def read_range(self, ref: ImageRef, size: int, offset: int) -> bytes:
        """``size`` bytes at ``offset`` of what the placeholder ``ref`` stands for (header probes, export)."""
        if offset >= ref.size or size <= 0:
            return b""
        return self._get(self._locate(ref), ref, offset, min(size, ref.size - offset))

    def _get(self, where: Location, ref: ImageRef, offset: int, size: int) -> bytes:
        """The bytes ``[offset, offset + size)`` of ``ref`` within its object, from the image cache
        when it has them, else from the server."""
        start = ref.offset + offset
        cache_key = f"{where.path}\0{where.etag}\0{start}\0{size}"
        if self.ranges is not None:
            kept = self.ranges.get(cache_key, size)
            if kept is not None:
                return kept
        data = self._fetch(where, start, start + size)
        self.fetched_bytes += len(data)
        if self.ranges is not None:
            self.ranges.put(cache_key, data)
        return data

    def _fetch(self, where: Location, start: int, end: int) -> bytes:
        from fsspec.asyn import sync as fsspec_sync  # fsspec comes with the [s3] extra: imported on use

        url = self.remote.key(os.path.join(self.remote.tree, where.path[len(self.remote.root) + 1:]))
        try:
            if self._s3:
                data, etag = fsspec_sync(self.fs.loop, self._s3_range, where, start, end, timeout=self.deadline)
                if etag is not None and etag != where.etag:
                    raise _Replaced()
            else:
                data = fsspec_sync(self.fs.loop, self.fs._cat_file, where.path, start=start, end=end,
                                   timeout=self.deadline)
        except _Replaced:
            log.warning("%s: replaced since it was indexed (ETag is no longer %s): EIO until the next sync",
                        url, where.etag)
            if self.on_changed is not None:
                self.on_changed()
            raise SourceUnreadable(f"{url}: replaced since it was indexed") from None
        except Exception as e:  # timeouts, refused connections, throttling and refused credentials after retries
            reason = _failure(e)
            log.warning("%s: bytes %d-%d could not be read (%s): EIO", url, start, end - 1, reason)
            raise SourceUnreadable(f"{url}: {reason}") from None
        if len(data) != end - start:
            log.warning("%s: %d bytes came for a range of %d (object truncated?): EIO", url, len(data), end - start)
            raise SourceUnreadable(f"{url}: the object is shorter than its index says")
        return bytes(data)

    async def _s3_range(self, where: Location, start: int, end: int) -> tuple[bytes, str | None]:
        """One ranged GET of the version ``where`` names: (body, the ETag the server answered with)."""
        bucket, _, key = where.path.partition("/")
        try:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}",
                                          IfMatch=where.etag)
        except Exception as e:
            if _status(e) == 412:
                raise _Replaced() from None
            raise
        try:
            return await resp["Body"].read(), resp.get("ETag")
        finally:
            resp["Body"].close()


class _Replaced(Exception):
    """The object is no longer the version indexed (412 Precondition Failed, or another ETag)."""


def _status(e: BaseException) -> int | None:
    """The HTTP status of a failed request, from botocore's error (s3fs raises an OSError made from it)."""
    seen: BaseException | None = e
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return int(code) if code is not None else None
        seen = seen.__cause__ or seen.__context__
    return None


def _failure(e: BaseException) -> str:
    """What the log and the EIO say of a failed request."""
    from fsspec.asyn import FSTimeoutError

    if isinstance(e, FSTimeoutError):
        return "no answer within the deadline"
    if isinstance(e, PermissionError):
        return f"access refused ({e})"
    status = _status(e)
    return f"{type(e).__name__}: {e}" if status is None else f"HTTP {status}: {e}"


class RangeCache:
    """Fetched image bytes on disk (``--cache-images SIZE``), least recently used deleted first
    past ``budget`` bytes. An entry is named by the hash of (object, ETag, range), so a replaced
    object never finds the old bytes; one found of another length than asked is deleted."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder
        self.budget = budget
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for e in os.scandir(folder):
            with contextlib.suppress(OSError):
                st = e.stat()
                entries.append((st.st_mtime_ns, e.name, st.st_size))
        self._used: OrderedDict[str, int] = OrderedDict((name, size) for _, name, size in sorted(entries))
        self._total = sum(self._used.values())

    def _name(self, key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str, size: int) -> bytes | None:
        name = self._name(key)
        try:
            data = (self.folder / name).read_bytes()
        except OSError:
            return None
        if len(data) != size:
            with contextlib.suppress(OSError):
                (self.folder / name).unlink()
            return None
        with self._lock:
            if name in self._used:
                self._used.move_to_end(name)
        with contextlib.suppress(OSError):
            os.utime(self.folder / name)
        return data

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        tmp = self.folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / name)
        except OSError as e:  # a full or read-only cache folder: served without keeping
            log.warning("image cache %s: %s", self.folder, e.strerror)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        with self._lock:
            self._total += len(data) - self._used.pop(name, 0)
            self._used[name] = len(data)
            while self._total > self.budget and len(self._used) > 1:
                old, old_size = self._used.popitem(last=False)
                self._total -= old_size
                with contextlib.suppress(OSError):
                    (self.folder / old).unlink()
