"""Market-1501 view (person re-identification crops), as Datumaro's ``market1501`` importer reads it.

```
bounding_box_<subset>/<pid>_c<cam>s<seq>_<frame:06d>_<bbox:02d><ext>   gallery images
query/<same pattern>                                                  images with a ``query`` tag
images_<subset>.txt                                                   the subset's gallery paths
```
The format has no annotations: everything is in the file name, which the reader parses into
``person_id``, ``camera_id`` (the name's camera number - 1), ``track_id``, ``frame_id`` and
``bbox_id``. They come from image tags (``person_id``, ``camera_id`` = the camera number of the
name, ``sequence`` (default 1), ``frame`` (default: the next frame not taken for that person and
camera), ``bbox_id`` (default 0; a name taken already gets the next free one), ``query``); each
``--opt market1501.<x>-tag=NAME`` names another tag. Images are renamed, their bytes unchanged.
An image without a whole-number person and camera has no ids to give: it keeps its own name
(the reader then gives it no attributes) and is reported; so are all labels (the format holds none).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from slyfs.formats.common.identities import (
    Notes,
    image_name,
    scan_tags,
    tag_int,
)
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.splits import item_names, plain_subset_names
from slyfs.formats.common.tags import find_tag, tag_flag, tag_option
from slyfs.formats.contract import Generated, Node, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems
from slyfs.formats.model import Item, ItemFacts, Problem, Project
from slyfs.formats.view import ViewOptions, selected_classes

VIEW = "Market-1501"
PATTERN = re.compile(r"-?\d+_c\d+s\d+_\d+_\d+")  # what the reader parses ids from
QUERY_DIR = "query"

PERSON = tag_option("market1501", "person-id", "person_id", "an image's person id (-1 junk, 0 distractor)")
CAMERA = tag_option("market1501", "camera-id", "camera_id", "an image's camera number as in the name (c1 = 1)")
SEQUENCE = tag_option("market1501", "sequence", "sequence", "an image's sequence number (default 1)")
FRAME = tag_option("market1501", "frame", "frame", "an image's frame number (default: the next free one)")
BBOX = tag_option("market1501", "bbox-id", "bbox_id", "an image's box number in its frame (default 0)")
QUERY = tag_option("market1501", "query", "query", "the flag that puts an image in query/")
OPTIONS = (PERSON, CAMERA, SEQUENCE, FRAME, BBOX, QUERY)


@dataclass(frozen=True, slots=True)
class ReId:
    """What a Market-1501 name says of one image (None: the tag was not given)."""

    person: int
    camera: int
    sequence: int
    frame: int | None
    bbox: int | None
    query: bool


def non_negative(value: int | None) -> int | None:
    return value if value is not None and value >= 0 else None


def unlike_pattern(name: str) -> str:
    """An untagged image's own name, with ``~`` in front if the reader would take ids from it."""
    return "~" + name if PATTERN.match(name) else name


def market_names(ids: Sequence[tuple[tuple[str, str], str, ReId]]) -> dict[tuple[str, str], str]:
    """The name of each image (key, extension, ids), in the given (sorted) order: a missing frame
    is the next one not taken for its person and camera; a name already taken gets the next free
    box number. Same images, same names."""
    frames: dict[tuple[int, int], set[int]] = {}
    for _, _, r in ids:
        if r.frame is not None:
            frames.setdefault((r.person, r.camera), set()).add(r.frame)
    taken: set[tuple[int, int, int, int, int]] = set()
    out = {}
    for key, ext, r in ids:
        frame = r.frame
        if frame is None:
            used = frames.setdefault((r.person, r.camera), set())
            frame = max(used, default=-1) + 1
            used.add(frame)
        bbox = r.bbox or 0
        while (r.person, r.camera, r.sequence, frame, bbox) in taken:
            bbox += 1
        taken.add((r.person, r.camera, r.sequence, frame, bbox))
        pid = f"{r.person:04d}" if r.person >= 0 else str(r.person)
        out[key] = f"{pid}_c{r.camera}s{r.sequence}_{frame:06d}_{bbox:02d}{ext}"
    return out


def layout(project: Project, options: ViewOptions) -> Layout:
    tags = {o.key: options.param(o) for o in OPTIONS}
    kept = {c.title for c in selected_classes(project, options)}

    def read(ann: ItemFacts) -> ReId | None:
        person, camera = tag_int(ann, tags[PERSON.key]), non_negative(tag_int(ann, tags[CAMERA.key]))
        if person is None or camera is None:
            return None
        query = find_tag(ann.tags, tags[QUERY.key])
        sequence = non_negative(tag_int(ann, tags[SEQUENCE.key]))
        return ReId(person, camera, 1 if sequence is None else sequence,
                    non_negative(tag_int(ann, tags[FRAME.key])), non_negative(tag_int(ann, tags[BBOX.key])),
                    query is not None and tag_flag(query.value))

    scanned = scan_tags(project, ("market1501", tuple(tags.values())), read)
    ids = {k: found for k, found in scanned.items() if found is not None}
    untagged: list[Item] = []
    for item in project.items():
        if scanned[(item.dataset, item.name)] is None:
            untagged.append(item)
            project.report(Problem(item.ann_path or f"{item.dataset}/{item.name}",
                                   f"no whole-number {tags[PERSON.key]!r} and {tags[CAMERA.key]!r} tags for "
                                   f"{VIEW}", "served under its own name, without ids", item.name))
    names = market_names([(key, split_ext(key[1])[1], r) for key, r in sorted(ids.items())])
    names.update(zip([(i.dataset, i.name) for i in untagged], map(unlike_pattern, item_names(untagged, image_name))))
    key = (options.key(), tuple(sorted(names.items())))

    notes = []
    if untagged:
        notes.append(f"{len(untagged)} image(s) have no whole-number {tags[PERSON.key]!r} and {tags[CAMERA.key]!r} "
                     "image tags: they keep their own names and have no ids (--opt market1501.person-id-tag=NAME / "
                     "market1501.camera-id-tag=NAME name the tags that hold them)")
    readme = Notes(VIEW, tuple(notes))
    readme.report(project)

    def output_names(items: Sequence[Item]) -> list[str]:
        return [names[(i.dataset, i.name)] for i in items]

    def in_gallery(item: Item) -> bool:
        found = ids.get((item.dataset, item.name))
        return found is None or not found.query

    def in_query(item: Item) -> bool:
        found = ids.get((item.dataset, item.name))
        return found is not None and found.query

    def list_text(split: SplitItems) -> bytes:
        """The split's gallery paths; its labels (the format holds none) are reported here."""
        for item in split.items:
            labels = project.annotation(item).labels
            report_left_out(project, item, VIEW, Counter(GEOMETRY_NAMES[type(label.geometry)]
                                                         for label in labels if label.class_title in kept))
        return "".join(f"bounding_box_{split.label}/{name}\n"
                       for item, name in zip(split.items, split.names) if in_gallery(item)).encode()

    def image_list(split: SplitItems) -> Node:
        return Generated(("market1501-list", split.split, split.key, key), functools.partial(list_text, split))

    def image(item: Item, name: str) -> Node:
        return image_node(item)

    return Layout(
        static=readme.static(),
        per_split=(SplitFile(lambda subset: f"images_{subset}.txt", image_list),),
        per_item=(ItemFile(lambda subset: f"bounding_box_{subset}", image, present=in_gallery),
                  ItemFile(lambda _: QUERY_DIR, image, present=in_query)),
        group_by="split", names=output_names,
        split_labels=lambda splits: plain_subset_names(splits, reserved=(QUERY_DIR,)), epoch=key[1])
