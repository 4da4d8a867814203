"""ImageNet 1.0 view: one class per image from an image tag, in the two layouts Datumaro 1.13.12
reads (and CVAT writes: with images → folders, without → the list).

``--opt imagenet.layout=folders`` (importer ``imagenet``; the default):
```
<class>/<name>          the source image bytes, once per class the image has
no_label/<name>         images without a class
```
``--opt imagenet.layout=txt`` (importer ``imagenet_txt``):
```
synsets.txt             one class a line; its index is the line number from 0
<split>.txt             "<name> <index> [<index> …]" per image of the split
images/<name>           the source image bytes
README.slyfs.md         only when no tag gives classes: what to set
```
Classes come from one image tag (``--opt imagenet.class-tag=NAME``; by default the first
``oneof_string`` tag of meta.json that is not a split tag): a ``oneof_string`` tag's values, in
meta.json order, or a valueless tag's own name. Names are unique over the whole view. Every folder
is a class to Datumaro and any file that is not an image makes it refuse the folders layout, so
that layout holds images only: what is missing is said in the mount's problem log alone, and
images whose extension Datumaro does not take as an image's (``.jfif``, ``.mpo``, ``.nrrd``) are left out and logged.
Objects have no place in ImageNet: each image's are counted by kind in the log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from slyfs.formats.common.labels import facts_left_out, report_left_out
from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import (
    distinct_texts,
    list_component,
    percent_bytes,
    safe_name,
    split_ext,
    text_field,
)
from slyfs.formats.common.splits import SPLIT_TAGS, item_names
from slyfs.formats.common.tagged import note_file
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems, StaticFile
from slyfs.formats.model import Item, Problem, Project, ProjectMeta, Tag, TagMeta
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW_TITLE = "ImageNet"
NO_LABEL = "no_label"
# Datumaro's detector refuses these directory names (any case); import_from does not, CVAT's detector does
REFUSED_DIRS = ("labels", "images", "annotations", "instances")
# what Datumaro's find_images takes for an image (util/image.py IMAGE_EXTENSIONS: not .jfif, .mpo, .nrrd)
IMAGE_EXTS = frozenset((".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".bmp", ".dib", ".tif", ".tiff", ".tga", ".webp",
                        ".pfm", ".sr", ".ras", ".exr", ".hdr", ".pic", ".pbm", ".pgm", ".ppm", ".pxm", ".pnm"))
SYNSETS = "synsets.txt"
README = "README.slyfs.md"  # not *.txt: the list importer takes every .txt but synsets.txt for a subset
CLASSES_MEMO_BYTES = 32 << 20  # each item's classes, read once for every class folder's listing
# kept across the views of a live mount: a rebuild after an edit finds the unchanged items' classes here
_CLASSES: BoundedMemo[list[int]] = BoundedMemo(CLASSES_MEMO_BYTES, lambda ks: 64 + 8 * len(ks))

LAYOUT = FormatOption("imagenet.layout", "folders: <class>/<image> (importer imagenet); "
                      "txt: synsets.txt, <split>.txt, images/ (importer imagenet_txt)",
                      default="folders", choices=("folders", "txt"))
CLASS_TAG = FormatOption("imagenet.class-tag", "the image tag giving each image its class: a oneof_string tag "
                         "(its values are the classes) or a valueless tag (its name is the class); default: "
                         "the first oneof_string tag of meta.json that is not train/val/test", default="")
OPTIONS = (LAYOUT, CLASS_TAG)


# ---------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class ClassSource:
    """Where the classes come from: ``tag`` (None: no usable tag) and its ``classes`` in index order;
    without a tag, ``problem`` says why and what to set."""

    tag: TagMeta | None
    classes: tuple[str, ...]
    problem: str | None = None


def class_source(meta: ProjectMeta, wanted: str) -> ClassSource:
    """The class tag ``--opt imagenet.class-tag`` names (``""``: the first oneof_string tag that is
    not a split tag), or none, with the reason."""
    usable = [t.name for t in meta.tag_metas if t.value_type in ("oneof_string", "none") and t.name not in SPLIT_TAGS]
    hint = (f"set --opt {CLASS_TAG.key}=NAME to a oneof_string image tag (its values are the classes) or a "
            f"valueless one (its name is the class); usable tags in meta.json: {', '.join(usable) or 'none'}")
    if not wanted:
        tag = next((t for t in meta.tag_metas if t.value_type == "oneof_string" and t.name not in SPLIT_TAGS), None)
        if tag is None:
            return ClassSource(None, (), f"no oneof_string image tag in meta.json gives classes: every image is "
                                         f"in {NO_LABEL}; {hint}")
        return ClassSource(tag, tag.values)
    tag = next((t for t in meta.tag_metas if t.name == wanted), None)
    if tag is None:
        return ClassSource(None, (), f"tag {wanted!r} is not in meta.json: every image is in {NO_LABEL}; {hint}")
    if tag.value_type == "none":
        return ClassSource(tag, (tag.name,))
    if tag.value_type == "oneof_string":
        return ClassSource(tag, tag.values)
    return ClassSource(None, (), f"tag {wanted!r} takes free values ({tag.value_type}), so its classes are not "
                                 f"known before every image is read: every image is in {NO_LABEL}; {hint}")


def _folder_name(text: str) -> str:
    """A class as one folder name that no reader takes for something else."""
    name = safe_name(text)
    if name == NO_LABEL or name.lower() in REFUSED_DIRS:
        name = percent_bytes(name[0]) + name[1:]
    return name


def class_folders(classes: Sequence[str]) -> list[str]:
    """Each class's folder: the class as one path component (``/`` and controls as ``%XX``), a class
    called ``no_label`` or a name Datumaro's detector refuses with its first letter as ``%XX``;
    distinct classes keep distinct folders."""
    return distinct_texts(list(classes), _folder_name)


def synset_names(classes: Sequence[str]) -> list[str]:
    """Each class as one ``synsets.txt`` line (the reader strips lines: blanks at either end and
    line breaks as ``%XX``), distinct for distinct classes."""
    return distinct_texts(list(classes), text_field)


def txt_split_labels(splits: Sequence[str]) -> dict[str, str]:
    """``<split>.txt`` names: a split called ``synsets`` (the class list's name) becomes ``synsets~2``."""
    return {s: f"{s}~2" if s == split_ext(SYNSETS)[0] else s for s in splits}


def item_classes(tags: Sequence[Tag], source: ClassSource) -> list[int]:
    """The indices of the classes an image's tags give it, each once, in tag order."""
    tag = source.tag
    if tag is None:
        return []
    out: list[int] = []
    for t in tags:
        if t.name != tag.name:
            continue
        value = t.name if tag.value_type == "none" else t.value
        if isinstance(value, str) and value in source.classes:
            k = source.classes.index(value)
            if k not in out:
                out.append(k)
    return out


def split_list(names: Sequence[str], classes: Sequence[list[int]]) -> bytes:
    """A ``<split>.txt``: each image's name, then its class indices."""
    return "".join(" ".join([name, *map(str, ks)]) + "\n" for name, ks in zip(names, classes)).encode("utf-8")


# ---------------------------------------------------------------- the view


def layout(project: Project, options: ViewOptions) -> Layout:
    source = class_source(project.meta, options.param(CLASS_TAG))
    if source.problem:
        project.report(Problem(project.root, source.problem, "images served without classes"))
    kept = {c.title for c in selected_classes(project, options)}
    key = (project.root, project.report, source.tag, source.classes, frozenset(kept))  # report: each log hears once

    def read(item: Item) -> list[int]:
        """The item's classes; its objects, which ImageNet has no place for, are reported. Both from
        the facts the index keeps: a remount parses no unchanged annotation."""
        facts = project.facts(item)
        report_left_out(project, item, VIEW_TITLE, facts_left_out(facts, kept))
        return item_classes(facts.tags, source)

    def classes_of(item: Item) -> list[int]:
        return _CLASSES.get((key, item), lambda: read(item))

    if options.param(LAYOUT) == "txt":
        return _txt_layout(project, source, classes_of)
    return _folder_layout(project, source, classes_of)


def _image(item: Item, name: str) -> Node:
    return image_node(item)


def _folder_layout(project: Project, source: ClassSource, classes_of: Callable[[Item], list[int]]) -> Layout:
    def is_image(item: Item) -> bool:
        if split_ext(item.name)[1].lower() in IMAGE_EXTS:
            return True
        project.report(Problem(item.ann_path or f"{item.dataset}/{item.name}",
                               "not an image extension Datumaro's imagenet reader takes", "left out", item.name))
        return False

    def holds(k: int) -> Callable[[Item], bool]:
        return lambda item: is_image(item) and k in classes_of(item)

    def unlabelled(item: Item) -> bool:
        return is_image(item) and not classes_of(item)

    folders = class_folders(source.classes)
    per_item = [ItemFile(functools.partial(_fixed, folder), _image, present=holds(k))
                for k, folder in enumerate(folders)]
    per_item.append(ItemFile(functools.partial(_fixed, NO_LABEL), _image, present=unlabelled))
    return Layout(per_item=tuple(per_item), group_by="all")


def _fixed(folder: str, label: str) -> str:
    return folder


def _txt_layout(project: Project, source: ClassSource, classes_of: Callable[[Item], list[int]]) -> Layout:
    synsets = "".join(f"{n}\n" for n in synset_names(source.classes)).encode("utf-8")
    static = [StaticFile(SYNSETS, lambda splits: Generated(("imagenet-synsets", synsets), constant(synsets)))]
    if source.problem:
        static += note_file("imagenet", f"# ImageNet view: what is missing\n\n{source.problem}\n", README)
    tag_key = (source.tag, source.classes)

    def split_file(split: SplitItems) -> Node:
        def render() -> bytes:
            return split_list(split.names, [classes_of(item) for item in split.items])
        return Generated(("imagenet-list", split.split, split.key, tag_key), render)

    return Layout(static=tuple(static), per_split=(SplitFile(lambda label: f"{label}.txt", split_file),),
                  per_item=(ItemFile(lambda _: "images", _image, present=_not_txt),), group_by="all",
                  names=functools.partial(item_names, escape=list_component), split_labels=txt_split_labels,
                  default_splits=("train",))


def _not_txt(item: Item) -> bool:
    """The list importer takes every ``*.txt`` below the root for a subset: an image called so is not served."""
    return not item.name.lower().endswith(".txt")
