"""Property tests: any annotation either parses or is reported, and every registered view
turns whatever parses into files that lie inside their images and parse in a real reader."""

from __future__ import annotations

import json
import math
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from slyfs.formats.contract import Generated
from slyfs.formats.model import Annotation, Dataset, ImageRef, Item, Project
from slyfs.formats.readers.supervisely.annotation import parse_annotation
from slyfs.formats.readers.supervisely.meta import parse_meta
from slyfs.formats.registry import FORMATS, format_module
from slyfs.formats.view import ViewOptions
from tests.helpers.views import view_files

META = parse_meta({"classes": [
    {"title": "car", "shape": "any", "color": "#FF0000"},
    {"title": "person", "shape": "graph", "color": "#00FF00",
     "geometry_config": {"nodes": {"n1": {"label": "head"}, "n2": {"label": "foot"}},
                         "edges": [{"src": "n1", "dst": "n2"}]}},
]}, [])

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=5)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)
coord = st.integers(-50, 150) | st.floats(-50, 150, allow_nan=False) | json_values
point = st.lists(coord, min_size=2, max_size=2) | json_values
points = st.lists(point, min_size=0, max_size=6)


@st.composite
def objects(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["rectangle", "polygon", "line", "point", "graph", "cuboid_2d",
                                 "oriented_bbox", "bitmap", "hexagon"]) | json_values)
    obj: dict = {"classTitle": draw(st.sampled_from(["car", "person", "truck"]) | json_values),
                 "geometryType": kind}
    if kind in ("graph",):
        obj["nodes"] = {"n1": {"loc": draw(point)}, "n2": {"loc": draw(point), "disabled": draw(st.booleans())}}
    elif kind == "cuboid_2d":
        obj["vertices"] = {f"v{i}": {"loc": draw(point)} for i in range(draw(st.integers(0, 8)))}
    elif kind == "bitmap":
        obj["bitmap"] = {"origin": draw(point), "data": draw(st.text(max_size=20))}
    else:
        obj["points"] = draw(st.fixed_dictionaries({"exterior": points, "interior": st.lists(points, max_size=2)})
                             | json_values)
    if draw(st.booleans()):
        obj["angle"] = draw(coord)
    if draw(st.booleans()):
        obj["tags"] = draw(json_values)
    return draw(st.just(obj) | json_values) if draw(st.integers(0, 9)) == 0 else obj


annotations = st.fixed_dictionaries({
    "size": st.fixed_dictionaries({"width": st.integers(1, 64), "height": st.integers(1, 64)}),
    "objects": st.lists(objects(), max_size=6),
    "tags": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["train", "val", "x"])}), max_size=2) | json_values,
})


@settings(max_examples=100, deadline=None)
@given(st.one_of(annotations, json_values))
def test_any_annotation_parses_or_is_reported(data: object) -> None:
    problems: list[str] = []
    ann = parse_annotation(data, META, (40, 30), problems)
    assert isinstance(ann, Annotation) and (ann.width, ann.height) == (40, 30)
    assert all(isinstance(p, str) and p for p in problems)
    objs = data.get("objects") if isinstance(data, dict) else None
    if isinstance(objs, list):  # every object is either kept or reported
        reported = {int(m.group(1)) for p in problems
                    if (m := re.match(r"object #(\d+)", p)) and p.endswith("object left out")}
        assert len(ann.labels) + len(reported) == len(objs)


def _project(anns: list[tuple[str, Annotation]]) -> Project:
    items = tuple(Item("ds" if i % 2 else "val", name, ImageRef(f"/nonexistent/{name}", 0, 100), None, (i,))
                  for i, (name, _) in enumerate(anns))
    by_name = {item.name: a for item, (_, a) in zip(items, anns)}
    return Project(root="/nonexistent", meta=META,
                   datasets=(Dataset("ds", tuple(i for i in items if i.dataset == "ds")),
                             Dataset("val", tuple(i for i in items if i.dataset == "val"))),
                   load_annotation=lambda item: by_name[item.name])


def _check_label_rows(text: str) -> None:
    for row in text.splitlines():
        cls, *nums = row.split()
        assert int(cls) >= 0
        for tok in nums:
            v = float(tok)
            assert math.isfinite(v)
            if "." in tok or "e" in tok:
                assert 0.0 <= v <= 1.0, row  # coordinates are fractions of the image
            else:
                assert v in (0, 1, 2), row  # keypoint visibility


def _check_json(data: object, sizes: dict[str, tuple[int, int]]) -> None:
    if not isinstance(data, dict) or "images" not in data:
        return
    sizes_by_id = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    for a in data.get("annotations", []):
        w, h = sizes_by_id[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        assert x >= 0 and y >= 0 and bw >= 0 and bh >= 0 and x + bw <= w + 1e-6 and y + bh <= h + 1e-6, a
        for poly in a.get("segmentation", []) if isinstance(a.get("segmentation"), list) else []:
            assert all(0 <= v <= max(w, h) + 1e-6 for v in poly)


def _check_xml(root: etree._Element) -> None:
    size = root.find("size")
    if size is None:
        return
    w, h = float(size.findtext("width")), float(size.findtext("height"))
    for box in root.iter("bndbox"):
        x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= x0 <= x1 <= w + 1 and 0 <= y0 <= y1 <= h + 1, etree.tostring(box)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(annotations, min_size=1, max_size=4))
def test_every_view_output_lies_inside_its_image_and_parses(raw: list[dict]) -> None:
    anns = []
    for i, data in enumerate(raw):
        anns.append((f"img{i}.png", parse_annotation(data, META, (data["size"]["width"], data["size"]["height"]), [])))
    project = _project(anns)
    sizes = {name: (a.width, a.height) for name, a in anns}
    for fmt in FORMATS:
        files = view_files(format_module(fmt), project, ViewOptions())
        for path, node in files.items():
            if not isinstance(node, Generated):
                continue
            body = node.render()
            if path.endswith(".txt") and "labels/" in path:
                _check_label_rows(body.decode())
            elif path.endswith(".json"):
                _check_json(json.loads(body), sizes)
            elif path.endswith(".xml"):
                _check_xml(etree.fromstring(body))
            elif path.endswith((".yaml", ".yml")):
                assert isinstance(yaml.safe_load(body), dict)
            elif path.endswith(".png"):
                assert body.startswith(b"\x89PNG")
            elif path.endswith(".bmp"):
                assert body.startswith(b"BM")
            else:
                body.decode("utf-8")
