"""Blob offsets files (``<tar stem>_offsets.pkl``), read without running their code.

An offsets file is several pickles concatenated, each a list of the SDK's
``BlobImageInfo(name, offset_start, offset_end)``. A pickle can call anything it names,
so the unpickler here admits exactly one global, that class name, and maps it to
:class:`BlobRecord`; every other global is refused before anything is called.

A pickle can also exhaust memory without calling anything (a 10-byte ``LONG_BINPUT 2**27``
makes CPython's unpickler allocate and zero a 2 GB memo table). So before anything is
unpickled, :func:`prescan` walks the opcodes and refuses every opcode an offsets file does
not need, memo indices that skip ahead, strings longer than a name, integers beyond 63
bits and nesting deeper than a few levels. Work and memory are then linear in the file
size, which is itself bounded.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from array import array
from dataclasses import dataclass
from typing import TypeGuard

from slyfs.formats.source_bytes import open_regular

ALLOWED_GLOBAL = ("supervisely.api.image_api", "BlobImageInfo")
MAX_OFFSETS_FILE = 256 << 20  # ~4·10^6 entries; more is not an offsets file
MAX_ENTRIES = 5_000_000
MAX_NAME_BYTES = 4096
MAX_OFFSET = (1 << 63) - 1
MAX_MARK_DEPTH = 8  # list > record > state dict needs 2
MAX_STACK = 100_000  # the SDK's pickler pushes at most 1000 records (3 items each) at a time

# Everything the SDK's pickles use (protocols 2-5), plus the harmless scalars of protocol 0.
ALLOWED_OPS = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK",
    "EMPTY_LIST", "LIST", "APPEND", "APPENDS", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
    "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "NONE", "NEWTRUE", "NEWFALSE",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET", "LONG_BINGET",
    "GLOBAL", "STACK_GLOBAL", "REDUCE", "NEWOBJ", "BUILD",
})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class OffsetsError(ValueError):
    """The offsets file cannot be used at all (hostile, corrupt or not an offsets file).
    ``str()`` names the file; ``reason`` is the bare explanation."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class BlobRecord:
    """Stand-in for the SDK class: accepts only its three known fields, as plain values."""

    __slots__ = ("name", "offset_start", "offset_end")

    def __init__(self, *args: object) -> None:
        if args:  # BlobImageInfo(name, offset_start, offset_end) by REDUCE
            if len(args) != 3:
                raise OffsetsError("BlobImageInfo takes exactly 3 arguments")
            self.name, self.offset_start, self.offset_end = args

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            state = state[0] or state[1]
        if not isinstance(state, dict):
            raise OffsetsError("BlobImageInfo state is not a dict")
        for key in self.__slots__:
            if key in state:
                setattr(self, key, state[key])


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ALLOWED_GLOBAL:
            return BlobRecord
        raise OffsetsError(f"refused global {module}.{name} (only {'.'.join(ALLOWED_GLOBAL)} is allowed)")

    def persistent_load(self, pid: object) -> object:
        raise OffsetsError("refused persistent id")


@dataclass(frozen=True, slots=True)
class BlobEntry:
    name: str
    start: int  # first data byte of the member in the tar
    end: int  # exclusive


Entries = tuple[list[str], array, array]  # an offsets file's entries as columns: names, starts, ends


def _entry(rec: object, index: int) -> BlobEntry:
    if not isinstance(rec, BlobRecord):
        raise OffsetsError(f"entry #{index} is {type(rec).__name__}, not BlobImageInfo")
    name = getattr(rec, "name", None)
    start, end = getattr(rec, "offset_start", None), getattr(rec, "offset_end", None)
    if not isinstance(name, str) or not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise OffsetsError(f"entry #{index} has no usable name")
    if not (_is_offset(start) and _is_offset(end)):
        raise OffsetsError(f"entry #{index} ({name!r}) has an offset that is not an integer in 0..2**63")
    return BlobEntry(name, start, end)


