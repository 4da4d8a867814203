"""A Supervisely project read from its JSON files alone, for expectations that must not come from
the view code: the annotation of each item, the tags of an object, and the sample projects the
text and tracking views are checked on (``--format-tags``: transcriptions and track ids)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.splits import item_names
from slyfs.formats.model import Item
from slyfs.formats.readers.supervisely import read_project
from tests.conftest import BLOB, PLAIN, fuse_usable, mounted
from tests.helpers.scripts import load_script

SAMPLE_IMAGES = 40


def annotations(root: Path) -> dict[tuple[str, str], dict]:
    """(dataset full name, item name) → the item's annotation JSON."""
    out = {}
    for path in root.rglob("ann/*.json"):
        parts = path.parent.parent.relative_to(root).parts
        dataset = "/".join(p for i, p in enumerate(parts) if not (i % 2 and p == "datasets"))
        out[(dataset, path.name[: -len(".json")])] = json.loads(path.read_text(encoding="utf-8"))
    return out


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


def sample_projects(tmp_path_factory: pytest.TempPathFactory, seed: int) -> dict[str, Path]:
    """The SDK fixtures (no text or track tags) and a 40-image ``--format-tags`` sample, plain and blob."""
    make_project = load_script("make_sample_project").make_project
    root = tmp_path_factory.mktemp("tagged-samples")
    out = {"fixture-plain": PLAIN, "fixture-blob": BLOB}
    for form in ("plain", "blob"):
        out[f"sample-{form}"] = make_project(root / form, SAMPLE_IMAGES, form, seed=seed, format_tags=True)
    return out


def mount_once(source: Path, formats: str) -> Iterator[tuple[Path, Path]]:
    """(mountpoint, its log) of one real mount of ``source`` in ``formats``, for a module fixture."""
    if not fuse_usable():
        pytest.fail("FUSE is not usable here (/dev/fuse and libfuse 3 or 2 are required for the end-to-end tests)")
    with mounted(source, "--format", formats) as mnt:
        yield mnt, mnt.with_suffix(".log")


HOSTILE_NAMES = ("a b.png", "a, b.png", " lead.png", "x_y.png", "ü" * 122 + "a.png", "ü" * 122 + "b.png",
                 "dup.png", "dup.jpg", "gt_x.png", "x_GT.png", "labels.png", "Ω.png")
HOSTILE_TEXTS = ('say "hi", there\\', " ", "one, two", "", "tab\there", "#1")
HOSTILE_CLASSES = ("traffic sign", " lead", "a_b")


def hostile_text_project(root: Path) -> Path:
    """A plain project whose image, dataset and class names and transcriptions are what the
    text and tracking readers split or strip at; every object has a ``text`` and a ``track_id`` tag,
    three images in four a ``text`` tag."""
    from tests.helpers.hostile import ann, meta, plain_project, rect

    items = {}
    for k, name in enumerate(HOSTILE_NAMES):
        objects = []
        for j, cls in enumerate(HOSTILE_CLASSES):
            obj = rect(j, j, j + 4 + k % 3, j + 5, cls)
            obj["tags"] = [{"name": "text", "value": HOSTILE_TEXTS[(k + j) % len(HOSTILE_TEXTS)]},
                           {"name": "track_id", "value": 1 + j}]
            objects.append(obj)
        items[name] = ann(*objects, width=12, height=12)
        if k % 4:
            items[name]["tags"] = [{"name": "text", "value": HOSTILE_TEXTS[k % len(HOSTILE_TEXTS)]}]
    plain_project(root, items, classes=HOSTILE_CLASSES, dataset="tr_ain x")
    data = meta(HOSTILE_CLASSES)
    data["tags"] = [{"name": "text", "value_type": "any_string", "color": "#000000", "id": 1},
                    {"name": "track_id", "value_type": "any_number", "color": "#000001", "id": 2}]
    (root / "meta.json").write_text(json.dumps(data))
    return root


def materialise(files: dict, dest: Path) -> Path:
    """The rendered bytes of a ``view_files`` map written under ``dest``."""
    from slyfs.formats.contract import Generated, SourceBytes

    for path, node in files.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(node, Generated):
            target.write_bytes(node.render())
        elif isinstance(node, SourceBytes):
            with open(node.ref.path, "rb") as f:
                f.seek(node.ref.offset)
                target.write_bytes(f.read(node.ref.size))
    return dest
