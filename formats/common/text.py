"""Text in structured files: XML character data and comments, YAML scalars, compact JSON, CSV rows. Each
escape keeps every string readable back (no reader refuses, folds or drops a character)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence

from slyfs.formats.common.naming import percent_bytes


def _xml_unsafe(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 and ch not in "\t\n\r" or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)


def xml_text(value: str) -> str:
    """Text lxml accepts: characters XML 1.0 forbids become ``%XX`` (each its own UTF-8 bytes)."""
    if value.isprintable():
        return value
    return "".join(percent_bytes(c) if _xml_unsafe(c) else c for c in value)


def xml_comment_text(value: str) -> str:
    """Text an XML comment may hold: :func:`xml_text`, with ``--`` (which ends a comment) split."""
    return xml_text(value).replace("--", "- -")


def _yaml_escape(ch: str) -> str:
    code = ord(ch)
    return ch if ch.isprintable() else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def yaml_str(s: str) -> str:
    """A YAML double-quoted scalar that reads back as ``s``: a JSON string (valid YAML), with every
    character that is not printable (C1 controls, U+2028, U+FFFE, unpaired surrogates…, which YAML
    readers refuse, fold or cannot encode) written as a ``\\u``/``\\U`` escape."""
    out = json.dumps(s, ensure_ascii=False)
    return out if out.isprintable() else "".join(_yaml_escape(c) for c in out)


def json_text(value: object) -> str:
    """Compact JSON (no spaces, non-ASCII text as it is): the smallest text every JSON reader takes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_bytes(data: dict) -> bytes:
    """:func:`json_text` as UTF-8: what every generated JSON file holds."""
    return json_text(data).encode()


def csv_rows(rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 CSV as Python's ``csv`` module reads it back: a field holding ``,``, ``"`` or a
    line break is quoted (``"`` doubled), rows end in ``\r\n``, numbers as ``str`` prints them."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue()


SPOOL_IN_MEMORY = 1 << 20  # a spool this small stays in memory; a larger one is a temporary file
SPOOL_CHUNK = 1 << 20  # the pieces a spool is read back in


class JsonArraySpool:
    """A JSON array written an element at a time into a temporary file (in memory while small) and
    read back in pieces: a document whose head is known only after its arrays (COCO's ``info``
    counts what they left out) is made without holding its elements as Python objects."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115  # chunks() closes it
        self._file.write(b"[")
        self.count = 0

    def append(self, value: object) -> None:
        self._file.write((b"," if self.count else b"") + json_text(value).encode())
        self.count += 1

    def chunks(self) -> Iterator[bytes]:
        """The array's bytes, once: the spool is closed after the last piece."""
        with self._file as f:
            f.write(b"]")
            f.seek(0)
            while piece := f.read(SPOOL_CHUNK):
                yield piece


def json_object_chunks(fields: Iterable[tuple[str, object]]) -> Iterator[bytes]:
    """The bytes of ``json_bytes(dict(fields))`` a field at a time; a :class:`JsonArraySpool`
    value is copied out of its spool in pieces."""
    yield b"{"
    for i, (name, value) in enumerate(fields):
        yield (b"," if i else b"") + json_text(name).encode() + b":"
        if isinstance(value, JsonArraySpool):
            yield from value.chunks()
        else:
            yield json_text(value).encode()
    yield b"}"
