"""The permission bits and owner each served file and directory gets, taken from the source.

With ``allow_other`` other users enter the mount and the kernel (``default_permissions``)
checks these bits: a mount must never let anyone read what the source would not let them.
"""

from __future__ import annotations

import functools
import os

from slyfs.formats.model import ImageRef

FILE_READ_BITS = 0o444  # what a served file may get of its source's bits: read, never write or execute
DIR_BITS = 0o555  # a directory: read and search
OWNER_CACHE_ENTRIES = 4096  # source files whose (bits, uid, gid) are kept: tars are shared, images stat'ed once

Owner = tuple[int, int, int]  # permission bits, uid, gid


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


def _stat_owner(path: str) -> Owner | None:
    """The file's permission bits, uid and gid; None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mode & 0o777, st.st_uid, st.st_gid


class SourceOwners:
    """The permission bits and owner served for each path, taken from the source (so that with
    ``allow_other`` and ``default_permissions`` the kernel lets through exactly who could read the
    source): a source file's read bits and owner; a generated file's most restrictive of meta.json
    and any image named in its key (one it is converted from or describes); a directory the
    project root's read/search bits and owner. Stats are cached (bounded) until the next
    ``VirtualTree.replace``. Without a root (the Python API) everything is the process's, 0444/0555."""

    def __init__(self, root: str | None) -> None:
        self._root = root
        self._process: Owner = (FILE_READ_BITS, os.getuid(), os.getgid())
        self._stat = functools.lru_cache(maxsize=OWNER_CACHE_ENTRIES)(_stat_owner)

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
        self._stat.cache_clear()
