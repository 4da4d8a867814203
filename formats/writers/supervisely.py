"""Supervisely view: any source (plain, blob or mixed) shown as a PLAIN Supervisely project.

```
meta.json
<ds>/img/<item>                       the image bytes (from the tar by offset for blob items)
<ds>/ann/<item>.json                  the source annotation file, unchanged
<ds>/img_info/<item>.json             when the source has it, unchanged
<ds>/meta/<item>.json                 when the source has it, unchanged
<ds>/datasets/<child>/...             nested datasets, any depth
```
Files are the source's own bytes; a legacy ``ann/<stem>.json`` is served as ``ann/<item>.json``,
and an item without annotation gets an empty one (size from the image), as the SDK expects one
per image. ``--split`` does not apply (datasets stay datasets). ``--classes`` re-serialises
``meta.json`` and each annotation with only those classes (in the SDK's JSON style);
``--no-empty`` leaves out the items without (kept) objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from slyfs.formats.common.naming import safe_name, split_ext
from slyfs.formats.contract import Generated, Node, SourceBytes, Unavailable, image_node
from slyfs.formats.layout import ItemFile, Layout, StaticFile
from slyfs.formats.model import ImageRef, Item, Problem, Project
from slyfs.formats.readers.supervisely.rewrite import annotation_with_classes, empty_annotation, meta_with_classes
from slyfs.formats.view import ViewOptions, selected_classes

SIDECAR_KINDS = ("img_info", "meta")  # the item JSON files besides ann/ served when the source has them


def _unique(name: str, used: set[str]) -> str:
    """``name`` made a safe component not yet in ``used`` (``~2``, ``~3``… after the stem)."""
    out = safe_name(name)
    k = 1
    while out in used:
        k += 1
        stem, ext = split_ext(name)
        out = safe_name(f"{stem}~{k}{ext}")
    used.add(out)
    return out


def dataset_folders(project: Project) -> dict[str, str]:
    """Output folder of each dataset: ``train/sub`` → ``train/datasets/sub``, every part safe and
    unique among its siblings (datasets are listed parents first, in sorted order)."""
    folders: dict[str, str] = {}
    used: dict[str, set[str]] = {}

    def folder(name: str) -> str:
        if name not in folders:
            parent, _, short = name.rpartition("/")
            base = f"{folder(parent)}/datasets/" if parent else ""
            folders[name] = base + _unique(short, used.setdefault(base, set()))
        return folders[name]

    for ds in project.datasets:
        folder(ds.name)
    return folders


def annotation_node(project: Project, item: Item, kept: tuple[str, ...] | None) -> Node:
    ann = dict(item.sidecars).get("ann")
    if ann is None:
        return Generated(("sly-empty-ann", item.dataset, item.name, item.image),
                         lambda: empty_annotation(*_size(project, item)))
    if kept is None:
        return SourceBytes(ann)
    return Generated(("sly-ann", item.dataset, item.name, item.fingerprint, kept),
                     lambda: _with_classes(project, item, ann, kept))


def _with_classes(project: Project, item: Item, ann: ImageRef, kept: tuple[str, ...]) -> bytes:
    """The annotation with only the kept classes; one that cannot be read or parsed is served
    without labels (as every other view serves it), since its classes cannot be filtered."""
    path = ann.path
    try:
        return annotation_with_classes(path, kept, ann.stamp)
    except (OSError, ValueError, RecursionError) as e:
        project.report(Problem(path, f"annotation unreadable: {e}", "served without labels", item.name))
        return empty_annotation(*_size(project, item))


def _size(project: Project, item: Item) -> tuple[int, int]:
    ann = project.annotation(item)
    return ann.width, ann.height


def meta_node(project: Project, kept: tuple[str, ...] | None) -> Node:
    ref = project.meta_file
    if ref is None:
        return Unavailable("the project was not read from a directory: no meta.json to serve")
    if kept is None:
        return SourceBytes(ref)
    return Generated(("sly-meta", ref.path, project.meta_fingerprint, kept),
                     lambda: meta_with_classes(ref.path, kept))


def dataset_names(items: Sequence[Item]) -> list[str]:
    """The output names of one dataset's items: safe, unique (``~2``… in item order)."""
    used: set[str] = set()
    return [_unique(item.name, used) for item in items]


def json_name(name: str) -> str:
    """An item's JSON file name (shortened again only past 255 bytes)."""
    return safe_name(name + ".json")


def _has(kind: str) -> Callable[[Item], bool]:
    return lambda item: any(k == kind for k, _ in item.sidecars)


def _sidecar_folder(folders: dict[str, str], kind: str) -> Callable[[str], str]:
    return lambda ds: f"{folders[ds]}/{kind}"


def _sidecar(kind: str) -> Callable[[Item, str], Node]:
    return lambda item, name: SourceBytes(dict(item.sidecars)[kind])


def layout(project: Project, options: ViewOptions) -> Layout:
    selected = tuple(c.title for c in selected_classes(project, options))
    kept = None if options.classes is None else selected
    folders = dataset_folders(project)
    meta = meta_node(project, kept)
    return Layout(static=(StaticFile("meta.json", lambda splits: meta),),
                  per_item=(ItemFile(lambda ds: f"{folders[ds]}/img", lambda item, name: image_node(item)),
                            ItemFile(lambda ds: f"{folders[ds]}/ann",
                                     lambda item, name: annotation_node(project, item, kept), json_name),
                            *(ItemFile(_sidecar_folder(folders, kind), _sidecar(kind), json_name, _has(kind))
                              for kind in SIDECAR_KINDS)),
                  group_by="dataset", names=dataset_names)
