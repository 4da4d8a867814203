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
from typing import Any

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
from slyfs.vfs.sources import DEFAULT_POLL_SECONDS, Poller, ProjectSource, open_project_source
from slyfs.vfs.stores import ObjectStore
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
class Remote:
    """How a source in object storage is opened again where it is served (a daemon after its fork,
    a forked worker): its mirror as the opening left it, the connections made anew."""

    url: str
    storage_options: Mapping[str, Any]
    cache_root: Path
    cache_images: int | None = None

    def open(self, sync: bool) -> ProjectSource:
        return open_project_source(self.url, self.storage_options, self.cache_root, sync=sync,
                                   cache_images=self.cache_images)


@dataclass(frozen=True)
class Opening:
    """A source checked and not yet scanned: ``serve`` scans it and builds the tree."""

    root: str  # where the project is, resolved (for a URL: its mirror)
    formats: list[str]
    options: ViewOptions
    follow_external_links: bool = False
    name: str = ""  # what the user named: the folder or the URL
    remote: Remote | None = None

    def serve(self, caches: CacheSettings, progress: Progress | None = None) -> Served:
        project = self.remote.open(sync=False) if self.remote else ProjectSource(self.name, self.root)
        index = SourceIndex(index_path(caches.folder, self.root) if caches.folder and caches.index else None)
        try:
            source = SuperviselySource(self.root, index, self.follow_external_links)
            view = ViewSource(source, self.formats, self.options)
            disk = (disk_renders(caches.folder / "render", caches.disk_bytes, caches.disk_threshold)
                    if caches.folder else None)
            with no_gc():
                tree = VirtualTree(view.build(progress), cache_bytes=caches.memory_bytes, source_root=self.root,
                                   disk=disk, store=project.store)
        except BaseException:  # a scan that fails (the source vanished meanwhile) leaves no index open
            index.close()
            raise
        return Served(tree, view, source, index, project)


def open_source(source: str, formats: list[str], options: ViewOptions, follow_external_links: bool = False,
                storage_options: Mapping[str, Any] | None = None, cache_root: Path | None = None,
                cache_images: int | None = None) -> Opening:
    """The source as the user wrote it (a project folder, or a URL such as ``s3://bucket/prefix``,
    whose project is listed and its small objects mirrored under ``cache_root`` now: see
    vfs/sources.py) checked for what refuses it at once: a missing folder, an unreachable bucket or
    an unusable meta.json (SourceError), a class meta.json lacks (OptionError)."""
    cache_root = cache_root or default_cache_dir()
    opened = open_project_source(source, storage_options, cache_root, sync=True, cache_images=cache_images)
    root = opened.root
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory")
    meta, _, _ = read_meta(root, ProblemLog())
    kept_classes(meta, options.classes)
    remote = (Remote(source, dict(storage_options or {}), cache_root, cache_images)
              if opened.remote is not None else None)
    return Opening(root, formats, options, follow_external_links, source, remote)


class Served:
    """A source's view served by a tree, and the threads that keep it in step with the source."""

    def __init__(self, tree: VirtualTree, view: ViewSource, source: SuperviselySource, index: SourceIndex,
                 project: ProjectSource) -> None:
        self.tree = tree
        self.view = view
        self.source = source
        self.index = index
        self.project = project
        self._watcher: Watcher | None = None
        self._check: BackgroundCheck | None = None
        self._poller: Poller | None = None

    def start(self, watch: bool, poll: float = DEFAULT_POLL_SECONDS) -> None:
        """Follow the source (``watch``: the watcher, the background check of what the scan took
        from the index unchecked, and for a bucket the poller that lists it every ``poll`` seconds
        into the mirror the watcher follows), or make the tree a snapshot (``take_snapshot``: that
        check done now, no update after it), which must happen before anything is served."""
        if not watch:
            take_snapshot(self.view, self.tree)
            return
        updater = Updater(self.view, self.tree)
        self._watcher = Watcher(self.view, self.tree, updater=updater)
        self._watcher.start()
        if self.project.remote is not None:
            self._poller = Poller(self.project.remote, poll)
            if isinstance(self.project.store, ObjectStore):
                self.project.store.on_changed = self._poller.wake  # an object found replaced: list at once
            self._poller.start()
        self._check = BackgroundCheck(updater)
        self._check.start()

    def finish(self) -> None:
        """Save all the index learnt, for the next opening (what a mount does once unmounted)."""
        self.source.save(final=True)

    def close(self) -> None:
        """Stop the threads, save the index, let go of the index file and of every open handle."""
        if self._poller is not None:
            self._poller.stop()
        if self._watcher is not None:
            self._watcher.stop()
        if self._check is not None:
            self._check.stop()
        try:
            self.finish()
        finally:
            self.index.close()
            self.tree.close()
