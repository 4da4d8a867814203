"""The formats slyfs can show, by name. Adding a format is one module and one line here."""

from __future__ import annotations

from typing import Callable

from formats import coco, supervisely_view, voc, yolo, yolo_darknet, yolo_obb, yolo_pose, yolo_seg
from formats.model import Project
from formats.nodes import Node
from formats.view import ViewOptions

View = Callable[[Project, ViewOptions], dict[str, Node]]

FORMATS: dict[str, View] = {
    "coco": coco.build,
    "yolo": yolo.build,
    "yolo-seg": yolo_seg.build,
    "yolo-pose": yolo_pose.build,
    "yolo-obb": yolo_obb.build,
    "yolo-darknet": yolo_darknet.build,
    "voc": voc.build,
    "supervisely": supervisely_view.build,
}


class UnknownFormat(ValueError):
    pass


def parse_formats(spec: str) -> list[str]:
    """``yolo``, ``coco,yolo`` or ``all`` → format names, validated."""
    names = list(FORMATS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UnknownFormat(f"unknown format {', '.join(unknown) or spec!r}; choose from {', '.join(FORMATS)} or all")
    return names


def build_view(project: Project, names: list[str], options: ViewOptions) -> dict[str, Node]:
    """One format at the root, or several, each in a top-level folder named after it."""
    if len(names) == 1:
        return FORMATS[names[0]](project, options)
    return {f"{name}/{path}": node for name in names for path, node in FORMATS[name](project, options).items()}
