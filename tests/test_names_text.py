"""Names and text fields: every id, split and class name a view writes stays one field for its
reader (whitespace-separated VOC lists, line-based darknet lists, ``:``-separated labelmap,
YAML), every file component fits in 255 bytes and stays unique, and text from JSON holding
unpaired surrogates is escaped once, by the reader, so every file can be encoded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

import yaml
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from slyfs.formats.common.naming import (
    MAX_NAME_BYTES,
    MAX_STEM_BYTES,
    encodable_text,
    escape_component,
    fit_name,
    fitted_names,
    names_if_distinct,
    spaceless_component,
    split_ext,
    text_field,
    unique_names,
)
from slyfs.formats.common.text import yaml_str
from slyfs.formats.layout import LayoutView
from slyfs.formats.readers.supervisely.project import read_project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers import voc
from slyfs.formats.writers.yolo import darknet as yolo_darknet
from slyfs.formats.writers.yolo import detect as yolo
from slyfs.vfs.tree import VirtualTree
from tests.conftest import read_tree, slyfs
from tests.helpers.hostile import ann, meta, plain_project, png, rect
from tests.helpers.readers import datumaro_import, require
from tests.helpers.views import view_files

NON_POSE = "yolo,yolo-seg,yolo-obb,yolo-darknet,coco,voc,supervisely"  # these projects have no keypoint class




def render(root: Path, fmt: ModuleType = voc) -> dict[str, bytes]:
    """Every file of the view of ``root`` in format ``fmt``, rendered in-process."""
    tree = VirtualTree(LayoutView(fmt.layout, read_project(str(root)), ViewOptions()))
    return {p: tree.read_file(p) for p in tree.walk_files()}


def whitespace_project(root: Path) -> Path:
    """Two datasets with whitespace in their names and in their items' names."""
    items = {"img with space.jpg": ann(rect(1, 1, 4, 4, "traffic sign")), "tab\there.png": ann(),
             "nb\u00a0sp.png": ann(rect(0, 0, 2, 2, "car")), " lead.png": ann(), "frame_000.png": ann()}
    plain_project(root, items, classes=("car", "traffic sign"), dataset="ds b")
    for name in ("frame_000.png", "other.png"):
        (root / "ds a" / "img").mkdir(parents=True, exist_ok=True)
        (root / "ds a" / "ann").mkdir(exist_ok=True)
        (root / "ds a" / "img" / name).write_bytes(png())
        (root / "ds a" / "ann" / f"{name}.json").write_text(json.dumps(ann(rect(0, 0, 1, 1, "car"))))
    return root


def image_sets(files: dict[str, bytes]) -> dict[str, list[str]]:
    return {p: f.decode().splitlines() for p, f in files.items() if p.startswith("ImageSets/")}


# ---------------------------------------------------------------- item 2: VOC ids and split names


def test_voc_lists_split_into_exactly_their_ids(tmp_path: Path, mount):
    with mount(whitespace_project(tmp_path / "p"), "--format", "voc") as mnt:
        files = read_tree(mnt)
    ids = sorted(p[len("Annotations/"):-len(".xml")] for p in files if p.startswith("Annotations/"))
    assert ids == sorted(["img%20with%20space", "tab%09here", "nb%C2%A0sp", "%20lead", "ds%20b__frame_000",
                          "ds%20a__frame_000", "other"])
    lists = image_sets(files)
    assert sorted(lists) == sorted(
        [f"ImageSets/{t}/{s}.txt" for t in ("Main", "Segmentation") for s in ("ds%20a", "ds%20b")]
        + [f"ImageSets/Main/{c}_{s}.txt" for c in ("car", "traffic sign") for s in ("ds%20a", "ds%20b")])
    ds_b = ["%20lead", "ds%20b__frame_000", "img%20with%20space", "nb%C2%A0sp", "tab%09here"]
    assert [line.split() for line in lists["ImageSets/Main/ds%20b.txt"]] == [[i] for i in ds_b]
    assert [line.split() for line in lists["ImageSets/Main/traffic sign_ds%20b.txt"]] == \
        [[i, "1" if i == "img%20with%20space" else "-1"] for i in ds_b]
    assert [line.split() for line in lists["ImageSets/Main/car_ds%20a.txt"]] == \
        [["ds%20a__frame_000", "1"], ["other", "1"]]
    for path, lines in lists.items():  # the devkit's textread '%s' / '%s %d' and str.split() agree
        for line in lines:
            fields = line.split()
            assert fields[0] in ids and line.split(" ")[0] == fields[0], (path, line)
            assert len(fields) == (2 if "_" in path.rsplit("/", 1)[1] else 1)
    xml = etree.fromstring(files["Annotations/img%20with%20space.xml"])
    assert xml.findtext("filename") == "img%20with%20space.jpg"
    assert files["JPEGImages/img%20with%20space.jpg"] == (tmp_path / "p/ds b/img/img with space.jpg").read_bytes()


