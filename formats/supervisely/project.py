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
from typing import Any, Callable, Protocol

from PIL import Image

from formats.memo import BoundedMemo
from formats.model import Annotation, Dataset, ImageRef, Item, Mask, Problem, Project, ProjectMeta, file_stamp
from formats.supervisely.annotation import parse_annotation, parse_size
from formats.supervisely.meta import MetaError, parse_meta
from formats.source_bytes import read_bytes
from formats.supervisely.offsets import BlobEntry, OffsetsError, check_entry, read_offsets

log = logging.getLogger("slyfs.source")

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".mpo", ".bmp", ".png", ".webp", ".tiff", ".tif", ".nrrd", ".jfif"})
RESERVED_DIRS = frozenset({"img", "ann", "img_info", "seg", "meta", "datasets", "blob"})
SIDECAR_DIRS = ("img_info", "meta")  # optional per-item JSON next to ann/, named like it
OFFSETS_SUFFIX = "_offsets.pkl"
MAX_ANN_BYTES = 64 << 20  # an annotation file larger than this is not read (served without labels)
MAX_META_BYTES = 64 << 20  # a meta.json larger than this is not read (the source is not mountable)
HEADER_PROBE_BYTES = 1 << 20
# Parsed annotations kept, so that the files of one image (VOC: 3) share a parse: bounded by an
# estimate of their memory, PARSED_BYTES_PER_JSON_BYTE x the source JSON plus their masks' pixels.
ANNOTATION_CACHE_BYTES = 128 << 20
PARSED_BYTES_PER_JSON_BYTE = 6

Report = Callable[[Problem], None]
Fingerprint = tuple  # file_stamp of a JSON file: (st_dev, st_ino, st_size, st_mtime_ns)


