"""LFW view (face verification), as Datumaro's ``lfw`` importer reads it.

```
<subset>/annotations/pairs.txt       P<TAB>n1<TAB>n2 (same person), P1<TAB>n1<TAB>P2<TAB>n2 (two people;
                                     P2 ``-``: n2 is the id of an image without identity), then every
                                     image in no pair: ``P/P_NNNN``, or its own id without identity
<subset>/annotations/people.txt      P<TAB>number of its images here, for every person of the view
<subset>/annotations/landmarks.txt   P/P_NNNN<ext><TAB>x1<TAB>y1…: five-node graphs at pixel centres
<subset>/images/P/P_NNNN<ext>        images in a pair
<subset>/images/P_NNNN<ext>          images with an identity in no pair
<subset>/images/<name>               images without an identity
```
The person is an image tag's value (``lfw.identity-tag``); images are renamed ``P_NNNN``, numbered
per person and subset in (dataset, name) order, bytes unchanged. Pairs come only from an image tag
(``lfw.pair-tag``) naming another image of the same dataset and subset: same person, a positive
pair, else a negative one; none is ever made up. Datumaro looks a line's image up at ``images/<id>``
when it is listed alone but at ``images/P/P_NNNN`` in a pair, hence the two places. Every other
label, and landmarks of images without identity (the reader would give them another image's
label), are counted and reported.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slyfs.formats.common.identities import (
    Notes,
    folders_by_value,
    identity_names,
    image_name,
    image_tag_text,
    landmark_classes,
    landmark_points,
    number,
    scan_tags,
)
from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.splits import item_assigner, item_names
from slyfs.formats.common.tags import tag_option
from slyfs.formats.contract import Generated, Node
from slyfs.formats.layout import Layout, SplitFile, SplitItems
from slyfs.formats.model import Graph, Item, Problem, Project
from slyfs.formats.view import ViewOptions, selected_classes

VIEW = "LFW"
NEGATIVE_UNKNOWN = "-"  # the second person of a negative pair whose image has no identity

IDENTITY = tag_option("lfw", "identity", "identity", "an image's person")
PAIR = tag_option("lfw", "pair", "pair_with", "the name of another image of the same dataset it is paired with")
OPTIONS = (IDENTITY, PAIR)

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Face:
    """One image in the view: its person (token) and number, or its own id without identity."""

    person: str | None
    number: int
    stem: str  # P_NNNN, or the image's own (escaped, distinct) stem
    ext: str


def layout(project: Project, options: ViewOptions) -> Layout:
    identity_tag, pair_tag = options.param(IDENTITY), options.param(PAIR)
    classes = selected_classes(project, options)
    kept = {c.title for c in classes}
    templates = {c.title: c.template.node_ids for c in classes
                 if c.title in landmark_classes(classes) and c.template is not None}
    assign = item_assigner(project, options)
    split_of = {(item.dataset, item.name): split for item in project.items() if (split := assign(item)) is not None}
    values = {k: v for k, v in scan_tags(project, ("lfw", identity_tag, pair_tag), lambda ann: (
        image_tag_text(ann, identity_tag), image_tag_text(ann, pair_tag))).items() if k in split_of}
    people = identity_names([p for p, _ in values.values() if p is not None], reserved=(NEGATIVE_UNKNOWN,))
    faces = _faces(sorted(values), {k: people.get(p) if p else None for k, (p, _) in values.items()}, split_of)
    pairs, unpaired_reasons = _pairs(values, split_of, faces)
    for (dataset, name), reason in unpaired_reasons:
        project.report(Problem(f"{dataset}/{name}", f"pair cannot be expressed in {VIEW}: {reason}", "left out", name))
    paired = {k for pair in pairs for k in pair if faces[k].person is not None}
    all_people = sorted(people.values())
    key = (options.key(), tuple(sorted(faces.items())), tuple(pairs))

    notes = []
    if not people:
        notes.append(f"no image has an {identity_tag!r} tag with a value: no person labels, no pairs "
                     "(--opt lfw.identity-tag=NAME names the image tag that holds the person)")
    if not any(pair for _, pair in values.values()):
        notes.append(f"no image has a {pair_tag!r} tag: pairs.txt lists images only, with no pairs "
                     "(--opt lfw.pair-tag=NAME names the image tag holding the name of the paired image)")
    readme = Notes(VIEW, tuple(notes))
    readme.report(project)

    def key_of(item: Item) -> Key:
        return (item.dataset, item.name)

    def output_names(items: Sequence[Item]) -> list[str]:
        return [faces[key_of(i)].stem + faces[key_of(i)].ext for i in items]

    def pairs_text(split: SplitItems) -> bytes:
        keys = [key_of(i) for i in split.items]
        inside = set(keys)
        lines = []
        for a, b in pairs:
            if a not in inside:
                continue
            fa, fb = faces[a], faces[b]
            if fb.person == fa.person:
                lines.append(f"{fa.person}\t{fa.number}\t{fb.number}")
        for a, b in pairs:
            if a not in inside:
                continue
            fa, fb = faces[a], faces[b]
            if fb.person != fa.person:
                second = f"{fb.person}\t{fb.number}" if fb.person is not None else f"{NEGATIVE_UNKNOWN}\t{fb.stem}"
                lines.append(f"{fa.person}\t{fa.number}\t{second}")
        listed = {k for pair in pairs for k in pair}
        for k in keys:
            if k not in listed:
                face = faces[k]
                lines.append(f"{face.person}/{face.stem}" if face.person is not None else face.stem)
        return "".join(f"{line}\n" for line in lines).encode()

    def people_text(split: SplitItems) -> bytes:
        """Every person of the view, in every subset (the reader merges subsets only when their
        labels agree), with the number of its images in this one."""
        counts = Counter(faces[key_of(i)].person for i in split.items)
        return "".join(f"{p}\t{counts[p]}\n" for p in all_people).encode()

    def landmarks_text(split: SplitItems) -> bytes:
        lines = []
        for item in split.items:
            ann = project.annotation(item)
            face = faces[key_of(item)]
            left_out: Counter[str] = Counter()
            for label in ann.labels:
                if label.class_title not in kept:
                    continue
                points = (landmark_points(label.geometry, templates[label.class_title])
                          if isinstance(label.geometry, Graph) and label.class_title in templates else None)
                if points is None or face.person is None:
                    left_out[GEOMETRY_NAMES[type(label.geometry)]] += 1
                else:
                    coords = "\t".join(number(v) for point in points for v in point)
                    lines.append(f"{face.person}/{face.stem}{face.ext}\t{coords}")
            report_left_out(project, item, VIEW, left_out)
        return "".join(f"{line}\n" for line in lines).encode()

    def split_file(name: str, render: Callable[[SplitItems], bytes]) -> SplitFile:
        def node(split: SplitItems) -> Node:
            return Generated((f"lfw-{name}", split.split, split.key, key), functools.partial(render, split))
        return SplitFile(lambda subset: f"{subset}/annotations/{name}", node)

    in_pair = {k: faces[k].person for k in paired}  # the others are listed alone, at images/<id>
    folders: dict[str | None, str] = {None: ""}
    folders.update((p, p) for p in sorted({p for p in in_pair.values() if p is not None}))
    return Layout(
        static=readme.static(),
        per_split=(split_file("pairs.txt", pairs_text), split_file("people.txt", people_text),
                   split_file("landmarks.txt", landmarks_text)),
        per_item=folders_by_value(in_pair, folders,
                                  lambda subset, person: f"{subset}/images/{person}" if person else f"{subset}/images"),
        group_by="split", names=output_names, epoch=key[1:])


def _faces(keys: Sequence[Key], person_of: dict[Key, str | None], split_of: dict[Key, str]) -> dict[Key, Face]:
    """Each image's person and number (1, 2, … per person and split, in key order), and for the
    images without identity their own stem, made distinct from every ``P_NNNN`` of their split."""
    counts: Counter[tuple[str, str]] = Counter()
    out: dict[Key, Face] = {}
    taken: set[tuple[str, str]] = set()
    for k in keys:
        person = person_of[k]
        if person is not None:
            counts[(split_of[k], person)] += 1
            n = counts[(split_of[k], person)]
            out[k] = Face(person, n, f"{person}_{n:04d}", split_ext(k[1])[1])
            taken.add((split_of[k], out[k].stem))
    by_split: dict[str, list[Key]] = {}
    for k in keys:
        if person_of[k] is None:
            by_split.setdefault(split_of[k], []).append(k)
    for split, ks in by_split.items():
        names = item_names([Item(d, n, None, None) for d, n in ks], image_name)
        for k, name in zip(ks, names):
            stem, ext = split_ext(name)
            while (split, stem) in taken:
                stem = "~" + stem
            taken.add((split, stem))
            out[k] = Face(None, 0, stem, ext)
    return out


def _pairs(values: dict[Key, tuple[str | None, str | None]], split_of: dict[Key, str],
           faces: dict[Key, Face]) -> tuple[list[tuple[Key, Key]], list[tuple[Key, str]]]:
    """The pairs the pair tags name, in key order, and why the others cannot be written."""
    pairs = []
    refused = []
    for k in sorted(values):
        target = values[k][1]
        if target is None:
            continue
        other = (k[0], target)
        if faces[k].person is None:
            refused.append((k, "the image has no identity"))
        elif other not in split_of:
            refused.append((k, f"no image {target!r} in its dataset is in the view"))
        elif split_of[other] != split_of[k]:
            refused.append((k, f"{target!r} is in another split"))
        elif other == k:
            refused.append((k, "an image paired with itself"))
        else:
            pairs.append((k, other))
    return pairs, refused
