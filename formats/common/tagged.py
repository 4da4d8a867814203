"""The note a view leaves at its root to say what the project did not give it (every view's
``README.slyfs.txt``), and the note of a view whose tags the project does not declare (tag values
themselves are read by common/tags.py).

Whether a project has a tag at all is decided from meta.json (every tag a Supervisely project uses is
declared there), so the note costs nothing at mount, however many items there are.
"""

from __future__ import annotations

from collections.abc import Sequence

from slyfs.formats.contract import Generated, constant
from slyfs.formats.layout import StaticFile
from slyfs.formats.model import Problem, Project

NOTE_FILE = "README.slyfs.txt"
HIDDEN_NOTE_FILE = "." + NOTE_FILE  # for readers that take every root entry (ICDAR): their globs skip it


def note_file(view: str, text: str, file_name: str = NOTE_FILE) -> tuple[StaticFile, ...]:
    """The root note of ``view`` holding ``text`` (nothing when there is nothing to say)."""
    if not text:
        return ()
    data = text.encode("utf-8")
    return (StaticFile(file_name, lambda _splits: Generated((view, "note", data), constant(data))),)


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
    return note_file(view, "\n".join(lines) + "\n", file_name)
