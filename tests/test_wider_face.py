"""The WIDER Face view: real mounts of both SDK fixtures and a tagged sample project read by
Datumaro's ``wider_face`` importer, against box, attribute and event counts the test takes from
the source JSON; name and label mapping; the README.slyfs.txt of a project without events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from slyfs.formats.common.identities import identity_names
from slyfs.formats.common.splits import plain_subset_names
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import wider_face
from tests.conftest import PLAIN
from tests.helpers.faces import AREA_TYPES, in_image, source_images
from tests.helpers.mounts import assert_clean_import, mounted_sources, sources_fixture
from tests.helpers.readers import datumaro_import_all, require
from tests.helpers.views import view_files

EVENT = ("--opt", "wider-face.event-tag=species")


def token(title: str) -> str:
    """The README's rule for labels: whitespace as %XX."""
    return title.replace(" ", "%20")


sources = sources_fixture(seed=11)


@pytest.fixture(scope="module")
def views(sources: dict[str, Path]):
    with mounted_sources(sources, "wider-face", *EVENT) as mnts:
        yield mnts


def expected_counts(root: Path) -> Counter:
    out: Counter = Counter()
    for image in source_images(root):
        for obj in image.objects():
            if obj["geometryType"] in AREA_TYPES and in_image(obj, image.ann):
                out[("bbox", token(obj["classTitle"]))] += 1
        species = image.tag("species")
        if isinstance(species, str):
            out[("label", token(species))] += 1
    return out


@pytest.mark.parametrize("source", ["fixture-plain", "fixture-blob", "sample-plain", "sample-blob"])
def test_datumaro_reads_every_image_box_and_event(source: str, sources: dict[str, Path],
                                                  views: dict[str, Path]) -> None:
    require("datumaro")
    report = datumaro_import_all(views[source], "wider_face")
    images = source_images(sources[source])
    assert_clean_import(report, len(images), no_warnings=True)
    assert Counter(report.label_counts()) == expected_counts(sources[source])
    assert {item.subset for item in report.dataset} == {image.split for image in images}


@pytest.mark.parametrize("source", ["sample-plain", "sample-blob"])
def test_occluded_attribute_from_tags(source: str, sources: dict[str, Path], views: dict[str, Path]) -> None:
    require("datumaro")
    report = datumaro_import_all(views[source], "wider_face")
    got = Counter(ann.attributes.get("occluded") for item in report.dataset for ann in item.annotations
                  if ann.type.name == "bbox")
    want: Counter = Counter()
    for image in source_images(sources[source]):
        for obj in image.objects():
            if obj["geometryType"] in AREA_TYPES and in_image(obj, image.ann):
                tags = {t["name"]: t.get("value") for t in obj["tags"]}
                want[None if not any(a in tags for a in wider_face.ATTRIBUTES)
                     else None if "occluded" not in tags else tags["occluded"] not in (0, "0", "false")] += 1
    assert got == want and got[True] > 0


def test_event_folders_and_labels(views: dict[str, Path], sources: dict[str, Path]) -> None:
    root = views["sample-plain"]
    labels = (root / "labels.txt").read_text("utf-8").split("\n")
    species = {image.tag("species") for image in source_images(sources["sample-plain"])} - {None}
    folders = {p.name for split in root.glob("WIDER_*") for p in (split / "images").iterdir()}
    assert folders == {"no_label"} | {f"{labels.index(token(s))}--{token(s)}" for s in species}
    assert not (root / "README.slyfs.txt").exists()  # events given, a face class present


def test_readme_says_what_is_missing(views: dict[str, Path]) -> None:
    with mounted_sources({"plain": PLAIN}, "wider-face") as mnt:
        text = (mnt["plain"] / "README.slyfs.txt").read_text("utf-8")
        assert "'event' tag" in text and "wider-face.event-tag" in text and "'face'" in text
        assert {p.name for p in (mnt["plain"] / "WIDER_train" / "images").iterdir()} == {"no_label"}


def test_attribute_tag_option_names_another_tag(sources: dict[str, Path]) -> None:
    root = sources["sample-plain"]
    project = read_project(str(root))
    files = view_files(wider_face, project, ViewOptions(params={"wider-face.occluded-tag": "truncated"}))
    text = b"".join(n.render() for p, n in files.items() if p.endswith("_bbx_gt.txt")).decode()
    flagged = sum(1 for image in source_images(root) for obj in image.objects()
                  if obj["geometryType"] in AREA_TYPES and in_image(obj, image.ann)
                  and {t["name"] for t in obj["tags"]} & {"truncated", *wider_face.ATTRIBUTES[:3], "pose", "invalid"})
    rows = [line.split() for line in text.splitlines() if len(line.split()) >= 10]
    assert len(rows) == flagged > 0


def test_label_and_name_mapping() -> None:
    names = identity_names(["red fox", "a--b", "no_label", "a b", "a%20b", "x/y", "Zoë"],
                           reserved=("no_label",), escape_one=wider_face.wider_label)
    assert names["red fox"] == "red%20fox" and names["a--b"] == "a-%2Db" and names["x/y"] == "x%2Fy"
    assert names["no_label"] != "no_label" and names["Zoë"] == "Zoë"
    assert len(set(names.values())) == len(names)
    assert all(" " not in n and "/" not in n and "--" not in n for n in names.values())
    assert wider_face.wider_name(" a b.jpg") == "%20a%20b.jpg" and wider_face.wider_name("a\\b.jpg") == "a%5Cb.jpg"
    assert wider_face.wider_name("noext") == "noext."
    assert plain_subset_names(["my_set", "my-set", "ok"]) == {"my_set": "my-set", "my-set": "my-set-2", "ok": "ok"}
