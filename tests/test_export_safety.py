"""``slyfs export`` never writes the source, never widens modes, never shares inodes outside the
project, and never leaves its staging folder where tools walking DEST would see it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BLOB, PLAIN, read_tree
from tests.helpers.scripts import load_script
from tests.test_export import checksums, export

make_sample_project = load_script("make_sample_project").main

UMASK = os.umask(0o022)
os.umask(UMASK)
DEFAULT_MODE = 0o666 & ~UMASK


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def staging_folders(*folders: Path) -> list[str]:
    return sorted(n for d in folders if d.is_dir() for n in os.listdir(d) if ".slyfs-export-" in n)


# Symlinks planted in DEST before `export --force`: DEST path -> source path (folders and files),
# each at a path the export writes, plus one at a path it does not write.
PLANTED = {
    "supervisely": {"train/ann": "train/ann", "val": "val", "meta.json": "meta.json",
                    "train/img/img_001.jpg": "train/img/img_006.png"},
    "yolo": {"images/train": "train/img", "labels": "train/ann", "data.yaml": "meta.json"},
}


@pytest.mark.parametrize("fmt", PLANTED)
def test_force_replaces_symlinks_into_the_source_never_their_targets(plain_copy: Path, tmp_path: Path,
                                                                      fmt: str) -> None:
    before = checksums(plain_copy)
    fresh, dest = tmp_path / "fresh", tmp_path / "dest"
    export(plain_copy, fresh, "--format", fmt, "--classes", "car")
    (dest / "train" / "img").mkdir(parents=True)
    for at, target in PLANTED[fmt].items():
        (dest / at).parent.mkdir(parents=True, exist_ok=True)
        (dest / at).symlink_to(plain_copy / target)
    (dest / "unrelated").symlink_to(plain_copy / "train")

    r = export(plain_copy, dest, "--format", fmt, "--classes", "car", "--force")

    assert checksums(plain_copy) == before  # the source is never written
    assert f"replaced {len(PLANTED[fmt])} symlink(s)" in r.stderr and "targets were not touched" in r.stderr
    for at in PLANTED[fmt]:
        assert not (dest / at).is_symlink() and (dest / at).exists()
    assert (dest / "unrelated").is_symlink()  # not at an exported path: left alone, and never followed
    exported = read_tree(dest)
    assert {p: d for p, d in exported.items() if p in read_tree(fresh)} == read_tree(fresh)
    assert staging_folders(dest, tmp_path) == []


def test_dest_reaching_into_the_source_through_a_symlink_is_refused(plain_copy: Path, tmp_path: Path) -> None:
    before = checksums(plain_copy)
    (tmp_path / "link").symlink_to(plain_copy / "train")
    r = export(plain_copy, tmp_path / "link" / "out", "--format", "yolo", check=False)
    assert r.returncode == 1 and "overlap" in r.stderr
    assert checksums(plain_copy) == before and not (plain_copy / "train" / "out").exists()


@pytest.mark.parametrize("copy", [(), ("--copy",)], ids=["linked", "copied"])
def test_modes_are_never_widened(plain_copy: Path, tmp_path: Path, copy: tuple[str, ...]) -> None:
    private_image = plain_copy / "train" / "img" / "img_001.jpg"
    private_image.chmod(0o600)
    (plain_copy / "val" / "img" / "val_001.jpg").chmod(0o640)
    export(plain_copy, tmp_path / "a", "--format", "yolo", *copy)
    assert mode(tmp_path / "a" / "images" / "train" / "img_001.jpg") == 0o600
    assert mode(tmp_path / "a" / "images" / "val" / "val_001.jpg") == 0o640
    assert mode(tmp_path / "a" / "images" / "train" / "img_006.png") == 0o644 & ~UMASK
    assert mode(tmp_path / "a" / "labels" / "train" / "img_001.txt") == DEFAULT_MODE
    assert mode(tmp_path / "a" / "data.yaml") == DEFAULT_MODE

    (plain_copy / "val" / "ann" / "dup.png.json").chmod(0o600)  # one private input: every generated file is private
    export(plain_copy, tmp_path / "b", "--format", "yolo", *copy)
    generated = [p for p in read_tree(tmp_path / "b") if not p.startswith("images/")]
    assert generated and {mode(tmp_path / "b" / p) for p in generated} == {0o600}


def test_images_copied_out_of_a_private_tar_stay_private(tmp_path: Path) -> None:
    source = tmp_path / "blob"
    shutil.copytree(BLOB, source)
    for tar in (source / "blob").iterdir():
        tar.chmod(0o600)
    export(source, tmp_path / "out", "--format", "yolo")
    modes = {p: mode(tmp_path / "out" / p) for p in read_tree(tmp_path / "out") if p.startswith("images/")}
    assert modes.pop("images/val/empty_002.png") == 0o644 & ~UMASK  # a plain img/ file, linked
    assert len(modes) == 11 and set(modes.values()) == {0o600}


def test_an_image_symlinked_from_outside_the_project_is_copied_not_linked(plain_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "img_006.png"
    outside.parent.mkdir()
    image = plain_copy / "train" / "img" / "img_006.png"
    shutil.move(image, outside)
    image.symlink_to(outside)
    inside = plain_copy / "val" / "img" / "val_001.jpg"  # a symlink staying inside the project may be linked
    shutil.move(inside, plain_copy / "val" / "val_001.jpg")
    inside.symlink_to(Path("..") / "val_001.jpg")
    r = export(plain_copy, tmp_path / "out", "--format", "yolo", "--follow-external-links")  # else left out
    assert "11 hard-linked, 1 copied" in r.stdout
    exported = tmp_path / "out" / "images" / "train" / "img_006.png"
    assert os.stat(exported).st_ino != os.stat(outside).st_ino and os.stat(outside).st_nlink == 1
    assert exported.read_bytes() == outside.read_bytes() and not exported.is_symlink()
    assert os.stat(tmp_path / "out" / "images" / "val" / "val_001.jpg").st_ino == os.stat(inside).st_ino


def start_export(source: Path, dest: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "slyfs.vfs.cli", "export", str(source), str(dest),
                             "--format", "yolo", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_midway(proc: subprocess.Popen, staging_parent: Path, sig: signal.Signals) -> Path:
    """Send ``sig`` once the export has staged some images; the staging folder it was writing."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        for name in staging_folders(staging_parent):
            images = staging_parent / name / "images" / "train"
            if images.is_dir() and len(os.listdir(images)) >= 20:
                proc.send_signal(sig)
                proc.communicate(timeout=60)
                return staging_parent / name
        time.sleep(0.005)
    pytest.fail(f"the export ended before it could be stopped: {proc.communicate()}")


