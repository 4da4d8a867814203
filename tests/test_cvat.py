"""The CVAT for images 1.1 view: pure conversions, real mounts of the SDK fixtures and of generated
projects read back by Datumaro's ``cvat`` importer and by a reading of the XML under CVAT's own
rules (declared labels and attributes, images found by name, whole masks), with the expected
shapes computed here from the source JSON."""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from slyfs.formats.common.splits import splits
from slyfs.formats.model import (
    Annotation,
    Cuboid2d,
    Graph,
    GraphNode,
    GraphTemplate,
    Label,
    ObjClass,
    Project,
    ProjectMeta,
)
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import cvat
from slyfs.vfs.tree import VirtualTree
from tests.helpers.dm_shapes import assert_shape_is_label, items_by_subset
from tests.helpers.mounts import SOURCES, assert_clean_import, imports_fixture, mounted_sources, sources_fixture
from tests.helpers.readers import datumaro_detect, datumaro_import_all, require
from tests.helpers.source import (
    assert_odd_names_read_back,
    meta_of,
    odd_names_view,
    polygon_is_mask,
    source_annotations,
)
from tests.helpers.views import view_files

# ---------------------------------------------------------------- pure conversions


def decode_runs(rle: str, width: int, height: int) -> np.ndarray:
    """CVAT's mask runs (row-major, background first) as a bool array, decoded here."""
    flat = np.zeros(width * height, bool)
    pos = 0
    for i, run in enumerate(int(v) for v in rle.split(", ")):
        flat[pos:pos + run] = bool(i % 2)
        pos += run
    assert pos == width * height
    return flat.reshape(height, width)


def test_box_is_the_pixels_edges_and_points_their_centres() -> None:
    assert cvat.box_fields(3, 4, 10, 20) == {"xtl": "3.00", "ytl": "4.00", "xbr": "11.00", "ybr": "21.00"}
    assert cvat.points_text([(0, 0), (4, 2)]) == "0.50,0.50;4.50,2.50"


def test_mask_fields_are_the_tight_box_runs() -> None:
    mask = np.zeros((8, 9), bool)
    mask[4, 3:5] = mask[6, 3:5] = True
    assert cvat.mask_fields(mask) == {"rle": "0, 2, 2, 2", "left": "3", "top": "4", "width": "2", "height": "3"}
    assert cvat.mask_fields(np.zeros((3, 3), bool)) is None
    rng = np.random.default_rng(5)
    for _ in range(20):
        m = rng.random((13, 11)) > 0.6
        f = cvat.mask_fields(m)
        if f is None:
            continue
        left, top, w, h = (int(f[k]) for k in ("left", "top", "width", "height"))
        whole = np.zeros_like(m)
        whole[top:top + h, left:left + w] = decode_runs(f["rle"], w, h)
        assert np.array_equal(whole, m)


def test_cuboid_faces_and_skeleton_nodes() -> None:
    keys = [f"face{f}-{c}" for f in (1, 2) for c in ("topleft", "topright", "bottomright", "bottomleft")]
    fields = cvat.cuboid_fields(Cuboid2d({k: (i, 10 * i) for i, k in enumerate(keys)}))
    assert (fields["xtl1"], fields["ybl1"], fields["xbr2"]) == ("0.50", "30.50", "6.50")
    assert cvat.cuboid_fields(Cuboid2d({"face1-topleft": (1, 1)})) is None
    template = GraphTemplate(("a", "b"), ("A", "B"), (("a", "b"),))
    graph_class = ObjClass("k", "graph", (1, 2, 3), template)
    project = Project("/p", ProjectMeta((graph_class,)), (), lambda item: Annotation(0, 0))
    labels = cvat.Labels(project, (graph_class,), ViewOptions())
    graph = Graph({"b": GraphNode(3, 4, disabled=True)})
    el = cvat.skeleton_element(labels, Label("k", graph), graph, {"label": "k"}, None, Counter())
    nodes = [dict(p.attrib) for p in el]
    assert [(n["label"], n["outside"], n["occluded"]) for n in nodes] == [("A", "1", "0"), ("B", "0", "1")]
    assert nodes[1]["points"] == "3.50,4.50"
    svg = cvat.skeleton_svg(template, ["A", "B"])
    assert 'data-node-from="1" data-node-to="2"' in svg and 'data-label-name="B"' in svg


# ---------------------------------------------------------------- what the source says the view holds


def node_labels(meta: dict) -> dict[str, list[str]]:
    return {c["title"]: [n["label"] for n in c["geometry_config"]["nodes"].values()]
            for c in meta["classes"] if c["shape"] == "graph"}


def xml_kind(obj: dict) -> str:
    """The CVAT element of one source object, by the mapping (from the JSON alone)."""
    kind = obj["geometryType"]
    if kind == "polygon":
        return "mask" if polygon_is_mask(obj) else "polygon"
    return {"rectangle": "box", "oriented_bbox": "box", "bitmap": "mask", "alpha_mask": "mask", "line": "polyline",
            "point": "points", "graph": "skeleton", "cuboid_2d": "cuboid"}[kind]


