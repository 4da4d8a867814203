"""The view contract, checked for every format by the same tests (each format joins with one line):

- every listed path resolves: a folder lists, a file reads, and its size is the length of what it reads;
- an image file is its source's bytes (read here independently, by offset, from the source file);
- two builds of one source are equal, file for file;
- after an edit of the source, the view made from the reader's change equals a fresh build, and the
  paths it reports stale cover every path whose bytes changed, appeared or disappeared (a new or
  vanished path through its folder);
- through a real mount, ``st_size`` is what a read returns, for every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from slyfs.formats.contract import SourceBytes
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import FORMATS, build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.errors import Unreadable
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN

SOURCES = {"plain": PLAIN, "blob": BLOB}


def build(root: Path, formats: list[str], options: ViewOptions) -> VirtualTree:
    return VirtualTree(build_view(read_project(str(root), report=ProblemLog()), formats, options))


def walk(tree: VirtualTree, folder: str = "") -> list[str]:
    """Every file path, found by listing folders from the root (not from the tree's own index)."""
    out = []
    for name in tree.listdir(folder):
        path = f"{folder}/{name}" if folder else name
        out += walk(tree, path) if tree.attr(path).is_dir else [path]
    return out


def digests(tree: VirtualTree) -> dict[str, str]:
    out = {}
    for path in walk(tree):
        try:
            out[path] = hashlib.sha256(tree.read_file(path)).hexdigest()
        except Unreadable:
            out[path] = "EIO"
    return out


Edit = tuple[str, list[str]]  # what was done, and the paths a watcher would report


def edit_annotation(root: Path, rng: random.Random) -> Edit:
    """Drops the last object of one annotation that has some (or adds a box to one that has none)."""
    anns = sorted(root.rglob("ann/*.json"))
    target = rng.choice(anns)
    data = json.loads(target.read_text())
    if data["objects"]:
        data["objects"].pop()
    else:
        data["objects"].append({"classTitle": "car", "geometryType": "rectangle", "tags": [],
                                "points": {"exterior": [[1, 1], [5, 5]], "interior": []}})
    target.write_text(json.dumps(data))
    return f"edited {target.relative_to(root)}", [str(target)]


def retag(root: Path, rng: random.Random) -> Edit:
    """Moves one image to another split by tags: adds ``val`` to an untagged image, or drops its split tags."""
    target = rng.choice(sorted(root.rglob("ann/*.json")))
    data = json.loads(target.read_text())
    split_tags = [t for t in data.get("tags", []) if t.get("name") in ("train", "val", "test")]
    data["tags"] = ([t for t in data.get("tags", []) if t not in split_tags] if split_tags
                    else [*data.get("tags", []), {"name": "val", "value": None}])
    target.write_text(json.dumps(data))
    return f"retagged {target.relative_to(root)}", [str(target)]


def add_image(root: Path, rng: random.Random) -> Edit:
    """A copy of a plain image, with its annotation, under a new name in the same dataset."""
    image = rng.choice(sorted(p for p in root.rglob("img/*") if p.is_file()))
    ann = image.parent.parent / "ann" / f"{image.name}.json"
    new = image.with_name(f"added_{image.name}")
    shutil.copyfile(image, new)
    paths = [str(new), str(new.parent)]
    if ann.exists():
        shutil.copyfile(ann, ann.with_name(f"{new.name}.json"))
        paths += [str(ann.with_name(f"{new.name}.json")), str(ann.parent)]
    return f"added {new.relative_to(root)}", paths


def remove_annotation(root: Path, rng: random.Random) -> Edit:
    target = rng.choice(sorted(root.rglob("ann/*.json")))
    target.unlink()
    return f"removed {target.relative_to(root)}", [str(target), str(target.parent)]


def remove_image(root: Path, rng: random.Random) -> Edit:
    """A plain image deleted with its annotation: the item is gone."""
    target = rng.choice(sorted(p for p in root.rglob("img/*") if p.is_file()))
    ann = target.parent.parent / "ann" / f"{target.name}.json"
    target.unlink()
    ann.unlink(missing_ok=True)
    return f"removed {target.relative_to(root)}", [str(target), str(ann)]


def edit_img_info(root: Path, rng: random.Random) -> Edit:
    """An img_info file rewritten in place (views that pass the source through serve it)."""
    target = rng.choice(sorted(root.rglob("img_info/*.json")))
    data = json.loads(target.read_text())
    data["edited"] = data.get("edited", 0) + 1
    target.write_text(json.dumps(data))
    return f"edited {target.relative_to(root)}", [str(target)]


def rewrite_image(root: Path, rng: random.Random) -> Edit:
    """A plain image rewritten in place with another image's bytes."""
    images = sorted(p for p in root.rglob("img/*") if p.is_file())
    target, other = rng.choice(images), rng.choice(images)
    target.write_bytes(other.read_bytes() + b"\0")  # never the same bytes, even when other is target
    return f"rewrote {target.relative_to(root)}", [str(target)]


def break_annotation(root: Path, rng: random.Random) -> Edit:
    """An annotation made malformed in place (as a half-written save leaves it)."""
    target = rng.choice(sorted(root.rglob("ann/*.json")))
    target.write_text(target.read_text()[: len(target.read_text()) // 2])
    return f"broke {target.relative_to(root)}", [str(target)]


EDITS = (edit_annotation, retag, add_image, edit_annotation, remove_annotation, remove_image, edit_img_info,
         rewrite_image, break_annotation)


class ViewContract:
    """What every view keeps; a format joins with ``class TestX(ViewContract): formats = ["x"]``."""

    formats: ClassVar[list[str]]
    options: ClassVar[ViewOptions] = ViewOptions()

    @pytest.fixture(params=sorted(SOURCES))
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
        """A writable copy of an SDK fixture (plain or blob)."""
        copy = tmp_path / "src"
        shutil.copytree(SOURCES[request.param], copy)
        return copy

    def test_every_listed_path_resolves_and_reads_its_size(self, source: Path) -> None:
        tree = build(source, self.formats, self.options)
        files = walk(tree)
        assert files and sorted(files) == tree.walk_files()
        for path in files:
            try:
                data = tree.read_file(path)
            except Unreadable:
                continue  # an image the source cannot give (none in the fixtures' views)
            assert tree.attr(path).size == len(data), path

    def test_image_files_are_the_source_bytes(self, source: Path) -> None:
        tree = build(source, self.formats, self.options)
        images = [(path, node.ref) for path in walk(tree) if isinstance(node := tree.node(path), SourceBytes)]
        assert images
        for path, ref in images:
            with open(ref.path, "rb") as f:
                f.seek(ref.offset)
                assert tree.read_file(path) == f.read(ref.size), path

    def test_two_builds_are_equal(self, source: Path) -> None:
        assert digests(build(source, self.formats, self.options)) == digests(build(source, self.formats, self.options))

    def test_after_an_edit_the_stale_paths_cover_every_changed_path(self, source: Path) -> None:
        """The view made from the reader's change (as a live mount makes it) equals a fresh build of
        the edited source, and its stale paths cover every path whose bytes changed."""
        rng = random.Random(f"{self.formats}-{(source / 'blob').exists()}")  # the same edits on every run
        reader = SuperviselySource(str(source), SourceIndex(source.parent / "index.sqlite"))
        tree = VirtualTree(build_view(reader.scan(), self.formats, self.options))
        reader.save()  # as a mount does: the facts membership read are in the file from now on
        before = digests(tree)
        for edit in EDITS:
            what, paths = edit(source, rng)
            project, change = reader.update(paths)
            reader.save()
            stale = set(tree.replace(tree.view.updated(project, change), change))
            after = digests(tree)
            assert after == digests(build(source, self.formats, self.options)), f"{what}: not what a fresh build gives"
            changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
            uncovered = {p for p in changed
                         if p not in stale and not (p not in before and os.path.dirname(p) in stale)}
            assert not uncovered, f"{what}: not reported stale: {sorted(uncovered)[:5]}"
            before = after

    def test_through_a_mount_st_size_is_what_a_read_returns(self, source: Path, mount) -> None:
        with mount(source, "--format", ",".join(self.formats)) as mnt:
            files = [Path(d) / n for d, _, names in os.walk(mnt) for n in names]
            assert files
            for path in files:
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                assert path.stat().st_size == len(data), path


class TestYolo(ViewContract):
    formats = ["yolo"]


class TestYoloSeg(ViewContract):
    formats = ["yolo-seg"]


class TestYoloPose(ViewContract):
    formats = ["yolo-pose"]


class TestYoloObb(ViewContract):
    formats = ["yolo-obb"]


class TestYoloDarknet(ViewContract):
    formats = ["yolo-darknet"]


class TestCoco(ViewContract):
    formats = ["coco"]


class TestVoc(ViewContract):
    formats = ["voc"]


class TestKitti(ViewContract):
    formats = ["kitti"]


class TestOpenImages(ViewContract):
    formats = ["open-images"]


class TestSupervisely(ViewContract):
    formats = ["supervisely"]


class TestIcdarRecognition(ViewContract):
    formats = ["icdar-recognition"]


class TestIcdarLocalization(ViewContract):
    formats = ["icdar-localization"]


class TestIcdarSegmentation(ViewContract):
    formats = ["icdar-segmentation"]


class TestMot(ViewContract):
    formats = ["mot"]


class TestMots(ViewContract):
    formats = ["mots"]
class TestSegmask(ViewContract):
    formats = ["segmask"]


class TestCamvid(ViewContract):
    formats = ["camvid"]


class TestCityscapes(ViewContract):
    formats = ["cityscapes"]
class TestDatumaro(ViewContract):
    formats = ["datumaro"]


class TestCvat(ViewContract):
    formats = ["cvat"]
class TestLabelme(ViewContract):
    formats = ["labelme"]


class TestImagenet(ViewContract):
    formats = ["imagenet"]


class TestImagenetTxt(ViewContract):
    formats = ["imagenet"]
    options = ViewOptions(params={"imagenet.layout": "txt"})
class IdentityTagged(ViewContract):
    """The identity views hold what image tags say, which the SDK fixtures lack: their copy of
    them gets person, camera and identity tags on every image (the edits then move identities)."""

    @pytest.fixture(params=sorted(SOURCES))
    def source(self, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
        copy = tmp_path / "src"
        shutil.copytree(SOURCES[request.param], copy)
        meta = json.loads((copy / "meta.json").read_text("utf-8"))
        meta["tags"] += [{"name": name, "value_type": kind, "color": "#102030", "id": 9000 + k,
                          "hotkey": "", "applicable_type": "imagesOnly", "classes": []}
                         for k, (name, kind) in enumerate((("person_id", "any_number"), ("camera_id", "any_number"),
                                                           ("identity", "any_string"), ("pair_with", "any_string"),
                                                           ("query", "none")))]
        (copy / "meta.json").write_text(json.dumps(meta), "utf-8")
        earlier: dict[Path, str] = {}
        for k, ann_path in enumerate(sorted(copy.rglob("ann/*.json"))):
            ann = json.loads(ann_path.read_text("utf-8"))
            ann["tags"] = [*ann.get("tags", []), {"name": "person_id", "value": k % 3 + 1},
                           {"name": "camera_id", "value": k % 2 + 1},
                           {"name": "identity", "value": ("Ana Lima", "Bo_Chen", f"solo {k}")[k % 3]}]
            if k % 4 == 0:
                ann["tags"].append({"name": "query", "value": None})
            if ann_path.parent in earlier:
                ann["tags"].append({"name": "pair_with", "value": earlier[ann_path.parent]})
            earlier[ann_path.parent] = ann_path.name[:-5]
            ann_path.write_text(json.dumps(ann), "utf-8")
        return copy


class TestWiderFace(IdentityTagged):
    formats = ["wider-face"]
    options = ViewOptions(params={"wider-face.event-tag": "identity"})


class TestVggFace2(IdentityTagged):
    formats = ["vggface2"]


class TestMarket1501(IdentityTagged):
    formats = ["market1501"]


class TestLfw(IdentityTagged):
    formats = ["lfw"]


class TestAll(ViewContract):
    formats = list(FORMATS)


class TestTagSplitsWithoutEmpty(ViewContract):
    """Membership that depends on annotation content (tags, emptiness) under edits."""

    formats = ["coco", "yolo", "voc"]
    options = ViewOptions(split="tags", include_empty=False)


class TestTagSplitsPerSplitFolders(ViewContract):
    """Items moving between the per-split folders of one naming group (Open Images) or of split
    groups (KITTI) as their tags change."""

    formats = ["open-images", "kitti"]
    options = ViewOptions(split="tags", include_empty=False)
