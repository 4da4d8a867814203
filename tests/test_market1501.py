"""The Market-1501 view: real mounts of both SDK fixtures and a tagged sample project read by
Datumaro's ``market1501`` importer, against the person/camera/sequence/frame/query tags of the
source JSON; renamed images keep their bytes; images without ids are left out and said so."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.market1501 import ReId, market_names
from tests.conftest import PLAIN
from tests.helpers.faces import SourceImage, source_images
from tests.helpers.mounts import assert_clean_import, mounted_sources, sources_fixture
from tests.helpers.readers import datumaro_import_all, require

SOURCES = ["fixture-plain", "fixture-blob", "sample-plain", "sample-blob"]


sources = sources_fixture(seed=11)


@pytest.fixture(scope="module")
def views(sources: dict[str, Path]):
    with mounted_sources(sources, "market1501") as mnts:
        yield mnts


def whole(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and float(value).is_integer() else None


def re_id_images(root: Path) -> list[SourceImage]:
    return [i for i in source_images(root)
            if whole(i.tag("person_id")) is not None and (whole(i.tag("camera_id")) or -1) >= 0]


@pytest.mark.parametrize("source", SOURCES)
def test_datumaro_reads_every_re_id_image(source: str, sources: dict[str, Path], views: dict[str, Path]) -> None:
    require("datumaro")
    report = datumaro_import_all(views[source], "market1501")
    assert_clean_import(report, len(source_images(sources[source])), no_warnings=True)
    with_ids = [item for item in report.dataset if item.attributes]
    assert len(with_ids) == len(re_id_images(sources[source]))
    got = Counter((item.subset, item.attributes["person_id"], item.attributes["camera_id"],
                   item.attributes["track_id"], item.attributes["query"]) for item in with_ids)
    want = Counter()
    for image in re_id_images(sources[source]):
        query = image.tag("query") is not None
        want[("query" if query else image.split, f"{whole(image.tag('person_id')):04d}",
              whole(image.tag("camera_id")) - 1, whole(image.tag("sequence")) or 1, query)] += 1
    assert got == want
    frames = Counter(item.attributes["frame_id"] for item in with_ids)
    assert frames == Counter(whole(i.tag("frame")) for i in re_id_images(sources[source]))


def test_renamed_images_keep_their_bytes(sources: dict[str, Path], views: dict[str, Path]) -> None:
    root = sources["sample-plain"]
    src = Counter(hashlib.sha1(path.read_bytes()).hexdigest() for path in root.rglob("img/*"))
    served = [p for p in views["sample-plain"].rglob("*") if p.is_file() and p.suffix in (".jpg", ".png")]
    assert Counter(hashlib.sha1(p.read_bytes()).hexdigest() for p in served) == src
    assert all(p.parent.name == "query" or p.parent.name.startswith("bounding_box_") for p in served)


def test_images_without_ids_keep_their_names_and_are_said(sources: dict[str, Path], views: dict[str, Path]) -> None:
    for source in ("fixture-plain", "sample-blob"):
        untagged = [i for i in source_images(sources[source]) if i not in re_id_images(sources[source])]
        text = (views[source] / "README.slyfs.txt").read_text("utf-8")
        assert f"{len(untagged)} image(s) have no whole-number 'person_id' and 'camera_id'" in text
        assert "market1501.person-id-tag" in text
    log = views["sample-blob"].with_suffix(".log").read_text("utf-8")
    assert log.count("'camera_id' tags for Market-1501") == len(untagged) > 0
    served = {p.name for p in views["fixture-plain"].glob("bounding_box_*/*")}
    own = {i.name.replace(" ", "%20") for i in source_images(PLAIN)}  # the README's rule for image names
    assert own - served <= {"dup.png", "dup.jpg"}  # dups get qualified names
    assert len(served) == len(source_images(PLAIN))


def test_names_fill_frames_and_boxes_without_inventing_people() -> None:
    ids = [(("d", "a.jpg"), ".jpg", ReId(1, 2, 1, 5, None, False)),
           (("d", "b.jpg"), ".jpg", ReId(1, 2, 1, None, None, False)),
           (("d", "c.png"), ".png", ReId(1, 2, 1, 5, None, False)),
           (("d", "e.jpg"), ".jpg", ReId(-1, 1, 3, 0, 7, True))]
    assert market_names(ids) == {("d", "a.jpg"): "0001_c2s1_000005_00.jpg", ("d", "b.jpg"): "0001_c2s1_000006_00.jpg",
                                 ("d", "c.png"): "0001_c2s1_000005_01.png", ("d", "e.jpg"): "-1_c1s3_000000_07.jpg"}


def test_live_edits_list_query_afresh(tmp_path: Path, sources: dict[str, Path]) -> None:
    """``query/`` holds images of every split: after each edit that moves one more image there, its
    listing is the fresh build's, though other splits' groups carry over."""
    root = tmp_path / "src"
    shutil.copytree(sources["sample-plain"], root)
    reader = SuperviselySource(str(root), SourceIndex(tmp_path / "index.sqlite"))
    view = build_view(reader.scan(), ["market1501"], ViewOptions())
    targets = [i for i in re_id_images(root) if i.tag("query") is None and i.split != "train"][:3]
    assert len(targets) == 3
    for target in targets:
        before = list(view.list("query") or [])
        path = root / target.dataset.replace("/", "/datasets/") / "ann" / f"{target.name}.json"
        ann = json.loads(path.read_text("utf-8"))
        ann["tags"].append({"name": "query"})
        path.write_text(json.dumps(ann), "utf-8")
        project, change = reader.update([str(path)])
        view = view.updated(project, change)
        fresh = build_view(project, ["market1501"], ViewOptions())
        assert list(view.list("query") or []) == list(fresh.list("query") or [])
        assert len(fresh.list("query") or []) == len(before) + 1
