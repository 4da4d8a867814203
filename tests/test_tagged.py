"""Tag values as the text and tracking views read them, and the note of a project without the tags."""

from __future__ import annotations

from slyfs.formats.common.tagged import declared, missing_tags_note
from slyfs.formats.common.tags import number_value, tag_flag
from slyfs.formats.model import Problem, Project, ProjectMeta, TagMeta


def _project(tags: tuple[str, ...], problems: list[Problem]) -> Project:
    return Project("/src", ProjectMeta((), tuple(TagMeta(t, "any_string") for t in tags)), (),
                   lambda item: None, report=problems.append)  # type: ignore[arg-type,return-value]


def test_numbers_and_flags():
    assert [number_value(v) for v in (0.5, "0.25", 3, "nan", "x", None, float("inf"))] == \
        [0.5, 0.25, 3.0, None, None, None, None]
    assert [tag_flag(v) for v in (None, 1, "1", "yes", "true", 0, "0", "no", "False", "")] == \
        [True, True, True, True, True, False, False, False, False, False]


def test_the_note_names_each_missing_tag_and_its_option():
    problems: list[Problem] = []
    project = _project(("text",), problems)
    assert declared(project, "text") and not declared(project, "track_id")
    assert missing_tags_note(project, "v", [("text", "captions", "v.text-tag")]) == ()
    (note,) = missing_tags_note(project, "v", [("text", "captions", "v.text-tag"),
                                               ("track_id", "track ids", "v.track-tag")], "NOTE.txt")
    assert note.path == "NOTE.txt"
    text = note.node([]).render().decode()
    assert "'track_id'" in text and "--opt v.track-tag=NAME" in text and "'text'" not in text
    assert [p.message for p in problems] == ["no tag 'track_id' in meta.json: v has no track ids"]
