"""What the tracking views (MOT, MOTS) share: track ids from tags, label files of one name a
line, and the value of a MOTS instance pixel, which says class and track at once (the PNG is
painted and written by common/masks.py).

A track id is the positive whole value of the object's track tag; objects without one have no
track (MOT writes ``-1``, MOTS leaves them out): no id is ever made up.
"""

from __future__ import annotations

from collections.abc import Sequence

from slyfs.formats.common.naming import distinct_texts, text_field
from slyfs.formats.common.tags import find_tag, positive_int
from slyfs.formats.model import Label

MOTS_TRACKS = 1000  # pixel = MOTS_TRACKS * (1 + label index) + track id
MAX_PIXEL = 0xFFFF
MAX_MOTS_TRACK = MOTS_TRACKS - 1
MAX_MOTS_LABELS = MAX_PIXEL // MOTS_TRACKS - 1  # 64: the last label's pixels still fit in 16 bits


def track_id(label: Label, tag: str) -> int | None:
    """The object's track id (tag ``tag``, a positive whole number), None when it has none."""
    found = find_tag(label.tags, tag)
    return positive_int(found.value) if found is not None else None


def _line_name(title: str) -> str:
    out = text_field(title)
    return out if out else "%00"


def line_names(titles: Sequence[str]) -> list[str]:
    """Class titles as lines of a ``labels.txt`` the readers strip: one line each, without leading or
    trailing blanks (``%XX``), never empty, distinct for distinct titles."""
    return distinct_texts(list(titles), _line_name)


def mots_pixel(label_index: int, track: int) -> int | None:
    """The MOTS pixel of track ``track`` of label ``label_index`` (0-based), None when it does not fit."""
    if not 1 <= track <= MAX_MOTS_TRACK or not 0 <= label_index < MAX_MOTS_LABELS:
        return None
    return MOTS_TRACKS * (1 + label_index) + track
