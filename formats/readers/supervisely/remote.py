"""A Supervisely project in object storage, read as a local tree of its small objects.

The reader (project.py, index.py, watch.py) works on a folder. For a bucket prefix that folder is
a *mirror* under the cache directory: every small input (``meta.json``, the ``*.json`` files of
``ann/``, ``img_info/`` and ``meta/``, the ``*_offsets.pkl`` files) is fetched once and kept,
named by its key; every image object and every tar is a sparse *placeholder* of the object's size
that holds none of its bytes. Images are read as byte ranges of the objects themselves (the
store in vfs/stores.py), never from a placeholder: :func:`source_bytes.read_bytes` and
``open_source`` send every placeholder path to the store registered for the mirror.

Object identity is (size, ETag). ``sync`` lists the prefix and brings the mirror in step: an
object whose (size, ETag) is what the manifest recorded is not fetched again (a remount of an
unchanged project lists the bucket and fetches nothing else), a changed one is fetched or its
placeholder replaced, a vanished one removed. A placeholder's mtime is a hash of its ETag, so the
reader's stamp of an image names the ETag it was indexed at, and the store refuses to serve a
stamp whose ETag is no longer the one it will ask the server for. Changes reach a live mount
through the mirror's own files: the poller syncs, the local watcher (inotify) sees what moved.

Several processes may share one mirror (two mounts of one prefix, a check while a mount runs):
each sync holds an exclusive lock on it and re-reads the manifest under that lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from slyfs.formats.contract import ObjectLocation as Location
from slyfs.formats.model import ImageRef, Stamp
from slyfs.formats.readers.supervisely.project import (
    IMAGE_EXTS,
    MAX_ANN_BYTES,
    MAX_META_BYTES,
    OFFSETS_SUFFIX,
    SIDECAR_DIRS,
    SourceError,
)

log = logging.getLogger("slyfs.source")

MANIFEST = "manifest.json"
MAX_OFFSETS_BYTES = 256 << 20  # what offsets.py reads at most; a larger object gets a placeholder
FETCH_BATCH = 128  # small objects fetched concurrently in one call
JSON_FOLDERS = frozenset({"ann", *SIDECAR_DIRS})


class RemoteObject(NamedTuple):
    """One object as the listing gave it: its identity (size, ETag) and when it was written."""

    size: int
    etag: str
    modified: float = 0.0  # seconds since the epoch


Mirrored = tuple[int, str, str, int]  # (size, ETag, Kind, the placeholder's mtime_ns or 0)


class Kind:
    FETCHED = "fetched"  # the object's bytes are in the mirror
    PLACEHOLDER = "placeholder"  # a sparse file of the object's size: bytes come by range


def placeholder_mtime_ns(obj: RemoteObject) -> int:
    """The mtime a placeholder gets: the object's second of writing, and in the microseconds a
    hash of its ETag, so that the placeholder's stamp names the version of the object."""
    tag = int.from_bytes(hashlib.sha256(obj.etag.encode()).digest()[:4], "big") % 1_000_000
    return int(obj.modified) * 1_000_000_000 + tag * 1000


def classify(rel: str, size: int) -> str | None:
    """What the mirror keeps of the object at ``rel`` (its key below the prefix), or None when the
    reader never reads it (any other file is left out of the mirror)."""
    parts = rel.split("/")
    name = parts[-1]
    if rel == "meta.json":
        return Kind.FETCHED if size <= MAX_META_BYTES else Kind.PLACEHOLDER
    if len(parts) == 2 and parts[0] == "blob" and name.endswith(".tar"):
        return Kind.PLACEHOLDER
    if len(parts) >= 2 and parts[-2] == "img":
        dot = name.rfind(".")
        return Kind.PLACEHOLDER if dot > 0 and name[dot:].lower() in IMAGE_EXTS else None
    if len(parts) >= 2 and parts[-2] in JSON_FOLDERS and name.endswith(".json"):
        return Kind.FETCHED if size <= MAX_ANN_BYTES else Kind.PLACEHOLDER
    if name.endswith(OFFSETS_SUFFIX) and len(parts) >= 2:
        return Kind.FETCHED if size <= MAX_OFFSETS_BYTES else Kind.PLACEHOLDER
    return None


def _safe(rel: str) -> bool:
    """A key that names one file below the mirror's root (no empty, ``.`` or ``..`` part)."""
    return bool(rel) and all(p not in ("", ".", "..") and "\0" not in p for p in rel.split("/"))


@dataclass
class SyncResult:
    listed: int = 0  # objects the listing returned
    fetched: int = 0  # small objects downloaded
    placeholders: int = 0  # placeholders made or replaced
    removed: int = 0  # mirror files whose object is gone

    @property
    def changed(self) -> int:
        return self.fetched + self.placeholders + self.removed


