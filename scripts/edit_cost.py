#!/usr/bin/env python3
"""What one live edit costs, in process, without a mount: the reader's update and the view's.

Scans a project (e.g. one made by scale_project.py), builds the view, then edits one annotation
in place several times (the file is rewritten with one object fewer, then restored) and times
``SuperviselySource.update`` and ``View.updated`` + ``stale`` for each, as the watcher runs them.
The project is left as it was found. Run it at two sizes to see whether the cost grows with items:

    python scripts/edit_cost.py /tmp/p1000 /tmp/p100000 --format yolo,coco
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from slyfs.formats.readers.supervisely.index import SourceIndex
from slyfs.formats.readers.supervisely.watch import SuperviselySource
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions


def edit_cost(root: Path, formats: list[str], edits: int) -> tuple[int, float, float]:
    """(items, median seconds of the reader's update, median seconds of the view's update + stale)."""
    source = SuperviselySource(str(root), SourceIndex(None))
    project = source.scan()
    view = build_view(project, formats, ViewOptions())
    target = next(p for p in sorted(root.rglob("ann/*.json")))
    original = target.read_bytes()
    reader_times, view_times = [], []
    try:
        for n in range(edits):
            data = json.loads(original)
            if n % 2 == 0:
                data["objects"] = data["objects"][:-1]
            target.write_text(json.dumps(data))
            started = time.perf_counter()
            project, change = source.update([str(target)])
            read = time.perf_counter()
            updated = view.updated(project, change)
            list(updated.stale(view, change))
            view = updated
            reader_times.append(read - started)
            view_times.append(time.perf_counter() - read)
    finally:
        target.write_bytes(original)
    return sum(1 for _ in project.items()), statistics.median(reader_times), statistics.median(view_times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("projects", type=Path, nargs="+")
    ap.add_argument("--format", default="yolo")
    ap.add_argument("--edits", type=int, default=5)
    args = ap.parse_args()
    print(f"{'items':>9} {'reader update':>14} {'view update':>12}  ({args.format}, median of {args.edits} edits)")
    for root in args.projects:
        items, reader, view = edit_cost(root, args.format.split(","), args.edits)
        print(f"{items:>9} {reader * 1000:>11.1f} ms {view * 1000:>9.1f} ms")


if __name__ == "__main__":
    main()
