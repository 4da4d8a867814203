"""One error class per failure of the virtual tree, and the one errno table."""

from __future__ import annotations

import errno


class TreeError(Exception):
    errno: int = errno.EIO


class NotFound(TreeError):
    errno = errno.ENOENT


class IsADirectory(TreeError):
    errno = errno.EISDIR


class NotADirectory(TreeError):
    errno = errno.ENOTDIR


class Unreadable(TreeError):
    """The source bytes of a file cannot be read (missing tar, bad offsets, I/O error)."""

    errno = errno.EIO


class ReadOnly(TreeError):
    errno = errno.EROFS


class BadHandle(TreeError):
    errno = errno.EBADF