class ScanCache(Protocol):
    """What a persistent index offers the scanner (vfs/index.py implements it): results
    reused while the file or directory they came from is unchanged."""

    def offsets(self, path: str, load: Callable[[], list[BlobEntry]]) -> list[BlobEntry]: ...

    def json_files(self, directory: str, scan: Callable[[dict[str, Fingerprint]], dict[str, Fingerprint]]
                   ) -> dict[str, Fingerprint]: ...


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
    """Entries of a directory; none when it is missing or unreadable (a file that vanishes
    or a permission error degrades that directory only)."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def fingerprint(st: os.stat_result) -> Fingerprint:
    """Changes whenever the file does: its ``file_stamp`` (so ``[2]`` is its size)."""
    return file_stamp(st)


def scan_json_files(directory: str, known: dict[str, Fingerprint]) -> dict[str, Fingerprint]:
    """``*.json`` files in ``directory`` with their fingerprints; names in ``known`` keep
    theirs (a file edited in place is reported by the watcher, not found by listing)."""
    out: dict[str, Fingerprint] = {}
    for e in _scandir(directory):
        if e.name.endswith(".json") and _is_file(e):
            fp = known.get(e.name)
            if fp is None:
                try:
                    fp = fingerprint(e.stat())
                except OSError:
                    continue
            out[e.name] = fp
    return out


def _dataset_dirs(root: str, prefix: str = "", seen: set | None = None) -> list[tuple[str, str]]:
    """(full dataset name, directory) for every dataset below ``root``, depth first, sorted.
    A directory reached twice (a symlink loop) is listed once."""
    seen = set() if seen is None else seen
    out = []
    for e in sorted(_scandir(root), key=lambda e: e.name):
        if e.name in RESERVED_DIRS or e.name.startswith("."):
            continue
        try:
            if not e.is_dir():
                continue
            st = e.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        name = f"{prefix}{e.name}"
        out.append((name, e.path))
        out.extend(_dataset_dirs(os.path.join(e.path, "datasets"), name + "/", seen))
    return out


class _Scanner:
    def __init__(self, root: str, report: Report, cache: ScanCache | None) -> None:
        self.root = root
        self.report = report
        self.cache = cache
        self.tar_stamps: dict[str, tuple | None] = {}

    def tar_stamp(self, tar: str) -> tuple | None:
        if tar not in self.tar_stamps:
            try:
                self.tar_stamps[tar] = file_stamp(os.stat(tar))
            except OSError:
                self.tar_stamps[tar] = None
        return self.tar_stamps[tar]

    def blob_images(self, ds_dir: str, ds_name: str) -> dict[str, ImageRef | None]:
        """Images named by the dataset's offsets files; None for an entry that cannot be served."""
        images: dict[str, ImageRef | None] = {}
        for e in sorted(_scandir(ds_dir), key=lambda e: e.name):
            if not (e.name.endswith(OFFSETS_SUFFIX) and _is_file(e)):
                continue
            tar = os.path.join(self.root, "blob", e.name[: -len(OFFSETS_SUFFIX)] + ".tar")
            try:
                entries = (self.cache.offsets(e.path, lambda p=e.path: read_offsets(p)) if self.cache
                           else read_offsets(e.path))
            except OffsetsError as err:
                self.report(Problem(e.path, err.reason, "offsets file ignored; its images are not served"))
                continue
            tar_stamp = self.tar_stamp(tar)
            for entry in entries:  # the last entry of a name wins, as in the SDK
                why = "the tar is missing" if tar_stamp is None else check_entry(entry, tar_stamp[2])
                if why:
                    self.report(Problem(e.path, f"entry for {tar}: {why}",
                                        "image served as unreadable (EIO)", item=entry.name))
                    images[entry.name] = None
                else:
                    images[entry.name] = ImageRef(tar, entry.start, entry.end - entry.start, tar_stamp)
        return images

    def json_files(self, folder: str) -> dict[str, Fingerprint]:
        if self.cache is None:
            return scan_json_files(folder, {})
        return self.cache.json_files(folder, lambda known: scan_json_files(folder, known))

    @staticmethod
    def sidecars(item_name: str, stem: str, ds_dir: str, ann_path: str | None,
                 side_dirs: dict[str, dict[str, Fingerprint]]) -> tuple[tuple[str, ImageRef], ...]:
        """The item's ann/img_info/meta files, each ``<item>.json`` or the legacy ``<stem>.json``."""
        found = []
        for folder, files in side_dirs.items():
            name = item_name + ".json" if item_name + ".json" in files else stem + ".json"
            fp = files.get(name)
            if fp is not None:  # the item's ann_path string is shared, not copied (10^6 items)
                path = ann_path if folder == "ann" and ann_path else os.path.join(ds_dir, folder, name)
                found.append((folder, ImageRef(path, 0, fp[2], fp)))
        return tuple(found)

    def dataset(self, name: str, ds_dir: str) -> Dataset:
        images: dict[str, ImageRef | None] = self.blob_images(ds_dir, name)
        for e in _scandir(os.path.join(ds_dir, "img")):
            if _ext(e.name) in IMAGE_EXTS and _is_file(e):
                try:
                    st = e.stat()
                except OSError:  # vanished since listed
                    continue
                if e.name in images:
                    self.report(Problem(e.path, "image is both in img/ and in an offsets file",
                                        "the img/ file is served", item=e.name))
                images[e.name] = ImageRef(e.path, 0, st.st_size, file_stamp(st))
        ann_dir = os.path.join(ds_dir, "ann")
        anns = self.json_files(ann_dir)
        side_dirs = {"ann": anns, **{folder: self.json_files(os.path.join(ds_dir, folder)) for folder in SIDECAR_DIRS}}
        used: set[str] = set()
        items = []
        for item_name in sorted(images):
            stem = item_name.rsplit(".", 1)[0] if "." in item_name[1:] else item_name
            ann = item_name + ".json" if item_name + ".json" in anns else (
                stem + ".json" if stem + ".json" in anns else None)
            if ann is not None:
                used.add(ann)
            ann_path = os.path.join(ann_dir, ann) if ann else None
            items.append(Item(dataset=name, name=item_name, image=images[item_name], ann_path=ann_path,
                              fingerprint=anns[ann] if ann else (),
                              sidecars=self.sidecars(item_name, stem, ds_dir, ann_path, side_dirs)))
        for ann_name in sorted(set(anns) - used):  # labels are never dropped for want of an image
            item_name = ann_name[:-5]
            ann_path = os.path.join(ann_dir, ann_name)
            self.report(Problem(ann_path, "annotation has no image",
                                "item kept; its image reads as unreadable (EIO)", item=item_name))
            items.append(Item(dataset=name, name=item_name, image=None, ann_path=ann_path,
                              fingerprint=anns[ann_name],
                              sidecars=self.sidecars(item_name, item_name, ds_dir, ann_path, side_dirs)))
        items.sort(key=lambda i: i.name)
        return Dataset(name=name, items=tuple(items))


def _is_file(e: os.DirEntry) -> bool:
    try:
        return e.is_file()
    except OSError:
        return False


