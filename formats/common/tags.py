"""Tag values read as the numbers and flags formats give meaning to (``occluded``, ``truncated``,
``score``, ``is_crowd``…), and the ``--opt <format>.<x>-tag=NAME`` setting that renames the tag a
view reads for one of them."""

from __future__ import annotations

from collections.abc import Iterable

from slyfs.formats.model import Tag, TagValue
from slyfs.formats.view import FormatOption, ViewOptions

FALSE_TEXTS = ("0", "false", "no", "off", "")
TRUE_TEXTS = ("1", "true", "yes", "on")


def tag_option(view: str, meaning: str) -> FormatOption:
    """``<view>.<meaning>-tag``: the name of the tag read for ``meaning`` (default: ``meaning``)."""
    return FormatOption(f"{view}.{meaning}-tag", f"name of the object/image tag read as {meaning}", default=meaning)


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
