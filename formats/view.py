"""What every view shares: its options, the declaration of a format's own ``--opt`` settings,
and the class selection (splits: ``common/splits.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slyfs.formats.contract import UserError
from slyfs.formats.model import ObjClass, Project, ProjectMeta


class OptionError(UserError, ValueError):
    """A view option has a value the view cannot use."""


@dataclass(frozen=True)
class FormatOption:
    """One ``--opt`` setting a format reads, declared once: the CLI checks a value against it
    before anything is mounted or written, and ``--help`` lists it. ``choices`` None: any text."""

    key: str
    help: str
    default: str
    choices: tuple[str, ...] | None = None

    def accepted(self) -> str:
        """The values it takes, for messages and help: ``0|1`` or ``TEXT``."""
        return "|".join(self.choices) if self.choices is not None else "TEXT"

    def problem(self, value: str) -> str | None:
        """Why ``value`` is refused, in one line, or None when it is accepted."""
        if self.choices is None or value in self.choices:
            return None
        return f"--opt {self.key}={value!r}: accepted values are {', '.join(self.choices)}"


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

    def param(self, option: FormatOption) -> str:
        """The value given for ``option``, or its default; a refused value raises OptionError
        here too, for callers that build a view without ``registry.check_params``."""
        value = self.params.get(option.key, option.default)
        problem = option.problem(value)
        if problem:
            raise OptionError(problem)
        return value

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
