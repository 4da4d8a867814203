"""A format view declared as a layout, and the lazy view that serves it a folder at a time.

A writer declares what its tree holds (``Layout``): files at fixed paths (``StaticFile``), one file
per split (``SplitFile``), a file of every split (``WholeFile``) and folders of per-item files
(``ItemFile``), the items grouped by split, by dataset or all together, each group named once
(``Layout.names``). ``LayoutView`` answers ``list``/``lookup`` from that declaration: a group's
output names are computed when a folder of it is first listed or looked up, a node only when its
path is looked up, so nothing grows with items x formats at mount. ``updated`` makes the next
version from a ``Change``, carrying over every group the change did not touch, and ``stale`` names
the paths that may hold other bytes, from the changed items and the small folder skeleton, never by
comparing two trees.
"""

from __future__ import annotations

import bisect
import builtins
import hashlib
import threading
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from slyfs.formats.common.splits import item_assigner, item_names, split_order
from slyfs.formats.contract import Change, Folder, ItemKey, Node, add_entry, add_folder
from slyfs.formats.model import Item, Project
from slyfs.formats.view import ViewOptions

GroupBy = Literal["split", "dataset", "all"]


def _same(name: str) -> str:
    return name


@dataclass(frozen=True)
class StaticFile:
    """A file at a fixed path; ``node`` is given the split labels, in split order."""

    path: str
    node: Callable[[Sequence[str]], Node]


@dataclass(frozen=True)
class SplitItems:
    """What a split file is made from: the split's items in order, their output names, and a
    key that changes exactly when an input of the file does."""

    split: str
    label: str
    items: Sequence[Item]
    names: Sequence[str]
    key: Hashable


@dataclass(frozen=True)
class SplitFile:
    """One file per split, at ``path(label)``."""

    path: Callable[[str], str]
    node: Callable[[SplitItems], Node]


@dataclass(frozen=True)
class WholeFile:
    """One file at ``path`` made from every split (CVAT's project ``annotations.xml``); ``node`` is
    given each split's ``SplitItems``, in split order."""

    path: str
    node: Callable[[Sequence[SplitItems]], Node]


@dataclass(frozen=True)
class ItemFile:
    """One file per item of a group, in ``folder(group label)``, named ``name(output name)``
    (distinct names give distinct file names); ``present`` says which items have one (None: all).
    ``many``, when set, gives an item any number of files instead, named ``many(item, output name)``
    (from its annotation, so read when the folder is listed; names distinct across items), and
    ``node`` is then called with the file's name: a format with one file per object (LabelMe's and
    Open Images' masks).
    ``by_split``: in a layout grouped ``"all"``, one folder per split, ``folder(split label)``,
    holding that split's items (names stay unique over the whole group).
    ``positions``, when set with ``present``, gives the positions of the present items of a group's
    items at once: many files sharing one index of the items (a folder per identity) then cost one
    pass over the items, not one per file."""

    folder: Callable[[str], str]
    node: Callable[[Item, str], Node]
    name: Callable[[str], str] = _same
    present: Callable[[Item], bool] | None = None
    many: Callable[[Item, str], Sequence[str]] | None = None
    by_split: bool = False
    positions: Callable[[Sequence[Item]], Sequence[int]] | None = None

    def content_listed(self) -> bool:
        """Whether the folder's listing depends on the items' contents, not only on their names."""
        return self.present is not None or self.many is not None

    def file_names(self, item: Item, name: str) -> Sequence[str]:
        """The item's files here (it must be ``present``), by its output name."""
        return self.many(item, name) if self.many is not None else (self.name(name),)

    def file_node(self, item: Item, name: str, file_name: str) -> Node:
        return self.node(item, file_name if self.many is not None else name)


