"""What the YOLO views share, itself no format: the detection row (``yolo`` and
``yolo-darknet`` write the same), Ultralytics' ``data.yaml`` and its ``images/`` + ``labels/`` tree."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial

from slyfs.formats.common.geometry import clipped_box, normalized_cxcywh
from slyfs.formats.common.labels import RowsOf, class_ids_of, label_file
from slyfs.formats.common.text import yaml_str
from slyfs.formats.contract import Generated, Node, constant, image_node
from slyfs.formats.layout import ItemFile, Layout, StaticFile
from slyfs.formats.model import Geometry, Item, PointGeom, Project
from slyfs.formats.view import ViewOptions

VAL_NAMES = ("val", "validation", "valid")
BOXES_TITLE = "YOLO boxes"


def box_rows(class_id: int, geometry: Geometry, width: int, height: int) -> list[str] | None:
    """``class cx cy w h`` of the pixels a geometry covers cut to the image (no row when none
    is inside); None for a point, which has no extent."""
    box = clipped_box(geometry, width, height)
    if box is not None:
        cx, cy, w, h = normalized_cxcywh(box, width, height)
        return [f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"]
    return None if isinstance(geometry, PointGeom) else []


def label_text(project: Project, item: Item, class_ids: dict[str, int]) -> bytes:
    """Detection rows, also used by the darknet layout."""
    return label_file(project, item, class_ids, BOXES_TITLE, box_rows)


def data_yaml(names: list[str], split_names: list[str], extra: Sequence[str] = ()) -> bytes:
    """Ultralytics needs ``train`` and ``val``: splits not named val/test train; with no
    val split the training images are also the validation set (said in a comment).
    ``extra`` lines (e.g. ``kpt_shape``) go at the end."""
    val = [s for s in split_names if s in VAL_NAMES]
    test = [s for s in split_names if s == "test"]
    train = [s for s in split_names if s not in val and s not in test] or val or test
    lines = ["# YOLO (Ultralytics) dataset served by slyfs; paths are relative to this file's folder"]

    def key(k: str, dirs: list[str]) -> None:
        items = [yaml_str(f"images/{d}") for d in dirs]
        lines.append(f"{k}: {items[0]}" if len(items) == 1 else f"{k}: [{', '.join(items)}]")

    key("train", train)
    if not val:
        lines.append("# no val split in the source: validating on the training images")
    key("val", val or train)
    if test:
        key("test", test)
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines.extend(f"  {i}: {yaml_str(n)}" for i, n in enumerate(names))
    lines.extend(extra)
    return ("\n".join(lines) + "\n").encode()


LabelRender = Callable[[Item], bytes]


def image_file(folder: Callable[[str], str]) -> ItemFile:
    """An item's image, under its output name, in ``folder(split)``."""
    return ItemFile(folder, lambda item, name: image_node(item))


def label_name(name: str) -> str:
    """``<stem>.txt`` of an output name."""
    return (name.rpartition(".")[0] or name) + ".txt"  # split_ext's stem, inline: this runs per item of a listing


def ultralytics_layout(view: str, names: list[str], render_label: LabelRender, label_key: Hashable,
                       yaml_extra: Sequence[str] = ()) -> Layout:
    """The layout every Ultralytics task shares: ``data.yaml``, ``images/<split>/``,
    ``labels/<split>/<stem>.txt``. ``label_key`` is what, besides the item, the rows depend on."""

    def yaml_node(split_names: Sequence[str]) -> Node:
        data = data_yaml(names, list(split_names) or ["train"], yaml_extra)
        return Generated((f"{view}-data", data), constant(data))

    def label_node(item: Item, name: str) -> Node:
        return Generated((f"{view}-label", label_key, item.dataset, item.name, item.fingerprint),
                         partial(render_label, item))  # half the memory of a lambda

    return Layout(static=(StaticFile("data.yaml", yaml_node),),
                  per_item=(image_file(lambda split: f"images/{split}"),
                            ItemFile(lambda split: f"labels/{split}", label_node, label_name)))


def class_layout(project: Project, options: ViewOptions, view: str, view_title: str, rows_of: RowsOf) -> Layout:
    """An Ultralytics task view whose labels are ``rows_of`` each label of the kept classes."""
    class_ids = class_ids_of(project, options)
    return ultralytics_layout(view, list(class_ids),
                              lambda item: label_file(project, item, class_ids, view_title, rows_of),
                              (tuple(class_ids.items()), options.key()))