def test_datumaro_reads_whitespace_names(tmp_path: Path):
    labels = require("datumaro").AnnotationType.label
    files = render(whitespace_project(tmp_path / "p"))
    for path, data in files.items():
        (tmp_path / "out" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / path).write_bytes(data)
    ds = datumaro_import(tmp_path / "out", "voc", coordinate_mode="voc-one-based")
    names = ds.categories()[labels]
    got = {(item.subset, item.id): sorted(names[a.label].name for a in item.annotations if a.type.name == "bbox")
           for item in ds}
    listed = {(item.subset, item.id): sorted(names[a.label].name for a in item.annotations if a.type == labels)
              for item in ds}
    assert got == listed == {("ds%20b", "img%20with%20space"): ["traffic sign"], ("ds%20b", "tab%09here"): [],
                   ("ds%20b", "nb%C2%A0sp"): ["car"], ("ds%20b", "%20lead"): [], ("ds%20b", "ds%20b__frame_000"): [],
                   ("ds%20a", "ds%20a__frame_000"): ["car"], ("ds%20a", "other"): ["car"]}
    for item in ds:
        assert item.media.has_data


def test_voc_split_names_are_one_word_and_distinct():
    assert voc.voc_split_names(["ds b", "ds%20b", "a\tb_c"]) == {"ds b": "ds%20b", "ds%20b": "ds%20b~2",
                                                                 "a\tb_c": "a%09b-c"}
    long = voc.voc_split_names(["s" * 300, "s" * 299])
    assert all(len(v.encode()) <= voc.MAX_SPLIT_BYTES for v in long.values()) and len(set(long.values())) == 2


# ---------------------------------------------------------------- item 10: lengths, distinctness, surrogates


