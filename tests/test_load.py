"""Load on a real mount: 8 parallel readers, two passes over a 20,000-image blob project
while its annotations are being rewritten. No byte may differ from the source, no
descriptor may leak, memory must not grow between the passes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import REPO
from tests.helpers.hostile import ann, blob_project, png, rect
from tests.test_faults_mounted import daemon_pid  # noqa: E402

IMAGES = 20_000
READERS = 8
GENERATOR = REPO / "scripts" / "make_sample_project.py"


def _source_digests(root: Path) -> Counter:
    """sha1 of every source image, read with tarfile and plain open (not with slyfs)."""
    out: Counter = Counter()
    for tar_path in (root / "blob").glob("*.tar"):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                if m.isfile():
                    out[hashlib.sha1(tar.extractfile(m).read()).hexdigest()] += 1
    for img in root.rglob("img/*"):
        out[hashlib.sha1(img.read_bytes()).hexdigest()] += 1
    return out


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _editor(root: Path, stop: threading.Event, edits: list[int]) -> None:
    """Rewrite annotations while readers read: atomically (rename) and in place, moving boxes."""
    anns = sorted(root.rglob("ann/*.json"))
    rng = random.Random(0)
    while not stop.is_set():
        path = rng.choice(anns)
        data = json.loads(path.read_bytes())
        for obj in data.get("objects", []):
            if obj.get("geometryType") == "rectangle":
                (x0, y0), (x1, y1) = obj["points"]["exterior"]
                dx = rng.randint(-3, 3)
                obj["points"]["exterior"] = [[x0 + dx, y0], [x1 + dx, y1]]
        text = json.dumps(data).encode()
        if rng.random() < 0.5:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(text)
            os.replace(tmp, path)
        else:
            path.write_bytes(text)  # readers may see it half-written: reported, never a crash
        edits.append(1)
        stop.wait(0.002)


def _check_label(body: bytes) -> None:
    for row in body.decode().splitlines():
        cls, *nums = row.split()
        assert int(cls) >= 0 and len(nums) == 4 and all(0.0 <= float(v) <= 1.0 for v in nums), row


def _make_blob(root: Path) -> None:
    """The sample generator's blob project when it is there, else a minimal one of our own."""
    if GENERATOR.exists():
        subprocess.run([sys.executable, str(GENERATOR), str(root), "--images", str(IMAGES), "--form", "blob",
                        "--image-kind", "tiny"], check=True, capture_output=True, timeout=300)
        return
    images = {f"img_{i:05d}.png": png(8 + i % 5, 6 + i % 3, (i % 251, i // 251 % 251, 7)) for i in range(IMAGES)}
    blob_project(root, images, {n: ann(rect(i % 7, 1, i % 7 + 2, 4)) for i, n in enumerate(images)})


def test_parallel_readers_while_annotations_change(mount, tmp_path: Path) -> None:
    root = tmp_path / "blob20k"
    _make_blob(root)
    expected = _source_digests(root)
    assert sum(expected.values()) == IMAGES
    with mount(root) as mnt:
        files = [str(p) for p in sorted(mnt.rglob("*")) if p.is_file()]
        images = [f for f in files if "/images/" in f]
        labels = [f for f in files if "/labels/" in f]
        assert len(images) == IMAGES and len(labels) == IMAGES
        pid = daemon_pid(mnt)
        stop, edits = threading.Event(), []
        editor = threading.Thread(target=_editor, args=(root, stop, edits), daemon=True)
        editor.start()

        def read(path: str) -> tuple[str, bytes]:
            with open(path, "rb") as f:
                return path, f.read()

        fds, rss = [], []
        try:
            for _ in range(2):
                served: Counter = Counter()
                with ThreadPoolExecutor(READERS) as pool:
                    for path, body in pool.map(read, images + labels, chunksize=64):
                        if "/images/" in path:
                            served[hashlib.sha1(body).hexdigest()] += 1
                        else:
                            _check_label(body)
                assert served == expected  # zero byte mismatches
                fds.append(len(os.listdir(f"/proc/{pid}/fd")))
                rss.append(_status(pid, "VmRSS"))
        finally:
            stop.set()
            editor.join()
        assert edits, "the annotations were not edited during the passes"
        assert fds[1] <= fds[0], f"descriptors leaked: {fds}"
        assert rss[1] <= rss[0] * 1.15 + 32 * 1024, f"RSS grew from {rss[0]} kB to {rss[1]} kB"
