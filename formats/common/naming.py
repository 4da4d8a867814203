"""Safe, unique, deterministic output names and text fields.

Rules (the README repeats them):
- A source name becomes one safe path component: ``/``, NUL, control bytes and bytes of
  invalid UTF-8 become ``%XX``; ``.`` and ``..`` become ``%2E`` / ``%2E%2E``; a name over
  255 bytes is shortened and given ``~<8 hex>`` of its hash, keeping the extension.
- In one output folder, names whose stems collide (a label file is named by the stem) are
  qualified: items of different datasets get ``<dataset>__`` in front (nested datasets
  joined by ``__``); items of one dataset that differ only by extension get ``_<ext>``
  after the stem (``dup.jpg`` → ``dup_jpg.jpg``). Anything still colliding gets ``~2``,
  ``~3``… after the stem, in sorted (dataset, name) order. Item stems are at most 251 bytes,
  so ``<stem>.txt`` / ``.xml`` / ``.png`` / ``.jpg`` fit in 255.
- A string that must stay one field of a text file (:func:`text_field`) gets ``%XX`` (its
  UTF-8 bytes) for every character its reader would split or strip at; names that then
  collide get ``~<8 hex>`` of their source's hash (:func:`distinct_texts`).
- Text from the source's JSON holding unpaired surrogates (valid JSON, not valid Unicode)
  is made encodable once, by the reader (:func:`encodable_text`); every view sees the result.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence

MAX_NAME_BYTES = 255
SUFFIX_BYTES = 4  # ".txt", ".xml", ".png", ".jpg": what views put after an item's stem
MAX_STEM_BYTES = MAX_NAME_BYTES - SUFFIX_BYTES
MAX_EXT_BYTES = 32  # a longer "extension" is part of the stem
SURROGATE = re.compile("[\ud800-\udfff]")
WHITESPACE = re.compile(r"\s")  # what str.split() splits at (textread's %s: the ASCII part)


def split_ext(name: str) -> tuple[str, str]:
    """("dup", ".jpg") for "dup.jpg"; a leading dot does not start an extension."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot > 0 else (name, "")


def percent_bytes(ch: str) -> str:
    """``%XX`` of each UTF-8 byte of a character (an unpaired surrogate: the bytes surrogatepass gives it)."""
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of invalid UTF-8, kept by surrogateescape
        return f"%{code - 0xDC00:02X}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate that is not an escaped byte
        return percent_bytes(ch)
    if ch == "/" or code < 0x20 or code == 0x7F:
        return f"%{code:02X}"
    return ch


def escape_component(name: str) -> str:
    """The characters of ``name`` made safe for one path component (no length limit)."""
    if name and name.isprintable() and "/" not in name and name not in (".", ".."):
        return name  # the common case, unchanged (and the same string object: no copy per item)
    out = "".join(_escape_char(c) for c in name)
    return {"": "%00", ".": "%2E", "..": "%2E%2E"}.get(out, out)


def _cut(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def _hash_tag(text: str) -> str:
    return "~" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def shorten(text: str, max_bytes: int) -> str:
    """``text`` itself when it has at most ``max_bytes`` UTF-8 bytes, else cut and tagged
    ``~<8 hex of the hash of the whole text>`` to exactly fit (distinct texts stay distinct)."""
    if len(text) <= max_bytes // 4 or len(text.encode("utf-8")) <= max_bytes:
        return text
    tag = _hash_tag(text)
    return _cut(text, max_bytes - len(tag)) + tag


def fit_name(name: str, max_stem: int = MAX_NAME_BYTES) -> str:
    """``name`` itself when it is at most 255 bytes with a stem of at most ``max_stem``; else its
    stem cut and tagged ``~<8 hex of the hash of the whole name>``, the extension kept."""
    if len(name) <= max_stem // 4:
        return name  # the common case: no encoding, no split
    stem, ext = split_ext(name)
    ext_bytes = len(ext.encode("utf-8"))
    if len(stem.encode("utf-8")) <= max_stem and len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    if ext_bytes > MAX_EXT_BYTES:
        stem, ext, ext_bytes = name, "", 0
    tag = _hash_tag(name)
    return _cut(stem, min(max_stem, MAX_NAME_BYTES - ext_bytes) - len(tag)) + tag + ext


def safe_name(name: str) -> str:
    """One path component, valid UTF-8, never ``.``/``..``/empty, at most 255 bytes."""
    return fit_name(escape_component(name))


def line_unsafe(ch: str) -> bool:
    """Characters no line-based text field keeps: controls (C0, DEL, C1), unpaired
    surrogates, the non-characters U+FFFE/U+FFFF and the Unicode line/paragraph separators."""
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF, 0x2028, 0x2029)


