"""Scan a Supervisely project directory (plain, blob or mixed) into the neutral model.

Scanning lists files and reads ``meta.json`` and the offsets files; it never opens an
annotation. Annotations are parsed when a view renders a file that needs them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from functools import partial
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

from PIL import Image

from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import printable
from slyfs.formats.contract import Progress, SourceChanged, UserError
from slyfs.formats.model import (
    Annotation,
    Dataset,
    ImageRef,
    Item,
    ItemFacts,
    Mask,
    Problem,
    Project,
    ProjectMeta,
    Stamp,
    file_stamp,
)
from slyfs.formats.readers.supervisely.annotation import parse_annotation, parse_size
from slyfs.formats.readers.supervisely.meta import MetaError, parse_meta
from slyfs.formats.readers.supervisely.offsets import (
    BlobEntry,
    Entries,
    OffsetsError,
    check_entry,
    entry_columns,
    read_offsets,
)
from slyfs.formats.source_bytes import NotRegularFile, is_special, open_regular, read_bytes

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
PROGRESS_EVERY_ITEMS = 8192
KEPT_PROBLEMS = 100_000  # problems a mount remembers (and does not log twice); ~300 bytes each
NOT_OPENED = "never opened: treated as missing"


class ScanCache(Protocol):
    """What a persistent index offers the scanner (index.py's SourceIndex implements it): results
    reused while the file or directory they came from is unchanged."""

    def offsets(self, path: str, load: Callable[[], list[BlobEntry]]) -> Entries:
        """The offsets file's entries as columns (names, starts, ends), ``load``ed when not known."""
        ...

    def json_files(self, directory: str, scan: Callable[[dict[str, Stamp]], dict[str, Stamp]]
                   ) -> dict[str, Stamp]: ...

    def facts(self, path: str, key: tuple[int, ...]) -> ItemFacts | None:
        """The facts recorded of the annotation file ``path`` under ``key``, if any."""
        ...

    def record_facts(self, path: str, key: tuple[int, ...], facts: ItemFacts) -> None: ...


class SourceError(UserError):
    """The source cannot be mounted at all (no such directory, no usable meta.json)."""


class ProblemLog:
    """Collects problems once each (a re-rendered file must not repeat them) and logs them.
    ``keep``: how many it remembers, the most recently reported (None: all, for ``slyfs check``);
    a mount's log is bounded, since a view may report something of every image (ImageNet holds no
    objects) and a million remembered problems would cost hundreds of MB. A problem forgotten and
    met again is logged again."""

    def __init__(self, keep: int | None = KEPT_PROBLEMS) -> None:
        self._seen: OrderedDict[tuple, Problem] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def __call__(self, problem: Problem) -> None:
        key = (problem.path, problem.item, problem.message)
        with self._lock:
            if key in self._seen:
                if self._keep is not None:
                    self._seen.move_to_end(key)  # recently met: forgotten last
                return
            self._seen[key] = problem
            if self._keep is not None and len(self._seen) > self._keep:
                self._seen.popitem(last=False)
        log.warning("%s", printable(str(problem)))  # names from the source may hold terminal controls

    def all(self) -> list[Problem]:
        with self._lock:
            return list(self._seen.values())


class LinkGuard:
    """Symbolic links that resolve outside the project root are not followed unless allowed:
    through an ``allow_other`` mount every local user could read what such a link names
    (``img/x.jpg -> /etc/shadow``). Links that stay within the root work as their targets.
    Each link component of a scanned path is checked, so every path the scan keeps is inside."""

    def __init__(self, root: str, report: Report, follow: bool) -> None:
        self.root = os.path.realpath(root)
        self.report = report
        self.follow = follow

    def outside(self, path: str, is_link: bool) -> str | None:
        """The target of ``path`` if it is a link that leads outside the root and is not followed."""
        if self.follow or not is_link:
            return None
        target = os.path.realpath(path)
        return None if os.path.commonpath([self.root, target]) == self.root else target

    def _leaves(self, path: str, is_link: bool, action: str, item: str | None) -> bool:
        target = self.outside(path, is_link)
        if target is None:
            return False
        self.report(Problem(path, f"symbolic link to {target}, outside the project",
                            f"not followed: {action} (--follow-external-links follows it)", item))
        return True

    def entry(self, e: os.DirEntry, action: str, item: str | None = None) -> bool:
        """Whether the listed ``e`` is a link leading outside the root (reported if so)."""
        return self._leaves(e.path, _is_link(e), action, item)

    def path(self, path: str, action: str) -> bool:
        """Whether ``path`` is a link leading outside the root (reported if so)."""
        return self._leaves(path, os.path.islink(path), action, None)


def is_image_name(name: str) -> bool:
    """Whether a file of ``img/`` called ``name`` is an image the scan takes (by its extension)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTS


def dataset_dir(root: str, name: str) -> str:
    """The folder of the dataset with full name ``name`` ("a/b" lives in ``a/datasets/b``)."""
    return os.path.join(root, "/datasets/".join(name.split("/")))


def _scandir(path: str, report: Report, unreadable: str) -> list[os.DirEntry]:
    """Entries of a directory; none when it is missing or unreadable (a permission error
    degrades that directory only, and is reported naming it, with ``unreadable`` as what it costs)."""
    try:
        os.stat(os.path.join(path, "."))  # search (x) permission: without it no entry could be stat'ed or opened
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        report(Problem(path, f"folder unreadable: {e.strerror}", unreadable))
        return []


def _listed(e: os.DirEntry) -> os.stat_result | NotRegularFile | None:
    """A listed file's stat; NotRegularFile for a FIFO, socket or device (the caller reports it,
    nothing opens it); None for anything else (a directory, a dangling link, a file gone since listed)."""
    try:
        st = e.stat()
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode):
        return st
    return NotRegularFile(st.st_mode) if is_special(st.st_mode) else None


def scan_json_files(directory: str, known: dict[str, Stamp], report: Report, links: LinkGuard | None = None,
                    entries: list[os.DirEntry] | None = None) -> dict[str, Stamp]:
    """``*.json`` files in ``directory`` (or among its ``entries`` listed before) with their
    stamps; names in ``known`` keep theirs (a file edited in place is reported by the watcher,
    not found by listing). Links that ``links`` does not follow are left out. A folder holds up
    to an annotation per image, and a first mount lists them all: one pass."""
    out: dict[str, Stamp] = {}
    unreadable = ("its items are served without labels" if os.path.basename(directory) == "ann"
                  else "its files are not served")
    guard = links is not None and not links.follow
    for e in _scandir(directory, report, unreadable) if entries is None else entries:
        name = e.name
        if not name.endswith(".json"):
            continue
        if guard:
            try:
                is_link = e.is_symlink()
            except OSError:
                is_link = False
            if is_link and links.entry(e, "file left out", name[:-5]):  # type: ignore[union-attr]
                continue
        fp = known.get(name) if known and _is_file(e) else None
        if fp is None:
            listed = _listed(e)
            if isinstance(listed, NotRegularFile):
                report(Problem(e.path, str(listed), NOT_OPENED))
            if not isinstance(listed, os.stat_result):  # a directory, a dangling link, gone since listed
                continue
            fp = file_stamp(listed)
        out[name] = fp
    return out


def _dataset_dirs(root: str, report: Report, links: LinkGuard, prefix: str = "", seen: set | None = None
                  ) -> list[tuple[str, str]]:
    """(full dataset name, directory) for every dataset below ``root``, depth first, sorted.
    A directory reached twice (a symlink loop) is listed once; one that cannot be entered is reported."""
    seen = set() if seen is None else seen
    out = []
    for e in sorted(_scandir(root, report, "its datasets are not served"), key=lambda e: e.name):
        if e.name in RESERVED_DIRS or e.name.startswith("."):
            continue
        try:
            if not e.is_dir():
                continue
            st = e.stat()
        except OSError:
            continue
        if links.entry(e, "dataset left out"):
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            os.stat(os.path.join(e.path, "."))  # needs search (x) permission on the folder
        except OSError as err:
            report(Problem(e.path, f"dataset folder cannot be entered: {err.strerror}", "its items are not served"))
            continue
        name = f"{prefix}{e.name}"
        out.append((name, e.path))
        nested = os.path.join(e.path, "datasets")
        if not links.path(nested, "nested datasets left out"):
            out.extend(_dataset_dirs(nested, report, links, name + "/", seen))
    return out


class _Scanner:
    def __init__(self, root: str, report: Report, cache: ScanCache | None, links: LinkGuard,
                 progress: Progress | None) -> None:
        self.root = root
        self.report = report
        self.cache = cache
        self.links = links
        self.progress: Progress = progress or (lambda items, doing: None)
        self.items_scanned = 0
        self.tar_stamps: dict[str, Stamp | str] = {}  # the tar's stamp, or why its images cannot be served
        self.blob_outside = links.path(os.path.join(root, "blob"), "no image in its tars is served")

    def tar_stamp(self, tar: str) -> Stamp | str:
        """The tar's stamp, or why its images cannot be served."""
        if tar not in self.tar_stamps:
            if self.blob_outside or self.links.path(tar, "its images read as unreadable (EIO)"):
                self.tar_stamps[tar] = "the tar links outside the project"
                return self.tar_stamps[tar]
            try:
                st = os.stat(tar)
                self.tar_stamps[tar] = (file_stamp(st) if stat.S_ISREG(st.st_mode)
                                        else f"the tar is {NotRegularFile(st.st_mode)}")
            except OSError:
                self.tar_stamps[tar] = "the tar is missing"
        return self.tar_stamps[tar]

    def folder(self, ds_dir: str, name: str) -> str | None:
        """A dataset's subfolder, unless it is a link leading outside the root."""
        path = os.path.join(ds_dir, name)
        return None if self.links.path(path, "its files are left out") else path

    def blob_images(self, ds_dir: str, ds_name: str) -> dict[str, ImageRef | None]:
        """Images named by the dataset's offsets files; None for an entry that cannot be served."""
        images: dict[str, ImageRef | None] = {}
        for e in sorted(_scandir(ds_dir, self.report, "its offsets files are not read: no blob image is served"),
                        key=lambda e: e.name):
            if not e.name.endswith(OFFSETS_SUFFIX):
                continue
            listed = _listed(e)
            if isinstance(listed, NotRegularFile):
                self.report(Problem(e.path, str(listed), "offsets file ignored; its images are not served"))
            if not isinstance(listed, os.stat_result):
                continue
            if self.links.entry(e, "offsets file ignored; its images are not served"):
                continue
            tar = os.path.join(self.root, "blob", e.name[: -len(OFFSETS_SUFFIX)] + ".tar")
            try:
                names, starts, ends = (self.cache.offsets(e.path, partial(read_offsets, e.path)) if self.cache
                                       else entry_columns(read_offsets(e.path)))
            except OffsetsError as err:
                self.report(Problem(e.path, err.reason, "offsets file ignored; its images are not served"))
                continue
            tar_stamp = self.tar_stamp(tar)
            if isinstance(tar_stamp, str):
                for name in names:
                    self.report(Problem(e.path, f"entry for {tar}: {tar_stamp}", "image served as unreadable (EIO)",
                                        item=name))
                    images[name] = None
                continue
            tar_size = tar_stamp.size
            for name, start, end in zip(names, starts, ends):  # the last entry of a name wins, as in the SDK
                if 0 <= start < end <= tar_size:  # what check_entry tests, inline
                    images[name] = ImageRef(tar, start, end - start, tar_stamp)
                else:
                    self.report(Problem(e.path, f"entry for {tar}: {check_entry(start, end, tar_size)}",
                                        "image served as unreadable (EIO)", item=name))
                    images[name] = None
        return images

    def json_files(self, folder: str | None) -> dict[str, Stamp]:
        if folder is None:
            return {}
        if self.cache is None:
            return scan_json_files(folder, {}, self.report, self.links)
        return self.cache.json_files(folder, lambda known: scan_json_files(folder, known, self.report, self.links))

    @staticmethod
    def side_files(item_name: str, stem: str | None, side_dirs: list[tuple[str, str, dict[str, Stamp]]]
                   ) -> tuple[tuple[str, ImageRef], ...]:
        """The item's img_info/meta files, each ``<item>.json`` or the legacy ``<stem>.json``
        (``side_dirs``: folder, its path with a trailing separator, its files; ``stem`` None: not
        yet computed)."""
        found = []
        for folder, prefix, files in side_dirs:
            name = item_name + ".json"
            fp = files.get(name)
            if fp is None:
                name = (_stem(item_name) if stem is None else stem) + ".json"
                fp = files.get(name)
            if fp is not None:
                found.append((folder, ImageRef(prefix + name, 0, fp.size, fp)))
        return tuple(found)

    def dataset(self, name: str, ds_dir: str) -> Dataset:
        self.progress(self.items_scanned, f"reading the offsets files of {name}")
        images: dict[str, ImageRef | None] = self.blob_images(ds_dir, name)
        self.progress(self.items_scanned, f"listing {name}/img and {name}/ann")
        img_dir = self.folder(ds_dir, "img")
        for e in _scandir(img_dir, self.report, "its images are not served") if img_dir else ():
            if is_image_name(e.name):
                if self.links.entry(e, "image served as unreadable (EIO)", e.name):
                    images[e.name] = None
                    continue
                st = _listed(e)
                if isinstance(st, NotRegularFile):
                    self.report(Problem(e.path, str(st), "image served as unreadable (EIO)", item=e.name))
                    images[e.name] = None
                if not isinstance(st, os.stat_result):  # a directory, or vanished since listed
                    continue
                if e.name in images:
                    self.report(Problem(e.path, "image is both in img/ and in an offsets file",
                                        "the img/ file is served", item=e.name))
                images[e.name] = ImageRef(e.path, 0, st.st_size, file_stamp(st))
        ann_dir = os.path.join(ds_dir, "ann")
        ann_prefix = os.path.join(ann_dir, "")  # + a listed name: os.path.join(ann_dir, name), without the call
        anns = self.json_files(self.folder(ds_dir, "ann"))
        side_dirs = [(folder, os.path.join(ds_dir, folder, ""), files) for folder in SIDECAR_DIRS
                     if (files := self.json_files(self.folder(ds_dir, folder)))]
        exact = 0  # items with their own <item>.json: distinct names, so a count does
        legacy: set[str] = set()  # <stem>.json files taken (several items may share one)
        items = []
        sidecars: tuple[tuple[str, ImageRef], ...]
        for n, item_name in enumerate(sorted(images), start=1):
            if n % PROGRESS_EVERY_ITEMS == 0:
                self.progress(self.items_scanned + n, f"scanning {name}")
            stem = None
            ann = item_name + ".json"
            fp = anns.get(ann)
            if fp is None:
                stem = _stem(item_name)
                ann = stem + ".json"
                fp = anns.get(ann)
                if fp is not None:
                    legacy.add(ann)
            else:
                exact += 1
            if fp is None:
                ann_path, sidecars = None, ()
            else:  # the item's ann_path string is shared with its sidecar, not copied (10^6 items)
                ann_path = ann_prefix + ann
                sidecars = (("ann", ImageRef(ann_path, 0, fp.size, fp)),)
            if side_dirs:
                sidecars += self.side_files(item_name, stem, side_dirs)
            items.append(Item(name, item_name, images[item_name], ann_path, () if fp is None else fp, sidecars))
        # <x>.json is some item's own iff item x exists; looked for only when not every file was taken
        taken = exact + sum(1 for ann in legacy if ann[:-5] not in images)
        unused = [] if taken == len(anns) else [ann for ann in anns if ann[:-5] not in images and ann not in legacy]
        for ann_name in sorted(unused):  # labels are never dropped for want of an image
            item_name = ann_name[:-5]
            ann_path = ann_prefix + ann_name
            self.report(Problem(ann_path, "annotation has no image",
                                "item kept; its image reads as unreadable (EIO)", item=item_name))
            fp = anns[ann_name]
            ann_file = ("ann", ImageRef(ann_path, 0, fp.size, fp))
            items.append(Item(name, item_name, None, ann_path, fp,
                              (ann_file, *self.side_files(item_name, item_name, side_dirs))))
        items.sort(key=attrgetter("name"))  # two sorted runs: the images', the orphan annotations'
        self.items_scanned += len(items)
        return Dataset(name=name, items=tuple(items))


