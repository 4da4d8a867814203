"""What the identity and face views (WIDER Face, VGGFace2, Market-1501, LFW) share: reading the
image tags that carry identities, cameras and pairs, naming identities and subsets so that their
readers do not split them, the five-landmark graphs, and the ``README.slyfs.txt`` that says what
a project lacked. These formats need facts a Supervisely project holds only as tags; a view never
invents them, it says which tag (or ``--opt``) would give them."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import distinct_texts, percent_bytes, shorten, spaceless_component
from slyfs.formats.common.tagged import note_file
from slyfs.formats.common.tags import find_tag, whole_number
from slyfs.formats.contract import image_node
from slyfs.formats.layout import ItemFile, StaticFile
from slyfs.formats.model import Annotation, Graph, GraphNode, Item, ItemFacts, ObjClass, Problem, Project, TagValue

LANDMARK_COUNT = 5  # VGGFace2 / LFW: left eye, right eye, nose, left and right mouth corners
MAX_IDENTITY_BYTES = 128
ItemKey = tuple[str, str]  # (dataset, item name)
Tagged = Annotation | ItemFacts  # what has an image's tags: its annotation, or the facts the index keeps of it


def tag_value_text(value: TagValue) -> str | None:
    """A tag's value as text (numbers as written: ``3``, not ``3.0``); None for a valueless tag or
    empty text, which carry no identity."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def image_tag_text(ann: Tagged, name: str) -> str | None:
    """The text of the image tag ``name``, None when the image has none (or it has no value)."""
    tag = find_tag(ann.tags, name)
    return tag_value_text(tag.value) if tag is not None else None


def tag_int(ann: Tagged, name: str) -> int | None:
    """The image tag ``name`` as a whole number, None when absent or not a whole number."""
    text = image_tag_text(ann, name)
    return whole_number(text) if text is not None else None


def image_name(name: str) -> str:
    """An image name as one path component and one field these readers keep whole: whitespace (they
    strip lines and split at tabs) and ``\\`` (they read it as ``/``) as ``%XX``."""
    return spaceless_component(name).replace("\\", "%5C")


def token(text: str) -> str:
    """``text`` (an identity, an event, a label) as one path component and one whitespace-free token:
    whitespace, ``/``, ``\\``, controls and ``%`` (so that the form reads back) as ``%XX``."""
    return image_name(text.replace("%", "%25"))


def identity_names(values: Iterable[str], reserved: Iterable[str] = (),
                   escape_one: Callable[[str], str] = token) -> dict[str, str]:
    """Each distinct identity (or label) as a safe, distinct token (``escape_one``, by default
    :func:`token`, at most ``MAX_IDENTITY_BYTES``); a name equal to one of ``reserved``
    (``no_label``) gets its first character as ``%XX``. Same values, same names."""
    taken = set(reserved)

    def escape(value: str) -> str:
        out = shorten(escape_one(value), MAX_IDENTITY_BYTES)
        return percent_bytes(out[0]) + out[1:] if out in taken else out

    uniq = sorted(set(values))
    return dict(zip(uniq, distinct_texts(uniq, escape, MAX_IDENTITY_BYTES)))


def landmark_classes(classes: Iterable[ObjClass]) -> set[str]:
    """The graph classes whose template has exactly five nodes: face landmarks."""
    return {c.title for c in classes
            if c.shape == "graph" and c.template is not None and len(c.template.node_ids) == LANDMARK_COUNT}


def landmark_points(graph: Graph, template: Sequence[str]) -> list[tuple[float, float]] | None:
    """The five nodes in template order at pixel centres, None when one is missing or disabled."""
    nodes: list[GraphNode | None] = [graph.nodes.get(node_id) for node_id in template]
    if any(n is None or n.disabled for n in nodes):
        return None
    return [(n.x + 0.5, n.y + 0.5) for n in nodes if n is not None]


def number(value: float) -> str:
    """A coordinate as readers parse it back exactly: ``12`` or ``12.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Notes:
    """What a view could not take from the project (project-wide), said once in the problem log
    and in ``README.slyfs.txt`` at the view's root."""

    view: str
    lines: tuple[str, ...]

    def report(self, project: Project) -> None:
        for line in self.lines:
            project.report(Problem(project.root, f"{self.view}: {line}", "see README.slyfs.txt"))

    def static(self) -> tuple[StaticFile, ...]:
        """The README file, or nothing when the project gave the view everything."""
        if not self.lines:
            return ()
        return note_file(self.view, f"slyfs {self.view} view: what this project did not give\n\n"
                         + "".join(f"- {line}\n" for line in self.lines))


V = TypeVar("V")
SCAN_MEMO_ENTRIES = 1 << 18  # tag values kept per annotation version, so that a live edit re-reads one file
_SCANNED: BoundedMemo[tuple] = BoundedMemo(SCAN_MEMO_ENTRIES, lambda value: 1)


def scan_tags(project: Project, what: Hashable, read: Callable[[ItemFacts], V]) -> dict[ItemKey, V]:
    """``read`` of every item's image tags (its facts, which the index keeps, so that a remount parses
    no unchanged annotation), by (dataset, name): the tags these views put into folder and file names
    must all be known before the first folder is listed. ``what`` names ``read`` (the view and the
    tags it reads): values are kept per version of each annotation file, so that the next version of
    a view (a live edit) reads only the files that changed."""
    def value(item: Item) -> tuple:
        return (read(project.facts(item)),)

    out = {}
    for item in project.items():
        if item.fingerprint:
            key = (what, project.meta_fingerprint, item.ann_path, item.fingerprint)
            out[(item.dataset, item.name)] = _SCANNED.get(key, functools.partial(value, item))[0]
        else:
            out[(item.dataset, item.name)] = read(project.facts(item))
    return out


def folders_by_value(values: Mapping[ItemKey, str | None], folders: Mapping[str | None, str],
                     folder: Callable[[str, str], str]) -> tuple[ItemFile, ...]:
    """Each item's image (source bytes) in ``folder(split label, folders[its value])``: one
    ``ItemFile`` per value, holding the items of that value (``None``: the items without one). The
    positions of each value's items in a group are found in one pass shared by all the files."""
    indexes: dict[int, tuple[Sequence[Item], dict[str | None, list[int]]]] = {}

    def by_value(items: Sequence[Item]) -> dict[str | None, list[int]]:
        hit = indexes.get(id(items))
        if hit is None or hit[0] is not items:  # the entry keeps its items alive: an id is not reused
            index: dict[str | None, list[int]] = {}
            for i, item in enumerate(items):
                index.setdefault(values.get((item.dataset, item.name)), []).append(i)
            hit = indexes[id(items)] = (items, index)
        return hit[1]

    def images(value: str | None) -> ItemFile:
        def present(item: Item) -> bool:
            return values.get((item.dataset, item.name)) == value

        def positions(items: Sequence[Item]) -> list[int]:
            return by_value(items).get(value, [])
        sub = folders[value]
        return ItemFile(lambda label: folder(label, sub), lambda item, _: image_node(item), present=present,
                        positions=positions)

    return tuple(images(value) for value in folders)
