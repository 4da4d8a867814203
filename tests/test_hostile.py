"""A corpus of hostile inputs, each built here, each with the exact reaction expected:
the problem reported (message, action), what is served, which errno."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from slyfs.formats.common.naming import MAX_NAME_BYTES  # noqa: E402
from slyfs.formats.model import Problem  # noqa: E402
from slyfs.formats.readers.supervisely import ProblemLog, read_project  # noqa: E402
from slyfs.formats.readers.supervisely import offsets as offsets_mod  # noqa: E402
from slyfs.formats.readers.supervisely.offsets import OffsetsError, read_offsets  # noqa: E402
from slyfs.formats.registry import FORMATS, build_view  # noqa: E402
from slyfs.formats.view import ViewOptions  # noqa: E402
from slyfs.vfs.errors import Unreadable  # noqa: E402
from slyfs.vfs.tree import VirtualTree  # noqa: E402
from tests.conftest import BLOB, PLAIN, slyfs
from tests.helpers.hostile import ann, blob_project, offsets_pickle, plain_project, png, rect
from tests.helpers.views import view_files

LEFT_OUT = "object left out"
NO_LABELS = "served without labels"
BOX_1_1_4_4 = b"0 0.300000 0.300000 0.400000 0.400000\n"  # pixels 1..4 of 10 -> [1, 5)


def bitmap(data: str) -> dict:
    return {"classTitle": "car", "geometryType": "bitmap", "bitmap": {"origin": [0, 0], "data": data}}


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _huge_png() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")  # 400 Mpx, a few KB compressed
    return zlib.compress(buf.getvalue())


RECT_JSON = b'{"classTitle":"car","geometryType":"rectangle","points":{"exterior":[[%s,1],[3,3]]}}'
SIZE_JSON = b'{"size":{"width":10,"height":10},"objects":[%s]}'

# name -> (annotation, [(message, action)], YOLO label file)
ANNOTATION_CASES = {
    "invalid_json": (b'{"size":', [("annotation unreadable: Expecting value: line 1 column 9 (char 8)", NO_LABELS)],
                     b""),
    "invalid_utf8": (b'{"size":{"width":10,"height":10},"x":"\xff"}',
                     [("annotation unreadable: 'utf-8' codec can't decode byte 0xff in position 38: invalid start byte",
                       NO_LABELS)], b""),
    "deeply_nested": (b"[" * 100_000 + b"]" * 100_000,
                      [("annotation unreadable: JSON nested too deeply", NO_LABELS)], b""),
    "not_an_object": (b"[1, 2, 3]", [("annotation has no valid 'size'", "size taken from the image"),
                                     ("annotation is not a JSON object", NO_LABELS)], b""),
    "objects_not_list": ({"size": {"width": 10, "height": 10}, "objects": {"a": 1}},
                         [("'objects' is not a list", NO_LABELS)], b""),
    "unknown_geometry": (ann({"classTitle": "car", "geometryType": "hexagon"}, rect(1, 1, 4, 4)),
                         [("object #0 (car): unknown geometry type 'hexagon'", LEFT_OUT)], BOX_1_1_4_4),
    "bad_base64": (ann(bitmap("%%%%")), [("object #0 (car): bitmap data is not a PNG image", LEFT_OUT)], b""),
    "bad_zlib": (ann(bitmap(_b64(b"not zlib at all"))),
                 [("object #0 (car): bitmap data is not zlib: "
                   "Error -3 while decompressing data: incorrect header check", LEFT_OUT)], b""),
    "bad_png": (ann(bitmap(_b64(zlib.compress(b"not a png")))),
                [("object #0 (car): bitmap data is not a PNG image", LEFT_OUT)], b""),
    "zlib_bomb": (ann(bitmap(_b64(zlib.compress(b"\0" * (65 << 20))))),
                  [("object #0 (car): bitmap data decompresses beyond the size limit", LEFT_OUT)], b""),
    "png_bomb": (ann(bitmap(_b64(_huge_png()))),
                 [("object #0 (car): bitmap is too large (decompression bomb)", LEFT_OUT)], b""),
    "outside_the_image": (ann(rect(-5, -5, 20, 3)), [], b"0 0.500000 0.200000 1.000000 0.400000\n"),
    "entirely_outside": (ann(rect(50, 50, 60, 60), rect(1, 1, 4, 4)), [], BOX_1_1_4_4),
    "nan": (SIZE_JSON % (RECT_JSON % b"NaN"), [("object #0 (car): coordinate nan is not finite or absurdly large",
                                                 LEFT_OUT)], b""),
    "infinity": (SIZE_JSON % (RECT_JSON % b"-Infinity"),
                 [("object #0 (car): coordinate -inf is not finite or absurdly large", LEFT_OUT)], b""),
    "huge_float": (ann(rect(1e300, 1, 3, 3), rect(1, 1, 4, 4)),
                   [("object #0 (car): coordinate 1e+300 is not finite or absurdly large", LEFT_OUT)], BOX_1_1_4_4),
    "huge_int": (ann(rect(10**30, 1, 3, 3)),
                 [("object #0 (car): coordinate 1000000000000000000000000000000 is not finite or absurdly large",
                   LEFT_OUT)], b""),
    "five_thousand_digits": (SIZE_JSON % (RECT_JSON % (b"1" * 5000)),
                             [("annotation unreadable: Exceeds the limit (4300 digits) for integer string conversion: "
                               "value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
                               NO_LABELS)], b""),
    "missing_size": ({"objects": [rect(1, 1, 4, 4)]}, [("annotation has no valid 'size'", "size taken from the image")],
                     BOX_1_1_4_4),
    "absurd_size": (ann(rect(1, 1, 4, 4), width=1_000_000, height=1_000_000),
                    [("annotation has no valid 'size'", "size taken from the image")], BOX_1_1_4_4),
    "class_not_in_meta": (ann(rect(1, 1, 4, 4, cls="truck")),
                          [("object #0: class 'truck' is not in meta.json", LEFT_OUT)], b""),
    "class_title_a_list": (ann({**rect(1, 1, 4, 4), "classTitle": ["car"]}),
                           [("object #0: class ['car'] is not in meta.json", LEFT_OUT)], b""),
    "weird_shapes": (ann({"classTitle": "car", "geometryType": "polygon", "points": "abc"},
                         {"classTitle": "car", "geometryType": "rectangle",
                          "points": {"exterior": [[1, 2, 3], [4, 5]]}},
                         {"classTitle": "car", "geometryType": "point", "points": {"exterior": [[True, False]]}}, 7),
                     [("object #0 (car): 'points' is missing or not an object", LEFT_OUT),
                      ("object #1 (car): point [1, 2, 3] is not [x, y]", LEFT_OUT),
                      ("object #2 (car): coordinate True is not a number", LEFT_OUT),
                      ("object #3 is not an object", LEFT_OUT)], b""),
    "tags_not_a_list": ({**ann(rect(1, 1, 4, 4)), "tags": 5}, [("image: 'tags' is not a list", "tags ignored")],
                        BOX_1_1_4_4),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ProblemLog, VirtualTree]:
    root = plain_project(tmp_path_factory.mktemp("corpus") / "p",
                         {f"{name}.png": a for name, (a, _, _) in ANNOTATION_CASES.items()})
    log = ProblemLog()
    project = read_project(str(root), report=log)
    return root, log, VirtualTree(build_view(project, ["yolo"], ViewOptions()))


@pytest.mark.parametrize("case", sorted(ANNOTATION_CASES))
def test_hostile_annotation_is_reported_and_the_item_served(corpus, case: str) -> None:
    root, log, tree = corpus
    _, expected, label = ANNOTATION_CASES[case]
    assert tree.read_file(f"labels/ds/{case}.txt") == label
    assert tree.read_file(f"images/ds/{case}.png") == (root / "ds" / "img" / f"{case}.png").read_bytes()
    got = sorted((p.message, p.action) for p in log.all() if p.item == f"{case}.png")
    assert got == sorted(expected)
    assert all(p.path == str(root / "ds" / "ann" / f"{case}.png.json") for p in log.all() if p.item == f"{case}.png")


def test_every_hostile_annotation_makes_check_fail_and_the_clean_ones_do_not(corpus) -> None:
    root, _, _ = corpus
    r = slyfs("check", str(root), "--json", check=False)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    flagged = {p["item"] for p in report["problems"]}
    assert flagged == {f"{c}.png" for c, (_, problems, _) in ANNOTATION_CASES.items() if problems}
    assert all(set(p) == {"path", "message", "action", "item"} for p in report["problems"])


# ---------------------------------------------------------------- offsets files (pickles)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pkl(ops: bytes) -> bytes:
    return b"\x80\x04" + ops + b"."


OFFSETS_CASES = {
    # a 10-byte pickle that would make CPython allocate and zero a 2 GB memo table
    "memo_bomb": (_pkl(b"]r" + struct.pack("<I", 1 << 27)), "memo index 134217728 at byte 3 skips ahead (next is 0)"),
    "bytes8_huge_length": (_pkl(b"\x8e" + struct.pack("<Q", 1 << 60)),
                           "not a valid pickle (expected 1152921504606846976 bytes in a bytes8, but only 1 remain)"),
    "bytearray8": (_pkl(b"\x96" + struct.pack("<Q", 3) + b"abc"), "refused opcode BYTEARRAY8 at byte 2"),
    "unicode8_huge_length": (_pkl(b"\x8d" + struct.pack("<Q", 1 << 40)),
                             "not a valid pickle "
                             "(expected 1099511627776 bytes in a unicodestring8, but only 1 remain)"),
    "long4_enormous": (_pkl(b"\x8b" + struct.pack("<i", 1000) + b"\x7f" * 1000), "integer of 7999 bits at byte 2"),
    "long_text_5000_digits": (b"L" + b"9" * 5000 + b"L\n.", "not a valid pickle (Exceeds the limit (4300 digits) for "
                              "integer string conversion: value has 5000 digits; use sys.set_int_max_str_digits() "
                              "to increase the limit)"),
    "deep_marks": (_pkl(b"(" * 1000), "nesting deeper than 8 at byte 10"),
    "deep_lists": (_pkl(b"]" * 200_000), "more than 100000 values on the stack at byte 100002"),
    "inst_opcode": (b"(ios\nsystem\n.", "refused opcode INST at byte 1"),
    "persistent_id": (_pkl(b"Pabc\n"), "refused opcode PERSID at byte 2"),
    "extension_code": (_pkl(b"\x82\x01"), "refused opcode EXT1 at byte 2"),
    "set": (_pkl(b"\x8f"), "refused opcode EMPTY_SET at byte 2"),
    "long_string": (_pkl(b"\x8c\xff" + b"a" * 255 + b"\x94" + b"X" + struct.pack("<I", 5000) + b"b" * 5000),
                    "string of 5000 characters at byte 260"),
    "not_a_list": (pickle.dumps({"a": 1}, protocol=4), "a pickle holds dict, not a list"),
    "truncated": (offsets_pickle([("a.png", 512, 600)])[:-7],
                  "not a valid pickle (pickle exhausted before seeing STOP)"),
    "wrong_class": (pickle.dumps([Problem("a", "b", "c")], protocol=4),
                    "refused global slyfs.formats.model.Problem "
                    "(only supervisely.api.image_api.BlobImageInfo is allowed)"),
    "offset_beyond_63_bits": (offsets_pickle([("a.png", 512, 1 << 64)]), "integer of 65 bits at byte 111"),
    "name_not_a_string": (offsets_pickle([(7, 512, 600)]), "entry #0 has no usable name"),
}


@pytest.mark.parametrize("case", sorted(OFFSETS_CASES))
def test_hostile_offsets_file_is_refused_with_a_reason(tmp_path: Path, case: str) -> None:
    data, reason = OFFSETS_CASES[case]
    path = tmp_path / "1001_offsets.pkl"
    path.write_bytes(data)
    with pytest.raises(OffsetsError) as err:
        read_offsets(str(path))
    assert err.value.reason == reason
    assert err.value.path == str(path)


def test_code_in_an_offsets_file_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for proto in range(0, 6):
        path = tmp_path / f"p{proto}_offsets.pkl"
        path.write_bytes(pickle.dumps([_RunsCode(str(marker))], protocol=proto))
        with pytest.raises(OffsetsError) as err:
            read_offsets(str(path))
        assert "system" in err.value.reason
    assert not marker.exists()


def test_too_many_entries_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offsets_mod, "MAX_ENTRIES", 10)
    path = tmp_path / "x_offsets.pkl"
    path.write_bytes(offsets_pickle([(f"{i}.png", 512, 600) for i in range(11)]))
    with pytest.raises(OffsetsError) as err:
        read_offsets(str(path))
    assert err.value.reason == "more than 10 entries"


def test_refused_offsets_file_degrades_only_its_images(tmp_path: Path) -> None:
    root, entries = blob_project(tmp_path / "p", {"a.png": png(), "b.png": png()},
                                 {"a.png": ann(rect(1, 1, 4, 4)), "b.png": ann()})
    offsets = root / "ds" / "1001_offsets.pkl"
    offsets.write_bytes(OFFSETS_CASES["memo_bomb"][0])
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(root), report=log), ["yolo"], ViewOptions()))
    assert [(p.path, p.message, p.action) for p in log.all() if p.path == str(offsets)] == [
        (str(offsets), OFFSETS_CASES["memo_bomb"][1], "offsets file ignored; its images are not served")]
    assert tree.read_file("labels/ds/a.txt") == BOX_1_1_4_4  # labels survive, image bytes do not
    with pytest.raises(Unreadable):
        tree.open("images/ds/a.png")


def test_entries_beyond_the_tar_or_reversed_give_eio_for_that_image_only(tmp_path: Path) -> None:
    root, entries = blob_project(tmp_path / "p", {"a.png": png(), "b.png": png(), "c.png": png()})
    tar_size = (root / "blob" / "1001.tar").stat().st_size
    (a, b, c) = entries
    bad = [a, (b[0], b[1], tar_size + 10), (c[0], c[2], c[1])]
    (root / "ds" / "1001_offsets.pkl").write_bytes(offsets_pickle(bad))
    log = ProblemLog()
    tree = VirtualTree(build_view(read_project(str(root), report=log), ["yolo"], ViewOptions()))
    tar = str(root / "blob" / "1001.tar")
    assert sorted((p.item, p.message, p.action) for p in log.all()) == [
        ("b.png", f"entry for {tar}: ends at byte {tar_size + 10}, beyond the tar's {tar_size} bytes",
         "image served as unreadable (EIO)"),
        ("c.png", f"entry for {tar}: offsets {c[2]}..{c[1]} are not an increasing range",
         "image served as unreadable (EIO)"),
    ]
    assert tree.read_file("images/ds/a.png") == png()
    for name in ("b.png", "c.png"):
        with pytest.raises(Unreadable):
            tree.open(f"images/ds/{name}")


# ---------------------------------------------------------------- names


HOSTILE_NAMES = [
    "../../etc/passwd.png", "..", ".", "a/b.png", "nul\x00byte.png", "ctl\x01\x1f\x7f.png",
    "esc\x1b[31mred.png", "é" * 200 + ".png", "x" * 300 + ".png", "dup.png", "dup.jpg", "-rf .png", " .png",
]


def _assert_safe_tree(files) -> None:
    paths = list(files)
    assert len(paths) == len(set(paths))
    dirs = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    for path in paths:
        assert path not in dirs, f"{path!r} is both a file and a folder"
        for part in path.split("/"):
            raw = part.encode("utf-8")  # strict: valid UTF-8, no surrogates
            assert part not in ("", ".", "..") and len(raw) <= MAX_NAME_BYTES
            assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in part), repr(part)


def test_hostile_names_from_offsets_become_safe_unique_names_in_every_view(tmp_path: Path) -> None:
    images = {f"m{i}.png": png(color=(i, 0, 0)) for i in range(len(HOSTILE_NAMES))}
    root, entries = blob_project(tmp_path / "p", images)
    renamed = [(name, s, e) for name, (_, s, e) in zip(HOSTILE_NAMES, entries)]
    (root / "ds" / "1001_offsets.pkl").write_bytes(offsets_pickle(renamed))
    project = read_project(str(root))
    assert sorted(i.name for i in project.items()) == sorted(HOSTILE_NAMES)
    for fmt in FORMATS:
        files = view_files([fmt], project, ViewOptions())
        _assert_safe_tree(files)
    tree = VirtualTree(build_view(project, ["yolo"], ViewOptions()))
    served = sorted(tree.read_file(p) for p in tree.walk_files() if p.startswith("images/"))
    assert served == sorted(images.values())  # every image, once, under some safe name


def test_hostile_directory_and_file_names_on_disk(tmp_path: Path) -> None:
    """Dataset folders and image files with control bytes, invalid UTF-8 and 255-byte names
    (the split folder is the dataset name)."""
    root = tmp_path / "p"
    bad_ds = os.fsdecode(b"ds\xff\x01")
    names = [os.fsdecode(b"img\xfe\x80.png"), "x" * 246 + ".png", "tab\there.png", "ünï.png"]
    plain_project(root, {n: ann(rect(1, 1, 4, 4)) for n in names}, dataset=bad_ds)
    plain_project(root, {n: ann() for n in names[:2]}, dataset=" -rf *")
    project = read_project(str(root))
    assert len(list(project.items())) == 6
    for fmt in FORMATS:
        _assert_safe_tree(view_files([fmt], project, ViewOptions()))
    tree = VirtualTree(build_view(project, ["yolo"], ViewOptions()))
    assert "ds%FF%01" in tree.listdir("images")


def test_hostile_class_names_never_make_a_path(tmp_path: Path) -> None:
    classes = ("../up", "a/b", "nul\x00", "x" * 300, "car")
    root = plain_project(tmp_path / "p", {"a.png": ann(*(rect(1, 1, 4, 4, cls=c) for c in classes))}, classes=classes)
    project = read_project(str(root))
    for fmt in FORMATS:
        files = view_files([fmt], project, ViewOptions())
        _assert_safe_tree(files)
        tree = VirtualTree(files)
        for path in tree.walk_files():
            with contextlib.suppress(Unreadable):
                tree.read_file(path)


def test_dot_dot_lookups_never_leave_the_tree() -> None:
    tree = VirtualTree(build_view(read_project(str(PLAIN)), ["yolo"], ViewOptions()))
    from slyfs.vfs.errors import NotFound
    for path in ("..", "../meta.json", "images/../../meta.json", "/../etc/passwd", "images/./train"):
        with pytest.raises(NotFound):
            tree.attr(path)


# ---------------------------------------------------------------- slyfs check


@pytest.mark.parametrize("fixture", [PLAIN, BLOB], ids=["plain", "blob"])
def test_check_passes_on_the_sdk_fixtures(fixture: Path) -> None:
    r = slyfs("check", str(fixture), check=False)
    assert (r.returncode, r.stdout) == (0, "no problems found\n")
    r = slyfs("check", str(fixture), "--json", check=False)
    assert json.loads(r.stdout) == {"source": str(fixture), "mountable": True, "problems": []}


def test_check_probes_images(tmp_path: Path) -> None:
    good = png()
    images = {"trunc.png": good[:-20], "garbage.png": b"\x00not an image" * 10, "wrong_size.png": png(12, 8),
              "good.png": good}
    root = plain_project(tmp_path / "p", {n: ann(rect(1, 1, 4, 4)) for n in images}, images=images)
    r = slyfs("check", str(root), check=False)
    assert r.returncode == 1
    assert r.stdout == (
        "ds/ann/wrong_size.png.json [wrong_size.png]\n"
        "  problem: annotation size 10x10 differs from the image's 12x8\n"
        "  slyfs:   the annotation's size is used (boxes are cut to it)\n"
        "ds/img/garbage.png [garbage.png]\n"
        "  problem: not a decodable image (UnidentifiedImageError)\n"
        "  slyfs:   served byte for byte as it is; its labels cannot be sized from it\n"
        "ds/img/trunc.png [trunc.png]\n"
        "  problem: PNG does not end with an IEND chunk (truncated?)\n"
        "  slyfs:   served byte for byte as it is\n"
        "3 problem(s) in 3 file(s)\n")


def test_check_of_a_non_project_exits_2(tmp_path: Path) -> None:
    r = slyfs("check", str(tmp_path), check=False)
    assert r.returncode == 2
    assert r.stderr == f"slyfs: {tmp_path} is not a Supervisely project: no meta.json; cannot be mounted\n"
    (tmp_path / "meta.json").write_bytes(b"[" * 100_000)
    r = slyfs("check", str(tmp_path), "--json", check=False)
    assert r.returncode == 2 and json.loads(r.stdout)["error"].endswith("unusable: JSON nested too deeply")


def test_check_prints_hostile_names_escaped(tmp_path: Path) -> None:
    name = "esc\x1b[31m.png"
    root = plain_project(tmp_path / "p", {name: b"{"})
    r = slyfs("check", str(root), check=False)
    assert r.returncode == 1 and "\x1b" not in r.stdout
    assert "ds/ann/esc\\x1b[31m.png.json [esc\\x1b[31m.png]" in r.stdout