def _stem(item_name: str) -> str:
    """An item name without its extension: the legacy annotation file is ``<stem>.json``."""
    return item_name.rsplit(".", 1)[0] if "." in item_name[1:] else item_name


def _is_file(e: os.DirEntry) -> bool:
    try:
        return e.is_file()
    except OSError:
        return False


def _is_link(e: os.DirEntry) -> bool:
    try:
        return e.is_symlink()
    except OSError:
        return False


def read_meta(root: str, report: Report) -> tuple[ProjectMeta, ImageRef, Stamp]:
    """The parsed meta.json, where its bytes are, and its stamp."""
    path = os.path.join(root, "meta.json")
    try:
        fd, st = open_regular(path)
        stamp = file_stamp(st)
        ref = ImageRef(path, 0, st.st_size, stamp)
        if st.st_size > MAX_META_BYTES:
            os.close(fd)
            raise ValueError(f"{st.st_size} bytes, over the limit of {MAX_META_BYTES} (MAX_META_BYTES)")
        with os.fdopen(fd, "rb") as f:
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
    return meta, ref, stamp


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


def load_json_file(path: str, opened: Callable[[Stamp], None] | None = None) -> Any:
    """A source annotation file's JSON; raises ValueError past ``MAX_ANN_BYTES`` (checked before
    reading). ``opened`` is told the stamp of the file opened before it is read (and may refuse it)."""
    fd, st = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        if opened is not None:
            opened(file_stamp(st))
        if st.st_size > MAX_ANN_BYTES:
            raise ValueError(f"file of {st.st_size} bytes is over the limit of {MAX_ANN_BYTES} (MAX_ANN_BYTES)")
        return json.load(f, object_hook=_yield_point)


