"""What a mask view must hold, computed from the reader's model alone (never from a writer's
helpers): each image's class and instance rasters painted here with PIL, the labels a mask view
cannot hold, and the checks every mask view's tests share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from slyfs.formats.contract import Generated, SourceBytes
from slyfs.formats.model import Cuboid2d, Graph, Item, Line, Mask, OrientedBox, PointGeom, Polygon, Project, Rectangle
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN
from tests.helpers.mounts import assert_clean_import
from tests.helpers.readers import ImportReport, datumaro_import_all, require
from tests.helpers.views import view_files
from tests.test_coco_masks import painted

AREA_TYPES = (Rectangle, Polygon, Mask, OrientedBox, Cuboid2d)
NO_AREA = {Line: "line", PointGeom: "point", Graph: "graph"}  # how the problem log names them


@dataclass
class Expected:
    """One image as a mask view must draw it: ``cls`` holds the 1-based meta.json index of the
    class on top (0: background), ``inst`` the instance number on top (1.. in order of first
    label; labels bound by one instance key and class share one), ``inst_class`` the class title
    of each instance, ``left_out`` the labels without pixels by geometry name."""

    cls: np.ndarray
    inst: np.ndarray
    inst_class: dict[int, str]
    left_out: Counter[str]

    def visible(self) -> dict[int, str]:
        """The instances with at least one pixel on top, and their classes."""
        return {int(k): self.inst_class[int(k)] for k in np.unique(self.inst) if k}


def expected(project: Project, item: Item, titles: list[str]) -> Expected:
    ann = project.annotation(item)
    index = {t: k for k, t in enumerate(titles, 1)}
    cls = np.zeros((ann.height, ann.width), dtype=np.int32)
    inst = np.zeros((ann.height, ann.width), dtype=np.int32)
    numbers: dict[object, int] = {}
    inst_class: dict[int, str] = {}
    left_out: Counter[str] = Counter()
    for i, label in enumerate(ann.labels):
        if label.class_title not in index:
            continue
        if not isinstance(label.geometry, AREA_TYPES):
            left_out[NO_AREA[type(label.geometry)]] += 1
            continue
        key = (label.instance, label.class_title) if label.instance is not None else i
        k = numbers.setdefault(key, len(numbers) + 1)
        inst_class[k] = label.class_title
        pixels = painted(label.geometry, ann.width, ann.height)
        cls[pixels] = index[label.class_title]
        inst[pixels] = k
    return Expected(cls, inst, inst_class, left_out)


def imports_by_backend(tree: Path, importer: str) -> Iterator[ImportReport]:
    """Datumaro's import of ``tree`` with its OpenCV image backend (masks decoded by colour), then with
    its PIL one (a palette PNG read as its indices)."""
    require("datumaro")
    from datumaro.util.image import IMAGE_BACKEND, ImageBackend

    for backend in (ImageBackend.cv2, ImageBackend.PIL):
        token = IMAGE_BACKEND.set(backend)
        try:
            report = datumaro_import_all(tree, importer)
        finally:
            IMAGE_BACKEND.reset(token)
        yield report


def assert_reads_back(tree: Path, root: Path, importer: str, counts: dict[tuple[str, str], int]) -> None:
    """Datumaro's ``importer`` reads every image of ``root`` from ``tree`` and the masks ``counts``
    gives, alike with either image backend."""
    n_images = sum(1 for _ in read_project(str(root)).items())
    for report in imports_by_backend(tree, importer):
        assert_clean_import(report, n_images)
        assert report.label_counts() == counts


def assert_left_out_reported(writer: ModuleType, view: str) -> None:
    """Every label of the plain SDK fixture that has no pixels is in the problem log, counted per
    image and geometry kind in the message form the benchmark parses."""
    log = ProblemLog()
    project = read_project(str(PLAIN), report=log)
    titles = [c.title for c in project.meta.classes]
    tree = VirtualTree(view_files(writer, project, ViewOptions()))
    for path in tree.walk_files():
        tree.read_file(path)
    got: Counter[tuple[str | None, str]] = Counter()
    for problem in log.all():
        if f"cannot be expressed in {view}" in problem.message:
            n, kind = problem.message.split(" label(s)")[0].split(" ", 1)
            got[(problem.item, kind)] += int(n)
    want: Counter[tuple[str | None, str]] = Counter()
    for item in project.items():
        for kind, n in expected(project, item, titles).left_out.items():
            want[(item.name, kind)] += n
    assert got == want and sum(want.values()) >= 3


def assert_keys_distinct_and_images_source(writer: ModuleType, image_dirs: tuple[str, ...], mask: str,
                                           other: ViewOptions) -> None:
    """In the blob SDK fixture's view every generated file has its own key, every image under
    ``image_dirs`` is the source's bytes, and the ``mask`` file's key changes with ``other``."""
    project = read_project(str(BLOB))
    files = view_files(writer, project, ViewOptions())
    keys = [n.key for n in files.values() if isinstance(n, Generated)]
    assert len(keys) == len(set(keys))
    assert all(isinstance(n, SourceBytes) for p, n in files.items() if p.startswith(image_dirs))
    changed = view_files(writer, project, other)
    assert files[mask].key != changed[mask].key


def read_label_colors(text: str) -> list[tuple[str, tuple[int, int, int]]]:
    """``label_colors.txt`` lines (``R G B name``) as (name, colour)."""
    out = []
    for line in text.splitlines():
        r, g, b, name = line.split(" ")
        out.append((name, (int(r), int(g), int(b))))
    return out
