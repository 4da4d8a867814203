"""What a live mount of a Supervisely project watches, and what a changed path can have changed:
the reader's knowledge of its own layout.

vfs/live.py follows any ``WatchedSource`` (formats/contract.py); this is the one for a local
Supervisely project, read through its persistent index (index.py). ``update`` takes each changed
path to the least that can have changed, so that an edit costs what it costs in a small project:

- a file of a known item that is still a plain file (an ``ann/``, ``img_info/`` or ``meta/`` JSON
  file, or an ``img/`` image, edited in place or replaced): that file alone is stat'ed, and the
  items using it take its new stamp;
- a file added to or removed from those folders, an offsets file, a dataset's folder or one of its
  subfolders: that dataset is scanned again (and the dataset folders listed again, for a dataset
  added or removed);
- a tar: the datasets that have an offsets file for it are scanned again;
- ``meta.json`` (reported, or found another version by the one stat each update makes of it), the
  root or ``blob/`` folder itself, a path the layout does not place, or events lost: the whole
  project is scanned again and compared item by item.

``verify`` is the background check of a remount: the JSON folders whose listing and stamps came
from the index are listed again and every file stat'ed, and what differs goes through ``update``.

Paths the scan never reads (a file in ``img/`` that is not an image, one in ``ann/`` that is not
JSON, anything else in a dataset's folder) change nothing. Problems are reported by the same scan
code a full rescan runs, into the same log, so a change is reported as a rescan reports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import stat
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from slyfs.formats.contract import Change, ItemKey, Progress
from slyfs.formats.model import Dataset, ImageRef, Item, Project, Stamp, file_stamp
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.project import (
    OFFSETS_SUFFIX,
    LinkGuard,
    ProblemLog,
    dataset_dir,
    is_image_name,
    read_project,
    rescan_datasets,
    scan_json_files,
)

ITEM_JSON_FOLDERS = ("ann", "img_info", "meta")  # folders of per-item JSON files, whose stamps the index keeps
ITEM_FOLDERS = ("img", *ITEM_JSON_FOLDERS)
DATASET_FOLDERS = ("", *ITEM_FOLDERS, "datasets")  # a dataset's own folder and its subfolders
PROJECT_FILE_SUFFIXES = (".tar", ".pkl")  # tars and offsets files: inputs shared by many items
META_FILE = "meta.json"
VERIFY_CHUNK = 2048  # files the background check stats between two pauses


@dataclasses.dataclass
class _Route:
    """What one batch of changed paths calls for, short of a whole rescan."""

    datasets: set[str] = dataclasses.field(default_factory=set)  # to scan again
    relist: bool = False  # the dataset folders may have changed: list them again
    items: dict[ItemKey, Item] = dataclasses.field(default_factory=dict)  # items with a file re-stamped


class SuperviselySource:
    """A local Supervisely project as a ``WatchedSource``: scanned through ``index``."""

    def __init__(self, root: str, index: SourceIndex, follow_external_links: bool = False) -> None:
        self.root = root
        self.index = index
        self.follow_external_links = follow_external_links
        self.problems = ProblemLog()  # shared by rescans: each problem is logged once per mount
        self.project: Project | None = None
        self.on_input_changed: Callable[[str], None] | None = None
        self._events_lost = False

    def scan(self, progress: Progress | None = None) -> Project:
        self.project = read_project(self.root, report=self.problems, cache=self.index,
                                    follow_external_links=self.follow_external_links, progress=progress,
                                    changed=self._input_changed)
        return self.project

    def _input_changed(self, path: str) -> bool:
        """An annotation file was opened in another version than the item's: whether someone
        (the live machinery) was told and will update the source for it."""
        tell = self.on_input_changed
        if tell is None:
            return False
        tell(path)
        return True

    def watched_folders(self) -> list[str]:
        """Root, blob/, and each scanned dataset's own folder and subfolders."""
        folders = [self.root, os.path.join(self.root, "blob")]
        for ds in self.project.datasets if self.project else ():
            d = dataset_dir(self.root, ds.name)
            folders += [os.path.join(d, sub) for sub in DATASET_FOLDERS]
        return [d for d in folders if os.path.isdir(d)]

    def poll_files(self, folder: str) -> list[str]:
        """meta.json, tars and offsets files: rewritten in place, they leave the folder's stamp as it was."""
        names: list[str] = []
        with contextlib.suppress(OSError):  # gone or unreadable since: the folder's own stamp says it changed
            names = os.listdir(folder)
        return [os.path.join(folder, n) for n in names if n.endswith(PROJECT_FILE_SUFFIXES) or n == META_FILE]

    def update(self, paths: Collection[str]) -> tuple[Project, Change]:
        """The project after these paths changed, and the items that changed (see the module's
        docstring for what each kind of path costs)."""
        changed = {os.path.abspath(p) for p in paths}
        json_stamps = {p: self._restamp_json(p) for p in changed
                       if p.endswith(".json") and os.path.basename(os.path.dirname(p)) in ITEM_JSON_FOLDERS}
        before = self.project
        route = (None if before is None or self._events_lost or self._meta_changed(before)
                 else self._route(before, changed, json_stamps))
        if before is None or route is None:
            return self._rescan_all(before)
        after = before
        if route.datasets or route.relist:
            after = rescan_datasets(before, route.datasets, self.problems, self.index, self.follow_external_links)
        items = changed_datasets(before.datasets, after.datasets)
        present = {ds.name for ds in after.datasets} - route.datasets  # kept as they were: their items can be patched
        restamped = [item for key, item in route.items.items() if key[0] in present]
        if restamped:
            after = after.with_items(restamped)
            olds = {ds.name: ds for ds in before.datasets}
            items.update({(i.dataset, i.name): i for i in restamped if _old(olds[i.dataset], i.name) != i})
        self.project = after
        return after, Change(items)

    def _rescan_all(self, before: Project | None) -> tuple[Project, Change]:
        after = self.scan()
        self._events_lost = False  # only once a scan has checked every file again
        if before is None or before.meta_fingerprint != after.meta_fingerprint:
            return after, Change(everything=True)
        return after, Change(changed_items(before.items(), after.items()))

    @staticmethod
    def _meta_changed(project: Project) -> bool:
        """Whether meta.json is another version now: one stat at each update, since a meta.json
        that links elsewhere changes with no event in the source."""
        try:
            return file_stamp(os.stat(os.path.join(project.root, META_FILE))) != project.meta_fingerprint
        except OSError:
            return True

    def _restamp_json(self, path: str) -> Stamp | None:
        """The new stamp of a per-item JSON file its folder's listing holds and that is still a
        plain file (taken in the index: the folder's stamp need not show an edit in place); None
        when it is new, gone or something else now, and its folder must be listed again."""
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            stamp = file_stamp(st)
            if self.index.restamp(path, stamp):
                return stamp
        self.index.relist(path)
        return None

    def _route(self, project: Project, paths: Iterable[str], json_stamps: Mapping[str, Stamp | None]
               ) -> _Route | None:
        """Where each path lies in the layout, and so what it calls for; None: a whole rescan."""
        root = project.root
        datasets = {ds.name: ds for ds in project.datasets}
        route = _Route()
        for path in paths:
            if not path.startswith(root + os.sep):
                return None  # the root itself (or a path outside it): anything may have changed
            parts = path[len(root) + 1:].split(os.sep)
            if parts == [META_FILE]:
                return None
            if parts[0] == "blob":
                if len(parts) != 2:
                    return None
                if parts[1].endswith(".tar"):
                    offsets = parts[1][:-4] + OFFSETS_SUFFIX
                    route.datasets.update(name for name in datasets
                                          if os.path.lexists(os.path.join(dataset_dir(root, name), offsets)))
                continue
            name, rest = _dataset_of(parts, datasets)
            if name is None:
                if len(parts) > 1:
                    return None
                route.relist = True  # an entry of the root: perhaps a dataset added or removed
            elif not rest or (len(rest) == 1 and (rest[0].endswith(OFFSETS_SUFFIX) or rest[0] in ITEM_FOLDERS)):
                route.datasets.add(name)
            elif rest[0] == "datasets" and len(rest) <= 2:
                route.relist = True  # a nested dataset added or removed
            elif len(rest) == 1:
                continue  # a file of the dataset's folder that the scan never reads
            elif len(rest) == 2 and rest[0] == "img":
                if is_image_name(rest[1]) and not _restamp_image(datasets[name], path, route.items):
                    route.datasets.add(name)
            elif len(rest) == 2 and rest[0] in ITEM_JSON_FOLDERS:
                if rest[1].endswith(".json"):
                    stamp = json_stamps[path]
                    if stamp is None:
                        route.datasets.add(name)
                    else:
                        _restamp_sidecar(datasets[name], path, stamp, route.items)
            else:
                return None
        return route

    def events_lost(self) -> None:
        self.index.forget_json_files()
        self._events_lost = True

    def save(self, final: bool = False) -> None:
        self.index.save(final)

    def verify(self, changed: Callable[[list[str]], None], pause: Callable[[], None]) -> tuple[int, int]:
        """The background check of what a remount took from the catalog unchecked: each such folder
        is listed again and its JSON files stat'ed ``VERIFY_CHUNK`` at a time (``pause`` between,
        nothing held but a chunk), and every file added, gone or of another version is told to
        ``changed`` (which updates the source for it, as for an event). A folder whose listing this
        confirms, its stamp the same before and after, is stored at the next save.
        (files checked, files changed)."""
        links = LinkGuard(self.root, self.problems, self.follow_external_links)
        checked = found = 0
        for folder in self.index.unverified():
            try:
                key = file_stamp(os.stat(folder))
                started = time.time_ns()
                differ, held, seen = self._verify_folder(folder, links, pause)
            except OSError:
                changed([folder])  # gone or unreadable now: its dataset is scanned again
                continue
            if held < len(self.index.listed_names(folder)):  # files gone: which, from the names alone
                now = {n for n in os.listdir(folder) if n.endswith(".json")}
                differ += sorted(self.index.listed_names(folder) - now)
            checked += seen
            if differ:
                found += len(differ)
                changed([os.path.join(folder, name) for name in differ])
            with contextlib.suppress(OSError):
                if not differ and file_stamp(os.stat(folder)) == key:
                    self.index.confirm(folder, key, started)
        return checked, found

    def _verify_folder(self, folder: str, links: LinkGuard, pause: Callable[[], None]) -> tuple[list[str], int, int]:
        """(names added or of another version, names the index holds, files stat'ed) of ``folder``."""
        differ: list[str] = []
        held = seen = 0
        with os.scandir(folder) as it:
            while chunk := list(itertools.islice(it, VERIFY_CHUNK)):
                now = scan_json_files(folder, {}, self.problems, links, chunk)
                names, n = self.index.compare(folder, now)
                differ += names
                held += n
                seen += len(now)
                pause()
        return differ, held, seen


