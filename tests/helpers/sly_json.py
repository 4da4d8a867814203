"""A Supervisely project read from its JSON files alone, for expectations that must not come from
the view code: the annotation of each item, the tags of an object, the hostile project the
text and tracking views are checked on, and the checks those views share."""

from __future__ import annotations

import math
from pathlib import Path

from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.splits import item_names
from slyfs.formats.model import Item, Project
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from tests.helpers.hostile import HOSTILE_NAMES, hostile_text_project
from tests.helpers.mounts import assert_clean_import, tagged
from tests.helpers.readers import ImportReport, datumaro_import_all, require
from tests.helpers.source import source_annotations
from tests.helpers.views import view_files, write_view


def annotations(root: Path) -> dict[tuple[str, str], dict]:
    """(dataset full name, item name) → the item's annotation JSON."""
    return {(a.dataset, a.name): a.data for a in source_annotations(root)}


def items_by_split(root: Path) -> dict[str, list[tuple[str, str, dict]]]:
    """Top-level dataset → its items (dataset, name, annotation JSON), sorted by (dataset, name), as
    ``--split dataset`` groups them. The item list is the reader's (images without an annotation too)."""
    anns = annotations(root)
    out: dict[str, list[tuple[str, str, dict]]] = {}
    for item in read_project(str(root)).items():
        ann = anns.get((item.dataset, item.name), {"size": {"width": 0, "height": 0}, "objects": [], "tags": []})
        out.setdefault(item.dataset.split("/", 1)[0], []).append((item.dataset, item.name, ann))
    return {split: sorted(items, key=lambda i: (i[0], i[1])) for split, items in out.items()}


def output_stems(items: list[tuple[str, str, dict]]) -> list[str]:
    """The file stems the views give a folder of these items (the shared unique-name rule, which
    tests/test_names_text.py checks on its own): what files are matched to source items by."""
    return [split_ext(n)[0] for n in item_names([Item(d, n, None, None) for d, n, _ in items])]


def tag(obj: dict, name: str) -> tuple[bool, object]:
    """Whether the object (or annotation) has tag ``name``, and its value."""
    for t in obj.get("tags", []):
        if t.get("name") == name:
            return True, t.get("value")
    return False, None


def inside(box: tuple[int, int, int, int], ann: dict) -> bool:
    """Whether an inclusive pixel box has a pixel inside the image."""
    w, h = ann["size"]["width"], ann["size"]["height"]
    left, top, right, bottom = box
    return right >= 0 and bottom >= 0 and left < w and top < h


def cut_edge_box(box: tuple[int, int, int, int], ann: dict) -> tuple[float, float, float, float]:
    """x, y, w, h of an inclusive pixel box as an edge box cut to the image."""
    w, h = ann["size"]["width"], ann["size"]["height"]
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(w, box[2] + 1), min(h, box[3] + 1)
    return (x0, y0, x1 - x0, y1 - y0)


def close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=1e-5) for x, y in zip(a, b))


def hostile_text_import(dest: Path, view: str, importer: str,
                        folder: str = "") -> tuple[Path, Project, Path, ImportReport]:
    """(source, its model, the view written out, the import) of the hostile text project's ``view``
    written under ``dest`` and read by Datumaro's ``importer`` (from ``folder`` of the view), checked
    clean with an item for every image."""
    require("datumaro")
    root = hostile_text_project(dest / "src")
    project = read_project(str(root))
    out = write_view(view_files([view], project, ViewOptions()), dest / "view")
    report = datumaro_import_all(out / folder, importer)
    assert_clean_import(report, len(HOSTILE_NAMES), no_warnings=True)
    return root, project, out, report


def assert_missing_tag_said(note: Path, log: Path, source: Path, option: str, message: str) -> None:
    """A view of a project without the tag it needs has ``note`` naming the ``option`` that would
    fill it, and the problem log has ``message``; the tagged samples' views have no note."""
    assert note.exists() != tagged(source), note
    if not tagged(source):
        assert option in note.read_text()
        assert message in log.read_text()
