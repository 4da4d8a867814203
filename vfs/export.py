"""``slyfs export``: the tree a mount would show, written to a real directory.

Everything is first written to a hidden staging folder, then moved into place, so a failure
midway leaves DEST as it was (and the error says so). The staging folder is
``.<DEST name>.slyfs-export-<pid>`` beside DEST, so tools walking DEST never see it; only when
DEST's folder is on another file system or not writable is it ``DEST/.slyfs-export-<pid>`` (one
line says so). It is removed on any error, Ctrl-C or SIGTERM; one left by a killed export (its
lock is free) is removed by the next run, with one line saying so.

Nothing below DEST is followed as a symlink: folders are opened relative to their parent's
descriptor with ``O_NOFOLLOW``, files are created fresh and renamed into place, and a symlink
where the export puts a file or folder is replaced itself (``--force``), never written through.

Images that are whole regular files inside the project are hard-linked when the file system
allows it (they then share the source's inode: editing one edits the other; ``link=False``
always copies); a file reached through a symlink pointing outside the project is copied, so DEST
never shares its inode. Images inside a tar are copied by offset; generated files are rendered
and written. A copy keeps its source's permission bits (minus execute, and the umask); a
generated file gets at most the permissions ``generated_mode`` allows. The source is only ever
opened for reading.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from slyfs.formats.contract import Generated, SourceBytes, Unavailable, UserError
from slyfs.formats.model import ImageRef, Project
from slyfs.formats.source_bytes import SourceUnreadable, holds_version, open_source, remote_reader
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.stores import write_all
from slyfs.vfs.tree import VirtualTree

CHUNK = 1 << 20
LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP}
RANGE_FALLBACK = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
STAGING_MARK = ".slyfs-export-"  # staging folders: DEST/.slyfs-export-<pid> or .<DEST name>.slyfs-export-<pid>
MAX_OPEN_DIRS = 256

Progress = Callable[[int, int, int], None]  # (files done, files in all, bytes written)
Notice = Callable[[str], None]  # one line for the user


class ExportError(UserError):
    """The export cannot start or did not finish."""


@dataclass
class ExportResult:
    dest: str = ""  # DEST resolved
    files: int = 0
    bytes: int = 0
    linked: int = 0
    copied: int = 0
    generated: int = 0
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    replaced_links: list[str] = field(default_factory=list)  # symlinks in DEST replaced by the exported entry


def _stderr_notice(line: str) -> None:
    print(f"slyfs: {line}", file=sys.stderr)


def _inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both resolved)."""
    return os.path.commonpath([path, root]) == root


def _overlap(a: str, b: str) -> bool:
    return _inside(a, b) or _inside(b, a)


def check_overlap(source: str, dest: str) -> tuple[str, str]:
    """Both paths resolved; refused when one contains the other (an export would read what it writes)."""
    source, dest = os.path.realpath(source), os.path.realpath(dest)
    if _overlap(source, dest):
        raise ExportError(f"{dest} and the source {source} overlap: export to a directory outside the project")
    return source, dest


def check_dest(dest: str, force: bool) -> None:
    """A non-empty DEST only with ``force``: files of the user's there are never silently mixed in."""
    if os.path.isdir(dest) and os.listdir(dest) and not force:
        raise ExportError(f"{dest} is not empty: refusing to export into it (--force writes into it anyway: "
                          f"files at the same paths are replaced, other files are left alone)")


def generated_mode_for(project: Project) -> int:
    """The permission bits (at most 0o666) that meta.json and every annotation file of ``project``
    all allow: what the files generated from them may get, so a label file is never readable by
    someone who cannot read the annotations it comes from. Files that vanished are skipped."""
    inputs = [project.meta_file.path] if project.meta_file else []
    mode = 0o666
    for path in inputs + [item.ann_path for item in project.items() if item.ann_path]:
        try:
            mode &= stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
    return mode


