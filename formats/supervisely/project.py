"""Scan a Supervisely project directory (plain, blob or mixed) into the neutral model.

Scanning lists files and reads ``meta.json`` and the offsets files; it never opens an
annotation. Annotations are parsed when a view renders a file that needs them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from typing import Callable

from PIL import Image

from formats.model import Annotation, Dataset, ImageRef, Item, Problem, Project, ProjectMeta
from formats.supervisely.annotation import parse_annotation, parse_size
from formats.supervisely.meta import MetaError, parse_meta
from formats.supervisely.offsets import OffsetsError, check_entry, read_offsets

log = logging.getLogger("slyfs.source")

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".mpo", ".bmp", ".png", ".webp", ".tiff", ".tif", ".nrrd", ".jfif"})
RESERVED_DIRS = frozenset({"img", "ann", "img_info", "seg", "meta", "datasets", "blob"})
SIDECAR_DIRS = ("img_info", "meta")  # optional per-item JSON next to ann/, named like it
OFFSETS_SUFFIX = "_offsets.pkl"
MAX_ANN_BYTES = 256 << 20
HEADER_PROBE_BYTES = 1 << 20

Report = Callable[[Problem], None]


class SourceError(Exception):
    """The source cannot be mounted at all (no such directory, no usable meta.json)."""


class ProblemLog:
    """Collects problems once each (a re-rendered file must not repeat them) and logs them."""

    def __init__(self) -> None:
        self._seen: dict[tuple, Problem] = {}
        self._lock = threading.Lock()

    def __call__(self, problem: Problem) -> None:
        key = (problem.path, problem.item, problem.message)
        with self._lock:
            if key in self._seen:
                return
            self._seen[key] = problem
        log.warning("%s", problem)

    def all(self) -> list[Problem]:
        with self._lock:
            return list(self._seen.values())


def _ext(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _json_files(folder: str) -> dict[str, os.DirEntry]:
    return {e.name: e for e in _scandir(folder) if e.name.endswith(".json") and e.is_file()}


def _dataset_dirs(root: str, prefix: str = "") -> list[tuple[str, str]]:
    """(full dataset name, directory) for every dataset below ``root``, depth first, sorted."""
    out = []
    for e in sorted(_scandir(root), key=lambda e: e.name):
        if e.is_dir() and e.name not in RESERVED_DIRS and not e.name.startswith("."):
            name = f"{prefix}{e.name}"
            out.append((name, e.path))
            out.extend(_dataset_dirs(os.path.join(e.path, "datasets"), name + "/"))
    return out


class _Scanner:
    def __init__(self, root: str, report: Report) -> None:
        self.root = root
        self.report = report
        self.tar_sizes: dict[str, int | None] = {}

    def tar_size(self, tar: str) -> int | None:
        if tar not in self.tar_sizes:
            try:
                self.tar_sizes[tar] = os.stat(tar).st_size
            except OSError:
                self.tar_sizes[tar] = None
        return self.tar_sizes[tar]

    def blob_images(self, ds_dir: str, ds_name: str) -> dict[str, ImageRef | None]:
        """Images named by the dataset's offsets files; None for an entry that cannot be served."""
        images: dict[str, ImageRef | None] = {}
        for e in sorted(_scandir(ds_dir), key=lambda e: e.name):
            if not (e.name.endswith(OFFSETS_SUFFIX) and e.is_file()):
                continue
            tar = os.path.join(self.root, "blob", e.name[: -len(OFFSETS_SUFFIX)] + ".tar")
            try:
                entries = read_offsets(e.path)
            except OffsetsError as err:
                self.report(Problem(e.path, err.reason, "offsets file ignored; its images are not served"))
                continue
            tar_size = self.tar_size(tar)
            for entry in entries:  # the last entry of a name wins, as in the SDK
                why = "the tar is missing" if tar_size is None else check_entry(entry, tar_size)
                if why:
                    self.report(Problem(e.path, f"entry for {tar}: {why}",
                                        "image served as unreadable (EIO)", item=entry.name))
                    images[entry.name] = None
                else:
                    images[entry.name] = ImageRef(tar, entry.start, entry.end - entry.start)
        return images

    @staticmethod
    def sidecars(item_name: str, stem: str, ann: os.DirEntry | None,
                 side_dirs: dict[str, dict[str, os.DirEntry]]) -> tuple[tuple[str, ImageRef], ...]:
        """The item's ann/img_info/meta files, each ``<item>.json`` or the legacy ``<stem>.json``."""
        found = [("ann", ann)] if ann is not None else []
        for folder, files in side_dirs.items():
            side = files.get(item_name + ".json") or files.get(stem + ".json")
            if side is not None:
                found.append((folder, side))
        return tuple((folder, ImageRef(e.path, 0, e.stat().st_size)) for folder, e in found)

    def dataset(self, name: str, ds_dir: str) -> Dataset:
        images: dict[str, ImageRef | None] = self.blob_images(ds_dir, name)
        for e in _scandir(os.path.join(ds_dir, "img")):
            if _ext(e.name) in IMAGE_EXTS and e.is_file():
                if e.name in images:
                    self.report(Problem(e.path, "image is both in img/ and in an offsets file",
                                        "the img/ file is served", item=e.name))
                images[e.name] = ImageRef(e.path, 0, e.stat().st_size)
        anns = _json_files(os.path.join(ds_dir, "ann"))
        side_dirs = {folder: _json_files(os.path.join(ds_dir, folder)) for folder in SIDECAR_DIRS}
        used: set[str] = set()
        items = []
        for item_name in sorted(images):
            stem = item_name.rsplit(".", 1)[0] if "." in item_name[1:] else item_name
            ann = anns.get(item_name + ".json") or anns.get(stem + ".json")
            fingerprint: tuple = ()
            if ann is not None:
                used.add(ann.name)
                st = ann.stat()
                fingerprint = (st.st_mtime_ns, st.st_size, st.st_ino)
            items.append(Item(dataset=name, name=item_name, image=images[item_name],
                              ann_path=ann.path if ann else None, fingerprint=fingerprint,
                              sidecars=self.sidecars(item_name, stem, ann, side_dirs)))
        for ann_name in sorted(set(anns) - used):  # labels are never dropped for want of an image
            item_name = ann_name[:-5]
            self.report(Problem(anns[ann_name].path, "annotation has no image",
                                "item kept; its image reads as unreadable (EIO)", item=item_name))
            ann = anns[ann_name]
            st = ann.stat()
            items.append(Item(dataset=name, name=item_name, image=None, ann_path=ann.path,
                              fingerprint=(st.st_mtime_ns, st.st_size, st.st_ino),
                              sidecars=self.sidecars(item_name, item_name, ann, side_dirs)))
        items.sort(key=lambda i: i.name)
        return Dataset(name=name, items=tuple(items))


