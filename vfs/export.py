"""``slyfs export``: the tree a mount would show, written to a real directory.

Everything is first written to a hidden staging folder (next to DEST, or inside it when it
exists), then moved into place, so a failure midway leaves DEST as it was (and the error says
so). Images that are whole source files are hard-linked when the file system allows it (they
then share the source's inode: editing one edits the other; ``link=False`` always copies);
images inside a tar are copied by offset; generated files are rendered and written. The source
is only ever opened for reading.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from formats.model import ImageRef, file_stamp
from formats.nodes import SourceBytes, Unavailable
from formats.source_bytes import SourceUnreadable, open_source
from vfs.tree import VirtualTree

CHUNK = 1 << 20
LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP}
RANGE_FALLBACK = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF}

Progress = Callable[[int, int, int], None]  # (files done, files in all, bytes written)


class ExportError(Exception):
    """The export cannot start or did not finish; the message is the one line the user sees."""


@dataclass
class ExportResult:
    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    generated: int = 0
    skipped: list[str] = field(default_factory=list)  # unreadable files left out


def check_dest(dest: str, force: bool) -> None:
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise ExportError(f"{dest} exists and is not a directory")
    if os.path.isdir(dest) and os.listdir(dest) and not force:
        raise ExportError(f"{dest} is not empty: refusing to export into it (--force writes into it anyway: "
                          f"files at the same paths are replaced, other files are left alone)")


class _Writer:
    """Writes one file of the tree into the staging folder."""

    def __init__(self, tree: VirtualTree, root: str, link: bool, result: ExportResult) -> None:
        self.tree, self.root, self.link, self.result = tree, root, link, result
        self._dirs: set[str] = set()

    def write(self, path: str) -> int:
        target = os.path.join(self.root, path)
        parent = os.path.dirname(target)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        node = self.tree.node(path)
        if isinstance(node, SourceBytes):
            if self.link and self._hard_link(node.ref, target):
                self.result.linked += 1
            else:
                self._copy(node.ref, target)
                self.result.copied += 1
            return node.ref.size
        data = self.tree.read_file(path)
        with open(target, "xb") as f:
            f.write(data)
        self.result.generated += 1
        return len(data)

    @staticmethod
    def _hard_link(ref: ImageRef, target: str) -> bool:
        """Link when ``ref`` is a whole file, unchanged since it was indexed; False when it is
        not or the file system refuses (then it is copied, through the stamp check)."""
        try:
            st = os.stat(ref.path)
            if ref.offset != 0 or st.st_size != ref.size or (ref.stamp and not ref.stamp.same_bytes(file_stamp(st))):
                return False
            os.link(ref.path, target)
            return True
        except OSError as e:
            if e.errno in LINK_FALLBACK:
                return False
            raise

    def _copy(self, ref: ImageRef, target: str) -> None:
        try:
            src = open_source(ref)
        except SourceUnreadable as e:
            raise ExportError(str(e)) from None
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            done = 0
            use_range = hasattr(os, "copy_file_range")
            while done < ref.size:
                count = min(CHUNK, ref.size - done)
                n = 0
                if use_range:  # in-kernel copy, no bytes through Python
                    try:
                        n = os.copy_file_range(src, dst, count, ref.offset + done)
                    except OSError as e:
                        if e.errno not in RANGE_FALLBACK:
                            raise
                        use_range = False
                if not use_range:
                    chunk = os.pread(src, count, ref.offset + done)
                    n = len(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(dst, view):]
                if n == 0:
                    raise ExportError(f"{ref.path}: file is shorter than its index says")
                done += n
        finally:
            os.close(dst)
            os.close(src)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into(staging: str, dest: str, paths: list[str]) -> None:
    """Put the staged files in place: the whole folder at once when DEST did not exist."""
    if not os.path.exists(dest):
        os.rename(staging, dest)
        return
    for path in paths:
        os.makedirs(os.path.dirname(os.path.join(dest, path)), exist_ok=True)
        os.replace(os.path.join(staging, path), os.path.join(dest, path))
    shutil.rmtree(staging)


def export_tree(tree: VirtualTree, dest: str, *, force: bool = False, link: bool = True,
                skip_unreadable: bool = False, progress: Progress | None = None) -> ExportResult:
    """Write every file of ``tree`` below ``dest``. Refuses a non-empty ``dest`` unless ``force``;
    refuses unreadable files (the mount would answer EIO) unless ``skip_unreadable``."""
    dest = os.path.abspath(dest)
    check_dest(dest, force)
    result = ExportResult()
    paths = []
    for path in tree.walk_files():
        node = tree.node(path)
        if isinstance(node, Unavailable):
            result.skipped.append(f"{path}: {node.reason}")
        else:
            paths.append(path)
    if result.skipped and not skip_unreadable:
        raise ExportError(f"{len(result.skipped)} file(s) cannot be read, first {result.skipped[0]} "
                          f"(fix the source, or pass --skip-unreadable to leave them out)")
    if os.path.isdir(dest):  # stage inside DEST: same file system whatever is mounted where
        staging = tempfile.mkdtemp(prefix=".slyfs-export-", dir=dest)
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.slyfs-export-", dir=os.path.dirname(dest))
    os.chmod(staging, 0o777 & ~_umask())
    writer = _Writer(tree, staging, link, result)
    try:
        for i, path in enumerate(paths, 1):
            try:
                result.bytes += writer.write(path)
            except Exception as e:  # any failure of one file stops the export, naming the file
                raise ExportError(f"export stopped at {path}: {e or type(e).__name__}; "
                                  f"{dest} was left as it was") from None
            result.files = i
            if progress:
                progress(i, len(paths), result.bytes)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # unlinks our links only, never a source file's data
        raise
    try:
        _move_into(staging, dest, paths)
    except OSError as e:
        raise ExportError(f"moving the exported files into {dest} failed ({e.strerror or e}); "
                          f"{dest} may be partly updated, the rest is in {staging}") from None
    return result


class ProgressBar:
    """``export: 1200/5000 files, 35.2 MiB`` redrawn in place on a terminal; silent otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, min_interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, done: int, total: int, nbytes: int) -> None:
        now = time.monotonic()
        if not self.enabled or (done < total and now - self._last < self.min_interval):
            return
        self._last = now
        width = 30
        filled = width * done // total if total else width
        self.stream.write(f"\rexport [{'#' * filled}{'.' * (width - filled)}] {done}/{total} files, "
                          f"{nbytes / (1 << 20):.1f} MiB")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
