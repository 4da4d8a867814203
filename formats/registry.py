"""The formats slyfs can show, by name. Adding a format is one module and one line here."""

from __future__ import annotations

from types import ModuleType
from typing import Callable, Mapping

from formats import coco, supervisely_view, voc, yolo, yolo_darknet, yolo_obb, yolo_pose, yolo_seg
from formats.model import Project
from formats.nodes import Node
from formats.view import OptionError, ViewOptions

View = Callable[[Project, ViewOptions], dict[str, Node]]

# Each module has ``build`` (its View) and, when it takes ``--opt`` settings, ``OPTIONS``: key → one-line help.
MODULES: dict[str, ModuleType] = {
    "coco": coco,
    "yolo": yolo,
    "yolo-seg": yolo_seg,
    "yolo-pose": yolo_pose,
    "yolo-obb": yolo_obb,
    "yolo-darknet": yolo_darknet,
    "voc": voc,
    "supervisely": supervisely_view,
}
FORMATS: dict[str, View] = {name: module.build for name, module in MODULES.items()}
FORMAT_OPTIONS: dict[str, dict[str, str]] = {name: getattr(module, "OPTIONS", {}) for name, module in MODULES.items()}


class UnknownFormat(ValueError):
    pass


def parse_formats(spec: str) -> list[str]:
    """``yolo``, ``coco,yolo`` or ``all`` → format names, validated."""
    names = list(FORMATS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UnknownFormat(f"unknown format {', '.join(unknown) or spec!r}; choose from {', '.join(FORMATS)} or all")
    return names


def check_params(names: list[str], params: Mapping[str, str]) -> None:
    """Refuses an ``--opt`` key none of the chosen formats reads: a typo would otherwise mount
    silently without its effect."""
    valid = {key: text for name in names for key, text in FORMAT_OPTIONS[name].items()}
    unknown = sorted(set(params) - set(valid))
    if unknown:
        accepted = "; ".join(f"{key} ({text})" for key, text in sorted(valid.items())) or "none"
        raise OptionError(f"unknown --opt {', '.join(unknown)} for {', '.join(names)}; valid: {accepted}")


def build_view(project: Project, names: list[str], options: ViewOptions) -> dict[str, Node]:
    """One format at the root, or several, each in a top-level folder named after it."""
    if len(names) == 1:
        return FORMATS[names[0]](project, options)
    return {f"{name}/{path}": node for name in names for path, node in FORMATS[name](project, options).items()}
