"""The ImageNet view: class sources, names and list lines unit by unit, then real mounts of both SDK
fixtures and a generated project in both layouts, read by Datumaro's ``imagenet`` and
``imagenet_txt`` importers, with classes and images checked against the annotation JSON itself."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.formats.model import ProjectMeta, Tag, TagMeta
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import imagenet
from slyfs.vfs.tree import VirtualTree
from tests.conftest import PLAIN, read_tree
from tests.helpers.mounts import SOURCES, assert_clean_import, mount_once, plain_twin, sources_fixture
from tests.helpers.readers import datumaro_import_all, require
from tests.helpers.source import source_annotations
from tests.helpers.views import write_view

FIXTURE_TAG = "weather"  # the fixtures' only oneof_string image tag: what the default picks there
SAMPLE_TAG = "species"


# ---------------------------------------------------------------- expectations from the JSON alone


def source_images(root: Path) -> Iterator[tuple[str, dict]]:
    """(top dataset, annotation JSON) of every image of a project."""
    return ((a.top, a.data) for a in source_annotations(root))


def classes_in(ann: dict, tag: str) -> list[str]:
    return sorted({t["value"] for t in ann["tags"] if t["name"] == tag and isinstance(t.get("value"), str)})


def expected_counts(root: Path, tag: str) -> Counter:
    return Counter(("label", c) for _, ann in source_images(root) for c in classes_in(ann, tag))


def source_digests(root: Path, tag: str, per_class: bool) -> Counter:
    """How many times each image's bytes appear: once per class of the image (at least once), or once.
    A blob project's images are read from its plain twin (the same images, written by the same seed)."""
    out: Counter = Counter()
    for source in source_annotations(plain_twin(root)):
        n = max(1, len(classes_in(source.data, tag))) if per_class else 1
        out[hashlib.sha1(source.image.read_bytes()).hexdigest()] += n
    return out


# ---------------------------------------------------------------- pure helpers


def meta(*tags: TagMeta) -> ProjectMeta:
    return ProjectMeta((), tags)


def test_class_source_picks_the_first_oneof_tag_that_is_not_a_split_tag():
    tags = (TagMeta("train", "none"), TagMeta("flag", "none"), TagMeta("colour", "oneof_string", ("red", "blue")),
            TagMeta("kind", "oneof_string", ("a", "b")), TagMeta("who", "any_string"))
    auto = imagenet.class_source(meta(*tags), "")
    assert auto.tag == tags[2] and auto.classes == ("red", "blue") and auto.problem is None
    assert imagenet.class_source(meta(*tags), "kind").classes == ("a", "b")
    assert imagenet.class_source(meta(*tags), "flag").classes == ("flag",)
    for wanted, why in (("who", "free values"), ("nope", "not in meta.json")):
        none = imagenet.class_source(meta(*tags), wanted)
        assert none.tag is None and none.classes == () and why in none.problem
        assert "--opt imagenet.class-tag=NAME" in none.problem and "flag, colour, kind" in none.problem
    empty = imagenet.class_source(meta(TagMeta("train", "none")), "")
    assert empty.tag is None and "no oneof_string image tag" in empty.problem


def test_class_folders_are_single_components_readers_take_for_classes():
    assert imagenet.class_folders(["red fox", "café", "a/b", "no_label", "Images", "labels2"]) == \
        ["red fox", "café", "a%2Fb", "%6Eo_label", "%49mages", "labels2"]
    a, b = imagenet.class_folders(["a/b", "a%2Fb"])  # the second looks like the first's escape: kept apart
    assert b == "a%2Fb" and a.startswith("a%2Fb~") and a != b
    assert imagenet.class_folders([".", ".."]) == ["%2E", "%2E%2E"]


def test_synsets_and_list_lines():
    assert imagenet.synset_names([" x ", "a\nb", "y"]) == ["%20x%20", "a%0Ab", "y"]
    assert imagenet.list_component('my "best" pic.jpg') == "my%20%22best%22%20pic.jpg"
    assert imagenet.txt_split_labels(["train", "synsets"]) == {"train": "train", "synsets": "synsets~2"}
    assert imagenet.split_list(["a.jpg", "b.png"], [[2, 0], []]) == b"a.jpg 2 0\nb.png\n"


