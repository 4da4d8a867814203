"""Values formats read from Supervisely tags (a transcription, a track id, a visibility), and the
note a view leaves at its root when the project declares none of the tags it reads.

A tag's value is read the same way everywhere: an integer id must be a positive whole number (``7``,
``7.0`` or ``"7"``), a fraction any finite number, a flag is set unless its value is 0/false/no/empty.
Whether a project has a tag at all is decided from meta.json (every tag a Supervisely project uses is
declared there), so the note costs nothing at mount, however many items there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from slyfs.formats.contract import Generated, constant
from slyfs.formats.layout import StaticFile
from slyfs.formats.model import Problem, Project, Tag, TagValue

NOTE_FILE = "README.slyfs.txt"
HIDDEN_NOTE_FILE = "." + NOTE_FILE  # for readers that take every root entry (ICDAR): their globs skip it
FALSE_VALUES = ("0", "false", "no", "")


def find_tag(tags: Sequence[Tag], name: str) -> Tag | None:
    """The first tag called ``name``."""
    return next((t for t in tags if t.name == name), None)


def positive_int(value: TagValue) -> int | None:
    """A positive whole number given as a number or as its text, else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if value == int(value) and value >= 1 else None


def finite_float(value: TagValue) -> float | None:
    """A finite number given as a number or as its text, else None."""
    try:
        number = float(value)  # type: ignore[arg-type]  # None and bad text are caught
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def flag_set(value: TagValue) -> bool:
    """Whether a flag tag (present on the object) is on: any value but 0/false/no/empty."""
    return value is None or (str(value).strip().lower() not in FALSE_VALUES and value != 0)


def declared(project: Project, name: str) -> bool:
    """Whether meta.json declares a tag called ``name``."""
    return any(t.name == name for t in project.meta.tag_metas)


def missing_tags_note(project: Project, view: str, wanted: Sequence[tuple[str, str, str]],
                      file_name: str = NOTE_FILE) -> tuple[StaticFile, ...]:
    """The root note of a view that reads tags the project does not declare: ``wanted`` is
    (tag name, what the view takes from it, the ``--opt`` key naming another tag). Each missing
    tag is also reported once to the problem log. No note when every tag is declared."""
    missing = [(tag, what, opt) for tag, what, opt in wanted if not declared(project, tag)]
    if not missing:
        return ()
    lines = [f"slyfs {view} view: the project declares no tag this view reads for"]
    for tag, what, opt in missing:
        lines.append(f"- {what}: tag '{tag}' is not in meta.json; tag the objects/images with it, "
                     f"or name the tag that holds it with --opt {opt}=NAME")
        project.report(Problem(project.root, f"no tag '{tag}' in meta.json: {view} has no {what}",
                               f"view written without them (--opt {opt}=NAME names another tag)"))
    lines.append("Nothing is made up in their place: the files are valid but carry none of it.")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return (StaticFile(file_name, lambda _splits: Generated((view, "note", data), constant(data))),)
