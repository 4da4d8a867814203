"""What a format view maps each output path to. Views build these; vfs/ serves them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from slyfs.formats.model import ImageRef, Item, Project

Progress = Callable[[int, str], None]  # (items scanned so far, what the scan is doing): a long first scan says so


class UserError(Exception):
    """A failure the user can act on (a bad option, an unusable source, a busy mountpoint): its
    message is the one line they see, with no class name and no traceback."""


class SourceChanged(Exception):
    """A source file opened for a request is another version than the catalog said (an edit in
    place while nothing was mounted shows in no folder's stamp). Nothing is made from it under
    the old key: the request is abandoned, the source updated for ``paths``, and the request
    answered again from the updated view."""

    def __init__(self, paths: Collection[str]) -> None:
        super().__init__(", ".join(paths))
        self.paths = tuple(paths)


@dataclass(frozen=True, slots=True)
class SourceBytes:
    """Bytes served unchanged from the source: ``ref.size`` bytes at ``ref.offset`` of ``ref.path``."""

    ref: ImageRef


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A file whose bytes cannot be served (reading it gives EIO); ``reason`` says why."""

    reason: str


class NotRenderable(ValueError):
    """A generated file its source cannot give (a mask of an image of unknown size, an image
    past a bound): the file reads EIO, the reason is logged, everything else is served."""


@dataclass(frozen=True, slots=True)
class Generated:
    """A file rendered on first need. ``key`` identifies its inputs: equal keys, equal bytes.
    ``stream``, when set, yields the bytes of ``render`` in pieces, so that a large file is
    written out as it is made instead of being joined in memory (see :func:`streamed`)."""

    key: Hashable
    render: Callable[[], bytes] = field(compare=False, hash=False)
    stream: Callable[[], Iterable[bytes]] | None = field(default=None, compare=False, hash=False)

    def chunks(self) -> Iterable[bytes]:
        """The file's bytes in pieces (one piece when it is not streamed)."""
        return self.stream() if self.stream is not None else (self.render(),)


def streamed(key: Hashable, stream: Callable[[], Iterable[bytes]]) -> Generated:
    """A file made in pieces; its ``render`` joins them (what a caller that wants bytes gets)."""
    return Generated(key, lambda: b"".join(stream()), stream)


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

    def is_current(self, ref: ImageRef) -> bool:
        """Whether the file ``ref`` names is still the version indexed, now (a handle opened earlier
        may outlive it: the tree keeps one open per file version)."""
        ...


class ObjectLocation(NamedTuple):
    """Where a placeholder's bytes are in object storage: the object's path for its file system
    (``bucket/key``), and the version indexed (ETag, size)."""

    path: str
    etag: str
    size: int


class RemoteObjects(Protocol):
    """A project in object storage as its byte store needs it (the reader's mirror implements it):
    which local paths stand for objects, and which version of which object each ref was indexed at."""

    fs: Any  # the fsspec file system
    root: str  # the project's path in it
    tree: str  # the local folder the reader reads

    def is_placeholder(self, path: str) -> bool: ...

    def locate(self, ref: ImageRef) -> ObjectLocation:
        """Raises LookupError when ``ref``'s version of the object is no longer the one mirrored."""
        ...

    def key(self, local_path: str) -> str:
        """The URL a message names for a local path."""
        ...


ItemKey = tuple[str, str]  # (dataset, item name): an item's identity across versions of a project


@dataclass(frozen=True)
class Change:
    """What changed between two versions of a project: the new version of each changed item
    (None: removed; a key not there before: added), or ``everything`` when a project-wide input
    changed (meta.json) and every file may hold other bytes."""

    items: Mapping[ItemKey, Item | None] = field(default_factory=dict)
    everything: bool = False


class Folder:
    """What ``View.lookup`` answers for a folder."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FOLDER"


FOLDER = Folder()

FolderTable = dict[str, dict[str, Any]]  # folder path ("" is the root) -> {name: FOLDER or what a view keeps}


def add_folder(folders: FolderTable, path: str) -> None:
    """Make ``path`` a folder of the table, registered in its parent and so on up while new."""
    if path not in folders:
        folders[path] = {}
        if path:
            add_entry(folders, path, FOLDER)


def add_entry(folders: FolderTable, path: str, entry: object) -> None:
    """Put ``entry`` at ``path`` ("a/b.txt"), its parent folders made as needed."""
    parent, _, name = path.rpartition("/")
    add_folder(folders, parent)
    folders[parent][name] = entry


class View(Protocol):
    """One format over one version of a project, answering a folder at a time: nothing is made
    for a file until its path is looked up. Immutable; a change makes a new one (``updated``)."""

    def list(self, folder: str) -> Sequence[str] | None:
        """The sorted names in ``folder`` ("" is the root); None when it is not a folder.
        The caller must not modify the sequence."""
        ...

    def lookup(self, folder: str, name: str) -> Node | Folder | None:
        """The node of ``folder/name``, FOLDER for a subfolder, None when there is no such entry."""
        ...

    def updated(self, project: Project, change: Change) -> View:
        """The view of ``project``, which is this view's project after ``change``."""
        ...

    def stale(self, before: View, change: Change) -> Iterable[str]:
        """Every path (files and folders; "" for the root) whose bytes or listing may differ
        between ``before`` and this view, which ``before.updated(..., change)`` made."""
        ...

    def walk(self) -> Iterable[str]:
        """Every file path, sorted."""
        ...


class WatchedSource(Protocol):
    """A source a live mount follows. The reader knows its layout; vfs/live.py only watches the
    folders it names, stats the files it names, and hands back the paths that changed."""

    root: str  # the source's top folder: a change "somewhere" is reported as this path
    # set by the live machinery: told of each source file a read found another version than the
    # catalog said (it is then updated, as for an event); None: no one follows the source
    on_input_changed: Callable[[str], None] | None

    def scan(self, progress: Progress | None = None) -> Project:
        """The project as it is now (re-reading only what changed since the last scan)."""
        ...

    def watched_folders(self) -> list[str]:
        """Every existing folder whose entries matter for the last scan's project."""
        ...

    def poll_files(self, folder: str) -> list[str]:
        """The files of a watched folder whose stamps a poll compares where no change events come:
        the project-wide inputs whose edits a folder's own stamp does not show."""
        ...

    def update(self, paths: Collection[str]) -> tuple[Project, Change]:
        """The project after these paths changed (an event or a poll said so), and what changed
        in it: the items whose inputs changed, or everything."""
        ...

    def events_lost(self) -> None:
        """Changes may have gone unreported: the next scan must check every file again."""
        ...

    def save(self, final: bool = False) -> None:
        """Keep what the scans learnt for the next mount (called once the mount is ready, and
        after each rebuild); ``final``: all of it, however costly (the mount ends, or a check of
        everything ended), where other saves may leave large parts for later."""
        ...

    def verify(self, changed: Callable[[list[str]], None], pause: Callable[[], None]) -> tuple[int, int]:
        """Check every file stamp the scan took from the catalog without a stat against the file,
        telling ``changed`` the paths found another version (or added, or gone), and calling
        ``pause`` between chunks of work; (files checked, files changed)."""
        ...
