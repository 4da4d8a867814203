"""A damaged persistent index is discarded and rebuilt: the mount serves what a fresh one does.

Each case damages the index file the way a crash, a full disk, another tool or a bug could
(rows edited with sqlite3 directly, the file truncated or garbled), then mounts for real."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.readers.supervisely.index import SourceIndex, index_path, validated_row
from tests.conftest import read_tree

Damage = Callable[[Path], None]


def _update(sql: str, *args: object) -> Damage:
    """Run ``sql`` on one row (the first by path) of the offsets table."""
    def damage(db_path: Path) -> None:
        db = sqlite3.connect(db_path)
        with db:
            first = db.execute("SELECT path, names, starts FROM offsets ORDER BY path").fetchone()
            db.execute(sql, (*[a(first) if callable(a) else a for a in args], first[0]))
        db.close()
    return damage


def _names(row: tuple) -> list[str]:
    return json.loads(row[1])


def _rewrite_file(change: Callable[[bytes], bytes]) -> Damage:
    def damage(db_path: Path) -> None:
        db_path.write_bytes(change(db_path.read_bytes()))
    return damage


def _rename_column(db_path: Path) -> None:
    db = sqlite3.connect(db_path)
    db.execute("ALTER TABLE offsets RENAME COLUMN names TO other")
    db.close()


DAMAGES: dict[str, Damage] = {
    "fewer names than offsets": _update("UPDATE offsets SET names = ? WHERE path = ?",
                                        lambda r: json.dumps(_names(r)[:-1])),
    "more names than offsets": _update("UPDATE offsets SET names = ? WHERE path = ?",
                                       lambda r: json.dumps([*_names(r), "extra.jpg"])),
    "starts not whole integers": _update("UPDATE offsets SET starts = ? WHERE path = ?", lambda r: r[2][:-1]),
    "names not JSON": _update("UPDATE offsets SET names = ? WHERE path = ?", "[\"a.jpg\", "),
    "names not strings": _update("UPDATE offsets SET names = ? WHERE path = ?",
                                 lambda r: json.dumps(list(range(len(_names(r)))))),
    "key of the wrong type": _update("UPDATE offsets SET key = ? WHERE path = ?", 7),
    "key not JSON": _update("UPDATE offsets SET key = ? WHERE path = ?", "{"),
    "starts stored as text": _update("UPDATE offsets SET starts = ? WHERE path = ?", "0"),
    "negative offset": _update("UPDATE offsets SET starts = ? WHERE path = ?",
                               lambda r: (-1).to_bytes(8, "little", signed=True) + r[2][8:]),
    "column renamed": _rename_column,
    "file truncated": _rewrite_file(lambda data: data[: len(data) // 2]),
    "file garbled": _rewrite_file(lambda data: data[:100] + bytes(b ^ 0x5A for b in data[100:])),
    "not a database": _rewrite_file(lambda data: b"this is not sqlite\n" * 300),
}


@pytest.fixture
def source(blob_copy: Path) -> Path:
    return blob_copy


def build_index(source: Path, cache: Path) -> Path:
    """The index a first mount leaves behind (built in-process: the same code)."""
    db = index_path(cache, str(source))
    index = SourceIndex(db)
    read_project(str(source), cache=index)
    index.save()
    index.close()
    return db


def stored_rows(db_path: Path) -> list[tuple]:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT key, names, starts, ends FROM offsets").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("damage", list(DAMAGES), ids=list(DAMAGES))
def test_a_damaged_index_is_discarded_and_rebuilt(damage: str, source: Path, tmp_path: Path, mount) -> None:
    with mount(source, "--no-index", "--no-watch") as mnt:
        expected = read_tree(mnt)
    cache = tmp_path / "cache"
    db = build_index(source, cache)
    n_rows = len(stored_rows(db))
    assert n_rows == len(list(source.glob("**/*_offsets.pkl")))
    DAMAGES[damage](db)
    with mount(source, "--cache-dir", str(cache), "--no-watch") as mnt:
        assert read_tree(mnt) == expected
        log = mnt.with_suffix(".log").read_text()
    lines = [line for line in log.splitlines() if "slyfs.index" in line]
    assert len(lines) == 1 and f"index {db} damaged (" in lines[0] and "rebuilding it from the source" in lines[0]
    rows = stored_rows(db)  # rebuilt whole: every row valid again
    assert len(rows) == n_rows
    assert all(validated_row(row, tuple(json.loads(row[0]))) for row in rows)


def test_an_intact_index_is_used_without_a_word(source: Path, tmp_path: Path, mount) -> None:
    cache = tmp_path / "cache"
    db = build_index(source, cache)
    before = stored_rows(db)
    with mount(source, "--cache-dir", str(cache), "--no-watch") as mnt:
        read_tree(mnt)
        assert "slyfs.index" not in mnt.with_suffix(".log").read_text()
    assert stored_rows(db) == before
