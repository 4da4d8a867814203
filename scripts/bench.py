#!/usr/bin/env python3
"""slyfs benchmark: one table, one run, everything measured side by side on the same data.

Columns: the direct baselines (the same image bytes read with os.pread from the tar, and
from plain files), slyfs through the mount, ratarmount on the same tar (when installed),
each with its ratio to the tar baseline of the same run. Workloads: 30,000 images of ~4 KB
and 1,000 of ~500 KB (blob projects from make_sample_project.py), 1 and 4 parallel readers,
cold (page cache dropped, fresh mount; needs root) and warm passes.

    python scripts/bench.py                 # full run (~5-10 min on 2 cores)
    python scripts/bench.py --small 3000    # scaled down (~2 min)
    python scripts/bench.py --scale 10000,100000,1000000   # mount/remount/RSS growth

Data is generated once under --workdir and reused.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from slyfs.formats.contract import SourceBytes
from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import FORMATS, build_view
from slyfs.formats.view import ViewOptions

REPO = Path(__file__).resolve().parents[1]

ENV = dict(os.environ)


# ---------------------------------------------------------------- data


@dataclass
class Workload:
    name: str
    project: Path
    tar: str
    refs: list[tuple[int, int]]  # (offset, size) in the tar
    view_paths: list[str]  # the same images, as slyfs serves them (relative to the mount)
    members: list[str]  # the same images, as ratarmount names them
    files: list[str]  # the same images, extracted to plain files
    ann_files: list[str] = field(default_factory=list)  # the source annotation JSONs

    @property
    def total_bytes(self) -> int:
        return sum(s for _, s in self.refs)


def prepare(workdir: Path, name: str, images: int, kind: str) -> Workload:
    from make_sample_project import make_project

    project = workdir / f"{name}-{images}"
    if not (project / ".complete").exists():
        shutil.rmtree(project, ignore_errors=True)
        print(f"generating {images} {kind} images in {project} ...", file=sys.stderr)
        make_project(project, images, "blob", 0, image_kind=kind)
        (project / ".complete").write_text("")
    view = build_view(read_project(str(project)), ["yolo"], ViewOptions())
    by_tar: dict[str, list[tuple[str, int, int]]] = {}
    for path, node in view.items():
        if isinstance(node, SourceBytes) and node.ref.path.endswith(".tar"):
            by_tar.setdefault(node.ref.path, []).append((path, node.ref.offset, node.ref.size))
    tar = max(by_tar, key=lambda t: len(by_tar[t]))  # one tar: ratarmount mounts one archive
    entries = sorted(by_tar[tar], key=lambda e: e[1])
    with tarfile.open(tar) as tf:
        member_at = {m.offset_data: m.name for m in tf.getmembers()}
    files_dir = workdir / f"{name}-{images}-files"
    files = [str(files_dir / f"{i:07d}{os.path.splitext(p)[1]}") for i, (p, _, _) in enumerate(entries)]
    if not (files_dir / ".complete").exists():
        files_dir.mkdir(exist_ok=True)
        fd = os.open(tar, os.O_RDONLY)
        for f, (_, off, size) in zip(files, entries):
            Path(f).write_bytes(os.pread(fd, size, off))
        os.close(fd)
        (files_dir / ".complete").write_text("")
    anns = sorted(str(p) for p in project.glob("**/ann/*.json"))
    return Workload(name, project, tar, [(o, s) for _, o, s in entries], [p for p, _, _ in entries],
                    [member_at[o] for _, o, _ in entries], files, anns)


# ---------------------------------------------------------------- readers (child processes)


def _read_paths(paths: list[str]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    return total


def _pread_refs(args: tuple[str, list[tuple[int, int]]]) -> int:
    tar, refs = args
    fd = os.open(tar, os.O_RDONLY)
    total = sum(len(os.pread(fd, size, off)) for off, size in refs)
    os.close(fd)
    return total


def _noop(_: int) -> int:
    return 0


REPEAT = 3  # warm passes: the best of REPEAT (shared machines are noisy); cold: best of 2 fresh starts


def parallel(pool: cf.ProcessPoolExecutor, fn, chunks: list, repeat: int = 1) -> tuple[float, int]:
    """Fastest of ``repeat`` passes of ``fn`` over ``chunks``, one chunk per reader process."""
    best, total = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        total = sum(pool.map(fn, chunks))
        best = min(best, time.perf_counter() - started)
    return best, total


def split(items: list, n: int) -> list[list]:
    """Interleaved shares, as a DataLoader's workers take indices."""
    return [items[i::n] for i in range(n)]


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- mounts


