"""The four identity/face views over a project of awkward names (``_`` and spaces in datasets,
spaces, ``\\``, tabs, non-ASCII, collisions in image names; identities with spaces,
``/``, ``\\``, ``%``, ``-`` and ``no_label``), exported and read back by Datumaro: every image found
under its mapped name, in its mapped subset, with its identity."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import slyfs
from tests.helpers.hostile import png, rect
from tests.helpers.mounts import assert_clean_import
from tests.helpers.readers import datumaro_import_all, require

IDENTITIES = ("Ana Lima", "x/y", "a\\b", "no_label", "-", "50%", "Zoë", None)
NAMES = ("with space.png", "back\\slash.png", "tab\tname.png", "Zoë ünï.png", "dup.png", "dup.jpg",
         "l" * 200 + ".png")
DATASETS = ("my_set", "other set")
FORMATS = {"wider-face": "wider_face", "vggface2": "vgg_face2", "market1501": "market1501", "lfw": "lfw"}


def _tag_meta(name: str, kind: str) -> dict:
    return {"name": name, "value_type": kind, "color": "#102030", "applicable_type": "imagesOnly", "classes": []}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("awkward") / "src"
    classes = [{"title": t, "shape": "rectangle", "color": "#FF0000", "geometry_config": {}}
               for t in ("face", "traffic sign", "a--b")]
    tags = [_tag_meta("identity", "any_string"), _tag_meta("person_id", "any_number"),
            _tag_meta("camera_id", "any_number"), _tag_meta("pair_with", "any_string")]
    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"classes": classes, "tags": tags}))
    k = 0
    for dataset in DATASETS:
        (root / dataset / "img").mkdir(parents=True)
        (root / dataset / "ann").mkdir()
        for j, name in enumerate(NAMES):
            identity = IDENTITIES[(k + j) % len(IDENTITIES)]
            image_tags = [] if identity is None else [
                {"name": "identity", "value": identity}, {"name": "person_id", "value": j},
                {"name": "camera_id", "value": 1 + j % 3}]
            if j and identity is not None:
                image_tags.append({"name": "pair_with", "value": NAMES[j - 1]})
            objects = [rect(1, 1, 6, 6, "face"), rect(0, 2, 3, 9, ("traffic sign", "a--b")[j % 2])]
            (root / dataset / "img" / name).write_bytes(png())
            (root / dataset / "ann" / f"{name}.json").write_text(json.dumps(
                {"size": {"width": 10, "height": 10}, "tags": image_tags, "objects": objects}))
        k += 3
    out = root.parent / "out"
    slyfs("export", str(root), str(out), "--format", ",".join(FORMATS),
          "--opt", "wider-face.event-tag=identity")
    return out


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_awkward_name_reads_back(fmt: str, exported: Path) -> None:
    require("datumaro")
    report = datumaro_import_all(exported / fmt, FORMATS[fmt])
    assert_clean_import(report, len(NAMES) * len(DATASETS), no_warnings=True)
    subsets = {item.subset for item in report.dataset}
    if fmt in ("wider-face", "vggface2"):
        assert subsets == {"my-set", "other-set"}
    elif fmt == "lfw":
        assert subsets == set(DATASETS)
    labels = Counter(report.label_counts())
    people = Counter(ident for k in (0, 3) for j in range(len(NAMES))
                     if (ident := IDENTITIES[(k + j) % len(IDENTITIES)]) is not None)
    if fmt == "lfw":  # one label per image with a person, under one token each
        assert sorted(n for (kind, _), n in labels.items() if kind == "label") == sorted(people.values())
    if fmt == "vggface2":  # one box per image, labelled by its identity folder
        assert sum(n for (kind, name), n in labels.items() if kind == "bbox" and name) == sum(people.values())
    if fmt == "wider-face":
        assert labels[("bbox", "face")] == len(NAMES) * len(DATASETS)
        assert labels[("bbox", "traffic%20sign")] + labels[("bbox", "a-%2Db")] == len(NAMES) * len(DATASETS)
        assert sum(n for (kind, _), n in labels.items() if kind == "label") == sum(people.values())
    if fmt == "market1501":
        assert sum(1 for item in report.dataset if item.attributes) == sum(people.values())
