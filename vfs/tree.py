"""The virtual tree: path lookup, listing and reading over a view's ``{path: node}`` map.

Used by the FUSE operations, by ``slyfs export`` and directly from Python
(``VirtualTree(view).read_file("data.yaml")``). Nothing here imports fuse.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass

from cachetools import LRUCache

from formats.model import ImageRef, file_stamp
from formats.nodes import Generated, Node, SourceBytes, Tree, Unavailable
from vfs.errors import BadHandle, IsADirectory, NotADirectory, NotFound, Unreadable

DEFAULT_CACHE_BYTES = 512 << 20


@dataclass(frozen=True, slots=True)
class Attr:
    is_dir: bool
    size: int
    mtime: float


class SourceFiles:
    """One read-only descriptor per indexed source file, shared by all readers (``os.pread``
    needs no seek). Descriptors are keyed by path *and* stamp: a descriptor is only ever
    opened on the very file the index describes, so a replaced source gives EIO, not
    another file's bytes (and a deleted one keeps serving the indexed bytes it still holds)."""

    def __init__(self) -> None:
        self._fds: dict[tuple[str, tuple], int] = {}
        self._lock = threading.Lock()

    def _fd(self, ref: ImageRef) -> int:
        key = (ref.path, ref.stamp)
        fd = self._fds.get(key)
        if fd is None:
            with self._lock:
                fd = self._fds.get(key)
                if fd is None:
                    fd = os.open(ref.path, os.O_RDONLY | os.O_CLOEXEC)
                    if ref.stamp and file_stamp(os.fstat(fd)) != ref.stamp:
                        os.close(fd)
                        raise Unreadable(f"{ref.path}: replaced or changed since it was indexed")
                    self._fds[key] = fd
        return fd

    def verify(self, ref: ImageRef) -> None:
        """Raise Unreadable unless the indexed file is still there, unchanged (called at open)."""
        try:
            fd = self._fd(ref)
            if ref.stamp and file_stamp(os.fstat(fd)) != ref.stamp:
                raise Unreadable(f"{ref.path}: changed in place since it was indexed")
        except OSError as e:
            raise Unreadable(f"{ref.path}: {e.strerror}") from None

    def pread(self, ref: ImageRef, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` within the file ``ref`` describes."""
        if offset >= ref.size or size <= 0:
            return b""
        size = min(size, ref.size - offset)
        try:
            data = os.pread(self._fd(ref), size, ref.offset + offset)
        except OSError as e:
            raise Unreadable(f"{ref.path}: {e.strerror}") from None
        if len(data) != size:
            raise Unreadable(f"{ref.path}: file is shorter than its index says")
        return data

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


class RenderCache:
    """The one cache of generated content, bounded in bytes, keyed by the node's input key."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache = LRUCache(maxsize=max(1, max_bytes), getsizeof=len)
        self._lock = threading.Lock()

    def get(self, node: Generated) -> bytes:
        with self._lock:
            data = self._cache.get(node.key)
        if data is None:
            data = node.render()
            if len(data) <= self._cache.maxsize:
                with self._lock:
                    self._cache[node.key] = data
        return data


class _Index:
    """Immutable lookup tables for one version of the view."""

    __slots__ = ("files", "dirs", "mtime")

    def __init__(self, files: Tree, mtime: float) -> None:
        self.files = files
        self.mtime = mtime
        children: dict[str, set[str]] = {"": set()}
        for path in files:
            parent, _, name = path.rpartition("/")
            while True:
                kids = children.get(parent)
                if kids is not None:
                    kids.add(name)
                    break
                children[parent] = {name}
                parent, _, name = parent.rpartition("/")
        self.dirs = {d: sorted(k) for d, k in children.items()}


def _norm(path: str) -> str:
    return path.strip("/")


class VirtualTree:
    """Serves a view. ``replace()`` swaps in a new version atomically; open handles keep
    reading the version they opened."""

    def __init__(self, files: Tree, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._index = _Index(files, time.time())
        self.sources = SourceFiles()
        self.cache = RenderCache(cache_bytes)
        self._handles: dict[int, tuple[Node, bytes | None]] = {}
        self._next_fh = itertools.count(1)

    # -- lookups

    def node(self, path: str) -> Node | None:
        """The file node at ``path``; None for a directory; NotFound otherwise."""
        p = _norm(path)
        index = self._index
        node = index.files.get(p)
        if node is not None:
            return node
        if p in index.dirs:
            return None
        raise NotFound(path)

    def content(self, node: Node) -> bytes:
        if isinstance(node, Generated):
            return self.cache.get(node)
        if isinstance(node, SourceBytes):
            return self.sources.pread(node.ref, node.ref.size, 0)
        raise Unreadable(node.reason)

    def attr(self, path: str) -> Attr:
        node = self.node(path)
        mtime = self._index.mtime
        if node is None:
            return Attr(True, 0, mtime)
        if isinstance(node, SourceBytes):
            return Attr(False, node.ref.size, mtime)
        if isinstance(node, Generated):
            return Attr(False, len(self.cache.get(node)), mtime)
        return Attr(False, 0, mtime)

    def listdir(self, path: str) -> list[str]:
        p = _norm(path)
        index = self._index
        names = index.dirs.get(p)
        if names is None:
            raise NotADirectory(path) if p in index.files else NotFound(path)
        return names

    def walk_files(self) -> list[str]:
        """Every file path, sorted."""
        return sorted(self._index.files)

    # -- reading

    def open(self, path: str) -> int:
        node = self.node(path)
        if node is None:
            raise IsADirectory(path)
        data = self.cache.get(node) if isinstance(node, Generated) else None
        if isinstance(node, Unavailable):
            raise Unreadable(node.reason)
        if isinstance(node, SourceBytes):
            self.sources.verify(node.ref)
        fh = next(self._next_fh)
        self._handles[fh] = (node, data)
        return fh

    def read(self, fh: int, size: int, offset: int) -> bytes:
        try:
            node, data = self._handles[fh]
        except KeyError:
            raise BadHandle(str(fh)) from None
        if data is not None:
            return data[offset:offset + size]
        assert isinstance(node, SourceBytes)
        return self.sources.pread(node.ref, size, offset)

    def release(self, fh: int) -> None:
        self._handles.pop(fh, None)

    def read_file(self, path: str) -> bytes:
        node = self.node(path)
        if node is None:
            raise IsADirectory(path)
        return self.content(node)

    # -- lifecycle

    def replace(self, files: Tree) -> None:
        self._index = _Index(files, time.time())

    def open_handles(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        self.sources.close()
