"""The one cache of generated content: small renders in memory, large ones as files on disk.

A render of at most ``DiskRenders.min_bytes`` is kept in memory (``--cache-size``, LRU). A larger
one is written, as it is made, to ``<cache dir>/render/`` and served from there by ``pread``:
it costs no memory, and when it is a streamed file (an aggregate such as a COCO split file, looked
for on disk before it is rendered) a later mount of the same unchanged project serves it without
rendering.
An entry's file name is the sha256 of the node's key (as text that is the same in every process)
and of the rendering code's version, so a changed input or a new slyfs never finds an old entry.
Each file ends with a trailer (magic, length, sha256 of the bytes): a truncated or damaged entry
is found when it is first used and rendered again, never served. Entries are written to a
temporary file and renamed into place; the folder is kept under ``--disk-cache-size`` by
deleting the least recently used (by mtime, which every open moves) when an entry is added.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import logging
import os
import struct
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import slyfs.formats
from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.contract import Generated
from slyfs.vfs.stores import write_all

log = logging.getLogger("slyfs.cache")
T = TypeVar("T")

DEFAULT_DISK_BYTES = 4 << 30
DISK_MIN_BYTES = 4 << 20  # renders larger than this go to disk
_TRAILER = struct.Struct("<8sQ32s")  # magic, length of the bytes before it, their sha256
_MAGIC = b"slyfsR01"
_ENTRY, _TEMP = ".render", ".tmp"
_COPY_CHUNK = 1 << 20
_OPEN_ATTEMPTS = 3
STAMPS_CHECK_WAIT_SECONDS = 600.0  # at most this long a disk entry waits for the stamps check; then it renders


def stable_text(value: object) -> str:
    """Text of a key that is the same in every process and Python run (``hash`` and the ``repr``
    of a set or of a plain object are not); TypeError for a value it cannot vouch for."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return repr(value)
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, tuple | list):  # named tuples included: their type is part of the text
        return f"{kind}({','.join(map(stable_text, value))})"
    if isinstance(value, set | frozenset):
        return f"{kind}({','.join(sorted(map(stable_text, value)))})"
    if isinstance(value, Mapping):
        return f"{kind}({','.join(sorted(f'{stable_text(k)}:{stable_text(v)}' for k, v in value.items()))})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (stable_text(getattr(value, f.name)) for f in dataclasses.fields(value) if f.compare)
        return f"{kind}({','.join(fields)})"
    raise TypeError(f"no stable text for a {kind}")


