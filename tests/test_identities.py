"""formats/common/identities.py: tag values, tokens, identity and subset names, landmarks, the
README note, and the per-value image folders, with numbers."""

from __future__ import annotations

from slyfs.formats.common.identities import (
    LANDMARK_COUNT,
    Notes,
    folders_by_value,
    identity_names,
    image_name,
    image_tag_text,
    landmark_classes,
    landmark_points,
    number,
    tag_int,
    tag_value_text,
    token,
)
from slyfs.formats.common.splits import plain_subset_names
from slyfs.formats.common.tags import tag_flag
from slyfs.formats.contract import Generated, SourceBytes
from slyfs.formats.model import (
    Annotation,
    Dataset,
    Graph,
    GraphNode,
    GraphTemplate,
    ImageRef,
    Item,
    ObjClass,
    Problem,
    Project,
    ProjectMeta,
    Tag,
)


def test_tag_values() -> None:
    assert [tag_value_text(v) for v in (None, "", "  ", " Ana ", 3, 3.0, 2.5)] == [None, None, None, "Ana", "3", "3",
                                                                                   "2.5"]
    ann = Annotation(10, 10, (Tag("person_id", 7.0), Tag("frame", "12"), Tag("bad", "x"), Tag("half", 1.5),
                              Tag("person_id", 9)))
    assert (tag_int(ann, "person_id"), tag_int(ann, "frame"), tag_int(ann, "bad"), tag_int(ann, "half"),
            tag_int(ann, "none")) == (7, 12, None, None, None)
    assert image_tag_text(ann, "bad") == "x" and image_tag_text(ann, "missing") is None
    assert [tag_flag(v) for v in (None, 0, 1, 0.0, "0", "False", " no ", "", "yes", "2")] == [
        True, False, True, False, False, False, False, False, True, True]


def test_tokens_and_names() -> None:
    assert token("Ana Lima") == "Ana%20Lima" and token("a/b\tc") == "a%2Fb%09c" and token("50%") == "50%25"
    assert token("a\\b") == "a%5Cb" and token("Zoë") == "Zoë" and image_name(" a\\b c.jpg") == "%20a%5Cb%20c.jpg"
    names = identity_names(["b", "Ana Lima", "Ana%20Lima", "no_label", "b"], reserved=("no_label",))
    assert names == {"Ana Lima": "Ana%20Lima", "Ana%20Lima": "Ana%2520Lima", "b": "b", "no_label": "%6Eo_label"}
    long = identity_names(["x" * 300])["x" * 300]
    assert len(long.encode()) == 128 and long.startswith("x" * 100)
    assert plain_subset_names(["train", "my_set", "my.set", "query"], reserved=("query",)) == {
        "train": "train", "my_set": "my-set", "my.set": "my-set-2", "query": "query-2"}


def test_landmarks_at_pixel_centres_in_template_order() -> None:
    ids = ("e1", "e2", "n", "m1", "m2")
    graph = Graph({"m2": GraphNode(9, 9), "e1": GraphNode(1, 2), "e2": GraphNode(3, 2), "n": GraphNode(2, 5),
                   "m1": GraphNode(1, 8)})
    assert landmark_points(graph, ids) == [(1.5, 2.5), (3.5, 2.5), (2.5, 5.5), (1.5, 8.5), (9.5, 9.5)]
    assert landmark_points(Graph({**graph.nodes, "n": GraphNode(2, 5, disabled=True)}), ids) is None
    assert landmark_points(Graph({k: v for k, v in graph.nodes.items() if k != "n"}), ids) is None
    classes = [ObjClass("face5", "graph", (0, 0, 0), GraphTemplate(ids, ids, ())),
               ObjClass("pose3", "graph", (0, 0, 0), GraphTemplate(ids[:3], ids[:3], ())),
               ObjClass("box", "rectangle", (0, 0, 0))]
    assert landmark_classes(classes) == {"face5"} and LANDMARK_COUNT == 5
    assert [number(v) for v in (12, 12.0, 12.5, 0.25)] == ["12", "12", "12.5", "0.25"]


def _project(values: dict[str, str | None], reported: list[Problem]) -> Project:
    items = tuple(Item("ds", name, ImageRef(f"/src/{name}", 0, 10), None) for name in sorted(values))
    return Project("/src", ProjectMeta(()), (Dataset("ds", items),), lambda item: Annotation(1, 1),
                   report=reported.append)


def test_notes_say_once_what_is_missing() -> None:
    reported: list[Problem] = []
    project = _project({}, reported)
    assert Notes("V", ()).static() == ()
    notes = Notes("V", ("no identity tag", "no pairs"))
    notes.report(project)
    assert [p.message for p in reported] == ["V: no identity tag", "V: no pairs"]
    (static,) = notes.static()
    node = static.node([])
    assert static.path == "README.slyfs.txt" and isinstance(node, Generated)
    assert node.render().decode().splitlines()[2:] == ["- no identity tag", "- no pairs"]


def test_folders_by_value_put_each_image_under_its_value() -> None:
    values = {"a.jpg": "P1", "b.jpg": None, "c.jpg": "P2", "d.jpg": "P1"}
    project = _project(values, [])
    files = folders_by_value({("ds", k): v for k, v in values.items()}, {None: "no_label", "P1": "p1", "P2": "p2"},
                             lambda split, sub: f"{split}/{sub}")
    items = list(project.items())
    held = {spec.folder("train"): [i.name for i in items if spec.present is not None and spec.present(i)]
            for spec in files}
    assert held == {"train/no_label": ["b.jpg"], "train/p1": ["a.jpg", "d.jpg"], "train/p2": ["c.jpg"]}
    at = {spec.folder("train"): list(spec.positions(items)) for spec in files if spec.positions is not None}
    assert at == {"train/no_label": [1], "train/p1": [0, 3], "train/p2": [2]}
    assert isinstance(files[0].node(items[1], "b.jpg"), SourceBytes)
