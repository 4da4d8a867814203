"""Opening a source: from the source as the user wrote it and the view's options to a served
``VirtualTree``, and what keeps it live. The one composition of the reader and the tree, shared by
``slyfs mount``, ``slyfs export`` and the Python API (vfs/api.py).

Opening takes two steps because a mount forks between them: ``open_source`` checks, at once and in
the user's process, what can be refused in one line (the source, meta.json, the classes asked);
``Opening.serve`` scans and builds in the process that serves, where the index's sqlite connection
and the watcher's threads must be made (neither survives a fork).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from slyfs.formats.common.splits import parse_split
from slyfs.formats.contract import Progress
from slyfs.formats.readers.supervisely import ProblemLog, SourceError
from slyfs.formats.readers.supervisely.index import SourceIndex, index_path
from slyfs.formats.readers.supervisely.project import read_meta
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import check_params
from slyfs.formats.view import ViewOptions, kept_classes
from slyfs.vfs.cache import DEFAULT_DISK_BYTES, DISK_MIN_BYTES, disk_renders
from slyfs.vfs.live import BackgroundCheck, Updater, ViewSource, Watcher, no_gc, take_snapshot
from slyfs.vfs.tree import DEFAULT_CACHE_BYTES, VirtualTree


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/slyfs``, else ``~/.cache/slyfs``: the index, the disk cache and the logs."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "slyfs"


def checked_view_options(formats: list[str], split: str = "dataset", classes: Iterable[str] | None = None,
                         include_empty: bool = True, params: Mapping[str, str] | None = None) -> ViewOptions:
    """The view options, each checked before anything is scanned (a bad split, an unknown ``--opt``
    key or value: OptionError); the classes are checked against meta.json by ``open_source``."""
    parse_split(split)
    params = dict(params or {})
    check_params(formats, params)
    kept = tuple(c.strip() for c in classes if c.strip()) if classes is not None else None
    return ViewOptions(split=split, classes=kept, include_empty=include_empty, params=params)


@dataclass(frozen=True)
class CacheSettings:
    """What a served view keeps, and where. ``folder`` None: no persistent index and no disk cache
    (``slyfs export``); ``index`` False: a disk cache but no index (``--no-index``)."""

    folder: Path | None = None
    index: bool = True
    memory_bytes: int = DEFAULT_CACHE_BYTES
    disk_bytes: int = DEFAULT_DISK_BYTES
    disk_threshold: int = DISK_MIN_BYTES


@dataclass(frozen=True)
class Opening:
    """A source checked and not yet scanned: ``serve`` scans it and builds the tree."""

    root: str  # where the project is, resolved
    formats: list[str]
    options: ViewOptions
    follow_external_links: bool = False

    def serve(self, caches: CacheSettings, progress: Progress | None = None) -> Served:
        index = SourceIndex(index_path(caches.folder, self.root) if caches.folder and caches.index else None)
        try:
            source = SuperviselySource(self.root, index, self.follow_external_links)
            view = ViewSource(source, self.formats, self.options)
            disk = (disk_renders(caches.folder / "render", caches.disk_bytes, caches.disk_threshold)
                    if caches.folder else None)
            with no_gc():
                tree = VirtualTree(view.build(progress), cache_bytes=caches.memory_bytes, source_root=self.root,
                                   disk=disk)
        except BaseException:  # a scan that fails (the source vanished meanwhile) leaves no index open
            index.close()
            raise
        return Served(tree, view, source, index)


def open_source(source: str, formats: list[str], options: ViewOptions, follow_external_links: bool = False) -> Opening:
    """The source as the user wrote it (a project folder) checked for what refuses it at once: a
    missing folder, an unusable meta.json (SourceError), a class meta.json lacks (OptionError)."""
    root = os.path.abspath(source)
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory")
    meta, _, _ = read_meta(root, ProblemLog())
    kept_classes(meta, options.classes)
    return Opening(root, formats, options, follow_external_links)


class Served:
    """A source's view served by a tree, and the threads that keep it in step with the source."""

    def __init__(self, tree: VirtualTree, view: ViewSource, source: SuperviselySource, index: SourceIndex) -> None:
        self.tree = tree
        self.view = view
        self.source = source
        self.index = index
        self._watcher: Watcher | None = None
        self._check: BackgroundCheck | None = None

    def start(self, watch: bool) -> None:
        """Follow the source (``watch``: the watcher, and the background check of what the scan took
        from the index unchecked), or make the tree a snapshot (``take_snapshot``: that check done
        now, no update after it), which must happen before anything is served."""
        if not watch:
            take_snapshot(self.view, self.tree)
            return
        updater = Updater(self.view, self.tree)
        self._watcher = Watcher(self.view, self.tree, updater=updater)
        self._watcher.start()
        self._check = BackgroundCheck(updater)
        self._check.start()

    def finish(self) -> None:
        """Save all the index learnt, for the next opening (what a mount does once unmounted)."""
        self.source.save(final=True)

    def close(self) -> None:
        """Stop the threads, save the index, let go of the index file and of every open handle."""
        if self._watcher is not None:
            self._watcher.stop()
        if self._check is not None:
            self._check.stop()
        try:
            self.finish()
        finally:
            self.index.close()
            self.tree.close()
