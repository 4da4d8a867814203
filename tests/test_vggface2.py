"""The VGGFace2 view: real mounts of both SDK fixtures and a tagged sample project read by
Datumaro's ``vgg_face2`` importer, against identities, the one face box and the one five-point
landmark set per image, computed from the source JSON; README.slyfs.txt when tags are missing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from slyfs.formats.common.identities import identity_names
from tests.helpers.faces import SourceImage, class_shapes, in_image, source_images
from tests.helpers.mounts import assert_clean_import, mounted_sources, sources_fixture
from tests.helpers.readers import datumaro_import_all, require

SOURCES = ["fixture-plain", "fixture-blob", "sample-plain", "sample-blob"]


def token(text: str) -> str:
    """The README's rule for identities: whitespace as %XX."""
    return text.replace(" ", "%20")


sources = sources_fixture(seed=11)


@pytest.fixture(scope="module")
def views(sources: dict[str, Path]):
    with mounted_sources(sources, "vggface2") as mnts:
        yield mnts


def five_node_classes(root: Path) -> set[str]:
    return {t for t, c in class_shapes(root).items()
            if c["shape"] == "graph" and len(c["geometry_config"]["nodes"]) == 5}


def faces_of(image: SourceImage, landmark_classes: set[str]) -> tuple[list[dict], list[dict]]:
    boxes = [o for o in image.objects("face") if o["geometryType"] == "rectangle" and in_image(o, image.ann)]
    marks = [o for o in image.objects() if o["classTitle"] in landmark_classes and o["geometryType"] == "graph"
             and len(o["nodes"]) == 5 and not any(n.get("disabled") for n in o["nodes"].values())]
    return boxes, marks


def expected_counts(root: Path) -> Counter:
    out: Counter = Counter()
    marks_classes = five_node_classes(root)
    for image in source_images(root):
        identity = image.tag("identity")
        label = token(identity) if isinstance(identity, str) and identity.strip() else ""
        boxes, marks = faces_of(image, marks_classes)
        if len(boxes) == 1:
            out[("bbox", label)] += 1
        if len(marks) == 1:
            out[("points", label)] += 1
        elif label:
            out[("label", label)] += 1
    return out


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_reads_identities_boxes_and_landmarks(source: str, sources: dict[str, Path],
                                                       views: dict[str, Path]) -> None:
    require("datumaro")
    report = datumaro_import_all(views[source], "vgg_face2")
    images = source_images(sources[source])
    assert_clean_import(report, len(images), no_warnings=True)
    assert Counter(report.label_counts()) == expected_counts(sources[source])
    assert {item.subset for item in report.dataset} == {image.split for image in images}
    # CVAT matches items to its frames by the id without the identity folder: one image each
    served = {(p.parent.parent.name, p.stem) for p in views[source].glob("*/*/*") if p.is_file()}
    as_cvat = Counter((item.subset, item.id.split("/", 1)[1]) for item in report.dataset)
    assert set(as_cvat) == served and max(as_cvat.values()) == 1


def test_landmarks_at_pixel_centres_in_template_order(sources: dict[str, Path], views: dict[str, Path]) -> None:
    require("datumaro")
    root = sources["sample-plain"]
    template = list(class_shapes(root)["face_landmarks"]["geometry_config"]["nodes"])
    report = datumaro_import_all(views["sample-plain"], "vgg_face2")
    got = {item.id.split("/", 1)[1]: ann.points for item in report.dataset for ann in item.annotations
           if ann.type.name == "points"}
    want = {}
    for image in source_images(root):
        _, marks = faces_of(image, {"face_landmarks"})
        if len(marks) == 1:
            stem = image.name.rsplit(".", 1)[0].replace(" ", "%20")  # the README's rule for image names
            want[stem] = [v + 0.5 for node in template for v in marks[0]["nodes"][node]["loc"]]
    shared = want.keys() & got.keys()
    assert len(shared) >= len(want) - 3 and shared  # renamed collisions aside
    assert all(list(got[s]) == want[s] for s in shared)


def test_several_faces_are_reported_not_written(sources: dict[str, Path], views: dict[str, Path]) -> None:
    root = sources["sample-blob"]
    several = [i for i in source_images(root) if len(faces_of(i, {"face_landmarks"})[0]) > 1]
    for path in views["sample-blob"].rglob("*.csv"):  # rendering them reports what they leave out
        path.read_bytes()
    log = views["sample-blob"].with_suffix(".log").read_text("utf-8")
    assert several, "the sample should hold an image with two faces"
    for image in several:  # every rectangle is left out: the faces (one image, one box) and the other classes'
        n = sum(o["geometryType"] == "rectangle" for o in image.objects())
        assert f"[{image.name}]: {n} rectangle label(s) cannot be expressed in VGGFace2" in log


def test_readme_says_what_is_missing(views: dict[str, Path]) -> None:
    text = (views["fixture-plain"] / "README.slyfs.txt").read_text("utf-8")
    assert "'identity' tag" in text and "vggface2.identity-tag" in text and "vggface2.face-class" in text
    assert {p.name for p in (views["fixture-plain"] / "train").iterdir()} == {"no_label"}
    assert not (views["sample-plain"] / "README.slyfs.txt").exists()


def test_identity_names() -> None:
    names = identity_names(["Ana Lima", "Ana%20Lima", "no_label", "a/b", "Zoë", " x "], reserved=("no_label",))
    assert names["Ana Lima"] == "Ana%20Lima" and names["Ana%20Lima"] == "Ana%2520Lima"
    assert names["no_label"] != "no_label" and names["a/b"] == "a%2Fb" and names["Zoë"] == "Zoë"
    assert names[" x "] == "%20x%20" and len(set(names.values())) == len(names)
