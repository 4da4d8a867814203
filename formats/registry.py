"""The formats slyfs can show, by name. Adding a format is one module and one line here.

Each entry names a module, imported on first use: a mount of one format never imports the
others. A format module has ``layout`` (project, options → its ``Layout``, formats/layout.py)
and, when it takes ``--opt`` settings, ``OPTIONS``: a tuple of ``FormatOption``, whose values
are checked here, once.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from slyfs.formats.compose import ComposedView
from slyfs.formats.contract import UserError, View
from slyfs.formats.layout import LayoutView
from slyfs.formats.model import Project
from slyfs.formats.view import FormatOption, OptionError, ViewOptions

FORMATS: dict[str, str] = {
    "coco": "slyfs.formats.writers.coco",
    "yolo": "slyfs.formats.writers.yolo.detect",
    "yolo-seg": "slyfs.formats.writers.yolo.segment",
    "yolo-pose": "slyfs.formats.writers.yolo.pose",
    "yolo-obb": "slyfs.formats.writers.yolo.obb",
    "yolo-darknet": "slyfs.formats.writers.yolo.darknet",
    "voc": "slyfs.formats.writers.voc",
    "supervisely": "slyfs.formats.writers.supervisely",
    "datumaro": "slyfs.formats.writers.datumaro",
    "cvat": "slyfs.formats.writers.cvat",
    "labelme": "slyfs.formats.writers.labelme",
    "cityscapes": "slyfs.formats.writers.cityscapes",
    "camvid": "slyfs.formats.writers.camvid",
    "segmask": "slyfs.formats.writers.segmask",
    "kitti": "slyfs.formats.writers.kitti",
    "imagenet": "slyfs.formats.writers.imagenet",
    "open-images": "slyfs.formats.writers.open_images",
    "wider-face": "slyfs.formats.writers.wider_face",
    "vggface2": "slyfs.formats.writers.vggface2",
    "market1501": "slyfs.formats.writers.market1501",
    "lfw": "slyfs.formats.writers.lfw",
    "icdar-recognition": "slyfs.formats.writers.icdar.recognition",
    "icdar-localization": "slyfs.formats.writers.icdar.localization",
    "icdar-segmentation": "slyfs.formats.writers.icdar.segmentation",
    "mot": "slyfs.formats.writers.mot",
    "mots": "slyfs.formats.writers.mots",
}


class UnknownFormat(UserError, ValueError):
    """A format name that is not in the registry."""


def format_module(name: str) -> ModuleType:
    """The module of format ``name``, imported now if it was not yet."""
    return importlib.import_module(FORMATS[name])


def format_options(name: str) -> tuple[FormatOption, ...]:
    """The ``--opt`` settings format ``name`` reads."""
    return getattr(format_module(name), "OPTIONS", ())


def options_help() -> str:
    """Every format's ``--opt`` settings, one a line, for ``--help``. It imports every format
    module, so it is called only when help is printed."""
    lines = ["format options (--opt KEY=VALUE; values are checked before anything is mounted or written):"]
    for name in FORMATS:
        for option in format_options(name):
            lines += [f"  {option.key}={option.accepted()}  ({name}; default {option.default or 'none'})",
                      f"      {option.help}"]
    return "\n".join(lines)


def parse_formats(spec: str) -> list[str]:
    """``yolo``, ``coco,yolo`` or ``all`` → format names, validated."""
    names = list(FORMATS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UnknownFormat(f"unknown format {', '.join(unknown) or spec!r}; choose from {', '.join(FORMATS)} or all")
    return names


def check_params(names: list[str], params: Mapping[str, str]) -> None:
    """Refuses an ``--opt`` key none of the chosen formats reads (a typo would otherwise mount
    silently without its effect) and a value its declaration does not accept, so that the
    command line fails before anything is mounted or written."""
    valid = {option.key: option for name in names for option in format_options(name)}
    unknown = sorted(set(params) - set(valid))
    if unknown:
        accepted = "; ".join(f"{key} ({option.help})" for key, option in sorted(valid.items())) or "none"
        raise OptionError(f"unknown --opt {', '.join(unknown)} for {', '.join(names)}; valid: {accepted}")
    for key, value in params.items():
        problem = valid[key].problem(value)
        if problem:
            raise OptionError(problem)


def build_view(project: Project, names: list[str], options: ViewOptions) -> View:
    """One format at the root, or several, each in a top-level folder named after it."""
    if len(names) == 1:
        return LayoutView(format_module(names[0]).layout, project, options)
    return ComposedView({name: LayoutView(format_module(name).layout, project, options) for name in names})