def is_surrogate(ch: str) -> bool:
    return 0xD800 <= ord(ch) <= 0xDFFF


def text_field(text: str, unsafe: Callable[[str], bool] = line_unsafe, strip: bool = True) -> str:
    """``text`` as one field of a text file: each character ``unsafe`` names and (``strip``)
    leading and trailing whitespace become ``%XX`` of their UTF-8 bytes; other text is unchanged.
    Texts that collide after this are told apart by :func:`distinct_texts`."""
    core_start = len(text) - len(text.lstrip()) if strip else 0
    core_end = len(text.rstrip()) if strip else len(text)
    return "".join(percent_bytes(c) if unsafe(c) or not core_start <= i < core_end else c for i, c in enumerate(text))


def distinct_texts(texts: Sequence[str], escape: Callable[[str], str], max_bytes: int = MAX_NAME_BYTES) -> list[str]:
    """``escape`` of each of the distinct ``texts``, kept distinct: an escaped text equal to another's
    gets ``~<8 hex of the hash of its source text>`` when escaping changed it (cut to ``max_bytes``),
    so ``a:b`` → ``a%3Ab~…`` next to a literal ``a%3Ab``. Unchanged texts keep their form."""
    escaped = [escape(t) for t in texts]
    count = Counter(escaped)
    return [e if count[e] == 1 or e == t else _cut(e, max_bytes - 9) + _hash_tag(t) for t, e in zip(texts, escaped)]


def encodable_text(text: str) -> str:
    """Source JSON text made encodable: a string with unpaired surrogates gets ``%XX`` for
    them; every other string is returned as it is."""
    if text.isascii() or not SURROGATE.search(text):
        return text
    return text_field(text, is_surrogate, strip=False)


def _with_stem_suffix(name: str, suffix: str) -> str:
    stem, ext = split_ext(name)
    room = min(MAX_STEM_BYTES, MAX_NAME_BYTES - len(ext.encode("utf-8"))) - len(suffix.encode("utf-8"))
    return _cut(stem, room) + suffix + ext


def _kept_whole(names: list[str]) -> bool:
    """Whether :func:`escape_component` keeps every name as it is, told by scans of all of them at
    once (no Python call per name): this runs on every item of a folder at its first listing."""
    joined = "".join(names)
    return all(names) and joined.isprintable() and "/" not in joined and "." not in names and ".." not in names


def _kept_whole_spaceless(names: list[str]) -> bool:
    return _kept_whole(names) and WHITESPACE.search("".join(names)) is None


def fitted_names(names: list[str], escape: Callable[[str], str]) -> list[str]:
    """``fit_name(escape(n), MAX_STEM_BYTES)`` of each name; the common case (nothing to escape,
    nothing too long) is the names themselves, found without a call per name."""
    whole = _KEEPS_WHOLE.get(escape)
    out = names if whole is not None and whole(names) else list(map(escape, names))
    if max(map(len, out), default=0) > MAX_STEM_BYTES // 4:  # fit_name's own short cut, for all at once
        out = [fit_name(n, MAX_STEM_BYTES) for n in out]
    return out


def names_if_distinct(names: list[str]) -> list[str] | None:
    """``names`` when their stems are already distinct, which is all :func:`unique_names` asks:
    then no name is qualified or numbered. None when some stems collide."""
    stems = [n.rpartition(".")[0] or n for n in names]  # split_ext's stem: a leading dot starts none
    return names if len(set(stems)) == len(stems) else None


