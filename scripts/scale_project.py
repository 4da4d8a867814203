#!/usr/bin/env python3
"""A large, lean blob project for scale measurements (10^4 .. 10^6 images) in about a minute.

make_sample_project.py writes realistic annotations (every geometry) at ~1 ms an image; a
million of those would take a quarter of an hour. Here every image is the same tiny JPEG and
every annotation one or two rectangles, so the cost measured is slyfs's per-item cost.
Layout as the SDK writes it: two datasets (train 90 %, val 10 %), tars of 50,000 members,
``<ds>/<tar>_offsets.pkl`` pickles of 10,000-entry lists.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

from make_sample_project import BlobWriter, DatasetSpec, ItemSpec  # beside this script: first on sys.path
from PIL import Image

WIDTH, HEIGHT = 64, 48
META = {"classes": [{"title": t, "description": "", "shape": "rectangle", "color": c,
                     "geometry_config": {}, "hotkey": ""} for t, c in (("car", "#FF0000"), ("sign", "#00FF00"))],
        "tags": []}


def tiny_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (90, 120, 150)).save(buf, "JPEG", quality=70)
    return buf.getvalue()


def annotation(k: int) -> bytes:
    objs = []
    for j in range(1 + k % 2):
        x, y = (k * 7 + j * 13) % (WIDTH - 10), (k * 5 + j * 11) % (HEIGHT - 10)
        objs.append({"classTitle": ("car", "sign")[j], "description": "", "tags": [],
                     "points": {"exterior": [[x, y], [x + 8, y + 8]], "interior": []},
                     "geometryType": "rectangle"})
    return json.dumps({"description": "", "tags": [], "size": {"height": HEIGHT, "width": WIDTH},
                       "objects": objs}).encode()


def make_scale_project(out: Path, images: int) -> Path:
    out = Path(out)
    out.mkdir(parents=True)
    (out / "meta.json").write_text(json.dumps(META))
    (out / "blob").mkdir()
    data = tiny_jpeg()
    writer = BlobWriter(out / "blob", 50_000)
    n_val = images // 10
    for ds, count in (("train", images - n_val), ("val", n_val)):
        spec = DatasetSpec(ds, 0.0)
        ann_dir = out / ds / "ann"
        ann_dir.mkdir(parents=True)
        for k in range(count):
            name = f"{ds}_{k:07d}.jpg"
            fd = os.open(ann_dir / f"{name}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, annotation(k))
            os.close(fd)
            writer.add(ItemSpec(spec, name), data)
    writer.close()
    writer.write_offsets(out)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=100_000)
    a = ap.parse_args()
    make_scale_project(a.out, a.images)