def estimated_bytes(item: Item, ann: Annotation) -> int:
    """What a parsed annotation costs in memory, roughly: its JSON's size times
    ``PARSED_BYTES_PER_JSON_BYTE``, plus the pixels of its masks (compressed in the JSON)."""
    json_bytes = item.fingerprint.size if item.fingerprint else 0
    masks = sum(label.geometry.pixels.nbytes for label in ann.labels if isinstance(label.geometry, Mask))
    return 1024 + PARSED_BYTES_PER_JSON_BYTE * json_bytes + masks


class _Parsed(NamedTuple):
    annotation: Annotation
    cost: int  # estimated_bytes
    clean: bool  # no problem reported: the annotation alone made it (its own size, no image read)


def _parsed_cost(parsed: _Parsed) -> int:
    return parsed.cost


class _Stale(Exception):
    """The annotation file opened is another version than the item's fingerprint, and no one
    follows the source: it is parsed again, unchecked and kept nowhere."""


class AnnotationReader:
    """Parses items' annotations on demand (``reader(item)``); the last ones are kept
    (``ANNOTATION_CACHE_BYTES``), since several files of a view render from one annotation. An
    edited file is a new Item (new fingerprint): a miss. ``facts(item)`` answers membership from
    the index's record of the annotation file where there is one for this version of it and of
    meta.json, and records what a clean parse finds (one with problems is parsed again at each
    mount, so that they are reported again).

    The stamp of each file opened is compared with the item's fingerprint (which a remount may
    have taken from the catalog, unchecked): another version is told to ``changed`` and, when it
    answers that the source will be updated, the parse raises SourceChanged, so nothing is made
    or kept from it under the item's old key. Otherwise (no one follows the source, or a membership
    question, which must be answered now) the new version is parsed and kept nowhere."""

    def __init__(self, meta: ProjectMeta, meta_fingerprint: Stamp, report: Report, cache: ScanCache | None,
                 changed: Callable[[str], bool] | None = None) -> None:
        self.meta = meta
        self.meta_fingerprint = meta_fingerprint
        self.report = report
        self.cache = cache
        self.changed = changed
        self._memo: BoundedMemo[_Parsed] = BoundedMemo(ANNOTATION_CACHE_BYTES, _parsed_cost)

    def __call__(self, item: Item) -> Annotation:
        try:
            return self._parsed(item).annotation
        except _Stale:
            return self._parse(item, verify=False)[0]

    def facts(self, item: Item) -> ItemFacts:
        cache, path = self.cache, item.ann_path
        if cache is None or path is None or not item.fingerprint:
            return self._facts_of(item)[0]
        key = (*item.fingerprint, *self.meta_fingerprint)
        known = cache.facts(path, key)
        if known is not None:
            return known
        facts, clean = self._facts_of(item)
        if clean:
            cache.record_facts(path, key, facts)
        return facts

    def _facts_of(self, item: Item) -> tuple[ItemFacts, bool]:
        """The item's facts from a parse, and whether they may be recorded (a clean parse of the
        version its fingerprint names). Membership is answered now, so another version found when
        the file is opened is parsed unchecked (the update it was told to brings the new item)."""
        try:
            parsed = self._parsed(item)
        except (_Stale, SourceChanged):
            return ItemFacts.of(self._parse(item, verify=False)[0]), False
        return ItemFacts.of(parsed.annotation), parsed.clean

    def _parsed(self, item: Item) -> _Parsed:
        def costed() -> _Parsed:
            ann, clean = self._parse(item)
            return _Parsed(ann, estimated_bytes(item, ann), clean)
        return self._memo.get(item, costed)

    def _check(self, item: Item, stamp: Stamp) -> None:
        """Refuse an annotation file opened in another version than the item's fingerprint."""
        if item.fingerprint and not item.fingerprint.same_bytes(stamp):
            assert item.ann_path is not None
            if self.changed is not None and self.changed(item.ann_path):
                raise SourceChanged((item.ann_path,))
            raise _Stale(item.ann_path)

    def _parse(self, item: Item, verify: bool = True) -> tuple[Annotation, bool]:
        """The item's annotation, and whether it was read without a problem (``verify``: the file
        opened must be the version of the item's fingerprint, see ``_check``)."""
        where = item.ann_path or f"{item.dataset}/{item.name}"
        reported: list[Problem] = []

        def report(message: str, action: str) -> None:
            reported.append(Problem(where, message, action, item.name))
            self.report(reported[-1])

        data = None
        if item.ann_path is not None:
            try:
                data = load_json_file(item.ann_path, partial(self._check, item) if verify else None)
            except RecursionError:
                report("annotation unreadable: JSON nested too deeply", "served without labels")
            except (OSError, ValueError) as e:
                report(f"annotation unreadable: {e}", "served without labels")
        size = parse_size(data)
        if size is None:
            size = read_image_size(item.image) if item.image else None
            if data is not None or item.ann_path is None:
                report("no annotation" if item.ann_path is None else "annotation has no valid 'size'",
                       "size taken from the image" if size else "image skipped: size unknown")
            if size is None:
                return Annotation(0, 0), False
        problems: list[str] = []
        try:
            ann = parse_annotation(data if data is not None else {}, self.meta, size, problems)
        except Exception as e:  # a shape of JSON the parser does not foresee: a bug, but one item's
            log.exception("parsing %s", where)
            report(f"annotation could not be parsed ({type(e).__name__}: {e})", "served without labels")
            return Annotation(*size), False
        for p in problems:  # "<what is wrong>; <what slyfs does>"
            message, _, action = p.rpartition("; ")
            report(message or action, action if message else "see message")
        return ann, not reported


