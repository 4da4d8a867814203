"""Third-party dataset readers used as test oracles.

Each helper imports its (heavy, optional) reader inside the function, so this module
imports fine when none of them is installed. Tests call :func:`require` first, which
skips the test cleanly when the reader is missing (like ``pytest.importorskip``);
set ``SLYFS_REQUIRE_READERS=1`` (e.g. in CI after ``scripts/install_test_readers.sh``)
to turn those skips into failures.

Readers (pinned by scripts/install_test_readers.sh): ultralytics 8.4.190,
datumaro 1.13.12, pycocotools 2.0.x. See shared/READERS.md for what each enforces.

* :func:`ultralytics_load` builds a YOLO dataset exactly as Ultralytics' val/train
  loaders do, offline, reading no ``labels/<split>.cache`` and writing none (so it works
  on a read-only mount), and returns the labels and the nf/nm/ne/nc counters.
* :func:`datumaro_import` / :func:`datumaro_detect` wrap datumaro with a strict policy:
  any item/annotation error raises, and so does any warning datumaro logs while
  importing (datumaro logs and *skips* e.g. annotations with unknown image ids).
* :func:`coco_load` / :func:`coco_self_eval_ap` use pycocotools.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "DatumaroStrictError",
    "ImageLabels",
    "ReaderResult",
    "coco_load",
    "coco_self_eval_ap",
    "datumaro_detect",
    "datumaro_import",
    "datumaro_import_all",
    "error_chain",
    "require",
    "ultralytics_load",
]

# Distribution versions the harness was written against (informational; not enforced).
PINNED = {"ultralytics": "8.4.190", "datumaro": "1.13.12", "pycocotools": "2.0.11"}


# --------------------------------------------------------------------------- require


_PRIVATE_ROOT: Path | None = None


def _ultralytics_env() -> Path:
    """Private, offline Ultralytics config; must be in place before the first import."""
    global _PRIVATE_ROOT
    if _PRIVATE_ROOT is None:
        _PRIVATE_ROOT = Path(tempfile.mkdtemp(prefix="slyfs-readers-"))
        atexit.register(shutil.rmtree, _PRIVATE_ROOT, True)
    root = _PRIVATE_ROOT
    cfg = root / "yolo_config"
    cfg.mkdir(parents=True, exist_ok=True)
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_CONFIG_DIR"] = str(cfg)
    return root


def require(name: str, minversion: str | None = None) -> ModuleType:
    """Import reader ``name`` or skip the calling test (fail if SLYFS_REQUIRE_READERS=1).

    ``require("ultralytics")`` also sets up the offline environment (YOLO_OFFLINE=1, a
    private YOLO_CONFIG_DIR) before importing, which ultralytics reads at import time.
    """
    import pytest

    if name == "ultralytics":
        _ultralytics_env()
    strict = os.environ.get("SLYFS_REQUIRE_READERS", "") not in ("", "0")
    try:
        mod = pytest.importorskip(name, minversion=minversion)
    except pytest.skip.Exception as e:
        if strict:
            pytest.fail(f"SLYFS_REQUIRE_READERS is set but {name!r} is unusable: {e}", pytrace=False)
        raise
    return mod


def _import(name: str) -> ModuleType:
    """Plain import for use outside pytest (raises ImportError when missing)."""
    if name == "ultralytics":
        _ultralytics_env()
    import importlib

    return importlib.import_module(name)


# --------------------------------------------------------------------------- ultralytics


@dataclass
class ImageLabels:
    """One image's labels as Ultralytics parsed them (before any transform).

    ``cls`` is (n,) int; ``bboxes`` is (n, 4) normalized xywh (for segment/obb rows, the
    box enclosing the polygon); ``segments`` is a list of (k, 2) normalized xy arrays
    (segment and obb rows; empty for pure box rows); ``keypoints`` is (n, K, 3) with
    x, y normalized and a visibility column (ultralytics adds 1/0 when kpt_shape is [K, 2]),
    or None when the task is not pose.
    """

    im_file: str
    shape: tuple[int, int]  # (h, w)
    cls: np.ndarray
    bboxes: np.ndarray
    segments: list[np.ndarray]
    keypoints: np.ndarray | None

    @property
    def name(self) -> str:
        return os.path.basename(self.im_file)

    @property
    def stem(self) -> str:
        return Path(self.im_file).stem

    def __len__(self) -> int:
        return len(self.cls)


@dataclass
class ReaderResult:
    """What Ultralytics made of one split.

    Counters are Ultralytics' own (``YOLODataset.cache_labels``): ``total`` image files
    found for the split, ``found`` label files found (nf), ``missing`` label files missing
    (nm, background images), ``empty`` empty label files (ne), ``corrupt`` images or label
    files dropped as corrupt (nc). ``n_images`` images survived (= total - corrupt).
    ``msgs`` are the per-image messages (why an image was dropped, duplicates removed, ...);
    ``warnings`` are WARNING+ records the ``ultralytics`` logger emitted while building;
    ``write_attempts`` lists writes into the dataset that Ultralytics tried and the
    harness refused (the in-place repair of a JPEG lacking its FFD9 end marker: the
    image is then counted as corrupt, as it would be on our read-only mount).
    ``error`` is set (and ``labels`` empty) when Ultralytics refused the split because
    no image survived ("No valid images found").
    """

    task: str
    split: str
    n_images: int
    labels: list[ImageLabels]
    total: int
    found: int
    missing: int
    empty: int
    corrupt: int
    names: dict[int, str]
    data: dict[str, Any]
    msgs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    write_attempts: list[str] = field(default_factory=list)
    error: str | None = None

    def by_stem(self) -> dict[str, ImageLabels]:
        return {lb.stem: lb for lb in self.labels}

    def by_name(self) -> dict[str, ImageLabels]:
        return {lb.name: lb for lb in self.labels}

    @property
    def n_instances(self) -> int:
        return sum(len(lb) for lb in self.labels)


class _ListHandler(logging.Handler):
    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append(record.getMessage())
        except Exception:  # noqa: BLE001  # never let logging break a reader
            self.records.append(str(record.msg))


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def ultralytics_load(
    data_yaml: Path,
    split: str,
    task: str = "detect",
    imgsz: int = 64,
    *,
    cwd: Path | None = None,
) -> ReaderResult:
    """Build split ``split`` of ``data_yaml`` with Ultralytics' own dataset code, offline.

    Follows shared/READERS.md: YOLO_OFFLINE=1 and a private YOLO_CONFIG_DIR before import,
    ``ultralytics.data.utils.check_font`` replaced by a no-op, then
    ``check_det_dataset(yaml, autodownload=False)`` and
    ``build_yolo_dataset(get_cfg(DEFAULT_CFG, {task, imgsz}), data[split], 1, data, mode='val')``.

    The label cache is bypassed both ways: ``load_dataset_cache_file`` always fails (so a
    ``labels/<split>.cache`` left by an earlier run is never read and every label file is
    scanned) and ``save_dataset_cache_file`` writes nothing. The settings' ``datasets_dir``
    points at an empty private directory, and the build runs with the working directory set
    to ``cwd`` (default: an empty private directory), so a dataset only loads if its
    ``data.yaml`` is self-contained (a relative ``path:`` or a txt list entry without ``./``
    resolves against the cwd in Ultralytics).

    Raises whatever Ultralytics raises for a malformed data.yaml or split (SyntaxError,
    TypeError, FileNotFoundError, ValueError for kpt_shape / mixed segment rows, ...).
    """
    if task not in {"detect", "segment", "pose", "obb"}:
        raise ValueError(f"unsupported task {task!r}")
    root = _ultralytics_env()
    _import("ultralytics")
    import ultralytics.data.dataset as uds
    import ultralytics.data.utils as uu
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import DEFAULT_CFG, LOGGER

    empty_cwd = root / "cwd"
    empty_cwd.mkdir(parents=True, exist_ok=True)
    datasets_dir = root / "datasets"  # never created: relative `path:` must not resolve

    state: dict[str, Any] = {"write_attempts": []}
    orig_cache_labels = uds.YOLODataset.cache_labels

    def cache_labels(self: Any, path: Path = Path("./labels.cache")) -> dict:
        x = orig_cache_labels(self, path)
        state["results"] = tuple(int(v) for v in x["results"])  # nf, nm, ne, nc, total
        state["msgs"] = [str(m) for m in x.get("msgs", [])]
        return x

    def no_cache_load(path: Path) -> dict:
        raise FileNotFoundError(f"slyfs harness: label cache reading disabled ({path})")

    def no_cache_save(prefix: str, path: Path, x: dict, version: str) -> None:
        x["version"] = version

    def no_replace_image(im_file: Any, write: Any) -> None:
        state["write_attempts"].append(str(im_file))
        raise OSError(f"slyfs harness: refusing to rewrite {im_file} in place (read-only dataset)")

    handler = _ListHandler()
    yaml_path = Path(data_yaml).absolute()
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(uu, "check_font", lambda *a, **k: None))
        stack.enter_context(_patched(uu, "DATASETS_DIR", datasets_dir))
        stack.enter_context(_patched(uu, "_replace_image", no_replace_image))
        stack.enter_context(_patched(uds, "load_dataset_cache_file", no_cache_load))
        stack.enter_context(_patched(uds, "save_dataset_cache_file", no_cache_save))
        stack.enter_context(_patched(uds.YOLODataset, "cache_labels", cache_labels))
        stack.enter_context(_chdir(Path(cwd) if cwd is not None else empty_cwd))
        LOGGER.addHandler(handler)
        stack.callback(LOGGER.removeHandler, handler)

        data = check_det_dataset(str(yaml_path), autodownload=False)
        if not data.get(split):
            raise FileNotFoundError(f"{yaml_path}: split {split!r} is not defined")
        cfg = get_cfg(DEFAULT_CFG, {"task": task, "imgsz": imgsz})
        error: str | None = None
        try:
            dataset = build_yolo_dataset(cfg, data[split], 1, data, mode="val")
            raw_labels = list(dataset.labels)
        except RuntimeError as e:
            if "No valid images found" not in str(e) or "results" not in state:
                raise
            error, raw_labels = str(e), []

    nf, nm, ne, nc, total = state["results"]
    labels = [
        ImageLabels(
            im_file=str(lb["im_file"]),
            shape=(int(lb["shape"][0]), int(lb["shape"][1])),
            cls=np.asarray(lb["cls"]).reshape(-1).astype(np.int64),
            bboxes=np.asarray(lb["bboxes"], dtype=np.float32).reshape(-1, 4),
            segments=[np.asarray(s, dtype=np.float32) for s in lb["segments"]],
            keypoints=None if lb.get("keypoints") is None else np.asarray(lb["keypoints"], dtype=np.float32),
        )
        for lb in raw_labels
    ]
    return ReaderResult(
        task=task,
        split=split,
        n_images=len(labels),
        labels=labels,
        total=total,
        found=nf,
        missing=nm,
        empty=ne,
        corrupt=nc,
        names={int(k): str(v) for k, v in data["names"].items()},
        data=dict(data),
        msgs=state.get("msgs", []),
        warnings=handler.records,
        write_attempts=state["write_attempts"],
        error=error,
    )


# --------------------------------------------------------------------------- datumaro


class DatumaroStrictError(RuntimeError):
    """datumaro logged a warning (it skipped or reinterpreted something) while importing."""

    def __init__(self, path: Path, fmt: str, warnings: list[str]) -> None:
        self.warnings = warnings
        super().__init__(f"datumaro import of {path} as {fmt!r} logged warnings:\n  " + "\n  ".join(warnings))


@contextlib.contextmanager
def _capture_root_warnings() -> Iterator[_ListHandler]:
    # datumaro logs through the root logger (`import logging as log`).
    handler = _ListHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _strict_policy() -> Any:
    from datumaro.components.contexts.importer import ImportErrorPolicy

    class StrictImportErrorPolicy(ImportErrorPolicy):
        """Raise the ItemImportError / AnnotationImportError itself (cause attached).

        datumaro's default (FailingImportErrorPolicy) also fails, but wraps the error in a
        private ``_ImportFail``; being explicit keeps the behaviour pinned and the error clear.
        """

        def _handle_item_error(self, error: Exception) -> None:
            raise error

        def _handle_annotation_error(self, error: Exception) -> None:
            raise error

    return StrictImportErrorPolicy()


def datumaro_import(
    path: Path,
    fmt: str,
    *,
    strict_warnings: bool = True,
    allowed_warnings: Iterable[str] = (),
    **kwargs: Any,
) -> Any:
    """``datumaro.Dataset.import_from(path, fmt)`` that raises on any problem.

    Item and annotation errors raise (strict error policy). The dataset is then fully
    iterated (every item and annotation materialized), so lazily-parsed sources fail here
    too. Any WARNING datumaro logs meanwhile raises :class:`DatumaroStrictError` unless it
    matches one of the ``allowed_warnings`` regexes (or ``strict_warnings=False``).
    Extra ``kwargs`` go to ``import_from`` (e.g. ``coordinate_mode='voc-one-based'``).
    Returns the ``datumaro.Dataset``.
    """
    dm = _import("datumaro")
    allowed = [re.compile(p) for p in allowed_warnings]
    with _capture_root_warnings() as handler:
        ds = dm.Dataset.import_from(str(path), fmt, error_policy=_strict_policy(), **kwargs)
        for item in ds:
            list(item.annotations)
    bad = [w for w in handler.records if not any(p.search(w) for p in allowed)]
    if strict_warnings and bad:
        raise DatumaroStrictError(Path(path), fmt, bad)
    return ds


@dataclass
class ImportReport:
    """What one import found: the dataset, and every item/annotation error and warning (none stops it)."""

    dataset: Any
    errors: list[str]
    warnings: list[str]

    def missing_media(self) -> list[str]:
        """Ids of items whose media datumaro has no readable file for."""
        out = []
        for item in self.dataset:
            media = item.media
            path = getattr(media, "path", None)
            if media is None or not path or not os.path.isfile(path):
                out.append(item.id)
        return out

    def label_counts(self) -> dict[tuple[str, str], int]:
        """``{(annotation type, label name): count}`` over every item (label ``""`` for unlabelled)."""
        dm = _import("datumaro")
        labels = self.dataset.categories().get(dm.AnnotationType.label)
        out: dict[tuple[str, str], int] = {}
        for item in self.dataset:
            for ann in item.annotations:
                label = getattr(ann, "label", None)
                name = labels[label].name if labels is not None and label is not None else ""
                key = (ann.type.name, name)
                out[key] = out.get(key, 0) + 1
        return out


def datumaro_import_all(path: Path, fmt: str, **kwargs: Any) -> ImportReport:
    """``datumaro.Dataset.import_from(path, fmt)`` that collects every item and annotation error
    (each ``"ClassName: message"`` chain joined by `` <- ``) and every logged warning instead of stopping
    at the first, then iterates every item and annotation. A test asserts ``report.errors == []`` and
    looks at all of them at once. Extra ``kwargs`` go to ``import_from``."""
    dm = _import("datumaro")
    from datumaro.components.contexts.importer import ImportErrorPolicy

    errors: list[str] = []

    class CollectingPolicy(ImportErrorPolicy):
        def _handle_item_error(self, error: Exception) -> None:
            errors.append(" <- ".join(error_chain(error)))

        def _handle_annotation_error(self, error: Exception) -> None:
            errors.append(" <- ".join(error_chain(error)))

    with _capture_root_warnings() as handler:
        ds = dm.Dataset.import_from(str(path), fmt, error_policy=CollectingPolicy(), **kwargs)
        for item in ds:
            list(item.annotations)
    return ImportReport(ds, errors, list(handler.records))


def error_chain(exc: BaseException) -> list[str]:
    """``"ClassName: message"`` for exc and each cause/context under it (datumaro wraps the
    real error, e.g. UndeclaredLabelError, in a DatasetImportError)."""
    out: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    return out


def datumaro_detect(path: Path) -> list[str]:
    """Format names datumaro's ``Environment().detect_dataset`` finds for ``path``."""
    dm = _import("datumaro")
    with _capture_root_warnings():
        return list(dm.Environment().detect_dataset(str(path)))


