"""What a format view maps each output path to. Views build these; vfs/ serves them."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from slyfs.formats.model import ImageRef, Item


class UserError(Exception):
    """A failure the user can act on (a bad option, an unusable source, a busy mountpoint): its
    message is the one line they see, with no class name and no traceback."""


@dataclass(frozen=True, slots=True)
class SourceBytes:
    """Bytes served unchanged from the source: ``ref.size`` bytes at ``ref.offset`` of ``ref.path``."""

    ref: ImageRef


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A file whose bytes cannot be served (reading it gives EIO); ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Generated:
    """A file rendered on first need. ``key`` identifies its inputs: equal keys, equal bytes."""

    key: Hashable
    render: Callable[[], bytes] = field(compare=False, hash=False)


def constant(data: bytes) -> Callable[[], bytes]:
    """The render of a file whose bytes are known when the view is built (a list, a label map)."""
    return lambda: data


Node = SourceBytes | Unavailable | Generated
Tree = Mapping[str, Node]  # "a/b/c.txt" (no leading slash) -> node; directories are implied


def image_node(item: Item) -> SourceBytes | Unavailable:
    """An item's image as every view serves it: the source bytes, or EIO when it has none readable."""
    if item.image is None:
        return Unavailable(f"{item.dataset}/{item.name}: no readable image bytes")
    return SourceBytes(item.image)


class ByteStore(Protocol):
    """Where the bytes of ``SourceBytes`` come from: local files now (``vfs/stores.py``), object
    storage next. A handle stands for the one version of the file that was indexed: reading never
    returns another version's bytes. Every failure is ``formats.source_bytes.SourceUnreadable``."""

    def open(self, ref: ImageRef) -> object:
        """A handle on the file ``ref`` names, refused if it is no longer the version indexed."""
        ...

    def read(self, handle: object, ref: ImageRef, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` within what ``ref`` describes."""
        ...

    def close(self, handle: object) -> None: ...

    def read_all(self, ref: ImageRef) -> bytes:
        """All the bytes ``ref`` describes (open, read, close)."""
        ...

