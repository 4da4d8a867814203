"""Text in structured files: XML character data and comments, YAML scalars, compact JSON. Each
escape keeps every string readable back (no reader refuses, folds or drops a character)."""

from __future__ import annotations

import json

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


def json_bytes(data: dict) -> bytes:
    """Compact UTF-8 JSON (no spaces, non-ASCII text as it is): the smallest file every JSON reader takes."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
