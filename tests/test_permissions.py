"""Who may read what through a mount: the source's read bits and owner, enforced by the kernel
(``default_permissions``) once ``--allow-other`` lets other users in; and symbolic links that
lead outside the project, which are not followed unless ``--follow-external-links``.

The suite runs as root, so readers are child processes dropped to an unprivileged uid."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.permissions import most_restrictive
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, slyfs

NOBODY = 65534
# the test's own interpreter may live where uid 65534 cannot reach (/root/.pyenv); the reader needs only the stdlib
PYTHON_FOR_NOBODY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

_READER = """
import json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        with open(p, "rb") as f:
            out[p] = f.read().hex()
    except OSError as e:
        out[p] = e.errno
print(json.dumps(out))
"""


def _become_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def read_as_nobody(*paths: Path) -> dict[Path, bytes | int]:
    """Each file's bytes, or the errno opening/reading it gave, for a process running as uid 65534."""
    r = subprocess.run([PYTHON_FOR_NOBODY, "-I", "-c", _READER, *map(str, paths)], preexec_fn=_become_nobody,
                       cwd="/", capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(r.stdout)
    return {p: bytes.fromhex(got[str(p)]) if isinstance(got[str(p)], str) else got[str(p)] for p in paths}


@pytest.mark.parametrize("libfuse", ["3", "2"])
def test_allow_other_serves_the_sources_read_bits_and_owner(libfuse: str, plain_copy: Path, mount) -> None:
    img = plain_copy / "train" / "img"
    (img / "img_001.jpg").chmod(0o600)  # root's only: nobody may not read it
    (img / "img 002 space.png").chmod(0o640)
    os.chown(img / "straße_ü.jpg", NOBODY, NOBODY)
    (img / "straße_ü.jpg").chmod(0o600)  # nobody's own: nobody reads it
    with mount(plain_copy, "--allow-other", "--no-index", "--libfuse", libfuse) as mnt:
        images = mnt / "images" / "train"
        private, group, own, public = (images / n for n in ("img_001.jpg", "img 002 space.png",
                                                                    "straße_ü.jpg", "empty_001.jpg"))
        assert stat.S_IMODE(private.stat().st_mode) == 0o400 and private.stat().st_uid == 0
        assert stat.S_IMODE(group.stat().st_mode) == 0o440
        assert (own.stat().st_uid, own.stat().st_gid, stat.S_IMODE(own.stat().st_mode)) == (NOBODY, NOBODY, 0o400)
        assert stat.S_IMODE(public.stat().st_mode) == 0o444
        assert stat.S_IMODE(mnt.stat().st_mode) == 0o555 and stat.S_IMODE(images.stat().st_mode) == 0o555
        label = mnt / "labels" / "train" / "img_001.txt"  # generated: meta.json's bits (0644 -> 0444)
        assert stat.S_IMODE(label.stat().st_mode) == 0o444
        got = read_as_nobody(private, group, own, public, label)
        assert got[private] == errno.EACCES and got[group] == errno.EACCES
        assert got[own] == (img / "straße_ü.jpg").read_bytes()
        assert got[public] == (img / "empty_001.jpg").read_bytes()
        assert got[label] == label.read_bytes()
        assert private.read_bytes() == (img / "img_001.jpg").read_bytes()  # the mounting user (root) still reads


def test_generated_files_and_directories_follow_meta_json_and_the_root(plain_copy: Path, mount) -> None:
    (plain_copy / "meta.json").chmod(0o600)
    with mount(plain_copy, "--allow-other", "--no-index") as mnt:
        label, yaml = mnt / "labels" / "train" / "img_001.txt", mnt / "data.yaml"
        assert stat.S_IMODE(label.stat().st_mode) == 0o400 and stat.S_IMODE(yaml.stat().st_mode) == 0o400
        image = mnt / "images" / "train" / "img_001.jpg"
        assert read_as_nobody(label, yaml, image) == {label: errno.EACCES, yaml: errno.EACCES,
                                                     image: image.read_bytes()}
    plain_copy.chmod(0o700)  # the root folder shuts everyone else out of every directory
    with mount(plain_copy, "--allow-other", "--no-index") as mnt:
        assert stat.S_IMODE(mnt.stat().st_mode) == 0o500
        image = mnt / "images" / "train" / "img_001.jpg"
        assert read_as_nobody(image) == {image: errno.EACCES}


def test_blob_images_take_the_tars_bits(tmp_path: Path, mount) -> None:
    source = tmp_path / "blob"
    shutil.copytree(BLOB, source)
    for tar in (source / "blob").glob("*.tar"):
        tar.chmod(0o600)
    with mount(source, "--allow-other", "--no-index") as mnt:
        images = sorted((mnt / "images" / "train").iterdir())
        labels = sorted((mnt / "labels" / "train").iterdir())
        assert images and {stat.S_IMODE(p.stat().st_mode) for p in images} == {0o400}
        got = read_as_nobody(images[0], labels[0])
        assert got == {images[0]: errno.EACCES, labels[0]: labels[0].read_bytes()}


def test_a_generated_file_made_from_an_image_is_as_private_as_the_image(plain_copy: Path) -> None:
    """VOC's JPEG conversion and XML are made from the image: the most restrictive bits win."""
    (plain_copy / "train" / "img" / "img_006.png").chmod(0o640)
    project = read_project(str(plain_copy))
    tree = VirtualTree(build_view(project, ["voc"], ViewOptions(params={"voc.jpeg": "1"})),
                       source_root=str(plain_copy))
    jpegs = {p: tree.attr(p).mode for p in tree.walk_files() if p.startswith("JPEGImages/")}
    assert sorted(set(jpegs.values())) == [0o440, 0o444]
    assert VirtualTree({}, source_root=str(plain_copy)).attr("").mode == 0o555


def test_most_restrictive_grants_only_what_every_source_grants() -> None:
    assert most_restrictive([(0o644, 1, 1), (0o640, 1, 1)]) == (0o640, 1, 1)
    # another owner or group: of that file only what it grants every class counts
    assert most_restrictive([(0o644, 1, 1), (0o444, 2, 2)]) == (0o444, 1, 1)
    assert most_restrictive([(0o644, 1, 1), (0o604, 2, 1)]) == (0o000, 1, 1)
    assert most_restrictive([(0o644, 1, 1), (0o640, 1, 2)]) == (0o000, 1, 1)


# ---------------------------------------------------------------- links that leave the project


def linked_project(tmp_path: Path, plain_copy: Path) -> tuple[Path, Path, dict[str, Path]]:
    """plain_copy with links to files and folders outside it, and links within it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    shutil.copy(plain_copy / "train" / "img" / "img_001.jpg", secret)
    shutil.copytree(plain_copy / "val", outside / "other_ds")
    shutil.copy(plain_copy / "train" / "ann" / "img_001.jpg.json", outside / "ann.json")
    links = {
        "image": plain_copy / "train" / "img" / "stolen.jpg",
        "dataset": plain_copy / "elsewhere",
        "annotation": plain_copy / "train" / "ann" / "img_006.png.json",
    }
    links["image"].symlink_to(secret)
    links["dataset"].symlink_to(outside / "other_ds")
    links["annotation"].unlink()
    links["annotation"].symlink_to(outside / "ann.json")
    shutil.move(plain_copy / "val" / "meta", outside / "meta")
    links["folder"] = plain_copy / "val" / "meta"
    links["folder"].symlink_to(outside / "meta")
    (plain_copy / "val" / "img" / "inside.jpg").symlink_to("../../train/img/img_001.jpg")
    sub = plain_copy / "train" / "datasets" / "sub"
    shutil.move(sub / "img", plain_copy / ".sub_images")  # a folder linked within the root
    (sub / "img").symlink_to("../../../.sub_images")
    return plain_copy, outside, links


def test_links_leaving_the_project_are_not_followed(tmp_path: Path, plain_copy: Path, mount) -> None:
    source, outside, links = linked_project(tmp_path, plain_copy)
    with mount(source, "--no-index") as mnt:
        served = mnt / "images" / "train"
        assert (served / "stolen.jpg").exists()  # the name stays, its bytes are not served
        try:
            (served / "stolen.jpg").read_bytes()
            raise AssertionError("an external link was followed")
        except OSError as e:
            assert e.errno == errno.EIO
        assert not (mnt / "images" / "elsewhere").exists()
        assert (mnt / "labels" / "train" / "img_006.txt").read_bytes() == b""  # without the linked labels
        inside = mnt / "images" / "val" / "inside.jpg"
        assert inside.read_bytes() == (source / "train" / "img" / "img_001.jpg").read_bytes()
        assert (served / "sub_001.jpg").read_bytes() == (source / ".sub_images" / "sub_001.jpg").read_bytes()
        log = mnt.with_suffix(".log").read_text()
        for link in links.values():
            assert f"{link}" in log and f"symbolic link to {os.path.realpath(link)}, outside the project" in log
    with mount(source, "--no-index", "--follow-external-links") as mnt:
        assert (mnt / "images" / "train" / "stolen.jpg").read_bytes() == (outside / "secret.jpg").read_bytes()
        assert (mnt / "images" / "elsewhere").is_dir()
        assert (mnt / "labels" / "train" / "img_006.txt").read_bytes() != b""


def test_export_follows_external_links_only_when_told(tmp_path: Path, plain_copy: Path) -> None:
    source, outside, _ = linked_project(tmp_path, plain_copy)
    kept = tmp_path / "kept"
    slyfs("export", str(source), str(kept), "--skip-unreadable")
    assert not (kept / "images" / "train" / "stolen.jpg").exists()
    assert not (kept / "images" / "elsewhere").exists()
    followed = tmp_path / "followed"
    slyfs("export", str(source), str(followed), "--copy", "--follow-external-links")
    assert (followed / "images" / "train" / "stolen.jpg").read_bytes() == (outside / "secret.jpg").read_bytes()
    assert (followed / "images" / "elsewhere").is_dir()


def test_check_names_each_external_link_and_its_target(tmp_path: Path, plain_copy: Path) -> None:
    source, _, links = linked_project(tmp_path, plain_copy)
    r = slyfs("check", str(source), "--json", check=False)
    assert r.returncode == 1
    found = {p["path"]: p for p in json.loads(r.stdout)["problems"] if "symbolic link" in p["message"]}
    assert set(found) == {str(p.relative_to(source)) for p in links.values()}
    assert all(found[str(p.relative_to(source))]["message"] ==
               f"symbolic link to {os.path.realpath(p)}, outside the project" for p in links.values())
    followed = slyfs("check", str(source), "--json", "--follow-external-links", check=False)
    assert not [p for p in json.loads(followed.stdout)["problems"] if "symbolic link" in p["message"]]


def test_blob_links_leaving_the_project(tmp_path: Path) -> None:
    """A tar, an offsets file and blob/ itself, each linked from outside."""
    source, outside = tmp_path / "blob", tmp_path / "outside"
    shutil.copytree(BLOB, source)
    shutil.copytree(source / "blob", outside)
    tars = sorted((source / "blob").glob("*.tar"))
    before = {i.name for i in read_project(str(source)).items() if i.image is None}
    tars[0].unlink()
    tars[0].symlink_to(outside / tars[0].name)
    log = ProblemLog()
    project = read_project(str(source), report=log)
    linked = [p for p in log.all() if "symbolic link" in p.message]
    assert [(p.path, p.action) for p in linked] == [
        (str(tars[0]), "not followed: its images read as unreadable (EIO) (--follow-external-links follows it)")]
    unreadable = {i.name for i in project.items() if i.image is None}
    assert unreadable > before and all(i.image.path != str(tars[0]) for i in project.items() if i.image)
    assert {i.name for i in read_project(str(source), follow_external_links=True).items() if i.image is None} == before

    shutil.rmtree(source / "blob")
    (source / "blob").symlink_to(outside)
    log = ProblemLog()
    project = read_project(str(source), report=log)
    assert [p.path for p in log.all() if "symbolic link" in p.message] == [str(source / "blob")]
    assert not [i for i in project.items() if i.image and i.image.path.endswith(".tar")]


def test_a_meta_json_linking_outside_is_not_mountable(tmp_path: Path, plain_copy: Path, mount) -> None:
    outside = tmp_path / "meta.json"
    (plain_copy / "meta.json").rename(outside)
    (plain_copy / "meta.json").symlink_to(outside)
    r = slyfs("check", str(plain_copy), check=False)
    assert r.returncode == 2
    assert r.stderr == (f"slyfs: {plain_copy}/meta.json: symbolic link to {outside}, outside the project "
                        "(--follow-external-links follows it); cannot be mounted\n")
    (tmp_path / "mnt").mkdir()
    m = slyfs("mount", str(plain_copy), str(tmp_path / "mnt"), check=False)
    assert m.returncode == 1 and f"symbolic link to {outside}, outside the project" in m.stderr
    assert slyfs("check", str(plain_copy), "--follow-external-links", check=False).returncode in (0, 1)
