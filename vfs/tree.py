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
from typing import Callable

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
        self._mtimes: dict[str, float] = {}
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

    def mtime(self, ref: ImageRef) -> float:
        """Modification time of the source file as indexed (its stamp), else as first seen."""
        if ref.stamp:
            return ref.stamp[3] / 1e9
        t = self._mtimes.get(ref.path)
        if t is None:
            try:
                t = os.stat(ref.path).st_mtime
            except OSError:
                t = 0.0
            self._mtimes[ref.path] = t
        return t

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._mtimes.clear()


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
    """Immutable lookup tables for one version of the view: one dict per directory,
    ``name -> node`` (None for a subdirectory). Full paths are not kept: at 10^6 files a
    path string per file would cost ~80 MB more than its last component."""

    __slots__ = ("dirs", "sorted", "mtime")

    def __init__(self, files: Tree, mtime: float) -> None:
        self.mtime = mtime
        dirs: dict[str, dict[str, Node | None]] = {"": {}}
        for path, node in files.items():
            parent, _, name = path.rpartition("/")
            entries = dirs.get(parent)
            if entries is None:
                entries = dirs[parent] = {}
                child = parent
                while child:  # register the new folder in its parent, and so on up while new
                    up, _, leaf = child.rpartition("/")
                    known = up in dirs
                    dirs.setdefault(up, {}).setdefault(leaf, None)
                    if known:
                        break
                    child = up
            entries[name] = node
        self.dirs = dirs
        self.sorted: dict[str, list[str]] = {}  # listings, sorted on first need

    def listing(self, d: str) -> list[str] | None:
        names = self.sorted.get(d)
        if names is None:
            entries = self.dirs.get(d)
            if entries is None:
                return None
            names = self.sorted[d] = sorted(entries)
        return names


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
        self._moved: set[str] = set()
        self._moved_lock = threading.Lock()
        self._next_fh = itertools.count(1)
        # Told what replace() made stale, after the swap (the FUSE daemon sets it when its
        # libfuse can invalidate the kernel's caches path by path).
        self.on_stale: Callable[[list[str]], None] | None = None

    # -- lookups

    def node(self, path: str) -> Node | None:
        """The file node at ``path``; None for a directory; NotFound otherwise."""
        parent, _, name = _norm(path).rpartition("/")
        entries = self._index.dirs.get(parent)
        if entries is None:
            raise NotFound(path)
        if name not in entries:
            if name == "" and parent == "":
                return None  # the root
            raise NotFound(path)
        return entries[name]

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
        if isinstance(node, SourceBytes):  # the source file's mtime: the kernel drops cached pages when it moves
            return Attr(False, node.ref.size, self.sources.mtime(node.ref))
        if isinstance(node, Generated):
            return Attr(False, len(self.cache.get(node)), mtime)
        return Attr(False, 0, mtime)

    def listdir(self, path: str) -> list[str]:
        names = self._index.listing(_norm(path))
        if names is None:
            if self.node(path) is not None:
                raise NotADirectory(path)
            raise NotFound(path)
        return names

    def walk_files(self) -> list[str]:
        """Every file path, sorted."""
        dirs = self._index.dirs
        return sorted(f"{d}/{n}" if d else n for d, entries in dirs.items()
                      for n, node in entries.items() if node is not None)

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

    def handle_node(self, fh: int) -> Node:
        try:
            return self._handles[fh][0]
        except KeyError:
            raise BadHandle(str(fh)) from None

    def release(self, fh: int) -> None:
        self._handles.pop(fh, None)

    def read_file(self, path: str) -> bytes:
        node = self.node(path)
        if node is None:
            raise IsADirectory(path)
        return self.content(node)

    # -- lifecycle

    def replace(self, files: Tree) -> list[str]:
        """Serve a new version; return what the kernel may hold stale: every path whose node
        changed or disappeared, and every folder whose entries changed. Source files whose bytes
        moved are also remembered until their next open, which then must not keep the kernel's
        cached pages (libfuse 2 cannot invalidate)."""
        old, new = self._index, _Index(files, time.time())
        empty: dict[str, Node | None] = {}
        stale: list[str] = []
        moved: set[str] = set()
        for d in old.dirs.keys() | new.dirs.keys():
            before, after = old.dirs.get(d, empty), new.dirs.get(d, empty)
            if before == after:
                continue
            prefix = f"{d}/" if d else ""
            stale += [prefix + n for n, node in before.items() if n not in after or after[n] != node]
            moved |= {prefix + n for n, node in after.items()
                      if isinstance(node, SourceBytes) and before.get(n) != node}
            if before.keys() != after.keys() and d in old.dirs and d in new.dirs:
                stale.append(d)
        self._index = new
        with self._moved_lock:
            self._moved |= moved
        if self.on_stale is not None and stale:
            self.on_stale(stale)
        return stale

    def take_moved(self, path: str) -> bool:
        """Whether ``path``'s source bytes changed since the kernel may have cached them (asked once per change)."""
        if not self._moved:
            return False
        p = _norm(path)
        with self._moved_lock:
            if p in self._moved:
                self._moved.discard(p)
                return True
        return False

    def open_handles(self) -> int:
        return len(self._handles)

    def close(self) -> None:
        self.sources.close()
