"""What a live mount of a Supervisely project watches: the reader's knowledge of its own layout.

vfs/live.py follows any ``WatchedSource`` (formats/contract.py); this is the one for a local
Supervisely project, read through its persistent index (index.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection

from slyfs.formats.contract import Change, ItemKey, Progress
from slyfs.formats.model import Item, Project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.project import ProblemLog, read_project

DATASET_FOLDERS = ("", "ann", "img", "img_info", "meta", "datasets")  # a dataset's own folder and its subfolders
ITEM_JSON_FOLDERS = ("ann", "img_info", "meta")  # folders of per-item JSON files, whose stamps the index keeps
PROJECT_FILE_SUFFIXES = (".tar", ".pkl")  # tars and offsets files: inputs shared by many items
META_FILE = "meta.json"


class SuperviselySource:
    """A local Supervisely project as a ``WatchedSource``: scanned through ``index``."""

    def __init__(self, root: str, index: SourceIndex, follow_external_links: bool = False) -> None:
        self.root = root
        self.index = index
        self.follow_external_links = follow_external_links
        self.problems = ProblemLog()  # shared by rescans: each problem is logged once per mount
        self.project: Project | None = None

    def scan(self, progress: Progress | None = None) -> Project:
        self.project = read_project(self.root, report=self.problems, cache=self.index,
                                    follow_external_links=self.follow_external_links, progress=progress)
        return self.project

    def watched_folders(self) -> list[str]:
        """Root, blob/, and each scanned dataset's own folder and subfolders."""
        folders = [self.root, os.path.join(self.root, "blob")]
        for ds in self.project.datasets if self.project else ():
            d = os.path.join(self.root, "/datasets/".join(ds.name.split("/")))
            folders += [os.path.join(d, sub) for sub in DATASET_FOLDERS]
        return [d for d in folders if os.path.isdir(d)]

    def poll_files(self, folder: str) -> list[str]:
        """meta.json, tars and offsets files: rewritten in place, they leave the folder's stamp as it was."""
        names: list[str] = []
        with contextlib.suppress(OSError):  # gone or unreadable since: the folder's own stamp says it changed
            names = os.listdir(folder)
        return [os.path.join(folder, n) for n in names if n.endswith(PROJECT_FILE_SUFFIXES) or n == META_FILE]

    def update(self, paths: Collection[str]) -> tuple[Project, Change]:
        """Per-item JSON files take their new stamps in the index (an edit in place changes no
        folder); meta.json, offsets files, tars and images the rescan checks by itself. The change
        is every item that differs between the two scans."""
        for p in set(paths):
            if p.endswith(".json") and os.path.basename(os.path.dirname(p)) in ITEM_JSON_FOLDERS:
                self.index.refresh(p)
        before = self.project
        after = self.scan()
        if before is None or before.meta_fingerprint != after.meta_fingerprint:
            return after, Change(everything=True)
        return after, Change(changed_items(before, after))

    def events_lost(self) -> None:
        self.index.forget_json_files()

    def save(self) -> None:
        self.index.save()


def changed_items(before: Project, after: Project) -> dict[ItemKey, Item | None]:
    """The items added, removed or changed (any input's stamp) between two scans."""
    old = {(i.dataset, i.name): i for i in before.items()}
    out: dict[ItemKey, Item | None] = {}
    for item in after.items():
        key = (item.dataset, item.name)
        if old.pop(key, None) != item:
            out[key] = item
    out.update(dict.fromkeys(old))
    return out