def unique_names(entries: Sequence[tuple[str, str]], escape: Callable[[str], str] = escape_component) -> list[str]:
    """Output names for ``(dataset, item name)`` pairs that share one output folder, such
    that no two names (nor their stems) are equal and every stem has room for a 4-byte
    suffix. ``escape`` makes a name (and a dataset name) safe; a view whose lists are
    whitespace-separated also escapes whitespace there. Same input, same names."""
    return unique_names_of([n for _, n in entries], lambda: [d for d, _ in entries], escape)


def unique_names_of(item_names: list[str], datasets: Callable[[], Sequence[str]],
                    escape: Callable[[str], str] = escape_component) -> list[str]:
    """:func:`unique_names` of the pairs of ``datasets()`` and ``item_names``: the datasets are
    asked for only when some names collide (they are then qualified with them), which a folder of
    distinct names (the common case) never needs."""
    names = fitted_names(item_names, escape)
    distinct = names_if_distinct(names)
    if distinct is not None:
        return distinct
    entries = list(zip(datasets(), item_names))
    parts = [split_ext(n) for n in names]  # once per name: this runs for every item at mount
    stem_count = Counter(stem for stem, _ in parts)
    in_ds_count = Counter((ds, stem) for (ds, _), (stem, _) in zip(entries, parts))
    qualified = []
    qualified_stems = []
    for (ds, _), name, (stem, ext) in zip(entries, names, parts):
        if stem_count[stem] > 1:
            shared_in_ds = in_ds_count[(ds, stem)]
            if shared_in_ds < stem_count[stem]:
                stem = "__".join(escape(p) for p in ds.split("/")) + "__" + stem
            if shared_in_ds > 1 and ext:
                stem = f"{stem}_{ext[1:]}"
            name = fit_name(stem + ext, MAX_STEM_BYTES)
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


def printable(text: str) -> str:
    """Text safe to print on a terminal or into a log: control and format characters and
    undecodable bytes of a hostile name are shown as escapes (``\\x1b``, ``\\u202e``), never sent raw."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else
                   (f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("unicode_escape").decode())
                   for c in text)


def spaceless_component(name: str) -> str:
    """A name (or dataset name) made one path component that whitespace-separated lists keep
    whole: ``escape_component``, then every whitespace character ``%XX``."""
    out = escape_component(name)
    return WHITESPACE.sub(lambda m: percent_bytes(m.group()), out) if WHITESPACE.search(out) else out


def list_component(name: str) -> str:
    """A name made one path component that a whitespace-separated list line without quotes keeps
    whole (CamVid's and ImageNet's ``<split>.txt``, whose readers split at both): ``spaceless_component``,
    then ``"`` as ``%22``."""
    out = spaceless_component(name)
    return out.replace('"', "%22") if '"' in out else out


def token_text(text: str) -> str:
    """``text`` as one token of a whitespace-separated line (KITTI's label names, ``label_colors.txt``):
    each whitespace character ``_``, every other character :func:`line_unsafe` names ``%XX``;
    empty text is ``_``. :func:`token_texts` keeps distinct texts distinct."""
    out = "".join("_" if c.isspace() else percent_bytes(c) if line_unsafe(c) else c for c in text)
    return out or "_"


def uncommented(text: str) -> str:
    """``text`` with a leading ``#`` as ``%23``: readers of label files skip a line starting with it."""
    return "%23" + text[1:] if text.startswith("#") else text


def token_texts(texts: Sequence[str]) -> list[str]:
    """:func:`token_text` of each of the distinct ``texts``, distinct (``a b`` next to ``a_b``:
    ``a_b~<hash>``)."""
    return distinct_texts(texts, token_text)


def backslashless_component(name: str) -> str:
    """A name made one path component with no backslash: ``escape_component``, then ``\\`` as
    ``%5C``. Datumaro turns a backslash in an item id or media path into ``/``, losing the image."""
    out = escape_component(name)
    return out.replace("\\", "%5C") if "\\" in out else out


def _kept_whole_backslashless(names: list[str]) -> bool:
    return _kept_whole(names) and "\\" not in "".join(names)


_KEEPS_WHOLE: dict[Callable[[str], str], Callable[[list[str]], bool]] = {
    escape_component: _kept_whole, spaceless_component: _kept_whole_spaceless,
    backslashless_component: _kept_whole_backslashless}