def read_meta(root: str, report: Report) -> tuple[ProjectMeta, ImageRef, tuple]:
    """The parsed meta.json, where its bytes are, and its fingerprint."""
    path = os.path.join(root, "meta.json")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            ref = ImageRef(path, 0, st.st_size, file_stamp(st))
            if st.st_size > MAX_META_BYTES:
                raise ValueError(f"{st.st_size} bytes, over the limit of {MAX_META_BYTES} (MAX_META_BYTES)")
            data = json.load(f)
        warnings: list[str] = []
        meta = parse_meta(data, warnings)
    except FileNotFoundError:
        raise SourceError(f"{root} is not a Supervisely project: no meta.json") from None
    except RecursionError:
        raise SourceError(f"{path}: unusable: JSON nested too deeply") from None
    except (OSError, ValueError, MetaError) as e:
        raise SourceError(f"{path}: unusable: {e}") from None
    for w in warnings:
        report(Problem(path, w, "see message"))
    return meta, ref, (st.st_mtime_ns, st.st_size, st.st_ino)


def read_image_size(ref: ImageRef) -> tuple[int, int] | None:
    """Width and height from the image header, or None when the bytes are not an image."""
    try:
        with Image.open(io.BytesIO(read_bytes(ref, HEADER_PROBE_BYTES))) as img:
            return img.size
    except Exception:  # any unreadable or non-image content
        return None


def _yield_point(obj: dict) -> dict:
    """Called for every JSON object parsed: a Python frame, where another FUSE thread waiting
    for the GIL gets it (the C parser alone holds it for the whole file)."""
    return obj


def load_json_file(path: str) -> Any:
    """A source annotation file's JSON; raises ValueError past ``MAX_ANN_BYTES`` (checked before reading)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_ANN_BYTES:
            raise ValueError(f"file of {size} bytes is over the limit of {MAX_ANN_BYTES} (MAX_ANN_BYTES)")
        return json.load(f, object_hook=_yield_point)


def _parsed_bytes(parsed: tuple[Annotation, int]) -> int:
    return parsed[1]


def estimated_bytes(item: Item, ann: Annotation) -> int:
    """What a parsed annotation costs in memory, roughly: its JSON's size times
    ``PARSED_BYTES_PER_JSON_BYTE``, plus the pixels of its masks (compressed in the JSON)."""
    json_bytes = item.fingerprint[2] if item.fingerprint else 0
    masks = sum(label.geometry.pixels.nbytes for label in ann.labels if isinstance(label.geometry, Mask))
    return 1024 + PARSED_BYTES_PER_JSON_BYTE * json_bytes + masks


def make_annotation_loader(meta: ProjectMeta, report: Report) -> Callable[[Item], Annotation]:
    """Parses an item's annotation; the last ones are kept (``ANNOTATION_CACHE_BYTES``), since several
    files of a view render from one annotation. An edited file is a new Item (new fingerprint): a miss."""
    memo: BoundedMemo[tuple[Annotation, int]] = BoundedMemo(ANNOTATION_CACHE_BYTES, _parsed_bytes)

    def load(item: Item) -> Annotation:
        def costed() -> tuple[Annotation, int]:
            ann = parse(item)
            return ann, estimated_bytes(item, ann)
        return memo.get(item, costed)[0]

    def parse(item: Item) -> Annotation:
        where = item.ann_path or f"{item.dataset}/{item.name}"
        data = None
        if item.ann_path is not None:
            try:
                data = load_json_file(item.ann_path)
            except RecursionError:
                report(Problem(where, "annotation unreadable: JSON nested too deeply",
                               "served without labels", item.name))
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
        try:
            ann = parse_annotation(data if data is not None else {}, meta, size, problems)
        except Exception as e:  # a shape of JSON the parser does not foresee: a bug, but one item's
            log.exception("parsing %s", where)
            report(Problem(where, f"annotation could not be parsed ({type(e).__name__}: {e})",
                           "served without labels", item.name))
            return Annotation(*size)
        for p in problems:  # "<what is wrong>; <what slyfs does>"
            message, _, action = p.rpartition("; ")
            report(Problem(where, message or action, action if message else "see message", item.name))
        return ann

    return load


def read_project(root: str, report: Report | None = None, cache: ScanCache | None = None) -> Project:
    """Scan ``root``. Problems with single files are reported and skipped; only a missing
    directory or an unusable meta.json raises SourceError. ``cache`` (a persistent index)
    spares re-reading offsets files and re-listing annotation folders that did not change."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory")
    problems = ProblemLog() if report is None else None
    sink: Report = report or problems  # type: ignore[assignment]
    meta, meta_file, meta_fingerprint = read_meta(root, sink)
    scanner = _Scanner(root, sink, cache)
    datasets = tuple(scanner.dataset(name, d) for name, d in _dataset_dirs(root))
    return Project(root=root, meta=meta, datasets=datasets,
                   load_annotation=make_annotation_loader(meta, sink), report=sink,
                   problems=tuple(problems.all()) if problems else (),
                   meta_file=meta_file, meta_fingerprint=meta_fingerprint)
