"""Supervisely tags read by formats: as the attributes of a format's objects and images, and as the
values some formats give a meaning to (a flag such as ``occluded``, a number such as ``score``, an
integer such as a track id), with the ``--opt <format>.<x>-tag=NAME`` setting that renames the tag a
view reads for one of them. Every view reads a value of one meaning by the same rule here (the note a
view leaves when the project declares none of its tags is in common/tagged.py)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from slyfs.formats.model import Tag, TagValue
from slyfs.formats.view import FormatOption, ViewOptions

FALSE_TEXTS = ("0", "false", "no", "off", "")
TRUE_TEXTS = ("1", "true", "yes", "on")


def tag_option(view: str, meaning: str, tag: str | None = None, what: str | None = None) -> FormatOption:
    """``<view>.<meaning>-tag=NAME``: the name of the tag read for ``meaning`` (``what`` it holds,
    for ``--help``); by default the tag called ``tag``, or ``meaning`` itself. Keys spell the
    meaning with ``-`` (``kitti.crowd-tag`` reads ``is_crowd`` by default)."""
    default = tag or meaning
    return FormatOption(f"{view}.{meaning}-tag", f"the tag that holds {what or meaning} (default {default})",
                        default=default)


def tag_names(options: ViewOptions, declared: Iterable[FormatOption]) -> dict[str, str]:
    """Meaning → the tag name the options give it, for every ``tag_option`` in ``declared``."""
    return {o.default: options.param(o) for o in declared if o.key.endswith("-tag")}


def find_tag(tags: Iterable[Tag], name: str) -> Tag | None:
    """The first tag called ``name``."""
    return next((t for t in tags if t.name == name), None)


def tag_number(value: TagValue) -> float | None:
    """A tag value as a number: numbers as they are, numeric text parsed, ``true``/``yes`` 1,
    ``false``/``no``/empty 0, a tag without value 1 (its presence says yes); None for other text."""
    if value is None:
        return 1.0
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip().lower()
    if text in TRUE_TEXTS:
        return 1.0
    if text in FALSE_TEXTS:
        return 0.0
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number else None  # NaN is no number a format can write


def tag_flag(value: TagValue) -> bool:
    """Whether a flag tag says yes: present without value, or any value but 0/false/no/off/empty."""
    number = tag_number(value)
    return number is None or number != 0


def flag_tag(tags: Iterable[Tag], name: str) -> bool:
    """Whether the flag tag called ``name`` (``is_crowd``, ``occluded``…) is there and says yes
    (:func:`tag_flag`); False without one."""
    found = find_tag(tags, name)
    return found is not None and tag_flag(found.value)

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes"), ("0", "false", "no")


def tag_attributes(tags: Iterable[Tag], skip: Collection[str] = ()) -> dict[str, str | int | float | bool]:
    """Tags (except those named in ``skip``) as ``{name: value}``; a valueless tag is ``True``.
    The first tag of a name wins, as every reader keeps one value per attribute."""
    out: dict[str, str | int | float | bool] = {}
    for tag in tags:
        if tag.name not in skip and tag.name not in out:
            out[tag.name] = True if tag.value is None else tag.value
    return out


def flag_value(value: TagValue) -> bool | None:
    """A flag tag's truth: valueless or 1/true/yes → True, 0/false/no → False, anything else None."""
    if value is None:
        return True
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    word = str(value).strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def whole_number(value: TagValue) -> int | None:
    """A tag value as a whole number (a track id, a person id, a frame number) given as a number or
    as its text (``7``, ``7.0``, ``"7"``, ``"-1"``), else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if value == int(value) else None


def positive_int(value: TagValue) -> int | None:
    """A positive whole number (a track id), else None."""
    number = whole_number(value)
    return number if number is not None and number >= 1 else None


def number_value(value: TagValue) -> float | None:
    """A tag value as a finite number (a score, a visibility) given as a number or as its text,
    None when it is not one."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
