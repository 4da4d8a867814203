"""What every view shares: its options, the split of items, the class selection."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

from slyfs.formats.model import Item, ObjClass, Project, ProjectMeta
from slyfs.formats.common.naming import safe_name
from slyfs.formats.contract import UserError

SPLIT_TAGS = ("train", "val", "test")


class OptionError(UserError, ValueError):
    """A view option has a value the view cannot use."""


@dataclass(frozen=True)
class ViewOptions:
    """``split``: ``dataset`` (top-level dataset name; nested datasets fold into it),
    ``tags`` (image tag train/val/test; untagged → train) or ``ratio:T[,V]`` (stable hash
    of dataset/name: fraction T train, V val, the rest test).
    ``classes``: keep only these classes (None = all), numbered in meta.json order.
    ``include_empty``: keep images that have no (kept) objects.
    ``params``: format-specific settings (``key=value`` from the command line)."""

    split: str = "dataset"
    classes: tuple[str, ...] | None = None
    include_empty: bool = True
    params: Mapping[str, str] = field(default_factory=dict)

    def param(self, key: str, default: str) -> str:
        return self.params.get(key, default)

    def key(self) -> tuple:
        """Hashable identity of the options, part of every generated file's cache key."""
        return (self.split, self.classes, self.include_empty, tuple(sorted(self.params.items())))


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
    if mode == "dataset":
        return safe_name(item.dataset.split("/", 1)[0])
    if mode == "tags":
        names = project.annotation(item).tag_names()
        return next((t for t in SPLIT_TAGS if t in names), "train")
    f = stable_fraction(item)
    if f < ratios[0]:
        return "train"
    return "val" if len(ratios) == 1 or f < ratios[0] + ratios[1] else "test"


def split_order(name: str) -> tuple:
    return (SPLIT_TAGS.index(name) if name in SPLIT_TAGS else len(SPLIT_TAGS), name)


def kept_classes(meta: ProjectMeta, wanted: tuple[str, ...] | None) -> tuple[ObjClass, ...]:
    """The classes a view keeps, in meta.json order; OptionError names any unknown one."""
    classes = meta.classes
    if wanted is None:
        return classes
    missing = set(wanted) - {c.title for c in classes}
    if missing:
        raise OptionError(f"unknown class(es) {', '.join(sorted(missing))}; meta.json has "
                          f"{', '.join(c.title for c in classes)}")
    return tuple(c for c in classes if c.title in wanted)


def selected_classes(project: Project, options: ViewOptions) -> tuple[ObjClass, ...]:
    return kept_classes(project.meta, options.classes)


def has_kept_labels(project: Project, item: Item, kept: set[str]) -> bool:
    return any(label.class_title in kept for label in project.annotation(item).labels)


def splits(project: Project, options: ViewOptions) -> dict[str, list[Item]]:
    """Items of each split, splits in train/val/test-then-alphabetical order, items sorted."""
    mode, ratios = parse_split(options.split)
    kept = {c.title for c in selected_classes(project, options)}
    out: dict[str, list[Item]] = {}
    for item in project.items():
        if not options.include_empty and not has_kept_labels(project, item, kept):
            continue
        out.setdefault(split_of(project, item, mode, ratios), []).append(item)
    return {s: sorted(out[s], key=lambda i: (i.dataset, i.name)) for s in sorted(out, key=split_order)}