@pytest.fixture(scope="module")
def sample_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough that an export takes a while: 2000 images in blob tars."""
    source = tmp_path_factory.mktemp("sample") / "project"
    make_sample_project([str(source), "--images", "2000", "--form", "blob"])
    return source


def test_a_killed_export_is_cleaned_up_by_the_next_run(sample_project: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    proc = start_export(sample_project, dest, "--force")
    leftover = stop_midway(proc, tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert leftover.name == f".dest.slyfs-export-{proc.pid}" and leftover.is_dir()  # beside DEST
    assert os.listdir(dest) == ["keep.txt"]  # DEST untouched, and no staging folder inside it

    r = export(sample_project, dest, "--format", "yolo", "--force")
    assert f"removed {leftover}, the staging folder of an export that did not finish" in r.stderr
    assert staging_folders(dest, tmp_path) == []
    export(sample_project, tmp_path / "fresh", "--format", "yolo")
    assert read_tree(dest) == {**read_tree(tmp_path / "fresh"), "keep.txt": b"mine"}


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_a_stopped_export_removes_its_staging_folder(sample_project: Path, tmp_path: Path, sig: signal.Signals,
                                                     status: int) -> None:
    proc = start_export(sample_project, tmp_path / "dest")
    stop_midway(proc, tmp_path, sig)
    assert proc.returncode == status
    assert os.listdir(tmp_path) == []  # neither DEST nor a staging folder


def test_a_leftover_inside_dest_from_an_older_version_is_removed(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / ".slyfs-export-k2x9_q1z" / "images").mkdir(parents=True)
    (dest / ".slyfs-export-k2x9_q1z" / "images" / "partial.jpg").write_bytes(b"\xff\xd8")
    r = export(PLAIN, dest, "--format", "yolo")  # DEST held only the leftover: no --force needed
    assert r.stderr.count("the staging folder of an export that did not finish") == 1
    assert staging_folders(dest, tmp_path) == [] and (dest / "data.yaml").is_file()


def test_an_export_running_into_the_same_dest_is_not_disturbed(tmp_path: Path) -> None:
    running = tmp_path / ".dest.slyfs-export-999999"
    running.mkdir()
    fd = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the running export holds it
        r = export(PLAIN, tmp_path / "dest", "--format", "yolo", check=False)
    finally:
        os.close(fd)
    assert r.returncode == 1 and f"another slyfs export is writing into {tmp_path / 'dest'}" in r.stderr
    assert running.is_dir() and not (tmp_path / "dest").exists()


@pytest.mark.parametrize(("at", "found", "wanted"), [("images", "file", "folder"), ("data.yaml", "folder", "file")])
def test_force_refuses_a_file_where_a_folder_goes_before_writing(tmp_path: Path, at: str, found: str,
                                                                  wanted: str) -> None:
    dest = tmp_path / "dest"
    (dest / "labels").mkdir(parents=True)
    if found == "folder":
        (dest / at).mkdir()
    else:
        (dest / at).write_text("mine")
    r = export(PLAIN, dest, "--format", "yolo", "--force", check=False)
    assert r.returncode == 1
    assert f"{dest / at} is a {found} where the export puts a {wanted}: move it away; {dest} was left as it was" \
        in r.stderr
    assert sorted(os.listdir(dest)) == sorted({at, "labels"}) and os.listdir(dest / "labels") == []
    assert staging_folders(dest, tmp_path) == []