def read_meta(root: str, report: Report) -> tuple[ProjectMeta, ImageRef, tuple]:
    """The parsed meta.json, where its bytes are, and its fingerprint."""
    path = os.path.join(root, "meta.json")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            ref = ImageRef(path, 0, st.st_size)
            data = json.load(f)
        warnings: list[str] = []
        meta = parse_meta(data, warnings)
    except FileNotFoundError:
        raise SourceError(f"{root} is not a Supervisely project: no meta.json") from None
    except (OSError, ValueError, MetaError) as e:
        raise SourceError(f"{path}: unusable: {e}") from None
    for w in warnings:
        report(Problem(path, w, "see message"))
    return meta, ref, (st.st_mtime_ns, st.st_size, st.st_ino)


def read_image_size(ref: ImageRef) -> tuple[int, int] | None:
    """Width and height from the image header, or None when the bytes are not an image."""
    try:
        fd = os.open(ref.path, os.O_RDONLY)
        try:
            head = os.pread(fd, min(ref.size, HEADER_PROBE_BYTES), ref.offset)
        finally:
            os.close(fd)
        with Image.open(io.BytesIO(head)) as img:
            return img.size
    except Exception:  # any unreadable or non-image content
        return None


def make_annotation_loader(meta: ProjectMeta, report: Report) -> Callable[[Item], Annotation]:
    def load(item: Item) -> Annotation:
        where = item.ann_path or f"{item.dataset}/{item.name}"
        data = None
        if item.ann_path is not None:
            try:
                if os.path.getsize(item.ann_path) > MAX_ANN_BYTES:
                    raise ValueError("file is larger than any annotation should be")
                with open(item.ann_path, "rb") as f:
                    data = json.load(f)
            except (OSError, ValueError) as e:
                report(Problem(where, f"annotation unreadable: {e}", "served without labels", item.name))
        size = parse_size(data)
        if size is None:
            size = read_image_size(item.image) if item.image else None
            if data is not None or item.ann_path is None:
                report(Problem(where, "no annotation" if item.ann_path is None else "annotation has no valid 'size'",
                               "size taken from the image" if size else "image skipped: size unknown", item.name))
            if size is None:
                return Annotation(0, 0)
        problems: list[str] = []
        ann = parse_annotation(data if data is not None else {}, meta, size, problems)
        for p in problems:
            report(Problem(where, p, "see message", item.name))
        return ann

    return load


def read_project(root: str, report: Report | None = None) -> Project:
    """Scan ``root``. Problems with single files are reported and skipped; only a missing
    directory or an unusable meta.json raises SourceError."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory")
    problems = ProblemLog() if report is None else None
    sink: Report = report or problems  # type: ignore[assignment]
    meta, meta_file, meta_fingerprint = read_meta(root, sink)
    scanner = _Scanner(root, sink)
    datasets = tuple(scanner.dataset(name, d) for name, d in _dataset_dirs(root))
    return Project(root=root, meta=meta, datasets=datasets,
                   load_annotation=make_annotation_loader(meta, sink), report=sink,
                   problems=tuple(problems.all()) if problems else (),
                   meta_file=meta_file, meta_fingerprint=meta_fingerprint)
