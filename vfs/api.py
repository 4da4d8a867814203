"""The views from Python, without FUSE: ``open_view`` returns a read-only fsspec filesystem over the
same ``VirtualTree`` a mount serves, so anything that takes an fsspec filesystem or file objects
reads a view as it would read the mounted directory.

Paths are relative to the view's root (``"data.yaml"``, ``"images/train/a.jpg"``; a leading ``/``
or ``slyfs://`` is accepted). A file object reads the version it opened through the tree's handle,
as an open file of the mount does, whatever replaces it meanwhile. Errors are the mount's errnos
as Python's OSError subclasses; anything that would write raises PermissionError(EROFS).

Each process serves its own copy of a view: a filesystem used in a forked child (a DataLoader
worker) opens the view again there on its first call (the index makes that quick), and one
unpickled (a ``spawn`` worker) opens it from its arguments; the index's sqlite connection and the
watcher's threads never cross a process boundary.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from slyfs.formats.registry import parse_formats
from slyfs.vfs.cache import DEFAULT_DISK_BYTES, DISK_MIN_BYTES
from slyfs.vfs.errors import TreeError
from slyfs.vfs.opening import CacheSettings, Opening, Served, checked_view_options, default_cache_dir, open_source
from slyfs.vfs.sources import DEFAULT_POLL_SECONDS
from slyfs.vfs.tree import DEFAULT_CACHE_BYTES, Attr, VirtualTree

READ_BLOCK_BYTES = 1 << 20  # a file object's read-ahead: an image of up to 1 MiB in one tree read


def read_only(path: str) -> PermissionError:
    """What every write gets: a PermissionError (``except PermissionError`` catches it) with the
    mount's errno, EROFS."""
    return PermissionError(errno.EROFS, "read-only file system: a slyfs view cannot be written", path)


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
    """The tree's errors as the OSError of their errno (FileNotFoundError for ENOENT,
    IsADirectoryError for EISDIR, ...), naming the path, as a read of the mount raises them."""
    try:
        yield
    except TreeError as e:
        reason = os.strerror(e.errno)
        raise OSError(e.errno, f"{reason}: {e}" if str(e) and str(e) != path else reason, path) from None


