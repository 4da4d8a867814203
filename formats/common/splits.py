"""Which split each item is in, the output names of one folder's items, and the part of a
cache key that names a split's items: the per-split loop every view runs is
``for split, items in splits(project, options).items()``, then ``item_names(items)`` and
``items_key(items)``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Sequence

from slyfs.formats.common.naming import escape_component, safe_name, shorten, spaceless_component, unique_names_of
from slyfs.formats.model import Item, Project
from slyfs.formats.view import OptionError, ViewOptions, selected_classes

SPLIT_TAGS = ("train", "val", "test")
# A split named after a long dataset is cut (hash-tagged) to this, so that every file named after it
# (``instances_<split>.json``, ``<split>.txt``, ``obj_<split>_data``) stays one component of <= 255 bytes.
MAX_SPLIT_BYTES = 64


def parse_split(spec: str) -> tuple[str, tuple[float, ...]]:
    """Validate a split spec; returns (mode, ratios)."""
    if spec in ("dataset", "tags"):
        return spec, ()
    if spec.startswith("ratio:"):
        try:
            ratios = tuple(float(x) for x in spec[6:].split(","))
        except ValueError:
            raise OptionError(f"bad split {spec!r}: ratios must be numbers, e.g. ratio:0.8 or ratio:0.7,0.2") from None
        if not 1 <= len(ratios) <= 2 or any(r < 0 for r in ratios) or sum(ratios) > 1:
            raise OptionError(f"bad split {spec!r}: one or two fractions summing to at most 1")
        return "ratio", ratios
    raise OptionError(f"bad split {spec!r}: use dataset, tags or ratio:0.8")


def stable_fraction(item: Item) -> float:
    """A number in [0, 1) fixed by the item's dataset and name alone."""
    digest = hashlib.sha1(f"{item.dataset}/{item.name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_of(project: Project, item: Item, mode: str, ratios: tuple[float, ...]) -> str:
    """The split of one item under a parsed spec (see ``ViewOptions.split``)."""
    if mode == "dataset":
        return shorten(safe_name(item.dataset.split("/", 1)[0]), MAX_SPLIT_BYTES)
    if mode == "tags":
        names = project.facts(item).tag_names
        return next((t for t in SPLIT_TAGS if t in names), "train")
    f = stable_fraction(item)
    if f < ratios[0]:
        return "train"
    return "val" if len(ratios) == 1 or f < ratios[0] + ratios[1] else "test"


def split_order(name: str) -> tuple:
    """Sort key: train, val, test first (the order readers expect them listed), then by name."""
    return (SPLIT_TAGS.index(name) if name in SPLIT_TAGS else len(SPLIT_TAGS), name)


def has_kept_labels(project: Project, item: Item, kept: set[str]) -> bool:
    """Whether the item has a label of a kept class (``--no-empty`` leaves out the others)."""
    return not kept.isdisjoint(project.facts(item).class_titles)


def item_assigner(project: Project, options: ViewOptions, by_dataset: bool = False) -> Callable[[Item], str | None]:
    """The group each item of ``project`` is in under ``options``: its split (``by_dataset``: its
    dataset's full name), or None when ``--no-empty`` leaves it out."""
    mode, ratios = parse_split(options.split)
    kept = {c.title for c in selected_classes(project, options)}

    def assign(item: Item) -> str | None:
        if not options.include_empty and not has_kept_labels(project, item, kept):
            return None
        return item.dataset if by_dataset else split_of(project, item, mode, ratios)

    return assign


def splits(project: Project, options: ViewOptions) -> dict[str, list[Item]]:
    """Items of each split, splits in train/val/test-then-alphabetical order, items sorted."""
    assign = item_assigner(project, options)
    out: dict[str, list[Item]] = {}
    for item in project.items():
        split = assign(item)
        if split is not None:
            out.setdefault(split, []).append(item)
    return {s: sorted(out[s], key=lambda i: (i.dataset, i.name)) for s in sorted(out, key=split_order)}


def item_names(items: Sequence[Item], escape: Callable[[str], str] = escape_component) -> list[str]:
    """The output name of each item sharing one folder (:func:`naming.unique_names` of their
    dataset and name): unique, stable, with room for a 4-byte suffix after the stem."""
    return unique_names_of([i.name for i in items], lambda: [i.dataset for i in items], escape)


class ItemsKey(tuple):
    """A split's (dataset, name, fingerprint) list, part of a cache key: hashed once, not per lookup."""

    def __hash__(self) -> int:
        cached = self.__dict__.get("hash")
        if cached is None:
            cached = self.__dict__["hash"] = tuple.__hash__(self)
        return cached


def items_key(items: Sequence[Item]) -> ItemsKey:
    """The part of the cache key of a split's aggregate files (lists, JSON of every image) that
    changes exactly when an item of the split is added, removed, renamed or edited."""
    return ItemsKey((i.dataset, i.name, i.fingerprint) for i in items)


# Three rules for split names: a view takes the one its reader and its folders need.
# - dashed_split_names (VOC, Segmentation Mask, CamVid, Cityscapes): only ``_`` and whitespace
#   change, so a dataset name stays readable in ``<split>.txt`` / folder names.
# - subset_names (Datumaro, CVAT): ``[A-Za-z0-9-]+``, a clash or an empty result hash-tagged.
# - plain_subset_names (KITTI, Open Images): ``[A-Za-z0-9-]+`` character for character, numbered
#   past a clash, never one of the format's own folder names.


def dashed_split_names(splits_: Iterable[str]) -> dict[str, str]:
    """Split names for readers that split file names at ``_`` (VOC and Segmentation Mask skip a
    ``<split>.txt`` with ``_``): ``_`` becomes ``-``, whitespace ``%XX``; at most
    ``MAX_SPLIT_BYTES``; clashes get ``~2``, ``~3``…"""
    out: dict[str, str] = {}
    used: set[str] = set()
    for s in splits_:
        base = spaceless_component(s.replace("_", "-"))
        name, k = shorten(base, MAX_SPLIT_BYTES), 1
        while name in used:
            k += 1
            name = shorten(base, MAX_SPLIT_BYTES - len(f"~{k}")) + f"~{k}"
        used.add(name)
        out[s] = name
    return out


_NOT_SUBSET = re.compile(r"[^A-Za-z0-9-]+")
_NOT_SUBSET_CHAR = re.compile(r"[^A-Za-z0-9-]")


def subset_names(split_names: Sequence[str]) -> dict[str, str]:
    """Subset names every reader keeps whole (``[A-Za-z0-9-]+``; some split file names on ``_``):
    a name already of that form stays; in another, each run of other characters becomes ``-``, and
    ``-<8 hex of the hash of the name>`` is added when that result is taken or empty."""
    out: dict[str, str] = {}
    used = {s for s in split_names if _NOT_SUBSET.search(s) is None and s}
    for s in split_names:
        if s in used and _NOT_SUBSET.search(s) is None:
            out[s] = s
            continue
        base = _NOT_SUBSET.sub("-", s).strip("-")
        name = base
        if not base or base in used:
            name = f"{base}-{hashlib.sha1(s.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}".lstrip("-")
        used.add(name)
        out[s] = name
    return out


def plain_subset_names(splits: Sequence[str], reserved: Collection[str] = (),
                       max_bytes: int = MAX_SPLIT_BYTES) -> dict[str, str]:
    """Split names made ``[A-Za-z0-9-]+`` (readers split file and folder names at ``_`` and ``.``):
    every other character becomes ``-``; a name equal to an earlier one or to one of ``reserved``
    (a format's own folder names) gets ``-2``, ``-3``… Same splits in the same order, same names."""
    out: dict[str, str] = {}
    used = set(reserved)
    for split in splits:
        base = _NOT_SUBSET_CHAR.sub("-", split)[:max_bytes] or "-"
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base[:max_bytes - len(str(k)) - 1]}-{k}"
        used.add(name)
        out[split] = name
    return out