DATUMARO_TYPES = {"box": "bbox", "polygon": "polygon", "mask": "mask", "polyline": "polyline", "points": "points"}


def expected(root: Path) -> tuple[int, Counter, Counter]:
    """(items, XML elements by (element, label), Datumaro annotations by (type, label))."""
    meta = meta_of(root)
    titles = {c["title"] for c in meta["classes"]}
    nodes = node_labels(meta)
    xml: Counter = Counter()
    dm: Counter = Counter()
    n = 0
    for source in source_annotations(root):
        n += 1
        for tag in source.data.get("tags", []):
            name = f"tag:{tag['name']}" if tag["name"] in titles else tag["name"]
            xml["tag", name] += 1
            dm["label", name] += 1
        for obj in source.data.get("objects", []):
            kind, title = xml_kind(obj), obj["classTitle"]
            xml[kind, title] += 1
            if kind == "skeleton":  # Datumaro 1.13.12 reads a skeleton's nodes as lone points
                for node in nodes[title]:
                    dm["points", node] += 1
            elif kind == "box" and obj["geometryType"] == "oriented_bbox":
                dm["rotated_bbox", title] += 1
            elif kind != "cuboid":  # Datumaro 1.13.12 skips cuboids
                dm[DATUMARO_TYPES[kind], title] += 1
    return n, xml, dm


def cvat_read(root: Path) -> Counter:
    """``annotations.xml`` read under CVAT's own rules, asserting what CVAT would otherwise drop or
    refuse: every label and attribute declared, select values among the declared ones, skeleton
    nodes sublabels of their skeleton, each image found by name in its subset's folder, ids
    unique, masks whole and inside their image. Returns the elements by (element, label)."""
    doc = etree.parse(str(root / "annotations.xml"))
    project = doc.find("meta/project")
    declared: dict[tuple[str, str | None], tuple[str, dict[str, tuple[str, list[str]]]]] = {}  # (name, parent)
    for label in project.iterfind("labels/label"):
        attrs = {a.findtext("name"): (a.findtext("input_type"), (a.findtext("values") or "").split("\n"))
                 for a in label.iterfind("attributes/attribute")}
        key = (label.findtext("name"), label.findtext("parent"))
        assert key not in declared, key
        declared[key] = (label.findtext("type"), attrs)
    subsets = [t.findtext("subset") for t in project.iterfind("tasks/task")]
    assert len(set(subsets)) == len(subsets)
    counts: Counter = Counter()
    ids = set()

    def check_attributes(el, label: str) -> None:
        for a in el.iterfind("attribute"):
            kind, values = declared[label, None][1][a.get("name")]
            if kind == "select":
                assert a.text in values, (label, a.get("name"), a.text)
            if kind == "checkbox":
                assert a.text in ("true", "false")

    for image in doc.iterfind("image"):
        assert image.get("id") not in ids
        ids.add(image.get("id"))
        assert image.get("subset") in subsets
        assert (root / "images" / image.get("subset") / image.get("name")).is_file()
        width, height = int(image.get("width")), int(image.get("height"))
        for el in image:
            label = el.get("label")
            assert (label, None) in declared, label
            counts[el.tag, label] += 1
            check_attributes(el, label)
            if el.tag == "tag":
                assert declared[label, None][0] == "tag"
            elif el.tag == "skeleton":
                assert [node.get("label") for node in el.iterfind("points")] == [
                    name for name, parent in declared if parent == label]  # every node, in template order
            elif el.tag == "mask":
                left, top, w, h = (int(el.get(k)) for k in ("left", "top", "width", "height"))
                assert left >= 0 and left + w <= width and top >= 0 and top + h <= height
                assert decode_runs(el.get("rle"), w, h).any()
            elif el.tag == "cuboid":
                assert all(el.get(f"{c}{k}{f}") for c in "xy" for k in ("tl", "bl", "tr", "br") for f in "12")
    return counts


sources = sources_fixture(seed=13)
imports = imports_fixture("cvat")


@pytest.fixture(scope="module")
def mounts(sources: dict[str, Path]) -> Iterator[dict[str, Path]]:
    with mounted_sources(sources, "cvat") as mnts:
        try:
            yield mnts
        finally:
            gc.collect()  # before the unmounts: Datumaro's unfinished XML parsers hold files open


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_imports_the_mount_with_every_item_and_annotation(source: str, sources, mounts, imports) -> None:
    root, mnt = sources[source], mounts[source]
    assert "cvat" in datumaro_detect(mnt)  # what CVAT runs before it imports
    report = imports[source]
    n, _, dm = expected(root)
    assert_clean_import(report, n)
    assert report.label_counts() == dict(dm)