def _byte_range(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """``start``/``end`` as in a slice (None: the file's start or end; negative: from its end),
    within ``[0, size]``."""
    def at(offset: int | None, default: int) -> int:
        if offset is None:
            return default
        return min(max(offset + size if offset < 0 else offset, 0), size)
    return at(start, 0), at(end, size)


def _close_in_owner(served: Served, owner: int) -> None:
    """Close ``served`` in the process that opened it only: a forked child holds a copy of the
    parent's threads' state and sqlite connection, which it must neither use nor close."""
    if os.getpid() == owner:
        served.close()


class ViewFileSystem(AbstractFileSystem):
    """A read-only fsspec filesystem over one view of a source (see ``open_view`` for the options).

    Close it (``close()``, or use it as a context manager) to stop its threads and save the index;
    a filesystem never closed is closed when the interpreter exits."""

    protocol = "slyfs"
    root_marker = ""
    cachable = False  # each one serves a view of its own, and is closed on its own

    def __init__(self, source: str | os.PathLike[str], format: str | Sequence[str] = "yolo", *,
                 split: str = "dataset", classes: str | Iterable[str] | None = None, include_empty: bool = True,
                 opt: Mapping[str, str] | None = None, follow_external_links: bool = False, watch: bool = True,
                 cache_dir: str | os.PathLike[str] | None = None, index: bool = True,
                 storage_options: Mapping[str, Any] | None = None, poll: float = DEFAULT_POLL_SECONDS,
                 cache_images: int | None = None,
                 cache_size: int = DEFAULT_CACHE_BYTES, disk_cache_size: int = DEFAULT_DISK_BYTES,
                 disk_cache_threshold: int = DISK_MIN_BYTES) -> None:
        super().__init__()
        formats = parse_formats(format if isinstance(format, str) else ",".join(format))
        wanted = classes.split(",") if isinstance(classes, str) else classes
        options = checked_view_options(formats, split, wanted, include_empty, opt)
        self.formats = tuple(formats)
        cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._opening: Opening = open_source(os.fspath(source), formats, options, follow_external_links,
                                             storage_options=storage_options, cache_root=cache_root,
                                             cache_images=cache_images)
        self._poll = poll
        self._caches = CacheSettings(cache_root, index=index,
                                     memory_bytes=cache_size, disk_bytes=disk_cache_size,
                                     disk_threshold=disk_cache_threshold)
        self._watch = watch
        self._lock = threading.Lock()
        self._closed = False
        self._inherited: list[Served] = []  # a forked child's copies of its parent's views: never touched
        self._served, self._owner = self._serve()

    @property
    def source_root(self) -> str:
        """The project folder this view is made from."""
        return self._opening.root

    def _serve(self) -> tuple[Served, int]:
        """The view served in this process; closed by ``close()`` or, if never closed, at exit."""
        served = self._opening.serve(self._caches)
        served.start(self._watch, self._poll)
        owner = os.getpid()
        self._finalizer = weakref.finalize(self, _close_in_owner, served, owner)
        return served, owner

    @property
    def _tree(self) -> VirtualTree:
        """The tree this process serves (opened again in a forked child, see the module's docstring)."""
        if self._closed:
            raise ValueError(f"the slyfs view of {self._opening.root} is closed")
        if self._owner != os.getpid():
            with self._lock:
                if self._owner != os.getpid():
                    self._inherited.append(self._served)
                    self._served, self._owner = self._serve()
        return self._served.tree

    def close(self) -> None:
        """Stop the watcher and the background check, save the index, close every open handle."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # runs once: never again at exit

    def __enter__(self) -> ViewFileSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths and listings

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return str(super()._strip_protocol(path)).strip("/")

    @staticmethod
    def _entry(path: str, attr: Attr) -> dict[str, Any]:
        return {"name": path, "size": attr.size, "type": "directory" if attr.is_dir else "file",
                "mode": (stat.S_IFDIR if attr.is_dir else stat.S_IFREG) | attr.mode,
                "mtime": attr.mtime, "uid": attr.uid, "gid": attr.gid}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        with os_errors(path):
            return self._entry(path, self._tree.attr(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The folder's entries, sorted (a file: itself, as fsspec has it). In a detailed listing, a
        file whose size cannot be known (a generated file its source cannot give) has size None,
        as ``ls -l`` on the mount shows the name with an error: the rest is listed."""
        path = self._strip_protocol(path)
        tree = self._tree
        try:
            with os_errors(path):
                names = tree.listdir(path)
        except NotADirectoryError:
            return [self.info(path) if detail else path]
        paths = [f"{path}/{name}" if path else name for name in names]
        return [self._listed(tree, p) for p in paths] if detail else paths

    def _listed(self, tree: VirtualTree, path: str) -> dict[str, Any]:
        try:
            return self._entry(path, tree.attr(path))
        except TreeError:
            return {"name": path, "size": None, "type": "file"}

    def modified(self, path: str) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    # -- reading

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, cache_type: str = "readahead",
              **kwargs: Any) -> ViewFile:
        path = self._strip_protocol(path)
        if mode != "rb":
            raise read_only(path)
        tree = self._tree
        with os_errors(path):
            fh = tree.open(path)
        try:
            with os_errors(path):
                size = tree.handle_size(fh)
            return ViewFile(self, path, tree, fh, size, block_size=block_size, cache_type=cache_type,
                            cache_options=cache_options)
        except BaseException:
            tree.release(fh)
            raise

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The file's bytes from ``start`` to ``end`` (a slice's rules), read in one tree read."""
        path = self._strip_protocol(path)
        tree = self._tree
        with os_errors(path):
            fh = tree.open(path)
            try:
                first, stop = _byte_range(start, end, tree.handle_size(fh))
                return tree.read(fh, stop - first, first) if stop > first else b""
            finally:
                tree.release(fh)

    # -- everything that would write

    def _refuse(self, path: Any = "", *args: Any, **kwargs: Any) -> None:
        raise read_only(str(path))

    mkdir = makedirs = rmdir = rm_file = _rm = rm = cp_file = mv = touch = pipe_file = put_file = _refuse


class ViewFile(AbstractBufferedFile):
    """A file of a view opened for reading: seekable, read through its tree handle (the version it
    opened), released when closed."""

    DEFAULT_BLOCK_SIZE = READ_BLOCK_BYTES

    def __init__(self, fs: ViewFileSystem, path: str, tree: VirtualTree, fh: int, size: int, **kwargs: Any) -> None:
        self._tree = tree
        self._fh: int | None = fh
        super().__init__(fs, path, mode="rb", size=size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        assert self._fh is not None  # read() refuses a closed file first
        with os_errors(self.path):
            return self._tree.read(self._fh, end - start, start)

    def close(self) -> None:
        try:
            super().close()
        finally:
            fh, self._fh = self._fh, None
            if fh is not None:
                self._tree.release(fh)


def open_view(source: str | os.PathLike[str], format: str | Sequence[str] = "yolo", **options: Any) -> ViewFileSystem:
    """A read-only fsspec filesystem serving ``source`` (a Supervisely project folder) in ``format``:
    one name, ``"coco,yolo"``, a list, or ``"all"`` (each view in its folder). The options are the
    command line's: ``split`` ("dataset", "tags", "ratio:0.8"), ``classes`` (names, or "a,b"),
    ``include_empty`` (False: ``--no-empty``), ``opt`` ({KEY: VALUE} of ``--opt``),
    ``follow_external_links``, ``watch`` (False: a snapshot, ``--snapshot``), ``cache_dir`` (the
    index and disk cache; default ~/.cache/slyfs), ``index`` (False: ``--no-index``), ``cache_size``,
    ``disk_cache_size``, ``disk_cache_threshold`` (bytes). ``source`` may be a URL
    (``s3://bucket/prefix``) with ``storage_options``, ``poll`` (seconds between listings) and
    ``cache_images`` (bytes), as on the command line. A source or an option that cannot be
    served is refused at once (a ``slyfs`` UserError: SourceError, OptionError, UnknownFormat)."""
    return ViewFileSystem(source, format, **options)