def long_name_project(root: Path) -> Path:
    """A blob project whose tar holds images named by 255-byte names (one without extension,
    one with a 40-byte "extension"), and two datasets whose equal stems get qualified."""
    import io
    import tarfile

    from tests.helpers.hostile import offsets_pickle

    names = ["x" * 255, "y" * 214 + "." + "e" * 40, "z" * 251 + ".png"]
    (root / "blob").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps(meta()))
    with tarfile.open(root / "blob" / "1001.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(png())
            tar.addfile(info, io.BytesIO(png()))
    with tarfile.open(root / "blob" / "1001.tar") as tar:
        entries = [(m.name, m.offset_data, m.offset_data + m.size) for m in tar.getmembers()]
    for ds in ("d" * 100, "e" * 100):
        (root / ds / "ann").mkdir(parents=True)
        (root / ds / "1001_offsets.pkl").write_bytes(offsets_pickle(entries))
    return root


def test_every_component_fits_on_a_real_mount(tmp_path: Path, mount):
    root = long_name_project(tmp_path / "p")
    with mount(root, "--format", NON_POSE) as mnt:
        files = {}
        for dirpath, _, names in os.walk(mnt):
            for name in names:  # a component over 255 bytes could be listed but never opened
                assert len(name.encode()) <= MAX_NAME_BYTES, name
                files[os.path.relpath(os.path.join(dirpath, name), mnt)] = Path(dirpath, name).read_bytes()
    for prefix in ("voc/Annotations/", "voc/SegmentationObject/", "yolo/labels/", "yolo-seg/labels/"):
        assert len([p for p in files if p.startswith(prefix)]) == 6, prefix
    assert len([p for p in files if p.startswith("yolo-darknet/obj_") and p.endswith(".txt")]) == 6
    ids = [p[len("voc/Annotations/"):-4] for p in files if p.startswith("voc/Annotations/")]
    assert all(len(i.encode()) <= 251 for i in ids)
    voc_lists = [line for p, f in files.items() if p.startswith("voc/ImageSets/Main/") for line in f.decode().split()]
    assert sorted(set(voc_lists) - {"1", "-1"}) == sorted(ids)


def test_distinct_class_names_stay_distinct(tmp_path: Path):
    titles = ("n\ufffe", "n\uffff", "a:b", "a%3Ab", "a/b", " car", "car", "#x", "%23x", "p" * 300, "p" * 299)
    root = plain_project(tmp_path / "p", {"i.png": ann(*(rect(0, 0, 3, 3, t) for t in titles))}, classes=titles)
    files = render(root)
    labelmap = [line.split(":") for line in files["labelmap.txt"].decode().splitlines()[1:]]
    assert all(len(f) == 4 for f in labelmap)
    names = [f[0] for f in labelmap[1:]]
    assert len(set(names)) == len(titles) and all(n == n.strip() and not n.startswith("#") for n in names)
    assert names[:2] == ["n%EF%BF%BE", "n%EF%BF%BF"] and names[2].startswith("a%3Ab~") and names[3] == "a%3Ab"
    assert names[5:9] == ["%20car", "car", names[7], "%23x"] and names[7].startswith("%23x~")
    xml_names = [o.findtext("name") for o in etree.fromstring(files["Annotations/i.xml"]).iter("object")]
    assert xml_names == names
    for n in names:  # readers build <class>_<split>.txt from the class name: the file is there
        assert f"ImageSets/Main/{n}_ds.txt" in files and len(f"{n}_ds.txt".encode()) <= MAX_NAME_BYTES
    darknet = render(root, yolo_darknet)["obj.names"].decode().split("\n")[:-1]
    assert len(darknet) == len(titles) == len({line.strip() for line in darknet})
    assert darknet[:6] == ["n%EF%BF%BE", "n%EF%BF%BF", "a:b", "a%3Ab", "a/b", "%20car"]
    dm = require("datumaro")
    out = tmp_path / "out"
    for path, data in files.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    ds = datumaro_import(out, "voc", coordinate_mode="voc-one-based")
    assert [c.name for c in ds.categories()[dm.AnnotationType.label]][1:] == names
    (item,) = ds
    assert sorted(a.label for a in item.annotations if a.type == dm.AnnotationType.label) == \
        list(range(1, len(titles) + 1))


def surrogate_project(root: Path) -> Path:
    """meta.json and an annotation holding unpaired surrogates (valid JSON: ``"\\ud800"``)."""
    classes = ("car", "x\ud800")
    tag = {"name": "t\udfff", "value": "v\ud801"}
    a = ann(rect(0, 0, 3, 3, "car"), {**rect(2, 2, 5, 5, "x\ud800"), "tags": [tag]})
    a["tags"] = [{"name": "caption", "value": "c\udc80"}]
    plain_project(root, {"i.png": a}, classes=classes)
    m = json.loads((root / "meta.json").read_text())
    m["tags"] = [{"name": "caption", "value_type": "any_string"}, {"name": "t\udfff", "value_type": "any_string"}]
    (root / "meta.json").write_text(json.dumps(m))
    assert b"\\ud800" in (root / "meta.json").read_bytes()
    return root


def test_unpaired_surrogates_are_escaped_in_every_view(tmp_path: Path, mount):
    root = surrogate_project(tmp_path / "p")
    with mount(root, "--format", NON_POSE) as mnt:
        files = read_tree(mnt)  # nothing reads EIO
    for path in ("yolo/data.yaml", "yolo-seg/data.yaml", "yolo-obb/data.yaml"):
        assert '  1: "x%ED%A0%80"' in files[path].decode()
    coco = json.loads(files["coco/annotations/instances_ds.json"])
    assert [c["name"] for c in coco["categories"]] == ["car", "x%ED%A0%80"]
    assert [a.get("attributes", {}) for a in coco["annotations"]] == [{}, {"t%ED%BF%BF": "v%ED%A0%81"}]
    captions = json.loads(files["coco/annotations/captions_ds.json"])
    assert [c["caption"] for c in captions["annotations"]] == ["c%ED%B2%80"]
    assert files["voc/labelmap.txt"].decode().splitlines()[3].startswith("x%ED%A0%80:")
    attrs = etree.fromstring(files["voc/Annotations/i.xml"]).find("object[2]/attributes/attribute")
    assert (attrs.findtext("name"), attrs.findtext("value")) == ("t%ED%BF%BF", "v%ED%A0%81")
    assert files["yolo-darknet/obj.names"] == b"car\nx%ED%A0%80\n"
    assert files["supervisely/ds/ann/i.png.json"] == (root / "ds/ann/i.png.json").read_bytes()


def test_check_reports_unpaired_surrogates(tmp_path: Path):
    r = slyfs("check", str(surrogate_project(tmp_path / "p")), check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "class title 'x\\ud800' holds unpaired surrogates (not valid Unicode): named 'x%ED%A0%80'" in r.stdout
    assert "tag 't\\udfff' = 'v\\ud801' holds unpaired surrogates" in r.stdout
    assert "tag 'caption' = 'c\\udc80' holds unpaired surrogates" in r.stdout


def test_supervisely_classes_filter_keeps_an_escaped_class(tmp_path: Path):
    from slyfs.formats.writers import supervisely as supervisely_view

    root = surrogate_project(tmp_path / "p")
    tree = VirtualTree(view_files(supervisely_view, read_project(str(root)), ViewOptions(classes=("x%ED%A0%80",))))
    kept = json.loads(tree.read_file("ds/ann/i.png.json"))
    assert [o["classTitle"] for o in kept["objects"]] == ["x\ud800"]
    assert [c["title"] for c in json.loads(tree.read_file("meta.json"))["classes"]] == ["x\ud800"]


ODD_TITLES = ("car", "a\x85b", "l\u2028s", "n\ufffe", 'q"uote\\', "#hash", "key: value", "- dash", " pad ", "x\ud800",
              "emoji\U0001f600\u200d", "50%")


def test_ultralytics_reads_odd_class_names(tmp_path: Path):
    require("ultralytics")
    from tests.helpers.readers import ultralytics_load

    root = plain_project(tmp_path / "p", {"i.png": ann(*(rect(k, k, k + 2, k + 2, t) for k, t in enumerate(ODD_TITLES)),
                                                      width=20, height=20)},
                         classes=ODD_TITLES, images={"i.png": png(20, 20)})
    out = tmp_path / "out"
    for path, data in render(root, yolo).items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(data)
    assert (out / "data.yaml").read_bytes().isascii() is False  # ordinary non-ASCII stays readable UTF-8
    result = ultralytics_load(out / "data.yaml", "val")
    assert result.error is None and result.names == dict(enumerate(encodable_text(t) for t in ODD_TITLES))
    assert result.names[9] == "x%ED%A0%80"
    assert sorted(int(row.split()[0]) for row in (out / "labels/ds/i.txt").read_text().splitlines()) == \
        list(range(len(ODD_TITLES)))


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=8, unique=True))
def test_text_fields_stay_fields_and_distinct(titles: list[str]):
    titles = list(dict.fromkeys(encodable_text(t) for t in titles))  # what the reader hands the views
    for fields in (voc.voc_class_names(titles), yolo_darknet_names(titles)):
        assert len(set(fields)) == len(titles)
        for f in fields:
            f.encode("utf-8")
            assert f == f.strip() and f and "\n" not in f and "\r" not in f and len(f.splitlines()) == 1
    for f in voc.voc_class_names(titles):
        assert ":" not in f and "/" not in f and not f.startswith("#") and len(f.encode()) <= voc.MAX_CLASS_BYTES
    assert [yaml.safe_load("k: " + yaml_str(t))["k"] for t in titles] == titles