@dataclass(frozen=True)
class Layout:
    """A format's tree. ``group_by``: items named together per split, per dataset (label: the
    dataset's full name) or all in one group (label ""; split-major order). ``names``: the output
    name of each item of a group. ``split_labels``: split names → the names paths use (None: the
    same). ``default_splits``: the splits of a view with no items at all. ``epoch``: what, besides
    each item's own key, the names and folders depend on (identity views name folders after tag
    values found over the whole project): when it changes, the next version is built afresh."""

    static: tuple[StaticFile, ...] = ()
    whole: tuple[WholeFile, ...] = ()
    per_split: tuple[SplitFile, ...] = ()
    per_item: tuple[ItemFile, ...] = ()
    group_by: GroupBy = "split"
    names: Callable[[Sequence[Item]], list[str]] = item_names
    split_labels: Callable[[Sequence[str]], Mapping[str, str]] | None = None
    default_splits: tuple[str, ...] = ()
    epoch: Hashable = None


LayoutOf = Callable[[Project, ViewOptions], Layout]


def _key(item: Item) -> ItemKey:
    return (item.dataset, item.name)


def _find(items: Sequence[Item], key: ItemKey, lo: int = 0, hi: int | None = None) -> int | None:
    """The position of the item with ``key`` in a run of items sorted by (dataset, name)."""
    hi = len(items) if hi is None else hi
    i = bisect.bisect_left(items, key, lo, hi, key=_key)
    return i if i < hi and _key(items[i]) == key else None