# --------------------------------------------------------------------------- pycocotools


def coco_load(json_path: Path) -> Any:
    """``pycocotools.coco.COCO(json_path)`` with its prints silenced. It validates nothing."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_path))


COCO_PERSON_SIGMAS_K = 17


def coco_self_eval_ap(
    json_path: Path,
    iou_type: str = "bbox",
    *,
    kpt_sigma: float = 0.05,
) -> float:
    """Run COCOeval of the ground truth against itself; return AP@[.5:.95] (stats[0]).

    Detections are the GT annotations with score 1: ``bbox`` for 'bbox', the GT masks as
    RLE (``annToRLE``, which needs image width/height) for 'segm', ``keypoints`` for
    'keypoints' (GT with ``num_keypoints == 0`` are ignored by COCOeval, so they give no
    detection). A consistent file gives 1.0. Returns -1.0 when there is nothing to
    evaluate (no annotation, or only crowd/ignored ones), as COCOeval does.

    ``maxDets[-1]`` (100 for bbox/segm, 20 for keypoints) is raised to the largest per-image annotation count,
    so dense images do not lower the AP. For keypoints with K != 17 (COCOeval's default sigmas are the 17
    COCO-person ones) ``params.kpt_oks_sigmas`` is set to K copies of ``kpt_sigma``; all
    keypoint categories must share one K.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in {"bbox", "segm", "keypoints"}:
        raise ValueError(f"iou_type must be bbox, segm or keypoints, not {iou_type!r}")
    gt = coco_load(json_path)
    dets: list[dict[str, Any]] = []
    for ann in gt.dataset.get("annotations", []):
        d: dict[str, Any] = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
        if iou_type == "bbox":
            d["bbox"] = list(ann["bbox"])
        elif iou_type == "segm":
            d["segmentation"] = gt.annToRLE(ann)
        else:
            if not ann.get("num_keypoints", 0) or "keypoints" not in ann:
                continue
            d["keypoints"] = list(ann["keypoints"])
        dets.append(d)
    if not dets:
        return -1.0

    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iou_type)
        per_image: dict[Any, int] = {}
        for d in dets:
            per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
        top = max(per_image.values())
        if top > ev.params.maxDets[-1]:
            ev.params.maxDets = [*ev.params.maxDets[:-1], top]
        if iou_type == "keypoints":
            ks = {len(d["keypoints"]) // 3 for d in dets}
            if len(ks) != 1:
                raise ValueError(f"keypoint annotations have different K: {sorted(ks)}")
            k = ks.pop()
            if k != COCO_PERSON_SIGMAS_K:
                ev.params.kpt_oks_sigmas = np.full(k, kpt_sigma, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
    # stats[0] of summarize(), computed directly so that a raised maxDets also works for
    # keypoints (whose summarize() hard-codes maxDets=20): area 'all', last maxDets.
    prec = ev.eval["precision"][:, :, :, 0, -1]
    prec = prec[prec > -1]
    return float(prec.mean()) if prec.size else -1.0