def _is_offset(v: object) -> TypeGuard[int]:
    """A byte offset in a tar: an integer (not a bool) in 0..MAX_OFFSET."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_OFFSET


def _stack_effect(op: pickletools.OpcodeInfo) -> tuple[int, int, bool]:
    """(items popped below the mark or from the top, items pushed, pops back to a mark)."""
    before = op.stack_before
    if pickletools.markobject in before:
        return before.index(pickletools.markobject), len(op.stack_after), True
    return len(before), len(op.stack_after), False


_EFFECTS = {op.name: _stack_effect(op) for op in pickletools.opcodes}


def prescan(stream: io.BytesIO) -> None:
    """Walk one pickle's opcodes up to STOP without building anything; raise OffsetsError
    at the first one an offsets file has no use for or that would cost more than its size."""
    height, memo = 0, 0
    marks: list[int] = []  # the stack height at each open MARK
    try:
        for op, arg, pos in pickletools.genops(stream):
            name = op.name
            if name not in ALLOWED_OPS:
                raise OffsetsError(f"refused opcode {name} at byte {pos}")
            if name in _PUT_OPS or name == "MEMOIZE":
                if name != "MEMOIZE" and not (isinstance(arg, int) and 0 <= arg <= memo):
                    raise OffsetsError(f"memo index {arg} at byte {pos} skips ahead (next is {memo})")
                memo += 1
            elif isinstance(arg, str) and len(arg) > MAX_NAME_BYTES and name not in ("GLOBAL",):
                raise OffsetsError(f"string of {len(arg)} characters at byte {pos}")
            elif isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OFFSET:
                raise OffsetsError(f"integer of {arg.bit_length()} bits at byte {pos}")
            popped, pushed, to_mark = _EFFECTS[name]
            if name == "MARK":
                if len(marks) >= MAX_MARK_DEPTH:
                    raise OffsetsError(f"nesting deeper than {MAX_MARK_DEPTH} at byte {pos}")
                marks.append(height)
                continue
            if to_mark:
                if not marks:
                    raise OffsetsError(f"{name} without MARK at byte {pos}")
                height = marks.pop()
            if popped > height:
                raise OffsetsError(f"{name} on a stack too short at byte {pos}")
            height += pushed - popped
            if height > MAX_STACK:
                raise OffsetsError(f"more than {MAX_STACK} values on the stack at byte {pos}")
    except ValueError as e:  # genops: truncated or malformed argument
        if isinstance(e, OffsetsError):
            raise
        raise OffsetsError(f"not a valid pickle ({e})") from None


def read_offsets(path: str) -> list[BlobEntry]:
    """All entries of an offsets file, in file order. Raises OffsetsError, naming the file,
    when anything in it is not a list of BlobImageInfo records."""
    try:
        fd, st = open_regular(path)
        with os.fdopen(fd, "rb") as f:
            if st.st_size > MAX_OFFSETS_FILE:
                raise OffsetsError(f"{st.st_size} bytes, larger than any offsets file should be", path)
            data = f.read()
    except OSError as e:
        raise OffsetsError(f"cannot read: {e.strerror}", path) from None
    stream = io.BytesIO(data)
    entries: list[BlobEntry] = []
    try:
        while stream.tell() < len(data):
            start = stream.tell()
            prescan(stream)
            stream.seek(start)
            chunk = _RestrictedUnpickler(stream).load()
            if not isinstance(chunk, list):
                raise OffsetsError(f"a pickle holds {type(chunk).__name__}, not a list")
            if len(entries) + len(chunk) > MAX_ENTRIES:
                raise OffsetsError(f"more than {MAX_ENTRIES} entries")
            entries.extend(_entry(rec, len(entries) + i) for i, rec in enumerate(chunk))
    except OffsetsError as e:
        raise OffsetsError(e.reason, path) from None
    except RecursionError:
        raise OffsetsError("nesting too deep", path) from None
    except Exception as e:  # corrupt pickle: UnpicklingError, EOFError, ValueError, ...
        raise OffsetsError(f"not a valid offsets pickle ({type(e).__name__}: {e})", path) from None
    return entries


def entry_columns(entries: list[BlobEntry]) -> Entries:
    """Entries as the index keeps them: names, starts, ends."""
    return [e.name for e in entries], array("q", [e.start for e in entries]), array("q", [e.end for e in entries])


def check_entry(start: int, end: int, tar_size: int) -> str | None:
    """Why the entry ``start..end`` cannot be served from a tar of ``tar_size`` bytes, or None if it can."""
    if not 0 <= start < end:
        return f"offsets {start}..{end} are not an increasing range"
    if end > tar_size:
        return f"ends at byte {end}, beyond the tar's {tar_size} bytes"
    return None