@pytest.mark.parametrize("source", SOURCES)
def test_cvat_reads_every_shape_of_the_mount(source: str, sources, mounts) -> None:
    _, xml, _ = expected(sources[source])
    assert cvat_read(mounts[source]) == xml


@pytest.mark.parametrize("source", SOURCES)
def test_mounted_annotations_are_the_source_geometries(source: str, sources, imports) -> None:
    """Object by object, in order (Datumaro's reading): boxes, rotated boxes, masks pixel for pixel."""
    project = read_project(str(sources[source]))
    dataset = imports[source].dataset
    by_subset = items_by_subset(dataset)
    cats = dataset.categories()[require("datumaro").AnnotationType.label]
    titles = {c.title for c in project.meta.classes if c.shape != "graph"}
    checked: Counter = Counter()
    for split, items in splits(project, ViewOptions()).items():
        read = sorted(by_subset[split], key=lambda it: it.attributes["frame"])
        assert len(read) == len(items)
        for item, got in zip(items, read):
            ann = project.annotation(item)
            plain = [lb for lb in ann.labels if not isinstance(lb.geometry, (Graph, Cuboid2d))]
            shapes = [a for a in got.annotations if a.type.name != "label" and cats[a.label].name in titles]
            assert len(shapes) == len(plain)
            for label, shape in zip(plain, shapes):
                assert_shape_is_label(shape, label, ann.width, ann.height, exact=False)
                checked[shape.type.name] += 1
    assert checked["mask"] and checked["bbox"]


def test_cuboid_tags_are_written_only_when_asked_and_reported_otherwise(sources: dict[str, Path]) -> None:
    problems: list = []
    project = read_project(str(sources["sample-plain"]), report=problems.append)
    tagged = [(item, {t.name for t in lb.tags if t.name != "occluded"}) for item in project.items()
              for lb in project.annotation(item).labels if isinstance(lb.geometry, Cuboid2d)]
    tagged = [(item, names) for item, names in tagged if names]
    assert tagged
    files = view_files(["cvat"], project, ViewOptions())
    doc = etree.fromstring(VirtualTree(files).read_file("annotations.xml"))
    assert all(len(c) == 0 for c in doc.iter("cuboid"))
    reported = [p for p in problems if "cuboid" in p.message]
    assert sorted(p.item for p in reported) == sorted({item.name for item, _ in tagged})
    asked = view_files(["cvat"], project, ViewOptions(params={"cvat.cuboid-attributes": "1"}))
    doc = etree.fromstring(VirtualTree(asked).read_file("annotations.xml"))
    assert sorted(a.get("name") for c in doc.iter("cuboid") for a in c) == sorted(n for _, ns in tagged for n in ns)


def test_occluded_tag_is_the_shape_flag_and_the_option_renames_it(sources: dict[str, Path]) -> None:
    root = sources["sample-plain"]
    want: Counter = Counter()
    for source in source_annotations(root):
        for obj in source.data["objects"]:
            if obj["geometryType"] in ("rectangle", "polygon", "line", "point", "oriented_bbox", "bitmap",
                                       "alpha_mask", "cuboid_2d"):
                flag = next((t["value"] for t in obj.get("tags", []) if t["name"] == "occluded"), "0")
                want[str(flag)] += 1
    doc = etree.fromstring(VirtualTree(view_files(["cvat"], read_project(str(root)), ViewOptions()))
                           .read_file("annotations.xml"))
    got = Counter(el.get("occluded") for image in doc.iter("image") for el in image
                  if el.tag not in ("tag", "skeleton"))
    assert want["1"] and got == want
    renamed = view_files(["cvat"], read_project(str(root)), ViewOptions(params={"cvat.occluded-tag": "nothing"}))
    doc = etree.fromstring(VirtualTree(renamed).read_file("annotations.xml"))
    assert {el.get("occluded") for image in doc.iter("image") for el in image if el.tag == "box"} == {"0"}


def test_odd_dataset_and_image_names_become_reader_safe_subsets(tmp_path: Path) -> None:
    """Spaces, ``_``, non-ASCII and a long name in datasets; spaces, non-ASCII and collisions in images."""
    root, out = odd_names_view("cvat", tmp_path)
    subsets = sorted(p.name for p in (out / "images").iterdir())
    assert len(subsets) == 2 and all(re.fullmatch(r"[A-Za-z0-9-]{1,64}", s) for s in subsets)
    assert cvat_read(out) == expected(root)[1]
    assert_odd_names_read_back(datumaro_import_all(out, "cvat"), root, subsets)


def test_image_names_xml_cannot_hold_are_escaped_alike_in_the_file_and_the_xml() -> None:
    assert cvat.xml_component("a\ufffeb/c.jpg") == "a%EF%BF%BEb%2Fc.jpg"
    assert cvat.xml_component("straße ü.jpg") == "straße ü.jpg"