def _dataset_of(parts: list[str], datasets: Mapping[str, Dataset]) -> tuple[str | None, list[str]]:
    """The deepest known dataset whose folder holds the path of ``parts`` (relative to the root),
    and the rest of the path within that folder."""
    if parts[0] not in datasets:
        return None, parts
    name, i = parts[0], 1
    while i + 1 < len(parts) and parts[i] == "datasets" and f"{name}/{parts[i + 1]}" in datasets:
        name, i = f"{name}/{parts[i + 1]}", i + 2
    return name, parts[i:]


def _current(dataset: Dataset, name: str, patched: Mapping[ItemKey, Item]) -> Item | None:
    """The item called ``name``, as earlier paths of this batch left it."""
    key = (dataset.name, name)
    return patched.get(key) or _old(dataset, name)


def _old(dataset: Dataset, name: str) -> Item | None:
    i = dataset.find(name)
    return None if i is None else dataset.items[i]


def _restamp_image(dataset: Dataset, path: str, patched: dict[ItemKey, Item]) -> bool:
    """Re-stamp the plain image ``path`` of a known item that is still a plain file; False when
    there is no such item or file (the dataset must be scanned again)."""
    item = _current(dataset, os.path.basename(path), patched)
    if item is None or item.image is None or item.image.path != path:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    patched[(item.dataset, item.name)] = dataclasses.replace(
        item, image=ImageRef(item.image.path, 0, st.st_size, file_stamp(st)))
    return True


