"""Views made of other views: several formats side by side (``--format a,b`` / ``all``), and a
fixed map of paths (a view whose files are all known up front: tests, small trees)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence

from slyfs.formats.contract import FOLDER, Change, Folder, Node, View, add_entry
from slyfs.formats.model import Project


class ComposedView:
    """Each view in a top-level folder named after it."""

    def __init__(self, views: Mapping[str, View]) -> None:
        self.views = dict(views)
        self._names = sorted(self.views)

    def _inner(self, folder: str) -> tuple[View, str] | None:
        head, _, rest = folder.partition("/")
        view = self.views.get(head)
        return None if view is None else (view, rest)

    def list(self, folder: str) -> Sequence[str] | None:
        if folder == "":
            return self._names
        inner = self._inner(folder)
        return None if inner is None else inner[0].list(inner[1])

    def lookup(self, folder: str, name: str) -> Node | Folder | None:
        if folder == "":
            return FOLDER if name in self.views else None
        inner = self._inner(folder)
        return None if inner is None else inner[0].lookup(inner[1], name)

    def updated(self, project: Project, change: Change) -> ComposedView:
        return ComposedView({name: view.updated(project, change) for name, view in self.views.items()})

    def stale(self, before: object, change: Change) -> builtins.list[str]:
        assert isinstance(before, ComposedView)
        return [f"{name}/{path}" if path else name for name, view in self.views.items()
                for path in view.stale(before.views[name], change)]

    def walk(self) -> Iterator[str]:
        return iter(sorted(f"{name}/{path}" for name in self._names for path in self.views[name].walk()))


class FixedView:
    """A view over a ``{path: node}`` map ("a/b.txt", no leading slash; folders implied)."""

    def __init__(self, files: Mapping[str, Node]) -> None:
        self.files = dict(files)
        self._dirs: dict[str, dict[str, Node | Folder]] = {"": {}}
        for path, node in self.files.items():
            add_entry(self._dirs, path, node)
        self._sorted: dict[str, list[str]] = {}

    def list(self, folder: str) -> Sequence[str] | None:
        if folder not in self._dirs:
            return None
        names = self._sorted.get(folder)
        if names is None:
            names = self._sorted[folder] = sorted(self._dirs[folder])
        return names

    def lookup(self, folder: str, name: str) -> Node | Folder | None:
        entries = self._dirs.get(folder)
        return None if entries is None else entries.get(name)

    def updated(self, project: Project, change: Change) -> FixedView:
        return self

    def stale(self, before: object, change: Change) -> builtins.list[str]:
        """Every path whose node differs, and every folder whose entries differ."""
        assert isinstance(before, FixedView)
        out = {p for p in before.files.keys() | self.files.keys() if before.files.get(p) != self.files.get(p)}
        out |= {d for d in before._dirs.keys() | self._dirs.keys()
                if before._dirs.get(d, {}).keys() != self._dirs.get(d, {}).keys()}
        return sorted(out)

    def walk(self) -> Iterator[str]:
        return iter(sorted(self.files))
