"""Supervisely tags as the attributes of a format's objects and images, and the tag values some
formats give a meaning to (a flag such as ``occluded``, an integer such as a track id)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from slyfs.formats.model import Tag, TagValue

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes"), ("0", "false", "no")


def tag_attributes(tags: Iterable[Tag], skip: Collection[str] = ()) -> dict[str, str | int | float | bool]:
    """Tags (except those named in ``skip``) as ``{name: value}``; a valueless tag is ``True``.
    The first tag of a name wins, as every reader keeps one value per attribute."""
    out: dict[str, str | int | float | bool] = {}
    for tag in tags:
        if tag.name not in skip and tag.name not in out:
            out[tag.name] = True if tag.value is None else tag.value
    return out


def first_tag(tags: Iterable[Tag], name: str) -> Tag | None:
    return next((t for t in tags if t.name == name), None)


def flag_value(value: TagValue) -> bool | None:
    """A flag tag's truth: valueless or 1/true/yes → True, 0/false/no → False, anything else None."""
    if value is None:
        return True
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    word = str(value).strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def int_value(value: TagValue) -> int | None:
    """A tag value as an integer (a track id, a frame number), None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def number_value(value: TagValue) -> float | None:
    """A tag value as a finite number (a score), None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
