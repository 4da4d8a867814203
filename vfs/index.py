"""The persistent index of a source project: what a remount need not read again.

Stored in one sqlite file per source (``<cache dir>/index/<hash of the source path>.sqlite``),
never pickled: each offsets file's entries, keyed by the file's Stamp (device, inode, size, mtime,
ctime) and re-parsed only when one of them changes (rewriting or replacing the file changes them all).
Parsing offsets is the costly part of a scan (~10 s per 10^6 entries through the restricted
unpickler); loading them from here takes well under a second.

Annotation (and img_info/meta) stamps are kept in memory only, per folder, for the
rebuilds of one mount: every mount stats each JSON file once, because an edit in place while
nothing was mounted changes no folder, and the stamp doubles as the file's ImageRef stamp
(size and identity must be exact). While mounted, a folder is re-listed only when it changed
(then only new names are stat'ed) and the watcher reports edits in place (``refresh``).
Tar sizes, ``meta.json``, dataset folders and plain ``img/`` files are always read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from array import array
from pathlib import Path
from typing import Callable

from formats.model import Stamp, file_stamp
from formats.supervisely.offsets import BlobEntry

log = logging.getLogger("slyfs.index")

SCHEMA_VERSION = 2


def _array(blob: bytes) -> array:
    a = array("q")
    a.frombytes(blob)
    return a


def index_path(cache_dir: Path, source: str) -> Path:
    digest = hashlib.sha1(os.path.abspath(source).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache_dir / "index" / f"{digest}.sqlite"


class SourceIndex:
    """A ScanCache (see formats/supervisely/project.py) kept in memory and in sqlite.

    ``path=None`` keeps it in memory only (still useful: live rebuilds reuse it)."""

    def __init__(self, path: Path | None) -> None:
        # offsets kept compact (names, starts, ends): 24 bytes an entry instead of ~120 as objects
        self._offsets: dict[str, tuple[Stamp, list[str], array, array]] = {}
        self._anns: dict[str, tuple[Stamp, dict[str, Stamp]]] = {}
        self._dirty: set[str] = set()  # offsets files not yet saved
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(path), check_same_thread=False)
                self._init_db()
            except (OSError, sqlite3.Error) as e:
                log.warning("index %s unusable (%s); working without a persistent index", path, e)
                self._db = None

    def _init_db(self) -> None:
        assert self._db is not None
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            db.executescript("DROP TABLE IF EXISTS offsets; DROP TABLE IF EXISTS ann_dirs;")
        db.executescript(f"""
            PRAGMA user_version = {SCHEMA_VERSION};
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS offsets (path TEXT PRIMARY KEY, key TEXT, names TEXT, starts BLOB, ends BLOB);
        """)

    def _stored(self, path: str, key: Stamp) -> tuple | None:
        """The stored (names, starts, ends) of the offsets file ``path`` if its key is ``key``
        (a row keyed in an older layout, without device or ctime, never matches: re-parsed, replaced)."""
        if self._db is None:
            return None
        try:
            row = self._db.execute("SELECT key, names, starts, ends FROM offsets WHERE path = ?",
                                   (path,)).fetchone()
        except sqlite3.Error as e:
            log.warning("index read failed: %s", e)
            return None
        if row is None or json.loads(row[0]) != list(key):
            return None
        return row[1:]

    # -- ScanCache

    def offsets(self, path: str, load: Callable[[], list[BlobEntry]]) -> list[BlobEntry]:
        key = file_stamp(os.stat(path))
        with self._lock:
            hit = self._offsets.get(path)
            if hit is None or hit[0] != key:
                row = self._stored(path, key)
                if row is not None:
                    hit = (key, json.loads(row[0]), _array(row[1]), _array(row[2]))
                else:
                    entries = load()
                    hit = (key, [e.name for e in entries], array("q", [e.start for e in entries]),
                           array("q", [e.end for e in entries]))
                    self._dirty.add(path)
                self._offsets[path] = hit
            _, names, starts, ends = hit
            return [BlobEntry(n, s, e) for n, s, e in zip(names, starts, ends)]

    def json_files(self, directory: str, scan: Callable[[dict[str, Stamp]], dict[str, Stamp]]
                   ) -> dict[str, Stamp]:
        try:
            key = file_stamp(os.stat(directory))
        except OSError:
            return scan({})
        with self._lock:
            hit = self._anns.get(directory)
            if hit is not None and hit[0] == key:
                return hit[1]
            files = scan(hit[1] if hit is not None else {})
            self._anns[directory] = (key, files)
            return files

    # -- live updates

    def refresh(self, ann_path: str) -> None:
        """A JSON file of an ann/img_info/meta folder changed (the watcher says so): take its new stamp."""
        directory, name = os.path.split(ann_path)
        with self._lock:
            hit = self._anns.get(directory)
            if hit is None:
                return
            try:
                hit[1][name] = file_stamp(os.stat(ann_path))
            except OSError:
                hit[1].pop(name, None)

    def forget_json_files(self) -> None:
        """Edits may have gone unreported (inotify queue overflow): stat every JSON file again."""
        with self._lock:
            self._anns.clear()

    def save(self) -> None:
        """Write what changed since the last save (one transaction)."""
        if self._db is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            try:
                with self._db:
                    for path in dirty:
                        if path in self._offsets:
                            key, names, starts, ends = self._offsets[path]
                            self._db.execute("REPLACE INTO offsets VALUES (?, ?, ?, ?, ?)", (
                                path, json.dumps(key), json.dumps(names), starts.tobytes(), ends.tobytes()))
            except (sqlite3.Error, UnicodeEncodeError) as e:
                log.warning("index not saved: %s", e)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
