"""The LFW view: real mounts of both SDK fixtures and a tagged sample project read by Datumaro's
``lfw`` importer, against persons, pairs and landmarks computed from the source JSON; explicit
pairs on a copy with more pair tags; renamed images keep their bytes; README.slyfs.txt."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.conftest import slyfs
from tests.helpers.faces import SourceImage, class_shapes, source_images
from tests.helpers.mounts import assert_clean_import, mounted_sources, sources_fixture
from tests.helpers.readers import datumaro_import_all, require

SOURCES = ["fixture-plain", "fixture-blob", "sample-plain", "sample-blob"]


def token(text: str) -> str:
    """The README's rule for persons: whitespace as %XX."""
    return text.replace(" ", "%20")


def person(image: SourceImage) -> str | None:
    value = image.tag("identity")
    return token(value) if isinstance(value, str) and value.strip() else None


sources = sources_fixture(seed=11)


@pytest.fixture(scope="module")
def views(sources: dict[str, Path]):
    with mounted_sources(sources, "lfw") as mnts:
        yield mnts


def numbering(images: list[SourceImage]) -> dict[tuple[str, str], str]:
    """The README's rule: P_NNNN numbered per person and split in (dataset, name) order."""
    counts: Counter = Counter()
    out = {}
    for image in sorted(images, key=lambda i: (i.dataset, i.name)):
        p = person(image)
        if p is not None:
            counts[(image.split, p)] += 1
            out[(image.dataset, image.name)] = f"{p}_{counts[(image.split, p)]:04d}"
    return out


def expected_pairs(images: list[SourceImage]) -> tuple[dict, dict]:
    """Positive and negative pairs by (subset, first item id), from the pair_with tags."""
    ids = numbering(images)
    by_key = {(i.dataset, i.name): i for i in images}
    positive, negative = defaultdict(list), defaultdict(list)
    for image in sorted(images, key=lambda i: (i.dataset, i.name)):
        target = by_key.get((image.dataset, image.tag("pair_with")))
        if target is None or person(image) is None:
            continue
        first = (image.split, ids[(image.dataset, image.name)])
        if person(target) == person(image):
            positive[first].append(f"{person(target)}/{ids[(target.dataset, target.name)]}")
        else:
            second = ids.get((target.dataset, target.name))
            negative[first].append(f"{person(target)}/{second}" if second else target.name.rsplit(".", 1)[0])
    return dict(positive), dict(negative)


def read(path: Path):
    require("datumaro")
    report = datumaro_import_all(path, "lfw")
    assert_clean_import(report, no_warnings=True)
    return report


def pairs_read(report, kind: str) -> dict[tuple[str, str], list[str]]:
    return {(item.subset, item.id): list(ann.attributes[kind]) for item in report.dataset for ann in item.annotations
            if kind in ann.attributes}


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_reads_persons_pairs_and_landmarks(source: str, sources: dict[str, Path],
                                                    views: dict[str, Path]) -> None:
    report = read(views[source])
    images = source_images(sources[source])
    assert len(report.dataset) == len(images)
    five = {t for t, c in class_shapes(sources[source]).items()
            if c["shape"] == "graph" and len(c["geometry_config"]["nodes"]) == 5}
    want: Counter = Counter()
    for image in images:
        if person(image) is not None:
            want[("label", person(image))] += 1
            want[("points", person(image))] += sum(
                o["classTitle"] in five and not any(n.get("disabled") for n in o["nodes"].values())
                for o in image.objects() if o["geometryType"] == "graph")
    assert Counter(report.label_counts()) == +want
    assert {item.subset for item in report.dataset} == {image.split for image in images}
    assert (pairs_read(report, "positive_pairs"), pairs_read(report, "negative_pairs")) == expected_pairs(images)
    ids = numbering(images)
    assert {item.id for item in report.dataset if item.annotations} == set(ids.values())


def test_explicit_pairs_only(tmp_path: Path, sources: dict[str, Path]) -> None:
    """A copy whose images name an earlier image of the same person (and some one of another
    person, or without identity): exactly those pairs, nothing more."""
    root = tmp_path / "src"
    shutil.copytree(sources["sample-plain"], root)
    seen: dict[tuple[str, str | None], str] = {}
    for k, ann_path in enumerate(sorted(root.rglob("ann/*.json"))):
        ann = json.loads(ann_path.read_text("utf-8"))
        ann["tags"] = [t for t in ann["tags"] if t["name"] != "pair_with"]
        ident = next((t["value"] for t in ann["tags"] if t["name"] == "identity"), None)
        dataset = ann_path.parent.parent.as_posix()
        partner = seen.get((dataset, ident)) if k % 3 else next(
            (n for (d, i), n in seen.items() if d == dataset and i != ident), None)
        if partner is not None:
            ann["tags"].append({"name": "pair_with", "value": partner})
        seen[(dataset, ident)] = ann_path.name[:-5]
        ann_path.write_text(json.dumps(ann), "utf-8")
    out = tmp_path / "out"
    slyfs("export", str(root), str(out), "--format", "lfw")
    report = read(out)
    positive, negative = expected_pairs(source_images(root))
    assert sum(map(len, positive.values())) >= 5 and sum(map(len, negative.values())) >= 3
    assert (pairs_read(report, "positive_pairs"), pairs_read(report, "negative_pairs")) == (positive, negative)


def test_renamed_images_keep_their_bytes(sources: dict[str, Path], views: dict[str, Path]) -> None:
    root = sources["sample-plain"]
    src = Counter(hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("img/*"))
    served = [p for p in views["sample-plain"].rglob("*") if p.is_file() and "images" in p.parts]
    assert Counter(hashlib.sha1(p.read_bytes()).hexdigest() for p in served) == src


def test_readme_says_what_is_missing(views: dict[str, Path]) -> None:
    text = (views["fixture-plain"] / "README.slyfs.txt").read_text("utf-8")
    assert "'identity' tag" in text and "lfw.identity-tag" in text and "lfw.pair-tag" in text
    assert not (views["sample-plain"] / "README.slyfs.txt").exists()
