"""The supervisely view: blob, plain or mixed sources shown as the plain project the SDK writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from slyfs.formats.model import Dataset, ImageRef, Item, Project, ProjectMeta
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import supervisely
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, read_tree
from tests.helpers.views import view_files

SDK_PROJECTS = {"plain": PLAIN, "blob": BLOB}


def served(source: Path, options: ViewOptions = ViewOptions()) -> dict[str, bytes]:
    tree = VirtualTree(build_view(read_project(str(source)), ["supervisely"], options))
    return {path: tree.read_file(path) for path in tree.walk_files()}


def summary(project: Project) -> list[tuple]:
    """What a reader makes of a project: items, image sizes, tags and labels (class, kind, extent)."""
    out = []
    for item in project.items():
        ann = project.annotation(item)
        labels = [(lb.class_title, type(lb.geometry).__name__, lb.geometry.pixel_box()) for lb in ann.labels]
        out.append((item.dataset, item.name, ann.width, ann.height, ann.tags, labels))
    return out


def test_blob_and_plain_fixtures_serve_the_plain_fixture_byte_for_byte() -> None:
    expected = read_tree(PLAIN)
    for source in (BLOB, PLAIN):
        assert served(source) == expected, source


def test_mounted_blob_project_is_the_plain_project_and_reads_back(mount) -> None:
    with mount(BLOB, "--format", "supervisely") as mnt:
        assert read_tree(mnt) == read_tree(PLAIN)
        assert summary(read_project(str(mnt))) == summary(read_project(str(PLAIN)))


def test_legacy_stem_annotation_is_served_under_the_item_name(plain_copy: Path) -> None:
    ann = plain_copy / "train" / "ann"
    (ann / "img_001.jpg.json").rename(ann / "img_001.json")
    files = served(plain_copy)
    assert files["train/ann/img_001.jpg.json"] == (ann / "img_001.json").read_bytes()
    assert "train/ann/img_001.json" not in files


def test_item_without_annotation_gets_an_empty_one_of_the_image_size(plain_copy: Path) -> None:
    (plain_copy / "val" / "ann" / "val_001.jpg.json").unlink()
    data = json.loads(served(plain_copy)["val/ann/val_001.jpg.json"])
    with Image.open(plain_copy / "val" / "img" / "val_001.jpg") as img:
        assert (data["size"]["width"], data["size"]["height"]) == img.size
    assert data["objects"] == [] and data["tags"] == []


@pytest.mark.parametrize("source", SDK_PROJECTS.values(), ids=SDK_PROJECTS.keys())
def test_classes_and_no_empty_filter_meta_annotations_and_items(source: Path) -> None:
    kept = ("car", "road")
    files = served(source, ViewOptions(classes=kept, include_empty=False))
    meta = json.loads(files["meta.json"])
    assert [c["title"] for c in meta["classes"]] == list(kept)
    source_meta = json.loads((PLAIN / "meta.json").read_bytes())
    assert meta["tags"] == source_meta["tags"]
    ann_paths = [p for p in files if "/ann/" in p]
    assert ann_paths
    for path in ann_paths:
        data = json.loads(files[path])
        original = json.loads((PLAIN / path).read_bytes())
        assert data["objects"] == [o for o in original["objects"] if o["classTitle"] in kept]
        assert data["objects"], f"{path}: an item without kept objects is served despite --no-empty"
        assert ({k: v for k, v in data.items() if k != "objects"}
                == {k: v for k, v in original.items() if k != "objects"})
    with_kept = {p for p in read_tree(PLAIN) if "/ann/" in p
                 and any(o["classTitle"] in kept for o in json.loads((PLAIN / p).read_bytes())["objects"])}
    assert set(ann_paths) == with_kept
    for path in ann_paths:  # every kept item keeps its image and sidecars
        image = path.replace("/ann/", "/img/")[: -len(".json")]
        assert files[image] == (PLAIN / image).read_bytes()


def test_split_does_not_change_the_layout() -> None:
    assert served(BLOB, ViewOptions(split="ratio:0.5")) == served(BLOB)


def test_hostile_names_stay_inside_and_do_not_collide(tmp_path: Path) -> None:
    image = tmp_path / "x.jpg"
    image.write_bytes(b"not really a jpeg")
    ref = ImageRef(str(image), 0, image.stat().st_size)
    names = ["..", ".", "a/b.jpg", "a%2Fb.jpg", "\udcff.jpg", "%FF.jpg", "x" * 300 + ".jpg"]
    datasets = ("..", "../datasets", "ok")
    project = Project(root=str(tmp_path), meta=ProjectMeta(classes=()), load_annotation=lambda item: None,
                      datasets=tuple(Dataset(ds, tuple(Item(ds, n, ref, None) for n in names)) for ds in datasets))
    files = view_files(supervisely, project, ViewOptions())
    assert len(files) == 1 + 2 * len(names) * len(datasets)  # meta.json, then img + ann of each item
    for path in files:
        parts = path.split("/")
        assert all(p not in ("", ".", "..") and len(p.encode()) <= 255 for p in parts), path
        path.encode("utf-8")  # valid UTF-8
    assert {p.split("/")[0] for p in files} == {"meta.json", "%2E%2E", "ok"}
    assert len({p for p in files if p.startswith("%2E%2E/datasets/datasets/img/")}) == len(names)


def test_unreadable_annotation_with_classes_is_served_without_labels_and_reported(plain_copy: Path) -> None:
    from slyfs.formats.readers.supervisely import ProblemLog
    from slyfs.formats.readers.supervisely.project import MAX_ANN_BYTES

    ann = plain_copy / "train" / "ann"
    (ann / "img_001.jpg.json").write_bytes(b'{"size": {"width": 1, "objects": [')
    with open(ann / "img_006.png.json", "r+b") as f:
        f.truncate(MAX_ANN_BYTES + 1)  # sparse: valid JSON start, too large to be read at all
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(plain_copy), report=log), ["supervisely"],
                                  ViewOptions(classes=("car",))))
    for name in ("img_001.jpg", "img_006.png"):
        data = json.loads(tree.read_file(f"train/ann/{name}.json"))
        with Image.open(plain_copy / "train" / "img" / name) as img:
            assert (data["size"]["width"], data["size"]["height"]) == img.size
        assert data["objects"] == []
        assert any(p.item == name and "annotation unreadable" in p.message for p in log.all())
