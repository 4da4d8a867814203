"""A Supervisely project's annotations read straight from its JSON files, for tests that compute
what a view must hold without the reader or the writers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from tests.conftest import PLAIN
from tests.helpers.mounts import assert_clean_import
from tests.helpers.readers import ImportReport
from tests.helpers.views import view_files, write_view


@dataclass(frozen=True)
class SourceAnnotation:
    dataset: str  # "train/sub" for a nested dataset (the "datasets/" folders left out)
    name: str  # the item name, extension included
    data: dict  # the parsed annotation JSON
    path: Path  # the annotation file

    @property
    def top(self) -> str:
        return self.dataset.split("/", 1)[0]

    @property
    def image(self) -> Path:
        """The image file beside the annotation (a plain project's; a blob project has none)."""
        return self.path.parent.parent / "img" / self.name


def source_annotations(root: Path) -> Iterator[SourceAnnotation]:
    """Every ``ann/<item>.json`` under ``root``, in path order."""
    for path in sorted(root.rglob("ann/*.json")):
        parts = path.parent.parent.relative_to(root).parts
        dataset = "/".join(p for i, p in enumerate(parts) if not (i % 2 and p == "datasets"))
        yield SourceAnnotation(dataset, path.name[: -len(".json")], json.loads(path.read_text(encoding="utf-8")), path)


def meta_of(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text(encoding="utf-8"))


def polygon_is_mask(obj: dict) -> bool:
    """Whether a source polygon has holes or fewer than three distinct vertices: what the views
    that hold polygons write as a mask instead."""
    exterior = {tuple(p) for p in obj["points"]["exterior"]}
    return bool(obj["points"].get("interior")) or len(exterior) < 3


ODD_RENAMES = {"train": "my train_set ü", "val": "v" * 90 + "_set"}  # spaces, ``_``, non-ASCII, long


def odd_names_view(fmt: str, dest: Path) -> tuple[Path, Path]:
    """(source, view written out) for a copy of the plain SDK fixture under ``dest`` whose datasets
    are renamed as ``ODD_RENAMES`` says (its images already have spaces, non-ASCII and collisions)."""
    root = dest / "p"
    shutil.copytree(PLAIN, root)
    for old, new in ODD_RENAMES.items():
        (root / old).rename(root / new)
    return root, write_view(view_files([fmt], read_project(str(root)), ViewOptions()), dest / "view")


def assert_odd_names_read_back(report: ImportReport, root: Path, subsets: list[str]) -> None:
    """An import of ``odd_names_view``: clean, in the ``subsets`` the view made, one item per
    source image with distinct ids, the odd image names among them as the reader keeps them."""
    assert_clean_import(report)
    assert sorted({item.subset for item in report.dataset}) == subsets
    ids = {item.id for item in report.dataset}
    assert len(ids) == len(report.dataset) == sum(1 for _ in source_annotations(root))
    assert {"straße_ü", "img 002 space", "dup_jpg", "dup_png"} <= ids
