"""The FUSE operations: each one translates a syscall into a VirtualTree call.

Only the callbacks defined here are registered with libfuse (this class deliberately does
not inherit fusepy's ``Operations``, whose no-op callbacks would each cost a round trip).
Runs on both bindings: mfusepy (libfuse 3) calls the methods directly, fusepy (libfuse 2)
through ``__call__``; both turn an ``OSError`` into its errno, so errors are translated
per method and this module imports neither.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import chain, count, repeat
from typing import Any, TypeVar

from slyfs.formats.contract import SourceBytes
from slyfs.vfs.errors import TreeError
from slyfs.vfs.tree import VirtualTree

log = logging.getLogger("slyfs.fuse")


F = TypeVar("F", bound=Callable[..., Any])
FUSE_CAP_NO_OPEN_SUPPORT = 1 << 17  # libfuse 3's fuse_common.h: the kernel takes ENOSYS on OPEN as "never open"
_thread_state_held = threading.local()


def hold_thread_state() -> None:
    """Keep this libfuse worker thread's Python thread state for good. ctypes otherwise creates
    and destroys one around every callback on a thread Python did not start: that halved the
    multithreaded loop's rate on small files (README, performance)."""
    if not getattr(_thread_state_held, "held", False):
        ctypes.pythonapi.PyGILState_Ensure()  # never released: the thread state outlives the callback
        _thread_state_held.held = True


class FuseError(OSError):
    """An errno chosen for the kernel (both bindings return an OSError's errno)."""


def fuse_errno(errnum: int) -> FuseError:
    return FuseError(errnum, os.strerror(errnum))


def translated(op: F) -> F:
    """Tree errors become their errno; anything unexpected is logged and becomes EIO."""
    @functools.wraps(op)
    def wrapper(self: Any, *args: Any) -> Any:
        hold_thread_state()
        try:
            return op(self, *args)
        except TreeError as e:
            raise fuse_errno(e.errno) from None
        except FuseError:
            raise
        except Exception:
            log.exception("%s%r failed", op.__name__, args[:1])
            raise fuse_errno(errno.EIO) from None
    return wrapper  # type: ignore[return-value]


class SlyfsOperations:
    use_ns = True  # times in nanoseconds

    def __init__(self, tree: VirtualTree, on_ready: Callable[[], None] | None = None, no_open: bool = False) -> None:
        self.tree = tree
        self.on_ready = on_ready
        self._next_dir = count(1)  # next() on it is atomic: worker threads share it
        self._listings: dict[int, Sequence[str]] = {}  # open directory handle → the listing it reads
        # Asked for a view that never changes (a snapshot). Kept only if the kernel can do without
        # OPEN, for the first OPEN is then answered ENOSYS (see open()).
        self.no_open = no_open

    # -- lifecycle

    def init_with_config(self, conn: Any, config: Any) -> None:
        """libfuse 3's init: whether the kernel reads files it was never asked to open."""
        if self.no_open and not (conn is not None and conn.capable & FUSE_CAP_NO_OPEN_SUPPORT):
            log.info("the kernel cannot read without OPEN: files are opened one by one")
            self.no_open = False
        self.init("/")

    def init(self, path: str) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        self.tree.close()

    # -- reading

    @translated
    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        """Mode bits and owner are the source's (see SourceOwners): the kernel checks them
        (``default_permissions``), which matters once ``allow_other`` lets other users in."""
        a = self.tree.attr(path)
        t = int(a.mtime * 1e9)
        return {
            "st_mode": (stat.S_IFDIR if a.is_dir else stat.S_IFREG) | a.mode,
            "st_nlink": 2 if a.is_dir else 1,
            "st_size": a.size,
            "st_blocks": (a.size + 511) // 512,
            "st_uid": a.uid,
            "st_gid": a.gid,
            "st_mtime": t, "st_ctime": t, "st_atime": t,
        }

    @translated
    def readdir(self, path: str, fh: Any) -> list[str]:
        """The whole listing at once: fusepy's way (libfuse 2 keeps it in one buffer and answers
        each kernel request with a slice of it)."""
        return [".", "..", *self.tree.listdir(path)]

    @translated
    def opendir(self, path: str) -> int:
        return next(self._next_dir)

    @translated
    def readdir_with_offset(self, path: str, offset: int, fh: int) -> Iterator[tuple[str, None, int]]:
        """The entries from ``offset`` on, each with the offset of the next one: mfusepy's way, so
        libfuse 3 passes each kernel request's share straight through. Given offset 0, libfuse 3
        keeps the whole listing as a linked list and walks it from the start for every request of
        a few hundred entries (quadratic: 12 s for 900,000 names). An open directory reads one
        listing, taken when it is read from the start (opendir, rewinddir), so a version that
        appears meanwhile neither skips nor repeats names."""
        names = self._listings.get(fh) if offset else None
        if names is None:
            names = self._listings[fh] = self.tree.listdir(path)
        head = ((".", None, 1), ("..", None, 2))[offset:]
        start = max(offset - 2, 0)
        return chain(head, zip(map(names.__getitem__, range(start, len(names))), repeat(None), count(start + 3)))

    @translated
    def releasedir(self, path: str, fh: int) -> None:
        self._listings.pop(fh, None)

    @translated
    def open(self, path: str, fi: Any) -> int:
        """Every open is a round trip into Python (and its RELEASE another), unless the view never
        changes: then the first OPEN is answered ENOSYS, after which the kernel sends neither
        OPEN nor RELEASE for the rest of the mount, keeps every file's pages across opens and reads
        with no handle (``fh`` 0: by path, in ``read``). README, Performance: the cost of a file."""
        if self.no_open:
            raise fuse_errno(errno.ENOSYS)
        if fi.flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise fuse_errno(errno.EROFS)
        fi.fh = self.tree.open(path)
        if isinstance(self.tree.handle_node(fi.fh), SourceBytes):
            # Source bytes rarely change under a name: the kernel keeps their pages across opens,
            # except at the first open after they did change.
            fi.keep_cache = 0 if self.tree.take_moved(path) else 1
        else:
            # Generated bytes can change at any rebuild. direct_io: no page cache, and reads are
            # not cut at the kernel's idea of the size, so a handle opened before a change reads
            # its own snapshot to the end even if the new version is shorter.
            fi.direct_io = 1
        return 0

    @translated
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        if fi.fh == 0:  # never opened (handles start at 1): a no-open mount
            return self.tree.read_path(path, size, offset)
        return self.tree.read(fi.fh, size, offset)

    @translated
    def release(self, path: str, fi: Any) -> None:
        self.tree.release(fi.fh)

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255,
                "f_files": 0, "f_ffree": 0, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0}

    # -- everything that would write

    def _read_only(self, *args: Any) -> None:
        raise fuse_errno(errno.EROFS)

    write = create = mkdir = mknod = unlink = rmdir = rename = link = symlink = _read_only
    truncate = chmod = chown = utimens = setxattr = removexattr = _read_only


class Fuse2Operations(SlyfsOperations):
    """fusepy dispatches every callback through the operations object's ``__call__``."""

    def __call__(self, op: str, *args: Any) -> Any:
        return getattr(self, op)(*args)
