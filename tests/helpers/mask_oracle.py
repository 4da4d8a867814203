"""What a mask view must hold, computed from the reader's model alone (never from a writer's
helpers): each image's class and instance rasters painted here with PIL, the labels a mask view
cannot hold, and the sources the mask-view tests mount (both SDK fixtures and generated
``--format-tags`` projects)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slyfs.formats.model import Cuboid2d, Graph, Item, Line, Mask, OrientedBox, PointGeom, Polygon, Project, Rectangle
from tests.conftest import BLOB, PLAIN, fuse_usable, mounted
from tests.helpers.readers import ImportReport, datumaro_import_all, require
from tests.helpers.scripts import load_script
from tests.test_coco_masks import painted

AREA_TYPES = (Rectangle, Polygon, Mask, OrientedBox, Cuboid2d)
NO_AREA = {Line: "line", PointGeom: "point", Graph: "graph"}  # how the problem log names them
SAMPLE_IMAGES = 40
SOURCES = ("fixture-plain", "fixture-blob", "sample-plain", "sample-blob")


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


def make_samples(root: Path) -> dict[str, Path]:
    """A 40-image ``--format-tags`` project in both forms, under ``root``."""
    make_project = load_script("make_sample_project").make_project
    return {form: make_project(root / form, SAMPLE_IMAGES, form, seed=7, format_tags=True)
            for form in ("plain", "blob")}


def source_root(source: str, samples: dict[str, Path]) -> Path:
    kind, form = source.split("-")
    return {"plain": PLAIN, "blob": BLOB}[form] if kind == "fixture" else samples[form]


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


@contextlib.contextmanager
def mounted_all(fmt: str, samples: dict[str, Path], *options: str) -> Iterator[dict[str, Path]]:
    """Every source of ``SOURCES`` mounted as ``fmt`` at once (one mount each for a whole module)."""
    assert fuse_usable(), "FUSE is not usable here (/dev/fuse and libfuse 3 or 2 are required)"
    with contextlib.ExitStack() as stack:
        yield {s: stack.enter_context(mounted(source_root(s, samples), "--format", fmt, *options)) for s in SOURCES}
