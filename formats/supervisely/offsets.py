"""Blob offsets files (``<tar stem>_offsets.pkl``), read without running their code.

An offsets file is several pickles concatenated, each a list of the SDK's
``BlobImageInfo(name, offset_start, offset_end)``. A pickle can call anything it names,
so the unpickler here admits exactly one global, that class name, and maps it to
:class:`BlobRecord`; every other global is refused before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass

ALLOWED_GLOBAL = ("supervisely.api.image_api", "BlobImageInfo")
MAX_OFFSETS_FILE = 1 << 30  # 1 GiB of pickle is ~10^7 entries; more is not an offsets file
MAX_NAME_BYTES = 4096


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


def _entry(rec: object, index: int) -> BlobEntry:
    if not isinstance(rec, BlobRecord):
        raise OffsetsError(f"entry #{index} is {type(rec).__name__}, not BlobImageInfo")
    name = getattr(rec, "name", None)
    start, end = getattr(rec, "offset_start", None), getattr(rec, "offset_end", None)
    if not isinstance(name, str) or not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise OffsetsError(f"entry #{index} has no usable name")
    for v in (start, end):
        if isinstance(v, bool) or not isinstance(v, int):
            raise OffsetsError(f"entry #{index} ({name!r}) has a non-integer offset")
    return BlobEntry(name, start, end)


def read_offsets(path: str) -> list[BlobEntry]:
    """All entries of an offsets file, in file order. Raises OffsetsError, naming the file,
    when anything in it is not a list of BlobImageInfo records."""
    try:
        size = os.path.getsize(path)
        if size > MAX_OFFSETS_FILE:
            raise OffsetsError(f"{size} bytes, larger than any offsets file should be", path)
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise OffsetsError(f"cannot read: {e.strerror}", path) from None
    stream = io.BytesIO(data)
    entries: list[BlobEntry] = []
    try:
        while stream.tell() < len(data):
            chunk = _RestrictedUnpickler(stream).load()
            if not isinstance(chunk, list):
                raise OffsetsError(f"a pickle holds {type(chunk).__name__}, not a list")
            entries.extend(_entry(rec, len(entries) + i) for i, rec in enumerate(chunk))
    except OffsetsError as e:
        raise OffsetsError(e.reason, path) from None
    except RecursionError:
        raise OffsetsError("nesting too deep", path) from None
    except Exception as e:  # corrupt pickle: UnpicklingError, EOFError, ValueError, ...
        raise OffsetsError(f"not a valid offsets pickle ({type(e).__name__}: {e})", path) from None
    return entries


def check_entry(entry: BlobEntry, tar_size: int) -> str | None:
    """Why an entry cannot be served from a tar of ``tar_size`` bytes, or None if it can."""
    if not 0 <= entry.start < entry.end:
        return f"offsets {entry.start}..{entry.end} are not an increasing range"
    if entry.end > tar_size:
        return f"ends at byte {entry.end}, beyond the tar's {tar_size} bytes"
    return None
