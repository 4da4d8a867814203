"""The classes of colour-coded mask views (CamVid, Segmentation Mask, Cityscapes, KITTI's RGB
semantic PNG): distinct label colours taken from meta.json, the class table, which labels paint,
instance numbers of bound labels, and label names and ``label_colors.txt`` for the ``r g b name``
label files whose readers split lines at whitespace. common/masks.py paints the index images and
writes every PNG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass

from slyfs.formats.common.labels import GEOMETRY_NAMES
from slyfs.formats.common.masks import spread_colour
from slyfs.formats.common.naming import distinct_texts, token_text, uncommented
from slyfs.formats.common.raster import has_area
from slyfs.formats.model import Label, Project
from slyfs.formats.view import ViewOptions, selected_classes

RGB = tuple[int, int, int]
BLACK: RGB = (0, 0, 0)


def distinct_colours(wanted: Sequence[RGB], reserved: Sequence[RGB] = (BLACK,)) -> list[RGB]:
    """One colour per label, all distinct and none of ``reserved``: each label keeps its wanted
    colour (meta.json's) unless a reserved colour or an earlier label has it; then it takes the
    first free colour of :func:`spread_colour` 1, 2, … (readers decode colour masks by exact colour,
    so two labels of one colour could not be told apart)."""
    used = set(reserved)
    clashing = []
    out: list[RGB | None] = []
    for colour in wanted:
        if colour in used:
            out.append(None)
            clashing.append(len(out) - 1)
        else:
            used.add(colour)
            out.append(colour)
    spare = _free_colours(used)
    for i in clashing:
        out[i] = next(spare)
    return [c for c in out if c is not None]


def _free_colours(used: set[RGB]) -> Iterator[RGB]:
    k = 1
    while True:
        colour = spread_colour(k)
        if colour not in used:
            used.add(colour)
            yield colour
        k += 1


def area_labels(labels: Sequence[Label], class_index: Mapping[str, int], over: Container[str],
                max_classes: int) -> tuple[list[Label], Counter[str]]:
    """The labels of a mask view's classes that paint pixels, in order, and what it cannot hold,
    by kind (as ``labels.report_left_out`` reports it): geometries without area, and labels of the
    classes ``over`` its limit of ``max_classes`` (kind ``"<geometry> (class past the Nth)"``)."""
    kept = []
    left_out: Counter[str] = Counter()
    for label in labels:
        kind = GEOMETRY_NAMES[type(label.geometry)]
        if label.class_title in over:
            left_out[f"{kind} (class past the {max_classes}th)"] += 1
        elif label.class_title in class_index:
            if has_area(label.geometry):
                kept.append(label)
            else:
                left_out[kind] += 1
    return kept, left_out


@dataclass(frozen=True, slots=True)
class ClassTable:
    """The classes a colour-coded mask view paints (CamVid, Segmentation Mask, Cityscapes): the first
    ``max_classes`` of ``--classes`` (or meta.json) order, class k at index k (0 the background),
    each in its meta.json colour made distinct; labels of the classes ``over`` the limit are
    reported, not painted."""

    titles: list[str]
    colours: list[RGB]  # index k's colour; index 0 (background) BLACK
    class_index: dict[str, int]
    over: frozenset[str]
    max_classes: int

    @classmethod
    def of(cls, project: Project, options: ViewOptions, max_classes: int) -> ClassTable:
        selected = selected_classes(project, options)
        classes = selected[:max_classes]
        titles = [c.title for c in classes]
        return cls(titles, [BLACK, *distinct_colours([c.color for c in classes])],
                   {t: k for k, t in enumerate(titles, 1)}, frozenset(c.title for c in selected[max_classes:]),
                   max_classes)

    def palette(self) -> list[int]:
        """The colours as a flat r, g, b… PNG palette."""
        return [v for rgb in self.colours for v in rgb]

    def area_labels(self, labels: Sequence[Label]) -> tuple[list[Label], Counter[str]]:
        """:func:`area_labels` of this table's classes."""
        return area_labels(labels, self.class_index, self.over, self.max_classes)

    def indices(self, labels: Sequence[Label]) -> list[int]:
        """The class index each label paints."""
        return [self.class_index[label.class_title] for label in labels]


def instance_numbers(labels: Sequence[Label]) -> list[int]:
    """1-based instance number of each label, in order of first appearance: labels bound by one
    ``instance`` key and of one class are one object (as CVAT merges a group's shapes)."""
    seen: dict[object, int] = {}
    out = []
    for i, label in enumerate(labels):
        key = (label.instance, label.class_title) if label.instance is not None else i
        out.append(seen.setdefault(key, len(seen) + 1))
    return out


def token_label_name(title: str) -> str:
    """A class title as the one whitespace-free token an ``r g b name`` line ends with: whitespace
    becomes ``_``, other control characters ``%XX``, a leading ``#`` (a comment to the readers) ``%23``."""
    return uncommented(token_text(title))


def token_label_names(titles: Sequence[str]) -> list[str]:
    """:func:`token_label_name` of each title, distinct for distinct titles (``a b`` beside
    ``a_b`` becomes ``a_b~<hash>``)."""
    return distinct_texts(titles, token_label_name)


def label_colors_text(names: Sequence[str], colours: Sequence[RGB]) -> bytes:
    """``label_colors.txt`` of CamVid, Cityscapes and KITTI: ``r g b name`` a line, index k on line k+1."""
    return "".join(f"{r} {g} {b} {name}\n" for name, (r, g, b) in zip(names, colours)).encode("utf-8")