def test_item_classes_follow_the_tag():
    oneof = imagenet.ClassSource(TagMeta("kind", "oneof_string", ("a", "b")), ("a", "b"))
    tags = (Tag("kind", "b"), Tag("other", "a"), Tag("kind", "a"), Tag("kind", "b"), Tag("kind", "zzz"))
    assert imagenet.item_classes(tags, oneof) == [1, 0]
    flag = imagenet.ClassSource(TagMeta("flag", "none"), ("flag",))
    assert imagenet.item_classes((Tag("flag"),), flag) == [0] and imagenet.item_classes((), flag) == []
    assert imagenet.item_classes(tags, imagenet.ClassSource(None, ())) == []


def test_a_missing_tag_is_said_in_the_log_and_in_the_txt_readme():
    log = ProblemLog()
    project = read_project(str(PLAIN), report=log)
    tree = VirtualTree(build_view(project, ["imagenet"], ViewOptions(params={"imagenet.class-tag": "nope"})))
    assert tree.listdir("") == ["no_label"]  # the folders layout holds images only
    assert len(tree.walk_files()) == 12  # listing reads every annotation (and reports its objects)
    messages = [p.message for p in log.all()]
    assert any("tag 'nope' is not in meta.json" in m for m in messages)
    kinds = {"bitmap": "mask", "alpha_mask": "mask", "cuboid_2d": "cuboid", "oriented_bbox": "oriented box"}
    want = Counter(kinds.get(obj["geometryType"], obj["geometryType"])
                   for _, ann in source_images(PLAIN) for obj in ann["objects"])
    got: Counter = Counter()
    for m in messages:
        if found := re.fullmatch(r"(\d+) (.+) label\(s\) cannot be expressed in ImageNet", m):
            got[found[2]] += int(found[1])
    assert got == want  # every object, counted by kind: the format has no place for any
    txt = VirtualTree(build_view(project, ["imagenet"], ViewOptions(params={"imagenet.class-tag": "nope",
                                                                             "imagenet.layout": "txt"})))
    readme = txt.read_file(imagenet.README).decode()
    assert "--opt imagenet.class-tag=NAME" in readme and "weather" in readme
    assert txt.read_file("synsets.txt") == b""
    ok = VirtualTree(build_view(project, ["imagenet"], ViewOptions(params={"imagenet.layout": "txt"})))
    assert imagenet.README not in ok.listdir("")


def test_a_class_edit_moves_the_image_and_the_stale_paths_say_so(tmp_path: Path):
    """An image whose class tag changes leaves one folder for another (a live mount's rebuild)."""
    source = tmp_path / "src"
    shutil.copytree(PLAIN, source)
    reader = SuperviselySource(str(source), SourceIndex(tmp_path / "index.sqlite"))
    tree = VirtualTree(build_view(reader.scan(), ["imagenet"], ViewOptions()))
    before = set(tree.walk_files())
    target = next(p for p in sorted(source.rglob("ann/*.json")) if not classes_in(json.loads(p.read_text()),
                                                                                   FIXTURE_TAG))
    data = json.loads(target.read_text())
    data["tags"].append({"name": FIXTURE_TAG, "value": "cloudy"})
    target.write_text(json.dumps(data))
    project, change = reader.update([str(target)])
    stale = set(tree.replace(tree.view.updated(project, change), change))
    after = set(tree.walk_files())
    fresh = VirtualTree(build_view(read_project(str(source)), ["imagenet"], ViewOptions()))
    assert after == set(fresh.walk_files())
    (new,) = after - before
    (old,) = before - after
    assert new.startswith("cloudy/") and old.startswith("no_label/")
    # a removed path is stale itself, a new one through its folder (as the view contract has it)
    assert old in stale and (new in stale or "cloudy" in stale) and {"", "no_label"} <= stale


# ---------------------------------------------------------------- real mounts


sources = sources_fixture(seed=4)
CASES = [f"{src}/{lay}" for src in SOURCES for lay in ("folders", "txt")]


@pytest.fixture(scope="module", params=CASES)
def mounted_view(request, sources) -> Iterator[tuple[Path, str, str, Path]]:
    """(source, layout, class tag, mount); the samples name their tag, the fixtures rely on the default."""
    name, lay = request.param.split("/")
    source = sources[name]
    tag = FIXTURE_TAG if name.startswith("fixture") else SAMPLE_TAG
    opts = ["--opt", f"imagenet.layout={lay}"] + ([] if tag == FIXTURE_TAG else ["--opt", f"imagenet.class-tag={tag}"])
    for mnt, _ in mount_once(source, "imagenet", *opts):
        yield source, lay, tag, mnt


