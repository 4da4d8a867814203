"""The persistent index of a source project: what a remount need not read again.

Stored in one sqlite file per source (``<cache dir>/index/<hash of the source path>.sqlite``),
never pickled: each offsets file's entries, keyed by the file's Stamp (device, inode, size, mtime,
ctime) and re-parsed only when one of them changes (rewriting or replacing the file changes them all).
Parsing offsets is the costly part of a scan (~10 s per 10^6 entries through the restricted
unpickler); loading them from here takes well under a second.

And per annotation file, the facts membership decisions read of it (``ItemFacts``: image tag
names and values, the classes it has labels of and their geometries), keyed by the file's Stamp and
meta.json's: a remount with ``--split tags``, ``--no-empty`` or ``--classes``, or of a view that
names folders after tag values (ImageNet, WIDER Face, VGGFace2, Market-1501, LFW), then parses only
the annotations that changed.
Only what a parse without problems found is recorded, so an annotation with problems is parsed
(and its problems reported) again at each mount. Rows of files since deleted stay until the
index is rebuilt; a stale row never matches a key.

And per folder of per-item JSON files (``ann/``, ``img_info/``, ``meta/``), its listing with each
file's Stamp, keyed by the folder's own Stamp (adding, removing or renaming a file into it moves
its mtime and ctime): a remount takes a folder whose stamp matches from here instead of stat'ing
each of its files (at 10^6 images that stat, cold, was most of a remount). An edit in place while
nothing was mounted changes no folder, so these stamps are never trusted for bytes: the reader
fstat's each file it opens and reports another version (``SourceChanged``), and a background pass
(``SuperviselySource.verify``, watch.py) stats every file taken from here after the mount is
listable. A listing made within ``RACY_NS`` of its folder's last change is not stored (a second
change in the same tick of the file system's clock would leave the folder's stamp as it was)
until a later listing confirms it.
While mounted, a folder is re-listed only when it changed (then only new names are stat'ed) and
the watcher reports edits in place (``restamp``).
Tar sizes, ``meta.json``, dataset folders and plain ``img/`` files are always read again.

The file is a cache, so nothing read from it is trusted: every row is checked against what
``save`` can have written (types, key shape, one start and one end per name, offsets in range,
lists of names).
A damaged row, a sqlite error or a file that is not a database makes the whole file be discarded
(one log line) and rebuilt from the source; the mount goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import TypeVar, get_args

from slyfs.formats.model import Geometry, ItemFacts, Stamp, Tag, file_stamp
from slyfs.formats.readers.supervisely.offsets import BlobEntry, Entries, entry_columns

log = logging.getLogger("slyfs.index")
T = TypeVar("T")

SCHEMA_VERSION = 5  # bump when what is stored changes, and when a parse gives other facts of the same file
FACTS_FLUSH_ROWS = 10_000  # facts recorded are written once this many wait (and at each save)
DECODED_FACTS = 4096  # distinct facts kept decoded (rows share them: one decoding each)
FACTS_WINDOW = 1024  # stored facts rows read per query
UNLISTED = Stamp(-1, -1, -1, -1, -1, -1)  # the key of a folder listing that must be read again
_STR = frozenset({str})
RACY_NS = 1_000_000_000  # a listing begun less than this after its folder last changed is not stored
# A folder's row is rewritten whole (a 10^6-file folder: ~60 MB), so after an edit it is written at
# most this often, and at a final save; meanwhile the stored row is of an older version, which the
# next mount's checks correct (it is never trusted for bytes).
FOLDER_SAVE_SECONDS = 60.0
_STAMP_FIELDS = len(Stamp._fields)
_make_stamp = partial(tuple.__new__, Stamp)


def _array(blob: bytes) -> array:
    a = array("q")
    a.frombytes(blob)
    return a


class IndexDamaged(Exception):
    """A row of the index file that ``save`` cannot have written."""


def validated_row(row: tuple, key: tuple[int, ...]) -> Entries | None:
    """The entries of a stored ``(key, names, starts, ends)`` row; None when it is for another
    version of the file (``key`` differs, or is of an older layout); IndexDamaged when it is not
    what ``save`` writes."""
    stored_key, names_json, starts_blob, ends_blob = row
    if not (isinstance(stored_key, str) and isinstance(names_json, str)
            and isinstance(starts_blob, bytes) and isinstance(ends_blob, bytes)):
        raise IndexDamaged("a value of the wrong type")
    try:
        old_key, names = json.loads(stored_key), json.loads(names_json)
    except (ValueError, RecursionError):
        raise IndexDamaged("a value that is not valid JSON") from None
    if not (isinstance(old_key, list) and old_key and all(type(v) is int for v in old_key)):
        raise IndexDamaged("a file key that is not a list of integers")
    if old_key != list(key):
        return None
    # every name a non-empty str, tested in C (a row holds up to 5·10^6 names)
    if not (isinstance(names, list) and _STR.issuperset(map(type, names)) and "" not in names):
        raise IndexDamaged("image names that are not a list of names")
    if len(starts_blob) % 8 or len(ends_blob) % 8:
        raise IndexDamaged("offsets that are not whole 64-bit integers")
    starts, ends = _array(starts_blob), _array(ends_blob)
    if not len(names) == len(starts) == len(ends):
        raise IndexDamaged(f"{len(names)} names for {len(starts)} starts and {len(ends)} ends")
    if names and min(min(starts), min(ends)) < 0:
        raise IndexDamaged("a negative offset")
    return names, starts, ends


def _names(value: object) -> bool:
    return isinstance(value, list) and all(type(n) is str for n in value)


def key_text(key: tuple[int, ...]) -> str:
    """A key as stored: its JSON, made without the encoder (one is made per item at a remount)."""
    return "[" + ", ".join(map(str, key)) + "]"


def check_older_key(stored_key: str, what: str) -> None:
    """A stored key unlike the one looked for is of another version of the file or folder (the row is
    not used); IndexDamaged when it is not one ``key_text`` can have written."""
    try:
        old_key = json.loads(stored_key)
    except (ValueError, RecursionError):
        raise IndexDamaged("a value that is not valid JSON") from None
    if not (isinstance(old_key, list) and old_key and all(type(v) is int for v in old_key)):
        raise IndexDamaged(f"a {what} key that is not a list of integers")


def validated_facts(row: tuple, key: str, decoded: dict[tuple[str, ...], ItemFacts]) -> ItemFacts | None:
    """The facts of a stored ``(key, tag names, class titles, image tags, label kinds)`` row; None
    when they are of another version of the annotation file or of meta.json (``key``, as
    ``key_text`` writes it, differs); IndexDamaged when it is not what ``save`` writes. ``decoded``
    keeps the last DECODED_FACTS facts decoded, by their stored text: without tag values most items
    share a few; with them (identities) most differ, and the bound keeps memory flat."""
    stored_key, *texts = row
    if not (isinstance(stored_key, str) and len(texts) == 4 and _STR.issuperset(map(type, texts))):
        raise IndexDamaged("a value of the wrong type")
    if stored_key != key:
        check_older_key(stored_key, "file")
        return None
    texts_key = tuple(texts)
    facts = decoded.get(texts_key)
    if facts is None:
        try:
            tag_names, class_titles, tags, kinds = map(json.loads, texts)
        except (ValueError, RecursionError):
            raise IndexDamaged("a value that is not valid JSON") from None
        if not (_names(tag_names) and _names(class_titles)):
            raise IndexDamaged("tag names or class titles that are not lists of names")
        facts = ItemFacts(frozenset(tag_names), frozenset(class_titles), _tags(tags), _kinds(kinds))
        if {t.name for t in facts.tags} != facts.tag_names or {k[0] for k in facts.label_kinds} != facts.class_titles:
            raise IndexDamaged("image tags or label kinds that disagree with the tag names or class titles")
        if len(decoded) >= DECODED_FACTS:
            decoded.clear()
        decoded[texts_key] = facts
    return facts


_TAG_VALUE_TYPES = frozenset({str, int, float, type(None)})  # not bool: JSON's true is no tag value
_GEOMETRY_KINDS = frozenset(geometry.__name__ for geometry in get_args(Geometry))


def _tags(value: object) -> tuple[Tag, ...]:
    """Stored image tags, ``[[name, value], ...]``, as Tags; IndexDamaged when they are not that."""
    if not (isinstance(value, list) and all(
            type(t) is list and len(t) == 2 and type(t[0]) is str and type(t[1]) in _TAG_VALUE_TYPES for t in value)):
        raise IndexDamaged("image tags that are not (name, value) pairs")
    return tuple(Tag(name, tag_value) for name, tag_value in value)


def _kinds(value: object) -> tuple[tuple[str, str, int], ...]:
    """Stored label kinds, ``[[class, geometry, count], ...]``; IndexDamaged when they are not that."""
    if not (isinstance(value, list) and all(
            type(k) is list and len(k) == 3 and type(k[0]) is str and type(k[1]) is str and k[1] in _GEOMETRY_KINDS
            and type(k[2]) is int and k[2] > 0 for k in value)):
        raise IndexDamaged("label kinds that are not (class, geometry, count) triples")
    return tuple((title, kind, n) for title, kind, n in value)


def facts_row(facts: ItemFacts) -> tuple[str, str, str, str]:
    """The stored texts of ``facts``, as :func:`validated_facts` reads them back."""
    return (json.dumps(sorted(facts.tag_names)), json.dumps(sorted(facts.class_titles)),
            json.dumps([[t.name, t.value] for t in facts.tags]), json.dumps([list(k) for k in facts.label_kinds]))


def validated_folder(row: tuple, key: str) -> dict[str, Stamp] | None:
    """The files of a stored ``(key, names, stamps)`` folder row (each read as bytes); None when it
    is of another version of the folder (``key``, as ``key_text`` writes it, differs); IndexDamaged
    when it is not what ``save`` writes."""
    key_blob, names_blob, stamps_blob = row
    if not (isinstance(key_blob, bytes) and isinstance(names_blob, bytes) and isinstance(stamps_blob, bytes)):
        raise IndexDamaged("a value of the wrong type")
    stored_key = key_blob.decode("utf-8", "replace")
    if stored_key != key:
        check_older_key(stored_key, "folder")
        return None
    try:
        text = names_blob.decode("utf-8")
    except UnicodeDecodeError:
        raise IndexDamaged("file names that are not UTF-8") from None
    if "/" in text:
        raise IndexDamaged("a file name with a slash")
    names = text.split("\0") if text else []
    if len(stamps_blob) % 8:
        raise IndexDamaged("stamps that are not whole 64-bit integers")
    stamps = _array(stamps_blob)
    if len(stamps) != _STAMP_FIELDS * len(names):
        raise IndexDamaged(f"{len(names)} names for {len(stamps) / _STAMP_FIELDS:g} stamps")
    if not all(map(str.endswith, names, repeat(".json"))):  # in C: a folder holds up to 10^6 names
        raise IndexDamaged("a name that is not a JSON file's")
    if names and min(stamps[2::_STAMP_FIELDS]) < 0:
        raise IndexDamaged("a negative file size")
    fields = iter(stamps)
    return dict(zip(names, map(_make_stamp, zip(*[fields] * _STAMP_FIELDS))))


def _folder_row(files: dict[str, Stamp]) -> tuple[bytes, bytes]:
    """A folder's files as stored: their names NUL-separated (no file name holds NUL), their
    stamps as one array of 64-bit integers, six per file, in the same order."""
    stamps = array("q")
    for stamp in files.values():
        stamps.extend(stamp)
    return "\0".join(files).encode("utf-8"), stamps.tobytes()


# what sqlite says of a file that is not (or no longer) what this module wrote; other errors (busy,
# locked, read-only, disk full) are the machine's, not the file's, and do not discard it
DAMAGE_CODES = frozenset({sqlite3.SQLITE_ERROR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
                          sqlite3.SQLITE_FORMAT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_SCHEMA})


def _damaged(e: sqlite3.Error) -> bool:
    return (getattr(e, "sqlite_errorcode", -1) & 0xFF) in DAMAGE_CODES


def _storable(path: str) -> bool:
    """Whether sqlite can store the name (one that is not UTF-8 on disk holds surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def index_path(cache_dir: Path, source: str) -> Path:
    digest = hashlib.sha1(os.path.abspath(source).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return cache_dir / "index" / f"{digest}.sqlite"


class SourceIndex:
    """A ScanCache (see project.py) kept in memory and in sqlite.

    ``path=None`` keeps it in memory only (still useful: live rebuilds reuse it)."""

    def __init__(self, path: Path | None) -> None:
        # offsets kept compact (names, starts, ends): 24 bytes an entry instead of ~120 as objects
        self._offsets: dict[str, tuple[Stamp, list[str], array, array]] = {}
        self._anns: dict[str, tuple[Stamp, dict[str, Stamp]]] = {}
        self._listed_at: dict[str, int] = {}  # when each folder listed this mount was listed (time_ns)
        self._dirty_folders: set[str] = set()  # folders listed or re-stamped since the last save
        self._folder_saved: dict[str, float] = {}  # when each folder's row was last written (monotonic)
        # folders whose listing is not yet verified: taken from the file (its stamps too), or racy
        self._unverified: set[str] = set()
        self._trust_stored = True  # False once events were lost: every folder is listed again
        self._dirty: set[str] = set()  # offsets files not yet saved
        self._facts: dict[str, tuple[str, ...]] = {}  # facts recorded, not yet saved: path -> row
        self._decoded: dict[tuple[str, ...], ItemFacts] = {}
        self._window: dict[str, tuple] = {}  # stored facts rows read ahead (see _facts_row)...
        self._window_range: tuple[str | None, str | None] = (None, None)  # ...of paths from, to (None: the end)
        self._lock = threading.RLock()
        self._path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = self._connect(path)
            except (OSError, sqlite3.Error) as e:
                if isinstance(e, sqlite3.Error) and _damaged(e):
                    self._discard(f"sqlite: {e}")
                else:
                    log.warning("index %s unusable (%s); working without a persistent index", path, e)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), check_same_thread=False)
        try:
            SourceIndex._init_db(db)
        except BaseException:
            db.close()
            raise
        return db

    def _discard(self, why: str) -> None:
        """The file is damaged: delete it and start an empty one. What this mount already holds
        was validated, so it is written to the new file at the next save."""
        assert self._path is not None
        log.warning("index %s damaged (%s): discarded, rebuilding it from the source", self._path, why)
        if self._db is not None:
            self._db.close()
            self._db = None
        self._forget_window()
        try:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self._path}{suffix}")
            self._db = self._connect(self._path)
        except (OSError, sqlite3.Error) as e:
            log.warning("index %s cannot be recreated (%s); working without a persistent index", self._path, e)
        self._dirty |= self._offsets.keys()

    @staticmethod
    def _init_db(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            db.executescript("DROP TABLE IF EXISTS offsets; DROP TABLE IF EXISTS ann_dirs; DROP TABLE IF EXISTS facts;"
                             " DROP TABLE IF EXISTS folders;")
        db.executescript(f"""
            PRAGMA user_version = {SCHEMA_VERSION};
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS offsets (path TEXT PRIMARY KEY, key TEXT, names TEXT, starts BLOB, ends BLOB);
            CREATE TABLE IF NOT EXISTS facts (path TEXT PRIMARY KEY, key TEXT, tags TEXT, classes TEXT,
                                              tag_values TEXT, kinds TEXT);
            CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, key TEXT, names BLOB, stamps BLOB);
        """)

    def _stored(self, path: str, key: Stamp) -> tuple | None:
        """The stored (names, starts, ends) of the offsets file ``path`` if its key is ``key``
        (a row keyed in an older layout, without device or ctime, never matches: re-parsed, replaced)."""
        def read(db: sqlite3.Connection) -> Entries | None:
            row = db.execute("SELECT key, names, starts, ends FROM offsets WHERE path = ?", (path,)).fetchone()
            return None if row is None else validated_row(row, key)
        return self._read(path, read)

    def _read(self, path: str, read: Callable[[sqlite3.Connection], T | None]) -> T | None:
        """What ``read`` finds in the file for ``path``; None when the file is damaged: then it is
        discarded, and the caller reads the source."""
        if self._db is None:
            return None
        try:
            return read(self._db)
        except sqlite3.Error as e:
            if _damaged(e):
                self._discard(f"sqlite: {e}")
            else:
                log.warning("index read failed: %s", e)
        except (IndexDamaged, ValueError) as e:  # ValueError: a row of another number of columns
            self._discard(f"row of {path}: {e}")
        return None

    def _facts_row(self, db: sqlite3.Connection, path: str) -> tuple | None:
        """The stored facts row of ``path``, read with the next FACTS_WINDOW rows in path order:
        membership looks items up in about that order, so a remount makes a query per window,
        not one per item. A path within the window's range that it lacks has no row."""
        lo, hi = self._window_range
        if not (lo is not None and lo <= path and (hi is None or path <= hi)):
            rows = db.execute("SELECT path, key, tags, classes, tag_values, kinds FROM facts"
                              " WHERE path >= ? ORDER BY path LIMIT ?", (path, FACTS_WINDOW)).fetchall()
            if not all(isinstance(row[0], str) for row in rows):
                raise IndexDamaged("a path that is not text")
            self._window = {row[0]: row[1:] for row in rows}
            self._window_range = (path, rows[-1][0] if len(rows) == FACTS_WINDOW else None)
        return self._window.get(path)

    def _forget_window(self) -> None:
        """The file changed (rows written, or it was discarded): the window may be out of date."""
        self._window = {}
        self._window_range = (None, None)

    # -- ScanCache

    def offsets(self, path: str, load: Callable[[], list[BlobEntry]]) -> Entries:
        key = file_stamp(os.stat(path))
        with self._lock:
            hit = self._offsets.get(path)
            if hit is None or hit[0] != key:
                stored = self._stored(path, key)
                if stored is not None:
                    hit = (key, *stored)
                else:
                    hit = (key, *entry_columns(load()))
                    self._dirty.add(path)
                self._offsets[path] = hit
            return hit[1:]

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
            if hit is None and self._trust_stored:
                stored = self._stored_folder(directory, key)
                if stored is not None:
                    self._anns[directory] = (key, stored)
                    # as good as the listing that was stored (only a listing that was not racy is):
                    # re-stamped by an edit and saved, it stays stored
                    self._listed_at[directory] = max(key.mtime_ns, key.ctime_ns) + RACY_NS
                    self._unverified.add(directory)
                    return stored
            started = time.time_ns()
            files = scan(hit[1] if hit is not None else {})
            self._anns[directory] = (key, files)
            self._listed_at[directory] = started
            self._dirty_folders.add(directory)
            if max(key.mtime_ns, key.ctime_ns) + RACY_NS > started:
                self._unverified.add(directory)  # stored once a later listing confirms it
            else:
                self._unverified.discard(directory)
            return files

    def _stored_folder(self, directory: str, key: Stamp) -> dict[str, Stamp] | None:
        """The stored files of ``directory`` if the row is of this version of the folder."""
        text = key_text(key)

        def read(db: sqlite3.Connection) -> dict[str, Stamp] | None:
            # read as bytes whatever their storage class: a value damaged into text that is not UTF-8
            # is then a damaged row, not a decoding error of the driver's
            row = db.execute("SELECT CAST(key AS BLOB), CAST(names AS BLOB), CAST(stamps AS BLOB) FROM folders"
                             " WHERE path = ?", (directory,)).fetchone()
            return None if row is None else validated_folder(row, text)
        return self._read(directory, read)

    def unverified(self) -> list[str]:
        """The folders whose listing is not verified yet: taken from the file (its stamps too), or racy."""
        with self._lock:
            return sorted(self._unverified)

    def compare(self, directory: str, found: dict[str, Stamp]) -> tuple[list[str], int]:
        """The names among ``found`` (files of ``directory`` stat'ed now) that this mount holds in
        another version or not at all, and how many of them it holds."""
        with self._lock:
            files = self._anns.get(directory, (UNLISTED, {}))[1]
            differ, held = [], 0
            for name, stamp in found.items():
                known = files.get(name)
                if known is not None:
                    held += 1
                if known is None or not known.same_bytes(stamp):
                    differ.append(name)
            return differ, held

    def listed_names(self, directory: str) -> set[str]:
        with self._lock:
            return set(self._anns.get(directory, (UNLISTED, {}))[1])

    def confirm(self, directory: str, key: Stamp, listed_at: int) -> None:
        """A later listing of ``directory`` (begun at ``listed_at``, the folder stamped ``key`` before
        and after it) found what this mount holds: it is stored at the next save (unless racy still)."""
        with self._lock:
            hit = self._anns.get(directory)
            if hit is not None and hit[0] == key:
                self._listed_at[directory] = listed_at
                self._dirty_folders.add(directory)
                self._unverified.discard(directory)

    def facts(self, path: str, key: tuple[int, ...]) -> ItemFacts | None:
        text = key_text(key)

        def read(db: sqlite3.Connection) -> ItemFacts | None:
            row = self._facts_row(db, path)
            return None if row is None else validated_facts(row, text, self._decoded)

        with self._lock:
            recorded = self._facts.get(path)
            return validated_facts(recorded, text, self._decoded) if recorded is not None else self._read(path, read)

    def record_facts(self, path: str, key: tuple[int, ...], facts: ItemFacts) -> None:
        if self._db is None or not _storable(path):
            return
        with self._lock:
            self._facts[path] = (key_text(key), *facts_row(facts))
            if len(self._facts) >= FACTS_FLUSH_ROWS:  # a first mount of 10^6 items: not all held until saved
                self.save()

    # -- live updates

    def restamp(self, path: str, stamp: Stamp) -> bool:
        """A listed JSON file was edited in place or replaced (the watcher says so, and the folder's
        stamp need not show it): take its new stamp. False when its folder's listing does not hold
        the name: then it is new, and the folder must be listed again (``relist``)."""
        directory, name = os.path.split(path)
        with self._lock:
            hit = self._anns.get(directory)
            if hit is None or name not in hit[1]:
                return False
            hit[1][name] = stamp
            self._dirty_folders.add(directory)
            return True

    def relist(self, path: str) -> None:
        """``path`` appeared, vanished or is no longer a plain file: its folder is listed again at
        the next scan and the name stat'ed afresh, whatever the folder's stamp says (two changes
        within one tick of the file system's clock leave it as it was)."""
        directory, name = os.path.split(path)
        with self._lock:
            hit = self._anns.get(directory)
            if hit is not None:
                hit[1].pop(name, None)
                self._anns[directory] = (UNLISTED, hit[1])
                self._dirty_folders.add(directory)

    def forget_json_files(self) -> None:
        """Edits may have gone unreported (inotify queue overflow): stat every JSON file again,
        stored listings included."""
        with self._lock:
            self._anns.clear()
            self._unverified.clear()
            self._dirty_folders.clear()
            self._trust_stored = False

    def save(self, final: bool = False) -> None:
        """Write what changed since the last save (one transaction); a folder written less than
        FOLDER_SAVE_SECONDS ago waits for a later save, unless ``final``."""
        if self._db is None:
            return
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            facts, self._facts = self._facts, {}
            now = time.monotonic()
            folders = {d for d in self._dirty_folders
                       if final or now - self._folder_saved.get(d, -FOLDER_SAVE_SECONDS) >= FOLDER_SAVE_SECONDS}
            self._dirty_folders -= folders
            self._forget_window()
            try:
                with self._db:
                    for path in dirty:
                        if path in self._offsets:
                            key, names, starts, ends = self._offsets[path]
                            self._db.execute("REPLACE INTO offsets VALUES (?, ?, ?, ?, ?)", (
                                path, json.dumps(key), json.dumps(names), starts.tobytes(), ends.tobytes()))
                    self._db.executemany("REPLACE INTO facts VALUES (?, ?, ?, ?, ?, ?)",
                                         ((path, *row) for path, row in facts.items()))
                    for directory in folders:
                        self._save_folder(directory)
                        self._folder_saved[directory] = now
            except (sqlite3.Error, UnicodeEncodeError) as e:
                log.warning("index not saved: %s", e)

    def _save_folder(self, directory: str) -> None:
        """Store (or drop) one folder's row: dropped when the folder must be listed again, its
        listing is racy, or a name cannot be stored."""
        assert self._db is not None
        key, files = self._anns.get(directory, (UNLISTED, {}))
        listed_at = self._listed_at.get(directory, 0)
        if (key == UNLISTED or max(key.mtime_ns, key.ctime_ns) + RACY_NS > listed_at
                or not _storable(directory) or not all(map(_storable, files))):
            self._db.execute("DELETE FROM folders WHERE path = ?", (directory,))
            return
        self._db.execute("REPLACE INTO folders VALUES (?, ?, ?, ?)", (directory, key_text(key), *_folder_row(files)))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