class RemoteProject:
    """The mirror of one project in object storage. ``fs`` is an fsspec file system, ``root`` the
    project's path in it (``bucket/prefix``, no protocol), ``folder`` the mirror's own folder."""

    def __init__(self, fs: Any, root: str, url: str, folder: Path) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.folder = folder
        # named as the prefix's last part: views that name the project (CVAT's <name>) take the folder's name
        name = self.root.rsplit("/", 1)[-1]
        self.tree = str(folder / (name if name not in ("", ".", "..", MANIFEST) and not name.startswith(".")
                                  else "project"))
        self._objects: dict[str, Mirrored] = {}  # rel -> what the mirror holds of it
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        os.makedirs(self.tree, exist_ok=True)

    # -- the manifest

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive use of the mirror against other threads and processes sharing it."""
        with self._lock, open(self.folder / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield

    def load(self) -> None:
        """Read the manifest another sync left (the daemon starts from what its parent synced)."""
        with self._locked():
            self._objects = self._read_manifest()

    def _read_manifest(self) -> dict[str, Mirrored]:
        try:
            data = json.loads((self.folder / MANIFEST).read_bytes())
            return {rel: (int(size), str(etag), str(kind), int(mtime))
                    for rel, (size, etag, kind, mtime) in data["objects"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # none yet, or damaged: the next sync fetches what it must

    def _write_manifest(self) -> None:
        tmp = self.folder / f"{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"url": self.url, "objects": self._objects}))
        os.replace(tmp, self.folder / MANIFEST)

    # -- syncing

    def list_objects(self) -> dict[str, RemoteObject]:
        """Every object below the project's root, by key relative to it."""
        listing = self.fs.find(self.root, detail=True)
        prefix = self.root + "/"
        out = {}
        for path, info in listing.items():
            if info.get("type", "file") != "file" or not path.startswith(prefix):
                continue
            etag = str(info.get("ETag") or info.get("etag") or info.get("md5") or info.get("mtime") or "")
            out[path[len(prefix):]] = RemoteObject(int(info.get("size") or 0), etag, _modified(info))
        return out

    def sync(self) -> SyncResult:
        """Bring the mirror in step with the bucket (see the module's doc). A listing that fails
        raises SourceError; a small object that cannot be fetched is left as it was (or out),
        logged, and tried again at the next sync."""
        try:
            listed = self.list_objects()
        except FileNotFoundError:
            raise SourceError(f"{self.url}: no such bucket or prefix") from None
        except Exception as e:  # botocore/aiohttp errors of every kind: the source is unreachable
            raise SourceError(f"{self.url}: cannot list the project ({type(e).__name__}: {e})") from None
        if "meta.json" not in listed:
            raise SourceError(f"{self.url} is not a Supervisely project: no meta.json")
        result = SyncResult(listed=len(listed))
        with self._locked():
            self._objects = self._read_manifest()
            wanted = {}
            for rel, obj in listed.items():
                kind = classify(rel, obj.size)
                if kind is not None and _safe(rel):
                    wanted[rel] = (obj, kind)
            for rel in [rel for rel in self._objects if rel not in wanted]:
                self._remove(rel)
                result.removed += 1
            todo = [(rel, obj, kind) for rel, (obj, kind) in wanted.items()
                    if self._objects.get(rel, ())[:3] != (obj.size, obj.etag, kind)
                    or not os.path.lexists(self.local(rel))]
            fetch = [(rel, obj) for rel, obj, kind in todo if kind == Kind.FETCHED]
            for rel, obj, kind in todo:
                if kind == Kind.PLACEHOLDER:
                    self._placeholder(rel, obj)
                    result.placeholders += 1
            for start in range(0, len(fetch), FETCH_BATCH):
                result.fetched += self._fetch(fetch[start:start + FETCH_BATCH])
            if result.changed:
                self._write_manifest()
        return result

    def local(self, rel: str) -> str:
        return os.path.join(self.tree, *rel.split("/"))

    def _fetch(self, batch: list[tuple[str, RemoteObject]]) -> int:
        """Download ``batch`` concurrently; each object whose bytes are not of its listed size is
        kept out (a truncated transfer, or replaced since listed: the next sync sees it)."""
        paths = [f"{self.root}/{rel}" for rel, _ in batch]
        done = 0
        for (rel, obj), data in zip(batch, self._cat(paths)):
            if isinstance(data, BaseException) or len(data) != obj.size:
                why = data if isinstance(data, BaseException) else f"{len(data)} bytes, listed as {obj.size}"
                log.warning("%s/%s: not fetched (%s); tried again at the next poll", self.url, rel, why)
                continue
            self._write(rel, data, None)
            self._objects[rel] = (obj.size, obj.etag, Kind.FETCHED, 0)
            done += 1
        return done

    def _cat(self, paths: list[str]) -> list[bytes | BaseException]:
        """Each object's bytes (or why not), fetched concurrently where the file system is
        asynchronous. Keys are taken as they are (fsspec's ``cat`` of a list would expand ``*``,
        ``?`` and ``[`` in a key as a pattern)."""
        if not getattr(self.fs, "async_impl", False):
            out: list[bytes | BaseException] = []
            for path in paths:
                try:
                    out.append(self.fs.cat_file(path))
                except Exception as e:  # one object's failure is that object's
                    out.append(e)
            return out
        import asyncio

        from fsspec.asyn import sync

        async def gather() -> list[bytes | BaseException]:
            return await asyncio.gather(*(self.fs._cat_file(p) for p in paths), return_exceptions=True)

        return sync(self.fs.loop, gather)

    def _placeholder(self, rel: str, obj: RemoteObject) -> None:
        self._write(rel, None, obj)
        self._objects[rel] = (obj.size, obj.etag, Kind.PLACEHOLDER, placeholder_mtime_ns(obj))

    def _write(self, rel: str, data: bytes | None, sparse: RemoteObject | None) -> None:
        """Put a file at ``rel`` by rename (readers see the old or the new one, whole): ``data``,
        or a sparse placeholder of ``sparse``'s size whose mtime names its ETag."""
        path = self.local(rel)
        parent = os.path.dirname(path)
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            log.warning("%s/%s: a file's key is also a folder's; left out", self.url, rel)
            return
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.slyfs-tmp")
        with open(tmp, "wb") as f:
            if data is not None:
                f.write(data)
            elif sparse is not None:
                f.truncate(sparse.size)
        if sparse is not None:
            mtime = placeholder_mtime_ns(sparse)
            os.utime(tmp, ns=(mtime, mtime))
        if os.path.isdir(path):
            os.unlink(tmp)
            log.warning("%s/%s: a file's key is also a folder's; left out", self.url, rel)
            return
        os.replace(tmp, path)

    def _remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(self.local(rel))
        self._objects.pop(rel, None)

    # -- what the byte store asks

    def is_placeholder(self, path: str) -> bool:
        """Whether the mirror file ``path`` is a placeholder (its bytes are the object's, by range):
        decided by its name alone, an image or a tar, so that no placeholder is ever read as a
        local file, not even while a sync replaces or removes it."""
        if not path.startswith(self.tree + os.sep):
            return False
        return classify(path[len(self.tree) + 1:].replace(os.sep, "/"), 0) == Kind.PLACEHOLDER

    def locate(self, ref: ImageRef) -> Location:
        """The object behind a placeholder ``ref`` names, as the version it was indexed at.
        Raises LookupError when it is not a placeholder or that version is no longer mirrored."""
        rel = os.path.relpath(ref.path, self.tree)
        if rel.startswith("..") or os.path.isabs(rel):
            raise LookupError(f"{ref.path}: not in the mirror of {self.url}")
        rel = rel.replace(os.sep, "/")
        for attempt in range(2):  # the manifest may have been moved on by another process
            entry = self._objects.get(rel)
            if entry is not None and _indexed_as(ref.stamp, entry):
                return Location(f"{self.root}/{rel}", entry[1], entry[0])
            if attempt == 0:  # the manifest is replaced whole (rename): read without waiting for a sync
                self._objects = self._read_manifest()
        raise LookupError(f"{self.url}/{rel}: replaced or removed since it was indexed")

    def key(self, local_path: str) -> str:
        """The URL of the object a mirror file stands for (what messages name)."""
        rel = os.path.relpath(local_path, self.tree).replace(os.sep, "/")
        return f"{self.url}/{rel}" if not rel.startswith("..") else local_path


def _indexed_as(stamp: Stamp | tuple[()], entry: Mirrored) -> bool:
    """Whether a placeholder's stamp (taken at indexing) is of the object version ``entry``."""
    size, _, kind, mtime_ns = entry
    if kind != Kind.PLACEHOLDER:
        return False
    if not stamp:
        return True
    assert isinstance(stamp, Stamp)
    return stamp.size == size and stamp.mtime_ns == mtime_ns


def _modified(info: dict[str, Any]) -> float:
    """When the listing says an object was written (s3fs: LastModified, a datetime), in seconds."""
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or 0
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def mirror_folder(cache_root: Path, url: str, options: dict[str, str]) -> Path:
    """The mirror of ``url`` read with ``options``: one per (URL, options), shared by the mounts of it."""
    key = json.dumps([url.rstrip("/"), sorted(options.items())])
    return cache_root / "remote" / hashlib.sha1(key.encode()).hexdigest()[:16]