def yolo_darknet_names(titles: list[str]) -> list[str]:
    from slyfs.formats.common.naming import distinct_texts

    return distinct_texts(titles, text_field)


names_st = st.text(st.characters(blacklist_categories=("Cs",)) | st.sampled_from(" \t\u00a0\u3000%/._~"),
                   min_size=1, max_size=90).map(lambda s: s * 3)


@given(st.lists(st.tuples(st.sampled_from(["ds", "ds b", "a/b c"]), names_st), min_size=1, max_size=8, unique=True))
def test_voc_ids_are_whitespace_free_unique_and_fit(entries: list[tuple[str, str]]):
    ids = [name.rsplit(".", 1)[0] if "." in name[1:] else name for name in unique_names(entries, spaceless_component)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        assert i.split() == [i] and "/" not in i and len((i + ".xml").encode()) <= MAX_NAME_BYTES


odd_names_st = st.text(st.characters() | st.sampled_from("/. \udc80\x7f\u200b"),
                       max_size=70)


@given(st.lists(odd_names_st | st.sampled_from(["", ".", "..", ".a", "a.", "a.b.c", "x" * 300]), max_size=8))
def test_bulk_names_follow_the_per_name_rule(names: list[str]):
    """The short cut that checks every name at once gives what escaping and fitting each does."""
    for escape in (escape_component, spaceless_component, yolo_darknet.list_safe):
        assert fitted_names(list(names), escape) == [fit_name(escape(n), MAX_STEM_BYTES) for n in names]
    stems = [split_ext(n)[0] for n in names]
    assert names_if_distinct(names) == (names if len(set(stems)) == len(stems) else None)


# ---------------------------------------------------------------- item 11: check prints names escaped


CONTROLS = {chr(c) for c in range(0x20) if chr(c) != "\n"} | {"\x7f", "\u202e"}


def test_check_prints_hostile_names_escaped(tmp_path: Path):
    root = plain_project(tmp_path / "p", {"a\x1b[31mred\x07.png": ann(rect(0, 0, 3, 3, "nope")), "b\u202eg.png": b"{"},
                         dataset="d\x1b]0;title\x07s")
    r = slyfs("check", str(root), check=False)
    assert r.returncode == 1
    for out in (r.stdout, r.stderr):
        assert not CONTROLS & set(out), out
    assert "d\\x1b]0;title\\x07s/ann/a\\x1b[31mred\\x07.png.json [a\\x1b[31mred\\x07.png]\n" in r.stdout
    assert "d\\x1b]0;title\\x07s/ann/b\\u202eg.png.json [b\\u202eg.png]\n" in r.stdout
    assert "2 problem(s) in 2 file(s)" in r.stdout
    assert json.loads(slyfs("check", str(root), "--json", check=False).stdout)["problems"][0]["item"] == \
        "a\x1b[31mred\x07.png"  # JSON escapes them itself
    bad = tmp_path / "q\x1b[2J"
    bad.mkdir()
    (bad / "meta.json").write_text("[")
    r = slyfs("check", str(bad), check=False)
    assert r.returncode == 2 and not CONTROLS & set(r.stdout + r.stderr) and "q\\x1b[2J" in r.stderr
