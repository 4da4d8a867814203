"""Reading tags that formats give a meaning to: a flag tag (``occluded``) set or not, whatever
value type its tag meta has, and the tag a ``--opt <fmt>.<x>-tag=NAME`` setting names."""

from __future__ import annotations

from collections.abc import Iterable

from slyfs.formats.model import Tag, TagValue

UNSET_WORDS = ("0", "false", "no", "")


def flag_is_set(value: TagValue) -> bool:
    """Whether a flag tag says yes: a valueless tag, or any value but 0 / false / no / empty
    (case and surrounding blanks ignored), so ``none``, ``oneof_string`` ``0|1`` and numbers all work."""
    if value is None:
        return True
    if isinstance(value, (int, float)):
        return value != 0
    return value.strip().lower() not in UNSET_WORDS


def first_tag(tags: Iterable[Tag], name: str) -> Tag | None:
    """The first tag called ``name`` (a tag given twice counts once, the first)."""
    return next((t for t in tags if t.name == name), None)
