"""The FUSE operations: each one translates a syscall into a VirtualTree call.

Only the callbacks defined here are registered with libfuse (this class deliberately does
not inherit fusepy's ``Operations``, whose no-op callbacks would each cost a round trip).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Any, Callable

from fuse import FuseOSError

from formats.nodes import SourceBytes
from vfs.errors import TreeError
from vfs.tree import VirtualTree

log = logging.getLogger("slyfs.fuse")

DIR_MODE = stat.S_IFDIR | 0o555
FILE_MODE = stat.S_IFREG | 0o444


class SlyfsOperations:
    use_ns = True  # fusepy: times in nanoseconds

    def __init__(self, tree: VirtualTree, on_ready: Callable[[], None] | None = None) -> None:
        self.tree = tree
        self.on_ready = on_ready
        self.uid, self.gid = os.getuid(), os.getgid()

    def __call__(self, op: str, *args: Any) -> Any:
        try:
            return getattr(self, op)(*args)
        except TreeError as e:
            raise FuseOSError(e.errno) from None
        except FuseOSError:
            raise
        except Exception:
            log.exception("%s%r failed", op, args[:1])
            raise FuseOSError(errno.EIO) from None

    # -- lifecycle

    def init(self, path: str) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        self.tree.close()

    # -- reading

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        a = self.tree.attr(path)
        t = int(a.mtime * 1e9)
        return {
            "st_mode": DIR_MODE if a.is_dir else FILE_MODE,
            "st_nlink": 2 if a.is_dir else 1,
            "st_size": a.size,
            "st_blocks": (a.size + 511) // 512,
            "st_uid": self.uid,
            "st_gid": self.gid,
            "st_mtime": t, "st_ctime": t, "st_atime": t,
        }

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *self.tree.listdir(path)]

    def open(self, path: str, fi: Any) -> int:
        if fi.flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FuseOSError(errno.EROFS)
        fi.fh = self.tree.open(path)
        # Source image bytes never change under a name: let the kernel keep their pages.
        fi.keep_cache = 1 if isinstance(self.tree.node(path), SourceBytes) else 0
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return self.tree.read(fi.fh, size, offset)

    def release(self, path: str, fi: Any) -> None:
        self.tree.release(fi.fh)

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255,
                "f_files": 0, "f_ffree": 0, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0}

    # -- everything that would write

    def _read_only(self, *args: Any) -> None:
        raise FuseOSError(errno.EROFS)

    write = create = mkdir = mknod = unlink = rmdir = rename = link = symlink = _read_only
    truncate = chmod = chown = utimens = setxattr = removexattr = _read_only