@functools.cache
def code_version() -> str:
    """A digest of the code that renders (every source file of slyfs.formats) and of the Python
    that runs it: part of every disk entry's name, so that no other version's renders are served."""
    h = hashlib.sha256(sys.version.encode())
    root = Path(slyfs.formats.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class OnDisk:
    """A render kept on disk: its ``size`` bytes are the head of the file at ``path``."""

    path: str
    size: int


Rendered = bytes | OnDisk


class NotStored(Exception):
    """A disk entry could not be written (a full or read-only disk)."""


def _on_disk(call: Callable[..., T], *args: object) -> T:
    """``call(*args)``, a file operation of the disk tier: its OSError is NotStored."""
    try:
        return call(*args)
    except OSError as e:
        raise NotStored(e.strerror or str(e)) from e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class DiskRenders:
    """The disk tier: entries under ``folder``, at most ``max_bytes`` in all (the newest entry is
    kept even when it alone is larger: it is being served), for renders above ``min_bytes``."""

    def __init__(self, folder: str | Path, max_bytes: int = DEFAULT_DISK_BYTES, min_bytes: int = DISK_MIN_BYTES,
                 version: str | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes, self.min_bytes = max_bytes, min_bytes
        self.version = code_version() if version is None else version
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_dead_temps()

    def name(self, key: Hashable) -> str | None:
        """The entry name of ``key``; None when the key has no stable text (it is then kept in memory)."""
        try:
            text = stable_text(key)
        except TypeError:
            return None
        return hashlib.sha256(f"{self.version}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def path(self, name: str) -> Path:
        return self.folder / (name + _ENTRY)

    def find(self, name: str) -> OnDisk | None:
        """The entry ``name`` if it is whole (length and digest as its trailer says); a damaged one
        is deleted. Reads the entry once: done once per entry and process (the caller memoises)."""
        path = self.path(name)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size - _TRAILER.size
                if size < 0:
                    raise ValueError("shorter than its trailer")
                h = hashlib.sha256()
                left = size
                while left and (piece := f.read(min(_COPY_CHUNK, left))):
                    h.update(piece)
                    left -= len(piece)
                magic, length, digest = _TRAILER.unpack(f.read(_TRAILER.size).ljust(_TRAILER.size, b"\0"))
                if magic != _MAGIC or length != size or digest != h.digest():
                    raise ValueError("length or digest differs from its trailer")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("render cache: %s is damaged (%s); rendering it again", path, e)
            self.discard(path)
            return None
        self.touch(str(path))
        return OnDisk(str(path), size)

    def store(self, name: str, chunks: Iterable[bytes]) -> OnDisk:
        """Write ``chunks`` as entry ``name`` and make room for it. NotStored when the disk refuses
        (full, read-only); an error of the render itself passes through as it is."""
        path = self.path(name)
        temp = self.folder / f"{name}.{os.getpid()}{_TEMP}"
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
        fd = _on_disk(os.open, temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= _COPY_CHUNK:
                    _on_disk(write_all, fd, buffer)
                    buffer.clear()
            buffer += _TRAILER.pack(_MAGIC, size, digest.digest())
            _on_disk(write_all, fd, buffer)
            written, fd = fd, -1  # closed even when close reports an error
            _on_disk(os.close, written)
            _on_disk(os.replace, temp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self.discard(temp)
            raise
        try:
            self._evict(keep=path)
        except OSError as e:  # the entry is whole: serve it; the next insert tries again
            log.warning("render cache: cannot make room in %s (%s)", self.folder, e.strerror)
        return OnDisk(str(path), size)

    def touch(self, path: str) -> None:
        """Mark an entry used now (eviction takes the least recently used first)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    def discard(self, path: str | Path) -> None:
        """Delete an entry or temporary file if it can be (a damaged entry left in a read-only
        folder is found damaged again, never served)."""
        with contextlib.suppress(OSError):
            os.unlink(path)

    def entries(self) -> list[tuple[float, int, str]]:
        """(mtime, size, path) of every entry, least recently used first."""
        out = []
        with os.scandir(self.folder) as it:
            for e in it:
                if e.name.endswith(_ENTRY):
                    with contextlib.suppress(FileNotFoundError):
                        st = e.stat()
                        out.append((st.st_mtime, st.st_size, e.path))
        return sorted(out)

    def _evict(self, keep: Path) -> None:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if path != str(keep):
                self.discard(path)
                total -= size

    def _remove_dead_temps(self) -> None:
        """Temporary files of processes that died while writing them (named ``<entry>.<pid>.tmp``)."""
        with os.scandir(self.folder) as it:
            for e in it:
                pid = e.name.removesuffix(_TEMP).rpartition(".")[2]
                if e.name.endswith(_TEMP) and pid.isdigit() and not _pid_alive(int(pid)):
                    self.discard(e.path)


def disk_renders(folder: str | Path, max_bytes: int, min_bytes: int = DISK_MIN_BYTES) -> DiskRenders | None:
    """The disk tier in ``folder``, or None (and a log line) when it cannot be made there: a
    read-only cache directory keeps every render in memory instead of stopping a mount."""
    try:
        return DiskRenders(folder, max_bytes, min_bytes)
    except OSError as e:
        log.warning("render cache: cannot use %s (%s); every generated file is kept in memory", folder, e.strerror)
        return None


class RenderCache:
    """Generated content, keyed by the node's input key: in memory up to ``max_bytes`` (LRU),
    and on ``disk`` when a render is larger than its ``min_bytes``. Renders of one key asked for
    by several threads at once happen once."""

    def __init__(self, max_bytes: int, disk: DiskRenders | None = None) -> None:
        self._memo: BoundedMemo[Rendered] = BoundedMemo(max_bytes, _held_bytes)
        self.disk = disk
        # Set once the inputs' stamps are checked against the files (vfs/live.py's background check
        # clears it until then): a streamed file's disk entry is used only then, since its name
        # comes from stamps a remount may have taken from the catalog unchecked; with no entry it
        # renders at once (rendering checks each input it opens itself).
        self.stamps_checked = threading.Event()
        self.stamps_checked.set()

    def get(self, node: Generated) -> Rendered:
        return self._memo.get(node.key, functools.partial(self._render, node))

    def size(self, node: Generated) -> int:
        rendered = self.get(node)
        return rendered.size if isinstance(rendered, OnDisk) else len(rendered)

    def open(self, node: Generated) -> bytes | DiskHandle:
        """The node's bytes, or an open handle on its disk entry (which keeps reading it even if
        it is evicted meanwhile); an entry gone since it was rendered is rendered again."""
        for _ in range(_OPEN_ATTEMPTS):
            rendered = self.get(node)
            if not isinstance(rendered, OnDisk):
                return rendered
            try:
                handle = DiskHandle(os.open(rendered.path, os.O_RDONLY | os.O_CLOEXEC), rendered.size)
            except FileNotFoundError:  # evicted (by another mount sharing the folder): render it again
                self.forget(node)
                continue
            assert self.disk is not None
            self.disk.touch(rendered.path)
            return handle
        return b"".join(node.chunks())  # evicted as fast as it is written: served from memory

    def forget(self, node: Generated) -> None:
        """Drop what is held for ``node`` (its disk entry is gone or damaged): the next get renders."""
        self._memo.discard(node.key)

    def _render(self, node: Generated) -> Rendered:
        disk = self.disk
        if disk is None:
            return b"".join(node.chunks())
        # Naming a key costs more than rendering a small file (a label file: ~45 us against ~25 us),
        # so only a streamed file, made in pieces because it may be large (an aggregate), is looked
        # for on disk before it is rendered; any other is named once it proves large.
        name = disk.name(node.key) if node.stream is not None else None
        if (name is not None and disk.path(name).exists()  # only an entry there waits for the check
                and self.stamps_checked.wait(STAMPS_CHECK_WAIT_SECONDS) and (found := disk.find(name))):
            return found
        head: list[bytes] = []  # held until the render proves large
        held = 0
        pieces = iter(node.chunks())
        for piece in pieces:
            head.append(piece)
            held += len(piece)
            if held > disk.min_bytes:
                name = name or disk.name(node.key)
                if name is None:  # no stable text: kept in memory
                    return b"".join(itertools.chain(head, pieces))
                try:
                    return disk.store(name, itertools.chain(head, pieces))
                except NotStored as e:  # a full or read-only disk: this render is kept in memory
                    log.warning("render cache: cannot write %s (%s); rendering it again in memory",
                                disk.path(name), e)
                    return b"".join(node.chunks())
        return b"".join(head)


def _held_bytes(rendered: Rendered) -> int:
    """What a cached render costs in memory (a disk entry only its name)."""
    return len(rendered.path) if isinstance(rendered, OnDisk) else len(rendered)


class DiskHandle:
    """An open disk entry: ``size`` bytes read by ``pread``."""

    __slots__ = ("fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size

    def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; OSError when the entry is shorter than it was when
        checked (changed under us: never served short)."""
        want = max(0, min(size, self.size - offset))
        data = os.pread(self.fd, want, offset) if want else b""
        if len(data) != want:
            raise OSError(f"render cache entry shorter than {self.size} bytes")
        return data

    def read_all(self) -> bytes:
        return self.read(self.size, 0)

    def close(self) -> None:
        os.close(self.fd)