def read_project(root: str, report: Report | None = None, cache: ScanCache | None = None,
                 follow_external_links: bool = False, progress: Progress | None = None,
                 changed: Callable[[str], bool] | None = None) -> Project:
    """Scan ``root``. Problems with single files are reported and skipped; only a missing
    directory or an unusable meta.json raises SourceError. ``cache`` (a persistent index)
    spares re-reading offsets files and re-listing annotation folders that did not change.
    Symbolic links leading outside ``root`` are reported and not followed unless
    ``follow_external_links`` (see LinkGuard). ``progress`` hears how the scan is getting on.
    ``changed`` is told of an annotation file found another version when opened (see AnnotationReader)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise SourceError(f"{root}: no such directory")
    problems = ProblemLog() if report is None else None
    sink: Report = report or problems  # type: ignore[assignment]
    links = LinkGuard(root, sink, follow_external_links)
    meta_path = os.path.join(root, "meta.json")
    meta_target = links.outside(meta_path, os.path.islink(meta_path))
    if meta_target is not None:
        raise SourceError(f"{meta_path}: symbolic link to {meta_target}, outside the project "
                          "(--follow-external-links follows it)")
    meta, meta_file, meta_fingerprint = read_meta(root, sink)
    scanner = _Scanner(root, sink, cache, links, progress)
    datasets = tuple(scanner.dataset(name, d) for name, d in _dataset_dirs(root, sink, links))
    annotations = AnnotationReader(meta, meta_fingerprint, sink, cache, changed)
    return Project(root=root, meta=meta, datasets=datasets, load_annotation=annotations, report=sink,
                   problems=tuple(problems.all()) if problems else (),
                   meta_file=meta_file, meta_fingerprint=meta_fingerprint, load_facts=annotations.facts)


def rescan_datasets(project: Project, names: Collection[str], report: Report, cache: ScanCache | None = None,
                    follow_external_links: bool = False) -> Project:
    """``project`` after its dataset folders changed: they are listed again, the datasets in
    ``names`` and every new one scanned as ``read_project`` scans them, vanished ones dropped, and
    every other one kept as it is (not a file of it is looked at). meta.json is not read: the
    caller knows it unchanged."""
    if not os.path.isdir(project.root):
        raise SourceError(f"{project.root}: no such directory")
    links = LinkGuard(project.root, report, follow_external_links)
    scanner = _Scanner(project.root, report, cache, links, None)
    kept = {ds.name: ds for ds in project.datasets if ds.name not in names}
    datasets = tuple(kept[name] if name in kept else scanner.dataset(name, d)
                     for name, d in _dataset_dirs(project.root, report, links))
    return dataclasses.replace(project, datasets=datasets)