class _Dirs:
    """The folders below one root descriptor, opened (and created) one component at a time with
    ``O_NOFOLLOW``, so no symlink below the root is ever followed. A symlink where a folder belongs
    is replaced by a real folder when ``replaced`` collects them; otherwise it is an error."""

    def __init__(self, root_fd: int, shown: str, replaced: list[str] | None) -> None:
        self.root_fd, self.shown, self.replaced = root_fd, shown, replaced
        self._fds: dict[str, int] = {}

    def fd(self, rel_dir: str) -> int:
        """The descriptor of ``rel_dir`` ("" is the root), created if missing."""
        if not rel_dir:
            return self.root_fd
        fd = self._fds.get(rel_dir)
        if fd is None:
            parent, name = os.path.split(rel_dir)
            fd = self._open_child(self.fd(parent), name, rel_dir)
            if len(self._fds) >= MAX_OPEN_DIRS:
                self.close()
            self._fds[rel_dir] = fd
        return fd

    def _open_child(self, parent_fd: int, name: str, rel_dir: str) -> int:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if self.replaced is None or not stat.S_ISLNK(os.stat(name, dir_fd=parent_fd,
                                                                  follow_symlinks=False).st_mode):
                shown = os.path.join(self.shown, rel_dir)
                raise ExportError(f"{shown} is a file where the export puts a folder") from e
            os.unlink(name, dir_fd=parent_fd)  # the link itself, never what it points to
            self.replaced.append(rel_dir)
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent_fd)
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class _Writer:
    """Writes one file of the tree into the staging folder."""

    def __init__(self, tree: VirtualTree, staging: _Dirs, source_root: str, link: bool, generated_mode: int,
                 result: ExportResult) -> None:
        self.tree, self.staging, self.source_root, self.link = tree, staging, source_root, link
        self.generated_mode, self.result = generated_mode, result

    def write(self, path: str) -> int:
        parent, name = os.path.split(path)
        dir_fd = self.staging.fd(parent)
        node = self.tree.node(path)
        if isinstance(node, SourceBytes) and remote_reader(node.ref.path) is not None:
            self._copy_remote(node, dir_fd, name)  # object storage: never from the placeholder
            self.result.copied += 1
            return node.ref.size
        if isinstance(node, SourceBytes):
            if self.link and self._hard_link(node.ref, dir_fd, name):
                self.result.linked += 1
            else:
                self._copy(node.ref, dir_fd, name)
                self.result.copied += 1
            return node.ref.size
        # a generated file is written as it is made (each is read once: no cache), a COCO file of
        # 10^6 images included, never joined in memory
        pieces = node.chunks() if isinstance(node, Generated) else (self.tree.read_file(path),)
        dst = os.open(name, NEW_FILE_FLAGS, self.generated_mode, dir_fd=dir_fd)
        size = 0
        try:
            for piece in pieces:
                write_all(dst, piece)
                size += len(piece)
        finally:
            os.close(dst)
        self.result.generated += 1
        return size

    def _hard_link(self, ref: ImageRef, dir_fd: int, name: str) -> bool:
        """Link when ``ref`` is a whole regular file inside the project, unchanged since it was
        indexed; False when it is not or the file system refuses (then it is copied, through the
        stamp check). A file outside the project (reached through a symlink) is never linked."""
        real = os.path.realpath(ref.path)
        if not _inside(real, self.source_root):
            return False
        try:
            st = os.stat(ref.path)
            if ref.offset != 0 or st.st_size != ref.size or not holds_version(ref, st):
                return False
            os.link(real, name, dst_dir_fd=dir_fd, follow_symlinks=False)
            linked = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(linked.st_mode) and (linked.st_dev, linked.st_ino) == (st.st_dev, st.st_ino):
                return True
            os.unlink(name, dir_fd=dir_fd)  # swapped since the check: copy it instead
            return False
        except OSError as e:
            if e.errno in LINK_FALLBACK:
                return False
            raise

    def _copy_remote(self, node: SourceBytes, dir_fd: int, name: str) -> None:
        """An object's bytes through the tree's store, with its placeholder's mode bits (no execute)."""
        try:
            data = self.tree.content(node)
            mode = stat.S_IMODE(os.stat(node.ref.path).st_mode) & 0o666
        except (Unreadable, OSError) as e:
            raise ExportError(str(e)) from None
        dst = os.open(name, NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
        try:
            write_all(dst, data)
        finally:
            os.close(dst)

    def _copy(self, ref: ImageRef, dir_fd: int, name: str) -> None:
        try:
            src = open_source(ref)
        except SourceUnreadable as e:
            raise ExportError(str(e)) from None
        try:
            dst = os.open(name, NEW_FILE_FLAGS, stat.S_IMODE(os.fstat(src).st_mode) & 0o666, dir_fd=dir_fd)
        except BaseException:
            os.close(src)
            raise
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
                    write_all(dst, chunk)
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


def _in_use(fd: int, name: str) -> bool:
    """Whether the export that made staging folder ``name`` (open as ``fd``) still runs: it holds
    an flock on it until it ends, however it ends. Where flock is unsupported, its pid decides."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        pid = name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _remove_leftovers(dir_fd: int, shown_dir: str, prefix: str, source_root: str, dest: str,
                      notice: Notice) -> None:
    """Remove the staging folders ``prefix*`` in ``dir_fd`` left by exports that did not finish;
    refuse while one still runs (two exports into one DEST would interleave)."""
    for name in sorted(os.listdir(dir_fd)):
        path = os.path.join(shown_dir, name)
        if not name.startswith(prefix) or "." in name[len(prefix):] or _overlap(os.path.realpath(path), source_root):
            continue
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # not a folder (or a symlink): not ours
        try:
            if _in_use(fd, name):
                raise ExportError(f"another slyfs export is writing into {dest} right now (staging folder {path}); "
                                  f"wait for it to finish")
            shutil.rmtree(name, dir_fd=dir_fd)
        finally:
            os.close(fd)
        notice(f"removed {path}, the staging folder of an export that did not finish")


@dataclass
class _Staging:
    """Where the files are written first: a locked folder in ``parent_fd`` (DEST's folder, or DEST)."""

    parent_fd: int
    name: str
    path: str
    fd: int
    moved: bool = False  # renamed to DEST as a whole: nothing left to remove

    @classmethod
    def create(cls, parent_fd: int, parent: str, name: str) -> _Staging:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        with contextlib.suppress(OSError):  # no flock on this file system: the pid in the name tells
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(parent_fd, name, os.path.join(parent, name), fd)

    def remove(self) -> None:
        if not self.moved:
            shutil.rmtree(self.name, dir_fd=self.parent_fd, ignore_errors=True)  # unlinks our links, never source data


def _start_staging(dest: str, parent_fd: int, dest_fd: int | None, notice: Notice) -> _Staging:
    """Beside DEST when DEST's folder can hold it on DEST's file system (a rename then moves it),
    else inside DEST."""
    parent, base = os.path.split(dest)
    beside = f".{base}{STAGING_MARK}{os.getpid()}"
    if dest_fd is None or os.fstat(dest_fd).st_dev == os.fstat(parent_fd).st_dev:
        try:
            return _Staging.create(parent_fd, parent, beside)
        except OSError as e:
            if dest_fd is None or e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
    staging = _Staging.create(dest_fd, dest, f"{STAGING_MARK}{os.getpid()}")
    notice(f"staging in {staging.path} ({parent} is on another file system or not writable); removed at the end")
    return staging


def _check_kinds(dest: str, paths: list[str]) -> None:
    """Refuse before anything is written when DEST holds a file where the export puts a folder, or
    a folder where it puts a file (a symlink there is fine: it is replaced, and nothing below it is
    looked at)."""
    is_folder: dict[str, bool] = {}
    for path in paths:
        is_folder[path] = False
        parent = os.path.dirname(path)
        while parent and parent not in is_folder:
            is_folder[parent] = True
            parent = os.path.dirname(parent)
    new: set[str] = set()  # absent or a symlink: created by the export, with everything below it
    for rel in sorted(is_folder, key=lambda p: p.count("/")):  # parents first
        if os.path.dirname(rel) in new:
            new.add(rel)
            continue
        try:
            st = os.lstat(os.path.join(dest, rel))
        except FileNotFoundError:
            new.add(rel)
            continue
        if stat.S_ISLNK(st.st_mode):
            new.add(rel)
        elif stat.S_ISDIR(st.st_mode) != is_folder[rel]:
            found, wanted = ("file", "folder") if is_folder[rel] else ("folder", "file")
            raise ExportError(f"{os.path.join(dest, rel)} is a {found} where the export puts a {wanted}: "
                              f"move it away; {dest} was left as it was")


def _move_into(staged: _Dirs, dest_fd: int, dest: str, paths: list[str],
               result: ExportResult) -> None:
    """Rename every staged file onto its path in DEST; a symlink there is replaced itself."""
    dest_dirs = _Dirs(dest_fd, dest, result.replaced_links)
    try:
        for path in paths:
            parent, name = os.path.split(path)
            dst_fd = dest_dirs.fd(parent)
            try:
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISLNK(os.stat(name, dir_fd=dst_fd, follow_symlinks=False).st_mode):
                        result.replaced_links.append(path)
                os.replace(name, name, src_dir_fd=staged.fd(parent), dst_dir_fd=dst_fd)
            except OSError as e:
                raise ExportError(f"{os.path.join(dest, path)}: {e.strerror or e}") from None
    finally:
        dest_dirs.close()


def export_tree(tree: VirtualTree, dest: str, *, source: str, force: bool = False, link: bool = True,
                skip_unreadable: bool = False, generated_mode: int = 0o666, progress: Progress | None = None,
                notice: Notice = _stderr_notice) -> ExportResult:
    """Write every file of ``tree`` (a view of the project at ``source``) below ``dest``. Refuses a
    ``dest`` overlapping the source, a non-empty ``dest`` unless ``force``, and unreadable files
    (the mount would answer EIO) unless ``skip_unreadable``."""
    source_root, dest = check_overlap(source, dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise ExportError(f"{dest} exists and is not a directory")
    result = ExportResult(dest=dest)
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
    parent, base = os.path.split(dest)
    os.makedirs(parent, exist_ok=True)
    parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dest_fd = None
    try:
        with contextlib.suppress(FileNotFoundError):
            dest_fd = os.open(base, DIR_FLAGS, dir_fd=parent_fd)
        _remove_leftovers(parent_fd, parent, f".{base}{STAGING_MARK}", source_root, dest, notice)
        if dest_fd is not None:
            _remove_leftovers(dest_fd, dest, STAGING_MARK, source_root, dest, notice)
        check_dest(dest, force)
        if dest_fd is not None:
            _check_kinds(dest, paths)
        staging = _start_staging(dest, parent_fd, dest_fd, notice)
        try:
            _export_via(staging, tree, paths, dest, dest_fd, source_root, link, generated_mode, progress, result)
        finally:
            os.close(staging.fd)
    finally:
        if dest_fd is not None:
            os.close(dest_fd)
        os.close(parent_fd)
    return result


def _export_via(staging: _Staging, tree: VirtualTree, paths: list[str], dest: str, dest_fd: int | None,
                source_root: str, link: bool, generated_mode: int, progress: Progress | None,
                result: ExportResult) -> None:
    """Write ``paths`` into ``staging``, then move them into DEST; the staging folder is gone afterwards."""
    staged = _Dirs(staging.fd, staging.path, None)
    try:
        writer = _Writer(tree, staged, source_root, link, generated_mode, result)
        for i, path in enumerate(paths, 1):
            try:
                result.bytes += writer.write(path)
            except Exception as e:  # any failure of one file stops the export, naming the file
                raise ExportError(f"export stopped at {path}: {e or type(e).__name__}; "
                                  f"{dest} was left as it was") from None
            result.files = i
            if progress:
                progress(i, len(paths), result.bytes)
        if dest_fd is None:  # the whole folder at once
            os.chmod(staging.fd, 0o777 & ~_umask())
            os.rename(staging.name, os.path.basename(dest), src_dir_fd=staging.parent_fd,
                      dst_dir_fd=staging.parent_fd)
            staging.moved = True
            return
        try:
            _move_into(staged, dest_fd, dest, paths, result)
        except (OSError, ExportError) as e:
            raise ExportError(f"moving the exported files into {dest} failed ({getattr(e, 'strerror', None) or e}); "
                              f"{dest} is partly updated: run the export again") from None
    finally:
        staged.close()
        staging.remove()


@contextlib.contextmanager
def exit_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP end the process through ``SystemExit`` (status 128 + signal), so the
    export's cleanup runs instead of leaving a staging folder behind. A signal set to be ignored
    (``nohup``) stays ignored."""
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, leave) for s in (signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(s) == signal.SIG_DFL}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
