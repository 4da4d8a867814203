"""Safe, unique, deterministic output names.

Rules (the README repeats them):
- A source name becomes one safe path component: ``/``, NUL, control bytes and bytes of
  invalid UTF-8 become ``%XX``; ``.`` and ``..`` become ``%2E`` / ``%2E%2E``; a name over
  255 bytes is shortened and given ``~<8 hex>`` of its hash, keeping the extension.
- In one output folder, names whose stems collide (a label file is named by the stem) are
  qualified: items of different datasets get ``<dataset>__`` in front (nested datasets
  joined by ``__``); items of one dataset that differ only by extension get ``_<ext>``
  after the stem (``dup.jpg`` → ``dup_jpg.jpg``). Anything still colliding gets ``~2``,
  ``~3``… after the stem, in sorted (dataset, name) order.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Sequence

MAX_NAME_BYTES = 255


def split_ext(name: str) -> tuple[str, str]:
    """("dup", ".jpg") for "dup.jpg"; a leading dot does not start an extension."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot > 0 else (name, "")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of invalid UTF-8, kept by surrogateescape
        return f"%{code - 0xDC00:02X}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate that is not an escaped byte
        return "%3F"
    if ch == "/" or code < 0x20 or code == 0x7F:
        return f"%{code:02X}"
    return ch


def safe_name(name: str) -> str:
    """One path component, valid UTF-8, never ``.``/``..``/empty, at most 255 bytes."""
    if name and name.isprintable() and "/" not in name and name not in (".", "..") and (
            len(name) <= MAX_NAME_BYTES // 4 or len(name.encode("utf-8")) <= MAX_NAME_BYTES):
        return name  # the common case, unchanged (and the same string object: no copy per item)
    out = "".join(_escape_char(c) for c in name)
    if out in ("", ".", ".."):
        out = {"": "%00", ".": "%2E", "..": "%2E%2E"}[out]
    if len(out.encode("utf-8")) > MAX_NAME_BYTES:
        stem, ext = split_ext(out)
        if len(ext.encode("utf-8")) > 32:
            stem, ext = out, ""
        tag = "~" + hashlib.sha1(out.encode("utf-8")).hexdigest()[:8]
        room = MAX_NAME_BYTES - len((tag + ext).encode("utf-8"))
        stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
        out = stem + tag + ext
    return out


def _with_stem_suffix(name: str, suffix: str) -> str:
    stem, ext = split_ext(name)
    room = MAX_NAME_BYTES - len((suffix + ext).encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix + ext


def unique_names(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Output names for ``(dataset, item name)`` pairs that share one output folder, such
    that no two names (nor their stems) are equal. Same input, same names."""
    names = [safe_name(n) for _, n in entries]
    parts = [split_ext(n) for n in names]  # once per name: this runs for every item at mount
    stem_count = Counter(stem for stem, _ in parts)
    in_ds_count = Counter((ds, stem) for (ds, _), (stem, _) in zip(entries, parts))
    qualified = []
    qualified_stems = []
    for (ds, _), name, (stem, ext) in zip(entries, names, parts):
        if stem_count[stem] > 1:
            shared_in_ds = in_ds_count[(ds, stem)]
            if shared_in_ds < stem_count[stem]:
                stem = "__".join(safe_name(p) for p in ds.split("/")) + "__" + stem
            if shared_in_ds > 1 and ext:
                stem = f"{stem}_{ext[1:]}"
            name = safe_name(stem + ext)
            stem = split_ext(name)[0]
        qualified.append(name)
        qualified_stems.append(stem)
    order = sorted(range(len(entries)), key=lambda i: entries[i])
    used: set[str] = set()
    out = [""] * len(entries)
    for i in order:
        name, stem = qualified[i], qualified_stems[i]
        k = 1
        while stem in used:
            k += 1
            name = _with_stem_suffix(qualified[i], f"~{k}")
            stem = split_ext(name)[0]
        used.add(stem)
        out[i] = name
    return out