def _restamp_sidecar(dataset: Dataset, path: str, stamp: Stamp, patched: dict[ItemKey, Item]) -> None:
    """Give the items that use the JSON file ``path`` (as ``<item>.json`` or ``<stem>.json``) its
    new stamp. Its folder holds the same names as before, so no other item's files changed."""
    file_stem = os.path.basename(path)[:-5]
    named = _current(dataset, file_stem, patched)
    candidates = [named] if named is not None else []
    candidates += [patched.get((dataset.name, i.name), i) for i in dataset.named_from(file_stem + ".")
                   if i.stem == file_stem]
    for item in candidates:
        if item.ann_path != path and all(ref.path != path for _, ref in item.sidecars):
            continue
        ref = ImageRef(path, 0, stamp.size, stamp)
        patched[(item.dataset, item.name)] = dataclasses.replace(
            item, fingerprint=stamp if item.ann_path == path else item.fingerprint,
            sidecars=tuple((folder, ref if old.path == path else old) for folder, old in item.sidecars))


def changed_datasets(before: Iterable[Dataset], after: Iterable[Dataset]) -> dict[ItemKey, Item | None]:
    """The items added, removed or changed in the datasets that are not the very same objects in both."""
    olds = {ds.name: ds for ds in before}
    news = {ds.name: ds for ds in after}
    out: dict[ItemKey, Item | None] = {}
    for name in olds.keys() | news.keys():
        old, new = olds.get(name), news.get(name)
        if old is not new:
            out.update(changed_items(old.items if old else (), new.items if new else ()))
    return out


def changed_items(before: Iterable[Item], after: Iterable[Item]) -> dict[ItemKey, Item | None]:
    """The items added, removed or changed (any input's stamp) between two scans."""
    old = {(i.dataset, i.name): i for i in before}
    out: dict[ItemKey, Item | None] = {}
    for item in after:
        key = (item.dataset, item.name)
        if old.pop(key, None) != item:
            out[key] = item
    out.update(dict.fromkeys(old))
    return out
