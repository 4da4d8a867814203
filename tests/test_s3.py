"""Projects mounted straight from S3: a real S3 server (moto's, on 127.0.0.1, started here) holds the
SDK fixtures; every view of a mount from the bucket must equal, byte for byte, the same view of the
local copy, the real readers must accept it, and the server's request log shows what was fetched.

No timing is asserted: each change is awaited by polling with a generous timeout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import build_view, parse_formats
from slyfs.formats.source_bytes import SourceUnreadable
from slyfs.formats.view import ViewOptions
from slyfs.vfs.sources import open_project_source
from slyfs.vfs.stores import ObjectStore, RangeCache
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN, WAIT_SECONDS, mounted, read_errno, read_tree, slyfs, wait_for
from tests.helpers.mounts import assert_clean_import, require_fuse
from tests.helpers.readers import coco_load, datumaro_import_all, require, ultralytics_load
from tests.helpers.s3 import S3Server, s3_server, upload

BUCKET = "slyfs-test"
SOURCES = {"blob": BLOB, "plain": PLAIN}  # name -> root; its prefix is the root's own name (CVAT names the project so)
POLL = 0.5  # seconds between listings in the live tests


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as srv:
        client = srv.client()
        client.create_bucket(Bucket=BUCKET)
        for root in SOURCES.values():
            upload(client, root, BUCKET, root.name)
        yield srv


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("s3-cache")


def url(prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}"


def copy_prefix(server: S3Server, name: str, prefix: str) -> str:
    """A private copy of fixture ``name`` in the bucket, for a test that changes it."""
    upload(server.client(), SOURCES[name], BUCKET, prefix)
    return url(prefix)


@contextlib.contextmanager
def s3_mount(source: str, cache: Path, *options: str) -> Iterator[Path]:
    require_fuse()
    with mounted(source, "--cache-dir", str(cache), *options) as mnt:  # type: ignore[arg-type]
        yield mnt


def tar_sizes(root: Path) -> dict[str, int]:
    return {f"blob/{p.name}": p.stat().st_size for p in (root / "blob").glob("*.tar")}


# -- every view, byte for byte, and the real readers


@pytest.fixture(scope="module", params=sorted(SOURCES))
def both(request: pytest.FixtureRequest, server: S3Server, cache: Path) -> Iterator[tuple[str, Path, dict, list]]:
    """(source name, mount from the bucket of every view at once (--format all), every file of the
    same views of the local copy, the requests made while the mount was read whole)."""
    name = request.param
    local = VirtualTree(build_view(read_project(str(SOURCES[name])), parse_formats("all"), ViewOptions()))
    with s3_mount(url(SOURCES[name].name), cache / name, "--format", "all") as remote:
        server.clear()  # what reading the whole tree asks, after the mount command's sync
        remote_files = read_tree(remote)
        requests = server.clear()
        yield name, remote, {p: local.read_file(p) for p in local.walk_files()}, requests
        assert read_tree(remote) == remote_files  # read again: the same bytes (now from the kernel's cache)


def test_every_view_equals_the_local_copys(both: tuple[str, Path, dict, list]) -> None:
    _, remote, local, _ = both
    remote_files = read_tree(remote)
    assert sorted(remote_files) == sorted(local)
    assert len({p.split("/")[0] for p in remote_files}) >= 26  # every format's folder
    assert [p for p in remote_files if remote_files[p] != local[p]] == []


def test_images_are_byte_ranges_never_a_whole_tar(both: tuple[str, Path, dict, list]) -> None:
    name, _, _, requests = both
    root = SOURCES[name]
    tars = {f"/{BUCKET}/{root.name}/{k}": size for k, size in tar_sizes(root).items()}
    gets = [r for r in requests if r.is_get]
    assert gets, "nothing was fetched"
    for r in gets:
        if r.path in tars:  # a tar is only ever read by range, and never all of it
            assert r.range is not None, r
            first, last = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
            assert last - first + 1 < tars[r.path], r
    if name == "blob":
        assert any(r.path in tars for r in gets)
    # small objects (meta.json, annotations, offsets) were fetched by the mount command: none again
    assert not [r for r in gets if r.path.endswith((".json", ".pkl"))]


def test_real_readers_accept_the_mounted_trees(both: tuple[str, Path, dict, list]) -> None:
    _, remote, _, _ = both
    require("pycocotools")
    for ann in sorted((remote / "coco" / "annotations").glob("instances_*.json")):
        gt = coco_load(ann)
        assert len(gt.getImgIds()) == len(json.loads(ann.read_bytes())["images"]) > 0
    require("ultralytics")
    for split in ("train", "val"):
        result = ultralytics_load(remote / "yolo" / "data.yaml", split, task="detect")
        assert result.error is None and result.corrupt == 0 and result.missing == 0, result.msgs
        assert result.n_images == len(list((remote / "yolo" / "images" / split).iterdir()))
    require("datumaro")
    report = datumaro_import_all(remote / "datumaro", "datumaro")
    assert_clean_import(report, len(list((remote / "datumaro" / "images").rglob("*.*"))))


# -- the cache: a remount lists and fetches nothing else; images fetched exactly


def test_remount_of_an_unchanged_project_only_lists(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "blob", "remount")
    with s3_mount(source, tmp_path, "--format", "coco") as mnt:
        first = read_tree(mnt)
    server.clear()
    with s3_mount(source, tmp_path, "--format", "coco") as mnt:
        names = sorted(os.listdir(mnt / "annotations"))
        labels = {p: (mnt / p).read_bytes() for p in first if p.startswith("annotations/")}
        requests = server.clear()
        assert names and labels == {p: first[p] for p in labels}
        assert requests and all(r.is_listing for r in requests), [r for r in requests if not r.is_listing]
        images = {p: (mnt / p).read_bytes() for p in first if p.startswith("images/")}
        assert images == {p: first[p] for p in images}
    fetched = sum(int(b) - int(a) + 1 for a, b in (r.range.removeprefix("bytes=").split("-")
                                                   for r in server.clear() if r.is_get and r.range))
    assert fetched == sum(len(data) for data in images.values())  # each image once, nothing read ahead


def test_image_cache_serves_a_second_read_from_disk(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "plain", "imgcache")
    reads = []
    for _ in range(2):  # two mounts' worth of sources, one cache
        opened = open_project_source(source, {}, tmp_path, cache_images=1 << 20)
        tree = VirtualTree(build_view(read_project(opened.root), ["yolo"], ViewOptions()), store=opened.store)
        server.clear()
        reads.append({p: tree.read_file(p) for p in tree.walk_files() if p.startswith("images/")})
        requests = server.clear()
    assert reads[0] == reads[1] and reads[0]
    assert not [r for r in requests if r.is_get]


def test_range_cache_keeps_its_budget(tmp_path: Path) -> None:
    ranges = RangeCache(tmp_path, budget=250)
    for i in range(5):
        ranges.put(f"k{i}", bytes([i]) * 100)
    assert ranges.get("k0", 100) is None and ranges.get("k1", 100) is None and ranges.get("k2", 100) is None
    assert ranges.get("k4", 100) == bytes([4]) * 100
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 250
    assert ranges.get("k4", 99) is None  # another length than asked: dropped, never served


# -- without FUSE: the tree over the bucket, and a replaced object


def test_tree_over_the_bucket_without_fuse(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "blob", "nofuse")
    opened = open_project_source(source, {}, tmp_path)
    assert isinstance(opened.store, ObjectStore)
    remote = VirtualTree(build_view(read_project(opened.root), ["yolo"], ViewOptions()), store=opened.store)
    local = VirtualTree(build_view(read_project(str(BLOB)), ["yolo"], ViewOptions()))
    assert remote.walk_files() == local.walk_files()
    for path in remote.walk_files():
        assert remote.read_file(path) == local.read_file(path), path
    image = next(p for p in remote.walk_files() if p.startswith("images/"))
    ref = remote.node(image).ref  # type: ignore[union-attr]
    tar = os.path.relpath(ref.path, opened.root)
    body = bytearray(server.client().get_object(Bucket=BUCKET, Key=f"nofuse/{tar}")["Body"].read())
    body[ref.offset:ref.offset + ref.size] = bytes(255 - b for b in body[ref.offset:ref.offset + ref.size])
    server.client().put_object(Bucket=BUCKET, Key=f"nofuse/{tar}", Body=bytes(body))  # same size, other ETag
    with pytest.raises(SourceUnreadable, match="replaced since it was indexed"):
        opened.store.read_all(ref)


def test_mirror_takes_what_the_reader_reads_and_keys_as_they_are(server: S3Server, tmp_path: Path) -> None:
    client = server.client()
    objects = {"meta.json": (PLAIN / "meta.json").read_bytes(), "ds/img/a[1]*.jpg": b"\xff\xd8 not read",
               "ds/ann/a[1]*.jpg.json": b'{"size": {"width": 2, "height": 2}, "objects": []}',
               "ds/notes.txt": b"never read", "ds/img/readme.txt": b"not an image",
               "ds/ann/../../../escape.json": b"{}"}
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=f"mirror/{key}", Body=body)
    opened = open_project_source(url("mirror"), {}, tmp_path)
    tree = Path(opened.root)
    kept = {str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file()}
    assert kept == {"meta.json", "ds/img/a[1]*.jpg", "ds/ann/a[1]*.jpg.json"}
    assert (tree / "ds/ann/a[1]*.jpg.json").read_bytes() == objects["ds/ann/a[1]*.jpg.json"]
    placeholder = tree / "ds/img/a[1]*.jpg"
    assert placeholder.stat().st_size == len(objects["ds/img/a[1]*.jpg"])
    assert placeholder.stat().st_blocks == 0  # sparse: none of the image's bytes are on disk
    assert not (tmp_path.parent / "escape.json").exists()
    project = read_project(opened.root)
    item = project.datasets[0].items[0]
    assert item.image is not None and opened.store is not None
    assert opened.store.read_all(item.image) == objects["ds/img/a[1]*.jpg"]
    server.clear()
    assert opened.remote is not None and opened.remote.sync().changed == 0
    assert all(r.is_listing for r in server.clear())


# -- live: the bucket polled


def item_files(mnt: Path) -> set[str]:
    return {str(p.relative_to(mnt)) for p in mnt.rglob("*") if p.is_file()}


def test_rewritten_annotation_and_deleted_object_show(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "plain", "live")
    client = server.client()
    ann_key = "live/train/ann/img_001.jpg.json"
    with s3_mount(source, tmp_path, "--format", "yolo", "--poll", str(POLL)) as mnt:
        label = mnt / "labels" / "train" / "img_001.txt"
        before = label.read_bytes()
        data = json.loads(client.get_object(Bucket=BUCKET, Key=ann_key)["Body"].read())
        data["objects"] = [o for o in data["objects"] if o["geometryType"] == "rectangle"][:1] * 3
        client.put_object(Bucket=BUCKET, Key=ann_key, Body=json.dumps(data).encode())
        wait_for(lambda: label.read_bytes() != before, "the rewritten annotation", mnt, seconds=POLL + 2)
        assert len(label.read_bytes().splitlines()) == 3

        # an image object deleted: its image reads EIO (its annotation keeps the item and its
        # labels), every other file is served as before
        files = item_files(mnt)
        image = mnt / "images" / "train" / "img_006.png"
        others = {p: (mnt / p).read_bytes() for p in files if p != "images/train/img_006.png"}
        client.delete_object(Bucket=BUCKET, Key="live/train/img/img_006.png")
        wait_for(lambda: read_errno(image) == errno.EIO, "the deleted image's EIO", mnt, seconds=POLL + 2)
        assert item_files(mnt) == files
        assert {p: (mnt / p).read_bytes() for p in others} == others


# -- faults


def test_server_stopped_mid_read_then_restarted(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "blob", "outage")
    images = blob_images()
    with s3_mount(source, tmp_path, "--format", "yolo", "--poll", str(POLL)) as mnt:
        served = sorted(p for p in (mnt / "images" / "train").iterdir() if p.name in images)
        labels = {p: p.read_bytes() for p in (mnt / "labels" / "train").iterdir()}
        with open(served[0], "rb") as held:
            head = held.read(16)
            server.stop()
            try:
                assert head + held.read() == images[served[0].name]  # an image being read is read to its end
                assert read_errno(served[1]) == errno.EIO  # one not yet fetched cannot be
                assert {p: p.read_bytes() for p in labels} == labels  # the rest keeps serving
            finally:
                server.start()
        wait_for(lambda: read_errno(served[1]) is None, "a read once the server is back", mnt)
        assert {p.name: p.read_bytes() for p in served} == {p.name: images[p.name] for p in served}
    assert "could not be read" in mnt.with_suffix(".log").read_text()


def test_replaced_object_is_never_served_as_the_old_bytes(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "plain", "replaced")
    client = server.client()
    key = "replaced/train/img/img_001.jpg"
    old = (PLAIN / "train" / "img" / "img_001.jpg").read_bytes()
    other = bytes(255 - b for b in old)  # same size, other bytes: another ETag
    with s3_mount(source, tmp_path, "--format", "yolo", "--poll", "600") as mnt:
        image = mnt / "images" / "train" / "img_001.jpg"
        client.put_object(Bucket=BUCKET, Key=key, Body=other)
        try:
            got = image.read_bytes()
        except OSError as e:
            assert e.errno == errno.EIO
        else:
            assert got == other
        # the failed read woke the poller: the mount follows without waiting for the next poll
        wait_for(lambda: image.read_bytes() == other, "the new bytes", mnt)
    assert "replaced since it was indexed" in mnt.with_suffix(".log").read_text()


def test_refused_credentials(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "plain", "refused")
    server.refusing = True
    try:
        r = slyfs("mount", source, str(tmp_path / "mnt"), "--cache-dir", str(tmp_path / "c"), check=False)
    finally:
        server.refusing = False
    assert r.returncode == 1 and "expired" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with s3_mount(source, tmp_path / "c", "--format", "yolo", "--poll", str(POLL)) as mnt:
        labels = {p: p.read_bytes() for p in (mnt / "labels" / "train").iterdir()}
        image = mnt / "images" / "train" / "img_001.jpg"
        server.refusing = True
        try:
            assert read_errno(image) == errno.EIO
            assert {p: p.read_bytes() for p in labels} == labels  # what was fetched keeps serving
        finally:
            server.refusing = False
        assert image.read_bytes() == (PLAIN / "train" / "img" / "img_001.jpg").read_bytes()
    assert "expired" in mnt.with_suffix(".log").read_text()


# -- two nodes, check and export


def test_two_mounts_of_one_prefix_read_the_same_bytes(server: S3Server, tmp_path: Path) -> None:
    source = copy_prefix(server, "blob", "two")
    client = server.client()
    with s3_mount(source, tmp_path / "node1", "--format", "coco", "--poll", str(POLL)) as a, \
            s3_mount(source, tmp_path / "node2", "--format", "coco", "--poll", str(POLL)) as b:
        assert read_tree(a) == read_tree(b)
        key = "two/train/ann/img_001.jpg.json"
        data = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        data["objects"] = []
        client.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(data).encode())
        coco = Path("annotations") / "instances_train.json"
        before = (a / coco).read_bytes()
        wait_for(lambda: (a / coco).read_bytes() != before and (b / coco).read_bytes() != before,
                 "the edit in both mounts", a, seconds=WAIT_SECONDS)
        assert read_tree(a) == read_tree(b)


def test_check_and_export_take_the_same_source(server: S3Server, tmp_path: Path) -> None:
    remote = slyfs("check", url(BLOB.name), "--json", "--cache-dir", str(tmp_path / "c"), check=False)
    local = slyfs("check", str(BLOB), "--json", check=False)
    assert remote.returncode == local.returncode
    assert json.loads(remote.stdout)["problems"] == json.loads(local.stdout)["problems"]
    slyfs("export", url(BLOB.name), str(tmp_path / "s3"), "--format", "voc", "--cache-dir", str(tmp_path / "c"))
    slyfs("export", str(BLOB), str(tmp_path / "local"), "--format", "voc", "--copy")
    exported = read_tree(tmp_path / "s3")
    assert exported == read_tree(tmp_path / "local") and exported


def test_unreachable_or_wrong_sources_are_refused_in_one_line(server: S3Server, tmp_path: Path) -> None:
    r = slyfs("check", url("no-such-prefix"), "--cache-dir", str(tmp_path), check=False)
    assert r.returncode == 2 and "no meta.json" in r.stderr
    r = slyfs("mount", str(PLAIN), str(tmp_path), "--storage-option", "anon=true", check=False)
    assert r.returncode == 1 and "applies to a URL source" in r.stderr
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    r = subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "check", url(PLAIN.name), "--cache-dir", str(tmp_path),
                        "--storage-option", 'config_kwargs={"retries": {"max_attempts": 1}}'],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "cannot list the project" in r.stderr


def blob_images() -> dict[str, bytes]:
    """Member name → bytes of every image in the blob fixture's tars (read with tarfile)."""
    out = {}
    for tar_path in (BLOB / "blob").glob("*.tar"):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member)
                if f is not None:
                    out[os.path.basename(member.name)] = f.read()
    return out



def test_the_python_api_serves_the_bucket_as_the_mount_does(both: tuple[str, Path, dict, list], server: S3Server,
                                                             tmp_path: Path) -> None:
    """open_view takes the same URL: every file of every view, through the API, has the mount's bytes."""
    from slyfs.vfs import open_view

    name, remote, _, _ = both
    with open_view(url(SOURCES[name].name), "all", watch=False, cache_dir=tmp_path) as fs:
        served = {path: fs.cat_file(path) for path in fs.find("")}
    assert served == read_tree(remote)