def items_digest(items: Iterable[Item]) -> bytes:
    """A digest of everything a file made of these items can depend on, in their order."""
    h = hashlib.sha256()
    for item in items:
        h.update(repr((item.dataset, item.name, item.fingerprint, item.image, item.sidecars))
                 .encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.digest()


# ---------------------------------------------------------------- membership


class Membership:
    """Which items each split (or dataset) holds, each list sorted by (dataset, name): the one
    pass over every item a view makes, then kept up to date item by item."""

    def __init__(self, groups: dict[str, list[Item]]) -> None:
        self.groups = groups

    @classmethod
    def of(cls, project: Project, assign: Callable[[Item], str | None]) -> Membership:
        groups: dict[str, list[Item]] = {}
        for item in project.items():
            label = assign(item)
            if label is not None:
                groups.setdefault(label, []).append(item)
        for items in groups.values():
            items.sort(key=_key)
        return cls(groups)

    def updated(self, change: Change, assign: Callable[[Item], str | None]
                ) -> tuple[Membership, set[str], set[str]]:
        """The membership after ``change``, the groups whose items were added or removed
        (``reshaped``) and those where an item was only replaced by its new version (``retouched``)."""
        groups = dict(self.groups)
        copied: set[str] = set()
        reshaped: set[str] = set()
        retouched: set[str] = set()

        def writable(label: str) -> list[Item]:
            if label not in copied:
                groups[label] = list(groups.get(label, ()))
                copied.add(label)
            return groups[label]

        for key, new in change.items.items():
            old_label = next((label for label, items in groups.items() if _find(items, key) is not None), None)
            new_label = assign(new) if new is not None else None
            if old_label is not None and old_label == new_label and new is not None:
                items = writable(old_label)
                items[_find(items, key)] = new  # type: ignore[index]  # found just above
                retouched.add(old_label)
                continue
            if old_label is not None:
                items = writable(old_label)
                del items[_find(items, key)]  # type: ignore[arg-type]
                reshaped.add(old_label)
                if not items:
                    del groups[old_label]
            if new_label is not None and new is not None:
                items = writable(new_label)
                items.insert(bisect.bisect_left(items, key, key=_key), new)
                reshaped.add(new_label)
        return Membership(groups), reshaped, retouched - reshaped


# ---------------------------------------------------------------- groups


class Group:
    """The items named together (one folder family) and, computed on first need, their output
    names, each item file's sorted names, and a digest of the items."""

    __slots__ = ("label", "items", "runs", "_naming", "_names", "_files", "_own", "_digest", "_lock")

    def __init__(self, label: str, items: Sequence[Item], runs: Sequence[tuple[str, int, int]],
                 naming: Callable[[Sequence[Item]], list[str]]) -> None:
        self.label = label
        self.items = items
        self.runs = runs  # (split, start, end): sorted runs of ``items``, one per split
        self._naming = naming
        self._names: list[str] | None = None
        self._files: dict[tuple[int, str | None], tuple[list[str], array]] = {}
        # per listing that reads the items (present=, many=): which files each listed item has
        self._own: dict[tuple[int, str | None], dict[int, Sequence[str]]] = {}
        self._digest: bytes | None = None
        self._lock = threading.Lock()

    def retouched(self, items: Sequence[Item], runs: Sequence[tuple[str, int, int]],
                  keep_files: Iterable[int]) -> Group:
        """This group with items replaced by their new versions (same keys, same order): the
        names stay, and the file listings of ``keep_files`` (those that do not depend on the items)."""
        group = Group(self.label, items, runs, self._naming)
        group._names = self._names
        keep = set(keep_files)
        group._files = {k: f for k, f in self._files.items() if k[0] in keep}
        return group

    def names(self) -> list[str]:
        if self._names is None:
            with self._lock:
                if self._names is None:
                    self._names = self._naming(self.items)
        return self._names

    def files(self, index: int, spec: ItemFile, split: str | None = None) -> tuple[list[str], array]:
        """The file names of item file ``index`` (sorted) and the item each names; ``split``:
        only that split's items (a ``by_split`` file)."""
        hit = self._files.get((index, split))
        if hit is None:
            names = self.names()
            present = spec.present
            span = range(len(names)) if split is None else range(*self.run(split))
            at: Sequence[int]
            if present is None:
                at = span
            elif spec.positions is not None:
                at = [i for i in spec.positions(self.items) if i in span]
            else:
                at = [i for i in span if present(self.items[i])]
            if spec.many is not None:
                own = self._own[(index, split)] = {i: spec.many(self.items[i], names[i]) for i in at}
                pairs = sorted((f, i) for i, fs in own.items() for f in fs)
                hit = self._files[(index, split)] = ([f for f, _ in pairs], array("l", [i for _, i in pairs]))
                return hit
            if spec.name is not _same:
                names = list(map(spec.name, names))
            if present is not None:
                self._own[(index, split)] = {i: (names[i],) for i in at}
            # sorted positions with a C-level key: no tuple per entry, and a run already in order costs one pass
            order = sorted(at, key=names.__getitem__)
            hit = self._files[(index, split)] = (list(map(names.__getitem__, order)), array("l", order))
        return hit

    def item_files(self, index: int, spec: ItemFile, i: int, split: str | None) -> Sequence[str]:
        """The files item ``i`` has in item file ``index`` (its folder's split: ``split``): as the
        folder's listing had them once it was made (what was served, even after the item's source
        changed), else as they are now."""
        own = self._own.get((index, split))
        if own is not None:
            return own.get(i, ())
        item = self.items[i]
        if spec.present is not None and not spec.present(item):
            return ()
        return spec.file_names(item, self.names()[i])

    def find(self, index: int, spec: ItemFile, name: str, split: str | None = None) -> int | None:
        """The item whose file ``index`` is called ``name``."""
        sorted_names, at = self.files(index, spec, split)
        i = bisect.bisect_left(sorted_names, name)
        return at[i] if i < len(sorted_names) and sorted_names[i] == name else None

    def position(self, key: ItemKey) -> int | None:
        for _, start, end in self.runs:
            i = _find(self.items, key, start, end)
            if i is not None:
                return i
        return None

    def run(self, split: str) -> tuple[int, int]:
        return next(((s, e) for name, s, e in self.runs if name == split), (0, 0))

    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = items_digest(self.items)
        return self._digest

    def keys_digest(self) -> bytes:
        """What the names depend on: the items' keys, in order."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(repr(_key(item)).encode("utf-8", "surrogatepass"))
        return h.digest()


# ---------------------------------------------------------------- the view


@dataclass(frozen=True)
class _SplitEntry:
    spec: SplitFile = field(compare=False)  # each version's layout makes its own
    split: str
    label: str


@dataclass(frozen=True)
class _WholeEntry:
    spec: WholeFile = field(compare=False)


Entry = Node | _SplitEntry | _WholeEntry  # a fixed path of the skeleton: a node, or a file made on lookup


class LayoutView:
    """A ``View`` (formats/contract.py) of one format over one version of a project."""

    def __init__(self, layout_of: LayoutOf, project: Project, options: ViewOptions,
                 membership: Membership | None = None, carried: Mapping[str, Group] | None = None,
                 retouched: frozenset[str] = frozenset(), layout: Layout | None = None,
                 rebuilt: bool = False) -> None:
        self.layout_of = layout_of
        self.project = project
        self.options = options
        self.layout = layout = layout or layout_of(project, options)
        self.rebuilt = rebuilt  # made afresh after an epoch change: every path may be stale
        self._assign = item_assigner(project, options, by_dataset=layout.group_by == "dataset")
        self.membership = membership or Membership.of(project, self._assign)
        # groups carried over from the previous version unchanged, and those whose items were replaced
        self.retouched = retouched
        self.kept = frozenset(carried or ()) - retouched
        splits = self._ordered(self.membership.groups)
        self.split_names = splits or list(layout.default_splits)
        labels = layout.split_labels(self.split_names) if layout.split_labels else {s: s for s in self.split_names}
        self.labels = [labels[s] for s in self.split_names]
        self.groups = self._groups(carried or {}, splits)
        self._dirs: dict[str, dict[str, Entry | Folder]] = {"": {}}
        self._item_dirs: dict[str, list[tuple[Group, int, str | None]]] = {}
        self._split_nodes: dict[str, Node] = {}
        self._merged: dict[str, builtins.list[str]] = {}  # listings of folders holding several item files
        self._skeleton(labels)

    # -- construction

    def _ordered(self, groups: Mapping[str, list[Item]]) -> list[str]:
        if self.layout.group_by == "dataset":
            order = {ds.name: i for i, ds in enumerate(self.project.datasets)}
            return sorted(groups, key=lambda name: order.get(name, len(order)))
        return sorted(groups, key=split_order)

    def _groups(self, carried: Mapping[str, Group], splits: list[str]) -> dict[str, Group]:
        naming = self.layout.names
        members = self.membership.groups
        if self.layout.group_by == "all":
            group = carried.get("")
            if group is not None:
                return {"": group}
            items: list[Item] = []
            runs = []
            for split in splits:
                runs.append((split, len(items), len(items) + len(members[split])))
                items += members[split]
            return {"": Group("", items, runs, naming)} if items else {}
        out = {}
        for label in splits:
            group = carried.get(label)
            out[label] = group if group is not None else Group(label, members[label],
                                                              [(label, 0, len(members[label]))], naming)
        return out

    def _skeleton(self, labels: Mapping[str, str]) -> None:
        layout = self.layout
        for static in layout.static:
            add_entry(self._dirs, static.path, static.node(self.labels))
        for whole in layout.whole:
            add_entry(self._dirs, whole.path, _WholeEntry(whole))
        for split in self.split_names:
            for split_file in layout.per_split:
                add_entry(self._dirs, split_file.path(labels[split]), _SplitEntry(split_file, split, labels[split]))
        for group in self.groups.values():
            label = labels.get(group.label, group.label) if layout.group_by == "split" else group.label
            for index, spec in enumerate(layout.per_item):
                if spec.present is not None and not (spec.positions(group.items) if spec.positions
                                                     else any(map(spec.present, group.items))):
                    continue
                if spec.by_split and layout.group_by == "all":
                    for split, _, _ in group.runs:
                        folder = spec.folder(labels[split])
                        add_folder(self._dirs, folder)
                        self._item_dirs.setdefault(folder, []).append((group, index, split))
                    continue
                folder = spec.folder(label)
                add_folder(self._dirs, folder)
                self._item_dirs.setdefault(folder, []).append((group, index, None))

    # -- View

    def list(self, folder: str) -> Sequence[str] | None:
        fixed = self._dirs.get(folder)
        if fixed is None:
            return None
        holders = self._item_dirs.get(folder)
        if not holders:
            return sorted(fixed)
        parts: builtins.list[Sequence[str]] = [g.files(i, self.layout.per_item[i], s)[0] for g, i, s in holders]
        if fixed:  # a fixed entry among item files (a subfolder): not kept, the entries are this version's
            return sorted([*fixed, *(n for part in parts for n in part)])
        if len(parts) == 1:
            return parts[0]
        hit = self._merged.get(folder)  # this version's: the groups whose files it merges may not all carry over
        if hit is None:
            hit = self._merged[folder] = sorted(n for part in parts for n in part)
        return hit

    def lookup(self, folder: str, name: str) -> Node | Folder | None:
        fixed = self._dirs.get(folder)
        if fixed is None:
            return None
        entry = fixed.get(name)
        if entry is not None:
            if isinstance(entry, _SplitEntry):
                return self._split_node(folder, name, entry)
            return self._whole_node(entry.spec) if isinstance(entry, _WholeEntry) else entry
        for group, index, split in self._item_dirs.get(folder, ()):
            spec = self.layout.per_item[index]
            i = group.find(index, spec, name, split)
            if i is not None:
                return spec.file_node(group.items[i], group.names()[i], name)
        return None

    def _split_node(self, folder: str, name: str, entry: _SplitEntry) -> Node:
        path = f"{folder}/{name}" if folder else name
        node = self._split_nodes.get(path)
        if node is None:
            node = self._split_nodes[path] = entry.spec.node(self.split_items(entry.split, entry.label))
        return node

    def _whole_node(self, spec: WholeFile) -> Node:
        node = self._split_nodes.get(spec.path)
        if node is None:
            node = self._split_nodes[spec.path] = spec.node(
                [self.split_items(split, label) for split, label in zip(self.split_names, self.labels)])
        return node

    def split_items(self, split: str, label: str) -> SplitItems:
        """A split's items and names as its split files see them."""
        if self.layout.group_by == "all":
            group = self.groups.get("")
            if group is None:
                return SplitItems(split, label, (), (), ("empty",))
            start, end = group.run(split)
            items = group.items[start:end]
            return SplitItems(split, label, items, group.names()[start:end],
                              (items_digest(items), group.keys_digest()))
        group = self.groups.get(split)
        if group is None:
            return SplitItems(split, label, (), (), ("empty",))
        return SplitItems(split, label, group.items, group.names(), group.digest())

    def walk(self) -> Iterator[str]:
        paths: builtins.list[str] = []
        for folder, fixed in self._dirs.items():
            prefix = f"{folder}/" if folder else ""
            paths += [prefix + n for n, e in fixed.items() if not isinstance(e, Folder)]
            for group, index, split in self._item_dirs.get(folder, ()):
                paths += [prefix + n for n in group.files(index, self.layout.per_item[index], split)[0]]
        return iter(sorted(paths))

    # -- change

    def updated(self, project: Project, change: Change) -> LayoutView:
        if change.everything:
            return LayoutView(self.layout_of, project, self.options)
        layout = self.layout_of(project, self.options)
        if layout.epoch != self.layout.epoch:
            return LayoutView(self.layout_of, project, self.options, layout=layout, rebuilt=True)
        assign = item_assigner(project, self.options, by_dataset=self.layout.group_by == "dataset")
        membership, reshaped, retouched = self.membership.updated(change, assign)
        carried: dict[str, Group] = {}
        if self.layout.group_by == "all":
            old = self.groups.get("")
            if old is not None and not reshaped:
                carried[""] = (old.retouched([i for s, _, _ in old.runs for i in membership.groups[s]], old.runs,
                                             self._listing_only()) if retouched else old)
            retouched = {""} if retouched and carried else set()
        else:
            for label, group in self.groups.items():
                if label in retouched:
                    carried[label] = group.retouched(membership.groups[label], group.runs, self._listing_only())
                elif label not in reshaped:
                    carried[label] = group
        return LayoutView(self.layout_of, project, self.options, membership, carried, frozenset(retouched), layout)

    def _listing_only(self) -> builtins.list[int]:
        """The item files whose listing depends on the items' names alone."""
        return [i for i, spec in enumerate(self.layout.per_item) if not spec.content_listed()]

    def stale(self, before: object, change: Change) -> builtins.list[str]:
        assert isinstance(before, LayoutView)
        if change.everything or self.rebuilt:
            return sorted({*before.walk(), *self.walk(), *before._dirs, *self._dirs})
        out: set[str] = set()
        for key in change.items:  # the changed items' own files whose node differs
            was, now = before._item_files(key), self._item_files(key)
            out.update(p for p in was.keys() | now.keys() if was.get(p) != now.get(p))
        for label, group in self.groups.items():  # names may shift in groups that gained or lost items
            if label not in self.kept and label not in self.retouched:
                out.update(_renamed(before, before.groups.get(label), self, group))
        for path in {*before._dirs, *self._dirs}:  # folders whose fixed entries changed
            a, b = before._dirs.get(path), self._dirs.get(path)
            if a is None or b is None:
                out.add(path)
                out.update(f"{path}/{n}" if path else n for n in (a or b or {}))
                continue
            for name in a.keys() | b.keys():
                ea, eb = a.get(name), b.get(name)
                if ea != eb or (isinstance(eb, _SplitEntry) and self._split_touched(eb.split, change)) \
                        or (isinstance(eb, _WholeEntry) and bool(change.items)):  # any item may be in it
                    out.add(f"{path}/{name}" if path else name)
            if a.keys() != b.keys():
                out.add(path)
        for folder, holders in self._item_dirs.items():  # item folders whose listing changed
            for group, index, _ in holders:
                if group.label not in self.kept and (group.label not in self.retouched
                                                     or self.layout.per_item[index].content_listed()):
                    out.add(folder)
        return sorted(out)

    def _split_touched(self, split: str, change: Change) -> bool:
        """Whether an input of a split file present in both versions may have changed."""
        if self.layout.group_by != "all":
            return split not in self.kept
        if "" in self.kept:
            return False
        group = self.groups.get("")
        if group is None or "" not in self.retouched:
            return True
        start, end = group.run(split)
        return any(_find(group.items, key, start, end) is not None for key in change.items)

    def _item_files(self, key: ItemKey) -> dict[str, Node]:
        """One item's files in this view (none when the view does not hold it)."""
        for group in self.groups.values():
            i = group.position(key)
            if i is not None:
                item, name = group.items[i], group.names()[i]
                return {f"{spec.folder(self._label_of(group, spec, i))}/{file}": spec.file_node(item, name, file)
                        for index, spec in enumerate(self.layout.per_item)
                        for file in group.item_files(index, spec, i, self._split_of(group, spec, i))}
        return {}

    def _paths_of(self, group: Group, i: int) -> builtins.list[str]:
        name = group.names()[i]
        return [f"{spec.folder(self._label_of(group, spec, i))}/{file_name}"
                for index, spec in enumerate(self.layout.per_item)
                for file_name in ((spec.name(name),) if not spec.content_listed()
                                  else group.item_files(index, spec, i, self._split_of(group, spec, i)))]

    def _split_of(self, group: Group, spec: ItemFile, i: int) -> str | None:
        """The split of the folder an item file of the group's ``i``-th item is in, when the file
        has one folder per split in a layout grouped ``"all"`` (``by_split``); else None."""
        if spec.by_split and self.layout.group_by == "all":
            return next(name for name, start, end in group.runs if start <= i < end)
        return None

    def _label_of(self, group: Group, spec: ItemFile, i: int) -> str:
        """The label an item file of the group's ``i``-th item is foldered under."""
        split = self._split_of(group, spec, i)
        if split is not None:
            return self.labels[self.split_names.index(split)]
        if self.layout.group_by != "split":
            return group.label
        return self.labels[self.split_names.index(group.label)]


def _renamed(before: LayoutView, old: Group | None, after: LayoutView, new: Group) -> set[str]:
    """Paths of items whose output name differs between two versions of a group."""
    if old is None:
        return {p for i in range(len(new.items)) for p in after._paths_of(new, i)}
    was = dict(zip(map(_key, old.items), old.names()))
    out: set[str] = set()
    for i, (item, name) in enumerate(zip(new.items, new.names())):
        prior = was.get(_key(item))
        if prior != name:
            out.update(after._paths_of(new, i))
            j = old.position(_key(item))
            if j is not None:
                out.update(before._paths_of(old, j))
    return out
