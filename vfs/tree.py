"""The virtual tree: path lookup, listing and reading over a view's ``{path: node}`` map.

Used by the FUSE operations, by ``slyfs export`` and directly from Python
(``VirtualTree(view).read_file("data.yaml")``). Nothing here imports fuse.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from cachetools import LRUCache

from formats.model import ImageRef
from formats.source_bytes import SourceUnreadable, open_source, read_bytes, read_source
from formats.nodes import Generated, Node, SourceBytes, Tree, Unavailable
from vfs.errors import BadHandle, IsADirectory, NotADirectory, NotFound, Unreadable

DEFAULT_CACHE_BYTES = 512 << 20
FILE_READ_BITS = 0o444  # what a served file may get of its source's bits: read, never write or execute
DIR_BITS = 0o555  # a directory: read and search
OWNER_CACHE_ENTRIES = 4096  # source files whose (bits, uid, gid) are kept: tars are shared, images stat'ed once

Owner = tuple[int, int, int]  # permission bits, uid, gid


@dataclass(frozen=True, slots=True)
class Attr:
    is_dir: bool
    size: int
    mtime: float
    mode: int  # permission bits only (no file type)
    uid: int
    gid: int


def most_restrictive(owners: list[Owner]) -> Owner:
    """Bits that let a user read the result only if every one of ``owners`` lets them, with the
    first owner and group. A source with another owner or group sorts users into other classes,
    so from it only what it grants every class is kept."""
    bits, uid, gid = owners[0]
    for b, u, g in owners[1:]:
        if (u, g) != (uid, gid):
            b = (b & (b >> 3) & (b >> 6) & 0o7) * 0o111
        bits &= b
    return bits, uid, gid


class SourceOwners:
    """The permission bits and owner served for each path, taken from the source (so that with
    ``allow_other`` and ``default_permissions`` the kernel lets through exactly who could read the
    source): a source file's read bits and owner; a generated file's most restrictive of meta.json
    and any image named in its key (one it is converted from or describes); a directory the
    project root's read/search bits and owner. Stats are cached (bounded) until the next
    ``VirtualTree.replace``. Without a root (the Python API) everything is the process's, 0444/0555."""

    def __init__(self, root: str | None) -> None:
        self._root = root
        self._stats: LRUCache = LRUCache(maxsize=OWNER_CACHE_ENTRIES)
        self._lock = threading.Lock()
        self._process: Owner = (FILE_READ_BITS, os.getuid(), os.getgid())

    def _stat(self, path: str) -> Owner | None:
        with self._lock:
            hit = self._stats.get(path)
        if hit is None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            hit = (st.st_mode & 0o777, st.st_uid, st.st_gid)
            with self._lock:
                self._stats[path] = hit
        return hit

    def directory(self) -> Owner:
        root = self._stat(self._root) if self._root else None
        bits, uid, gid = root or self._process
        return (bits if root else DIR_BITS) & DIR_BITS, uid, gid

    def generated(self, key: object = ()) -> Owner:
        """meta.json's (every generated file is made from it), narrowed by the images in ``key``."""
        meta = self._stat(os.path.join(self._root, "meta.json")) if self._root else None
        owners = [meta or self._process]
        owners += [o for part in (key if isinstance(key, tuple) else ())
                   if isinstance(part, ImageRef) and (o := self._stat(part.path)) is not None]
        bits, uid, gid = most_restrictive(owners)
        return bits & FILE_READ_BITS, uid, gid

    def source(self, ref: ImageRef) -> Owner:
        """The source file's (the tar, for a blob image); a file that cannot be stat'ed reads EIO,
        so it gets what generated files get."""
        own = self._stat(ref.path)
        if own is None:
            return self.generated()
        return own[0] & FILE_READ_BITS, own[1], own[2]

    def clear(self) -> None:
        with self._lock:
            self._stats.clear()


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


@contextlib.contextmanager
def _unreadable_on_source_error() -> Iterator[None]:
    """Source bytes that cannot be read as indexed are the tree's EIO."""
    try:
        yield
    except SourceUnreadable as e:
        raise Unreadable(str(e)) from None


def _norm(path: str) -> str:
    return path.strip("/")


class VirtualTree:
    """Serves a view. ``replace()`` swaps in a new version atomically; open handles keep
    reading the version they opened."""

    def __init__(self, files: Tree, cache_bytes: int = DEFAULT_CACHE_BYTES, source_root: str | None = None) -> None:
        self._index = _Index(files, time.time())
        self.cache = RenderCache(cache_bytes)
        self.owners = SourceOwners(source_root)
        self._handles: dict[int, tuple[Node, bytes | int]] = {}  # generated bytes, or a source descriptor
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
            with _unreadable_on_source_error():
                return read_bytes(node.ref)
        raise Unreadable(node.reason)

    def attr(self, path: str) -> Attr:
        node = self.node(path)
        mtime = self._index.mtime
        if node is None:
            return Attr(True, 0, mtime, *self.owners.directory())
        if isinstance(node, SourceBytes):  # the source file's mtime: the kernel drops cached pages when it moves
            return Attr(False, node.ref.size, node.ref.stamp[3] / 1e9 if node.ref.stamp else mtime,
                        *self.owners.source(node.ref))
        if isinstance(node, Generated):
            return Attr(False, len(self.cache.get(node)), mtime, *self.owners.generated(node.key))
        return Attr(False, 0, mtime, *self.owners.generated())

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
        if isinstance(node, Unavailable):
            raise Unreadable(node.reason)
        with _unreadable_on_source_error():
            held = self.cache.get(node) if isinstance(node, Generated) else open_source(node.ref)
        fh = next(self._next_fh)
        self._handles[fh] = (node, held)
        return fh

    def read(self, fh: int, size: int, offset: int) -> bytes:
        try:
            node, held = self._handles[fh]
        except KeyError:
            raise BadHandle(str(fh)) from None
        if isinstance(held, bytes):
            return held[offset:offset + size]
        assert isinstance(node, SourceBytes)
        with _unreadable_on_source_error():
            return read_source(held, node.ref, size, offset)

    def handle_node(self, fh: int) -> Node:
        try:
            return self._handles[fh][0]
        except KeyError:
            raise BadHandle(str(fh)) from None

    def release(self, fh: int) -> None:
        _, held = self._handles.pop(fh, (None, b""))
        if isinstance(held, int):
            os.close(held)

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
        self.owners.clear()  # modes and owners are read again (a rebuild follows source changes)
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
        """Close the descriptors of handles never released (the kernel releases all at unmount)."""
        for fh in list(self._handles):
            self.release(fh)