def rss_peak_mb(mountpoint: str) -> float | None:
    """VmHWM of the process serving ``mountpoint`` (found by its command line)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if mountpoint.encode() in cmd:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return None


def unmount(mnt: str) -> None:
    for _ in range(50):
        if subprocess.run(["fusermount", "-u", mnt], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while os.path.ismount(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)


class Mount:
    """One mount of one system: slyfs (with CLI options) or ratarmount."""

    def __init__(self, system: str, source: str, mnt: str, cache_dir: str, extra: tuple[str, ...] = ()) -> None:
        self.system, self.source, self.mnt, self.cache_dir, self.extra = system, source, mnt, cache_dir, extra

    def __enter__(self) -> Mount:
        started = time.perf_counter()
        if self.system == "slyfs":
            cmd = [sys.executable, "-m", "slyfs.vfs.cli", "mount", self.source, self.mnt, "--format", "yolo",
                   "--cache-dir", self.cache_dir, "--log-file", self.cache_dir + "/slyfs.log", *self.extra]
        else:
            cmd = ["ratarmount", "--index-folders", self.cache_dir, self.source, self.mnt]
        subprocess.run(cmd, check=True, env=ENV, capture_output=True)
        while not os.listdir(self.mnt):
            time.sleep(0.01)
        self.ready_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc) -> None:
        unmount(self.mnt)


def ls_lr(root: str) -> tuple[float, int]:
    started = time.perf_counter()
    out = subprocess.run(["ls", "-lR", root], capture_output=True, check=True).stdout
    took = time.perf_counter() - started
    return took, sum(1 for line in out.splitlines() if line[:1] in (b"-", b"d"))


# ---------------------------------------------------------------- the table


class Table:
    def __init__(self, columns: list[str], base: str) -> None:
        self.columns, self.base, self.rows = columns, base, []

    def add(self, label: str, unit: str, values: dict[str, float | None], higher_is_better: bool = True) -> None:
        self.rows.append((label, unit, values, higher_is_better))

    def render(self) -> str:
        head = ["metric", "unit"]
        for c in self.columns:
            head += [c] if c == self.base else [c, "x"]
        lines = [head]
        for label, unit, values, _ in self.rows:
            row = [label, unit]
            base = values.get(self.base) or values.get("files")  # rows without a tar figure: plain files
            for c in self.columns:
                v = values.get(c)
                cell = "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")
                row.append(cell)
                if c != self.base:
                    row.append("-" if v is None or not base else f"{v / base:.2f}")
            lines.append(row)
        widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
        out = ["| " + " | ".join(r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i])
                                 for i in range(len(r))) + " |" for r in lines]
        out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(out)


def mounted_pass(pool, w: Workload, column: str, system: str, extra: tuple[str, ...], source: str, mnt: str,
                 cache: str, paths: list[str], r: int, state: str, last: bool, record, results: dict) -> None:
    """One fresh mount, one timed reading pass (warm: after a first untimed one); the best is kept."""
    def keep_min(key: tuple, value: float) -> None:
        record(key, column, min(value, results.get(key, {}).get(column) or float("inf")))

    if state == "cold":
        drop_caches()
    with Mount(system, source, mnt, cache, extra) as m:
        if state == "cold":
            keep_min(("mount", "again"), m.ready_s)
        full = [os.path.join(mnt, p) for p in paths]
        if state == "warm":
            parallel(pool, _read_paths, split(full, r))
        t, total = parallel(pool, _read_paths, split(full, r), 1 if state == "cold" else REPEAT)
        assert total == w.total_bytes, f"{column}: read {total} bytes, expected {w.total_bytes}"
        keep_min((state, r), t)
        if last and state == "warm":
            ls_lr(mnt)
            record(("stat",), column, ls_lr(mnt))
            if system == "slyfs":
                labels = [os.path.join(dp, f) for dp, _, fs in os.walk(mnt) for f in fs
                          if not f.lower().endswith((".jpg", ".png"))]
                t0 = time.perf_counter()
                _read_paths(labels)
                record(("ann",), column, time.perf_counter() - t0)
            record(("rss",), column, rss_peak_mb(mnt))


def bench_workload(w: Workload, table: Table, systems: list[tuple[str, str, tuple[str, ...]]],
                   readers: list[int], work: Path, cold: bool) -> None:
    n, mb = len(w.refs), w.total_bytes / 1e6
    results: dict[tuple, dict[str, float | None]] = {}

    def record(key: tuple, column: str, value: float | None) -> None:
        results.setdefault(key, {})[column] = value

    with cf.ProcessPoolExecutor(max(readers)) as pool:
        list(pool.map(_noop, range(max(readers))))  # start the workers before timing
        for r in readers:
            for state in (("cold", "warm") if cold else ("warm",)):
                for column, fn, chunks in (("tar pread", _pread_refs, [(w.tar, c) for c in split(w.refs, r)]),
                                           ("files", _read_paths, split(w.files, r))):
                    if state == "cold":
                        t = min(drop_caches() and parallel(pool, fn, chunks)[0] for _ in range(2))
                    else:
                        parallel(pool, fn, chunks)
                        t = parallel(pool, fn, chunks, REPEAT)[0]
                    record((state, r), column, t)
        t0 = time.perf_counter()
        _read_paths(w.ann_files)
        ann_direct = time.perf_counter() - t0
        stat_direct = ls_lr(str(Path(w.files[0]).parent))

        for column, system, extra in systems:
            cache = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
            mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)
            source = str(w.project) if system == "slyfs" else w.tar
            paths = w.view_paths if system == "slyfs" else w.members
            try:
                with Mount(system, source, mnt, cache, extra) as m:  # first mount: builds the index
                    record(("mount", "first"), column, m.ready_s)
                for r in readers:
                    for state in (("cold", "warm") if cold else ("warm",)):
                        for _ in range(2 if state == "cold" else 1):  # cold: best of two fresh starts
                            mounted_pass(pool, w, column, system, extra, source, mnt, cache, paths, r, state,
                                         r == readers[-1], record, results)
            finally:
                unmount(mnt)
                os.rmdir(mnt)
                shutil.rmtree(cache, ignore_errors=True)

    cols = results
    label = f"{w.name} {n}x{mb / n * 1000:.0f}KB"
    table.add(f"{label}: mount -> listable root, first", "s", cols.get(("mount", "first"), {}), False)
    table.add(f"{label}: mount -> listable root, again", "s", cols.get(("mount", "again"), {}), False)
    for r in readers:
        for state in (("cold", "warm") if cold else ("warm",)):
            times = cols.get((state, r), {})
            table.add(f"{label}: {state}, {r} reader{'s' if r > 1 else ''}", "files/s",
                      {c: (n / t if t else None) for c, t in times.items()})
            table.add(f"{label}: {state}, {r} reader{'s' if r > 1 else ''}", "MB/s",
                      {c: (mb / t if t else None) for c, t in times.items()})
    st = cols.get(("stat",), {})
    table.add(f"{label}: ls -lR (warm)", "stat/s",
              {"files": stat_direct[1] / stat_direct[0], **{c: v[1] / v[0] for c, v in st.items() if v}})
    ann = cols.get(("ann",), {})
    table.add(f"{label}: all annotation files, first read", "s", {"files": ann_direct, **ann}, False)
    table.add(f"{label}: daemon peak RSS", "MB", cols.get(("rss",), {}), False)


# ---------------------------------------------------------------- scale mode


def bench_scale(sizes: list[int], work: Path) -> str:
    from scale_project import make_scale_project

    rows = ["| images | first mount -> root (s) | RSS (MB) | remount -> root (s) | RSS (MB) | "
            "first stat of val labels (s) | coco json ready (s) | live edit visible (s) |",
            "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        project = work / f"scale-{n}"
        if not (project / ".complete").exists():
            shutil.rmtree(project, ignore_errors=True)
            print(f"generating scale project of {n} images ...", file=sys.stderr)
            make_scale_project(project, n)
            (project / ".complete").write_text("")
        cache = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
        mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)
        fmt = "yolo,coco" if "coco" in FORMATS else "yolo"
        prefix = "yolo/" if "," in fmt else ""
        try:
            with Mount("slyfs", str(project), mnt, cache, ("--format", fmt)) as m:
                first, rss1 = m.ready_s, rss_peak_mb(mnt)
            drop_caches()
            with Mount("slyfs", str(project), mnt, cache, ("--format", fmt)) as m:
                again = m.ready_s
                val = os.path.join(mnt, prefix + "labels/val")
                t0 = time.perf_counter()
                for name in os.listdir(val):
                    os.stat(os.path.join(val, name))
                labels_s = time.perf_counter() - t0
                coco_s = None
                if "coco" in fmt:
                    t0 = time.perf_counter()
                    os.stat(os.path.join(mnt, "coco/annotations/instances_val.json"))
                    coco_s = time.perf_counter() - t0
                ann = project / "val" / "ann" / "val_0000000.jpg.json"
                label = os.path.join(val, "val_0000000.txt")
                data = json.loads(ann.read_text())
                data["objects"] = data["objects"] * 3
                t0 = time.perf_counter()
                ann.write_text(json.dumps(data))
                live_s = None
                while time.perf_counter() - t0 < 60:
                    with open(label, "rb") as f:
                        if len(f.read().splitlines()) == len(data["objects"]):
                            live_s = time.perf_counter() - t0
                            break
                    time.sleep(0.05)
                data["objects"] = data["objects"][:len(data["objects"]) // 3]
                ann.write_text(json.dumps(data))
                rss2 = rss_peak_mb(mnt)
        finally:
            unmount(mnt)
            os.rmdir(mnt)
            shutil.rmtree(cache, ignore_errors=True)
        fmt_v = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        rows.append(f"| {n:,} | {first:.2f} | {rss1:.0f} | {again:.2f} | {rss2:.0f} | {labels_s:.2f} | "
                    f"{fmt_v(coco_s)} | {fmt_v(live_s)} |")
        print(rows[-1], file=sys.stderr)
    return "\n".join(rows)


def bench_views(images: int, work: Path) -> str:
    """Time to read every annotation file of each view (everything but the images) on a fresh
    mount, against reading and parsing the source annotations themselves."""
    from make_sample_project import make_project

    project = work / f"views-{images}"
    if not (project / ".complete").exists():
        shutil.rmtree(project, ignore_errors=True)
        make_project(project, images, form="blob", seed=0, image_kind="small")
        (project / ".complete").write_text("")
    started = time.perf_counter()
    for ann in project.rglob("ann/*.json"):
        json.loads(ann.read_bytes())
    baseline = time.perf_counter() - started
    rows = ["| view | annotation files | MB | list + first read (s) | x source JSON parse |", "|---|---|---|---|---|",
            f"| source `ann/*.json` (read + json.loads) | {images:,} | - | {baseline:.2f} | 1.00 |"]
    image_exts = (".jpg", ".jpeg", ".png")
    for fmt in FORMATS:
        cache = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
        mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)
        try:
            with Mount("slyfs", str(project), mnt, cache, ("--format", fmt)):
                started = time.perf_counter()  # listing stats every file, which renders it
                paths = [os.path.join(d, f) for d, _, files in os.walk(mnt) for f in files
                         if not f.lower().endswith(image_exts)]
                size = _read_paths(paths)
                took = time.perf_counter() - started
        finally:
            unmount(mnt)
            os.rmdir(mnt)
            shutil.rmtree(cache, ignore_errors=True)
        rows.append(f"| {fmt} | {len(paths):,} | {size / 1e6:.1f} | {took:.2f} | {took / baseline:.1f} |")
        print(rows[-1], file=sys.stderr)
    return "\n".join(rows)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GB RAM, Linux {platform.release()}, " \
           f"Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "slyfs-bench")
    ap.add_argument("--small", type=int, default=30_000, help="images in the small workload (large: small/30)")
    ap.add_argument("--readers", default="1,4")
    ap.add_argument("--no-ratarmount", action="store_true")
    ap.add_argument("--variants", action="store_true",
                    help="also slyfs --single-threaded and --timeout 3600 (the tuning comparison)")
    ap.add_argument("--libfuse2", action="store_true",
                    help="also slyfs on fusepy/libfuse 2: live (1 s timeouts) and --timeout 3600")
    ap.add_argument("--scale", help="comma-separated project sizes: mount/remount/RSS growth instead")
    ap.add_argument("--views", type=int, metavar="N",
                    help="instead: time to read every annotation file of each view of an N-image project")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    if args.scale:
        print(bench_scale([int(x) for x in args.scale.split(",")], args.workdir))
        return
    if args.views:
        print(bench_views(args.views, args.workdir))
        return
    cold = os.geteuid() == 0 and drop_caches()
    systems = [("slyfs", "slyfs", ())]
    if args.variants:
        systems += [("slyfs 1 thread", "slyfs", ("--single-threaded",)),
                    ("slyfs t=3600", "slyfs", ("--timeout", "3600"))]
    if args.libfuse2:
        systems += [("slyfs libfuse2", "slyfs", ("--libfuse", "2")),
                    ("slyfs libfuse2 t=3600", "slyfs", ("--libfuse", "2", "--timeout", "3600"))]
    if not args.no_ratarmount and shutil.which("ratarmount"):
        systems.append(("ratarmount", "ratarmount", ()))
    table = Table(["tar pread", "files", *[c for c, _, _ in systems]], base="tar pread")
    readers = [int(x) for x in args.readers.split(",")]
    for name, images, kind in (("small", args.small, "small"), ("large", max(11, args.small // 30), "large")):
        w = prepare(args.workdir, name, images, kind)
        bench_workload(w, table, systems, readers, args.workdir, cold)
    if not cold:
        print("(not root: cold passes skipped)")
    print(table.render())


if __name__ == "__main__":
    main()
