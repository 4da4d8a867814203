"""What every view shares: its options and the class selection (splits: ``common/splits.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slyfs.formats.contract import UserError
from slyfs.formats.model import ObjClass, Project, ProjectMeta


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