def test_datumaro_reads_the_mount(mounted_view):
    require("datumaro")
    source, lay, tag, mnt = mounted_view
    # CVAT's own choice on import: a *.txt at the root means the list form, else the folders
    assert any(p.suffix == ".txt" for p in mnt.iterdir() if p.is_file()) == (lay == "txt")
    report = datumaro_import_all(mnt, "imagenet" if lay == "folders" else "imagenet_txt")
    images = list(source_images(source))
    # the folders layout makes an item of each (image, class); the list one item per image
    per_image = [max(1, len(classes_in(ann, tag))) for _, ann in images] if lay == "folders" else [1] * len(images)
    assert_clean_import(report, sum(per_image))
    assert report.label_counts() == expected_counts(source, tag)
    if lay == "txt":
        want = Counter(split for split, _ in images)
        assert Counter(item.subset for item in report.dataset) == want


def test_the_files_are_the_source_images(mounted_view):
    """Each image's bytes, once per class (folders) or once (list); the folders layout holds nothing else."""
    source, lay, tag, mnt = mounted_view
    files = read_tree(mnt)
    if lay == "folders":
        assert all(p.count("/") == 1 for p in files)  # one level of class folders, images only
        images = files
    else:
        images = {p: d for p, d in files.items() if p.startswith("images/")}
    served = Counter(hashlib.sha1(d).hexdigest() for d in images.values())
    assert served == source_digests(source, tag, per_class=lay == "folders")


# ---------------------------------------------------------------- hostile class names and image types


HOSTILE_CLASSES = ["no_label", "a/b", "Images", "red fox", " padded ", "café"]


@pytest.mark.parametrize("lay", ["folders", "txt"])
def test_hostile_classes_and_a_jfif_read_back(tmp_path: Path, lay: str):
    """Class values readers would take for something else, one per image, and a ``.jfif`` (no image to
    Datumaro's folder reader): every class comes back under its documented name, the JFIF only in the list."""
    require("datumaro")
    source = tmp_path / "src"
    shutil.copytree(PLAIN, source)
    meta_path = source / "meta.json"
    data = json.loads(meta_path.read_text())
    next(t for t in data["tags"] if t["name"] == FIXTURE_TAG)["values"] = HOSTILE_CLASSES
    meta_path.write_text(json.dumps(data))
    anns = sorted(source.rglob("ann/*.json"))
    for k, path in enumerate(anns):
        ann = json.loads(path.read_text())
        ann["tags"] = [t for t in ann["tags"] if t["name"] != FIXTURE_TAG]
        ann["tags"].append({"name": FIXTURE_TAG, "value": HOSTILE_CLASSES[k % len(HOSTILE_CLASSES)]})
        path.write_text(json.dumps(ann))
    jfif = source / "train/img/img_001.jpg"
    jfif.rename(jfif.with_suffix(".jfif"))  # a JPEG under a name Supervisely takes and Datumaro does not
    (source / "train/ann/img_001.jpg.json").rename(source / "train/ann/img_001.jfif.json")
    jfif_class = HOSTILE_CLASSES[[p.name for p in anns].index("img_001.jpg.json") % len(HOSTILE_CLASSES)]
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(source), report=log), ["imagenet"],
                                  ViewOptions(params={"imagenet.layout": lay})))
    out = write_view(tree, tmp_path / "out")
    report = datumaro_import_all(out, "imagenet" if lay == "folders" else "imagenet_txt")
    assert_clean_import(report)
    names = imagenet.class_folders(HOSTILE_CLASSES) if lay == "folders" else imagenet.synset_names(HOSTILE_CLASSES)
    assert names == (["%6Eo_label", "a%2Fb", "%49mages", "red fox", " padded ", "café"] if lay == "folders"
                     else ["no_label", "a/b", "Images", "red fox", "%20padded%20", "café"])
    want = Counter(("label", names[k % len(HOSTILE_CLASSES)]) for k in range(len(anns)))
    if lay == "folders":  # the JFIF is left out, and the log says so
        want["label", names[HOSTILE_CLASSES.index(jfif_class)]] -= 1
        assert any(p.item == "img_001.jfif" and "not an image extension" in p.message for p in log.all())
    assert report.label_counts() == +want
