#!/usr/bin/env python3
"""slyfs benchmark: one table, one run, everything measured side by side on the same data.

Columns: the direct baselines (the same image bytes read with os.pread from the tar, and
from plain files), slyfs through the mount (live, and --snapshot), ratarmount on the same tar (when installed),
each with its ratio to the tar baseline of the same run. Workloads: 30,000 images of ~4 KB
and 1,000 of ~500 KB (blob projects from make_sample_project.py), 1 and 4 parallel readers,
cold (page cache dropped, fresh mount; needs root) and warm passes.

    python scripts/bench.py                 # full run (~5-10 min on 2 cores)
    python scripts/bench.py --small 3000    # scaled down (~2 min)
    python scripts/bench.py --scale 10000,100000,1000000 --workdir DIR   # the issue-9 targets
    python scripts/bench.py --loader        # a torch DataLoader's images/s (~15 min; needs torch)
    python scripts/bench.py --loader --loader-workloads small --loader-workers 2 \
        --loader-pipelines decode --loader-variant "snapshot=--snapshot"    # a subset, one variant
    python scripts/bench.py --s3 10000,100000   # from a local S3 server against download-then-mount

Data is generated once under --workdir and reused.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from slyfs.formats.contract import SourceBytes
from slyfs.formats.readers.supervisely import ProblemLog, read_project
from slyfs.formats.registry import FORMATS, build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree

REPO = Path(__file__).resolve().parents[1]

ENV = dict(os.environ)
T = TypeVar("T")


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
    tree = VirtualTree(build_view(read_project(str(project)), ["yolo"], ViewOptions()))
    by_tar: dict[str, list[tuple[str, int, int]]] = {}
    for path in tree.walk_files():
        node = tree.node(path)
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


def mounted(mnt: str) -> bool:
    """Whether ``mnt`` is a mountpoint, from the kernel's table (a stat would block on a hung daemon)."""
    return any(line.split()[4] == mnt for line in Path("/proc/self/mountinfo").read_text().splitlines())


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _holds_fuse(pid: str) -> bool:
    fds = f"/proc/{pid}/fd"
    return any(os.readlink(f"{fds}/{fd}") == "/dev/fuse" for fd in os.listdir(fds))


def started_for(mnt: str) -> list[int]:
    """The processes (other than this one) whose command line names ``mnt``: the mount command and
    the daemon it forked (slyfs and ratarmount both daemonize; the fork keeps the command line)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if mnt.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                    pids.append(int(pid))
            except OSError:
                continue
    return pids


def daemon_pid(mnt: str) -> int | None:
    """The process serving ``mnt``: its command line names the mountpoint and it holds /dev/fuse."""
    for pid in started_for(mnt):
        try:
            if _holds_fuse(str(pid)):
                return pid
        except OSError:
            continue
    return None


def proc_mb(pid: int | None, key: str) -> float | None:
    """A memory figure of ``pid`` from /proc/PID/status (VmRSS: now, VmHWM: peak), in MB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def unmount(mnt: str, seconds: float = 30.0, daemon: int | None = None) -> str | None:
    """Unmount ``mnt`` and wait until every process started for it (and ``daemon``) has exited. What
    is still there after ``seconds`` is forced (killed, which fails the pending requests; then a lazy
    unmount), and said: the return value (None: a clean unmount)."""
    pids = sorted({*started_for(mnt), *([daemon] if daemon else [])})
    tool = shutil.which("fusermount3") or "fusermount"
    deadline = time.monotonic() + seconds
    while mounted(mnt) and time.monotonic() < deadline:
        if subprocess.run([tool, "-u", mnt], capture_output=True).returncode != 0:
            time.sleep(0.1)
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    forced = []
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            forced.append(f"killed pid {pid}")
    if mounted(mnt):
        subprocess.run([tool, "-u", "-z", mnt], capture_output=True)
        forced.append("lazy unmount")
    return f"{mnt}: {', '.join(forced)}" if forced else None


class StepFailed(Exception):
    """A measurement that failed or did not finish in time; the message says which and why,
    ``timed_out`` the seconds waited when it is the latter."""

    def __init__(self, message: str, timed_out: float | None = None) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def within(seconds: float, what: str, fn: Callable[[], T]) -> tuple[float, T]:
    """``fn()`` and its duration, run in a thread so that a call blocked in a hung mount cannot hang
    the benchmark (the thread stays blocked until the mount is forced away)."""
    box: list = []

    def run() -> None:
        started = time.perf_counter()
        try:
            value = fn()
        except Exception as e:  # any failure is the step's, reported as such
            box.append(e)
            return
        box.append((time.perf_counter() - started, value))

    thread = threading.Thread(target=run, daemon=True, name=what)
    thread.start()
    thread.join(seconds)
    if not box:
        raise StepFailed(f"{what}: no answer in {seconds:.0f} s", seconds)
    if isinstance(box[0], Exception):
        raise StepFailed(f"{what}: {type(box[0]).__name__}: {box[0]}")
    return box[0]


def ratarmount_command() -> str | None:
    """ratarmount from PATH or beside this interpreter (a venv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).parent / "ratarmount"
    return shutil.which("ratarmount") or (str(beside) if beside.exists() else None)


class Mount:
    """One mount of slyfs (with CLI options) or ratarmount (over one or more tars). ``ready_s``: from
    the mount command's start until the root lists; ``pid``: the daemon serving it; ``env``: variables
    added to the mount command's environment (the daemon inherits them)."""

    def __init__(self, system: str, sources: Sequence[str], mnt: str, cache_dir: str,
                 extra: tuple[str, ...] = (), timeout: float = 600.0, env: dict[str, str] | None = None) -> None:
        self.system, self.sources, self.mnt, self.cache_dir = system, list(sources), mnt, cache_dir
        self.extra, self.timeout, self.env = extra, timeout, {**ENV, **(env or {})}
        self.ready_s: float = 0.0
        self.pid: int | None = None

    def command(self) -> list[str]:
        if self.system == "slyfs":
            return [sys.executable, "-m", "slyfs.vfs.cli", "mount", *self.sources, self.mnt, "--format", "yolo",
                    "--cache-dir", self.cache_dir, "--log-file", self.cache_dir + "/slyfs.log", *self.extra]
        return [ratarmount_command() or "ratarmount", "--index-folders", self.cache_dir, *self.sources, self.mnt]

    def __enter__(self) -> Mount:
        started = time.perf_counter()
        try:
            r = subprocess.run(self.command(), env=self.env, capture_output=True, timeout=self.timeout)
            if r.returncode != 0:
                raise StepFailed(f"{self.system} mount exited {r.returncode}: "
                                 f"{r.stderr.decode(errors='replace').strip()[-400:]}")
            left = self.timeout - (time.perf_counter() - started)
            within(left, f"{self.system}: list the root", self._wait_listable)
        except subprocess.TimeoutExpired:
            self.__exit__()
            raise StepFailed(f"{self.system} mount: not done in {self.timeout:.0f} s", self.timeout) from None
        except StepFailed:
            self.__exit__()
            raise
        self.ready_s = time.perf_counter() - started
        self.pid = daemon_pid(self.mnt)
        return self

    def _wait_listable(self) -> None:
        while not os.listdir(self.mnt):
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        if self.system == "slyfs" and mounted(self.mnt):  # returns once the daemon let go of the mountpoint
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run([sys.executable, "-m", "slyfs.vfs.cli", "umount", self.mnt], env=ENV,
                               capture_output=True, timeout=60)
        forced = unmount(self.mnt, daemon=self.pid)
        if forced:
            print(f"unmount forced: {forced}", file=sys.stderr)


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
    with Mount(system, [source], mnt, cache, extra) as m:
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
            record(("rss",), column, proc_mb(m.pid, "VmHWM"))


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
                with Mount(system, [source], mnt, cache, extra) as m:  # first mount: builds the index
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


SCALE_FORMATS = "yolo,coco"
EDIT_BUDGET_S = 120.0  # the edits stop after this long, however many were asked for

# (key, metric, target at 10^6 as text, as a number: the last column divides the largest size by it)
SCALE_ROWS: list[tuple[str, str, str, float | None]] = [
    ("first", "first mount → listable root (cold, fresh cache dir), s", "≤ 30", 30),
    ("rat_first", "ratarmount: index build → listable root (cold), s", "the bar", None),
    ("first_x", "slyfs first mount ÷ ratarmount index build", "≤ 1", 1),
    ("first_rss", "daemon RSS after first mount + root listing, MB", "", None),
    ("first_hwm", "daemon peak RSS during first mount, MB", "", None),
    ("again", "remount (catalog warm, page cache dropped) → listable root, s", "≤ 3", 3),
    ("rat_again", "ratarmount: remount (index warm, page cache dropped) → listable root, s", "the bar", None),
    ("again_x", "slyfs remount ÷ ratarmount remount", "≤ 1", 1),
    ("rat_rss", "ratarmount: RSS after remount + root listing, MB", "", None),
    ("listdir_n", "entries in yolo/labels/train/ (90 % of the images)", "", None),
    ("listdir", "os.listdir(yolo/labels/train/) after the remount, s", "≤ 5", 5),
    ("listdir_rss", "daemon RSS after remount + that listdir, MB", "≤ 500", 500),
    ("coco", "coco/annotations/instances_train.json: first stat → fully read, s", "≤ 20", 20),
    ("coco_mb", "its size, MB", "", None),
    ("coco_hwm", "daemon peak RSS (VmHWM) including that render, MB", "≤ 1000", 1000),
    ("edits", "edits made (one ann JSON edited in place, label file polled)", "100", None),
    ("edit_med", "edit visible in its yolo label file, median, s", "≤ 1", 1),
    ("edit_max", "edit visible in its yolo label file, slowest, s", "≤ 1", 1),
    ("edit_rss0", "daemon RSS before the edits, MB", "", None),
    ("edit_rss1", "daemon RSS after the edits, MB", "flat", None),
    ("all", "--format all: mount (catalog and page cache warm) → listable root, s", "", None),
    ("all_rss", "--format all: daemon RSS after mount + root listing, MB", "≤ 1000", 1000),
]


def scale_project(work: Path, n: int) -> Path:
    """The lean n-image project under ``work``, generated once and reused."""
    from scale_project import make_scale_project

    project = work / f"scale-{n}"
    if not (project / ".complete").exists():
        shutil.rmtree(project, ignore_errors=True)
        print(f"generating a scale project of {n:,} images in {project} ...", file=sys.stderr)
        make_scale_project(project, n)
        (project / ".complete").write_text("")
    return project


def read_all(path: str) -> int:
    """Read ``path`` to its end; its size."""
    with open(path, "rb", buffering=0) as f:
        total = 0
        while chunk := f.read(1 << 20):
            total += len(chunk)
        return total


def edit_rounds(ann: Path, label: str, rounds: int, timeout: float) -> tuple[list[float], str | None]:
    """Edit ``ann`` in place ``rounds`` times (its first shape moved right by 1 px, then by 2, and
    so on, written with one pwrite over the same bytes: never a truncated file) and time each until
    ``label`` shows the change. The original is written back at the end. Returns the times and why
    the rounds stopped early, if they did."""
    original = ann.read_bytes()
    doc = json.loads(original)
    states = []
    for dx in (1, 2):
        exterior = [[x + dx, y] for x, y in doc["objects"][0]["points"]["exterior"]]
        moved = {**doc, "objects": [{**doc["objects"][0], "points": {"exterior": exterior, "interior": []}},
                                    *doc["objects"][1:]]}
        states.append(json.dumps(moved).encode())
    width = max(len(s) for s in (original, *states))
    states = [s.ljust(width) for s in states]  # trailing blanks: still JSON, always the same length

    def current() -> bytes | None:
        try:
            with open(label, "rb") as f:
                return f.read()
        except OSError:
            return None

    times: list[float] = []
    before, stopped = current(), None
    budget = time.monotonic() + EDIT_BUDGET_S
    try:
        for i in range(rounds):
            if time.monotonic() > budget:
                stopped = f"edit budget of {EDIT_BUDGET_S:.0f} s spent after {i} edits"
                break
            fd = os.open(ann, os.O_WRONLY)
            started = time.perf_counter()
            os.pwrite(fd, states[i % 2], 0)
            os.close(fd)
            while (now := current()) == before or now is None:
                if time.perf_counter() - started > timeout:
                    return times, f"edit {i + 1} not visible in {label} after {timeout:.0f} s"
                time.sleep(0.005)
            times.append(time.perf_counter() - started)
            before = now
    finally:
        ann.write_bytes(original)
    return times, stopped


def scale_size(n: int, work: Path, edits: int, timeout: float, with_ratarmount: bool,
               notes: list[str]) -> dict[str, float | str]:
    """Every measurement of one project size. What failed goes to ``notes`` and leaves its row
    empty; what timed out shows as "> N"."""
    project = str(scale_project(work, n))
    out: dict[str, float | str] = {}
    fmt = ("--format", SCALE_FORMATS)
    cache = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
    mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)

    def step(what: str, fn: Callable[[], None], key: str | None = None) -> None:
        try:
            fn()
        except StepFailed as e:
            if key is not None and e.timed_out is not None:
                out[key] = f"> {e.timed_out:.0f}"
            notes.append(f"{n:,} images, {what}: {e}")
            print(f"  FAILED {what}: {e}", file=sys.stderr)
            log = Path(cache) / "slyfs.log"
            if not what.startswith("ratarmount") and log.exists():
                notes.append("  last daemon log line: " + (log.read_text().strip().splitlines() or [""])[-1])

    def note(key: str, value: float | None) -> None:
        if value is not None:
            out[key] = float(value)
            print(f"  {n:,}: {key} = {value:,.2f}", file=sys.stderr)

    def first_mount() -> None:
        drop_caches()
        with Mount("slyfs", [project], mnt, cache, fmt, timeout) as m:
            note("first", m.ready_s)
            note("first_rss", proc_mb(m.pid, "VmRSS"))
            note("first_hwm", proc_mb(m.pid, "VmHWM"))

    def remount() -> None:
        drop_caches()
        with Mount("slyfs", [project], mnt, cache, fmt, timeout) as m:
            note("again", m.ready_s)

            def listdir() -> None:
                took, names = within(timeout, "os.listdir(yolo/labels/train)",
                                     lambda: os.listdir(f"{mnt}/yolo/labels/train"))
                note("listdir", took)
                note("listdir_n", len(names))
                note("listdir_rss", proc_mb(m.pid, "VmRSS"))

            def coco() -> None:
                took, size = within(timeout, "read coco/annotations/instances_train.json",
                                    lambda: read_all(f"{mnt}/coco/annotations/instances_train.json"))
                note("coco", took)
                note("coco_mb", size / 1e6)

            def edit() -> None:
                label = f"{mnt}/yolo/labels/val/val_0000000.txt"
                within(timeout, "read the label file", lambda: read_all(label))
                note("edit_rss0", proc_mb(m.pid, "VmRSS"))
                _, (times, stopped) = within(EDIT_BUDGET_S + timeout, "edits", lambda: edit_rounds(
                    Path(project) / "val" / "ann" / "val_0000000.jpg.json", label, edits, timeout))
                note("edit_rss1", proc_mb(m.pid, "VmRSS"))
                note("edits", len(times))
                if times:
                    note("edit_med", statistics.median(times))
                    note("edit_max", max(times))
                if stopped:
                    notes.append(f"{n:,} images, edits: {stopped}")

            step("listdir", listdir, "listdir")
            step("COCO file", coco, "coco")
            note("coco_hwm", proc_mb(m.pid, "VmHWM"))
            step("edits", edit, "edit_max")

    def format_all() -> None:
        with Mount("slyfs", [project], mnt, cache, ("--format", "all"), timeout) as m:
            note("all", m.ready_s)
            note("all_rss", proc_mb(m.pid, "VmRSS"))

    def ratarmount() -> None:
        if not with_ratarmount:
            raise StepFailed("left out (--no-ratarmount)")
        if ratarmount_command() is None:
            raise StepFailed("ratarmount is not installed (pip install slyfs[bench])")
        tars = sorted(str(p) for p in Path(project, "blob").glob("*.tar"))
        index = tempfile.mkdtemp(prefix="bench-ratar-", dir=work)

        def mount(key: str) -> None:
            drop_caches()
            with Mount("ratarmount", tars, mnt, index, timeout=timeout) as m:
                note(key, m.ready_s)
                note("rat_rss", proc_mb(m.pid, "VmRSS"))

        try:
            step("ratarmount index build", lambda: mount("rat_first"), "rat_first")
            step("ratarmount remount", lambda: mount("rat_again"), "rat_again")
        finally:
            shutil.rmtree(index, ignore_errors=True)

    try:
        for what, fn, key in (("first mount", first_mount, "first"), ("remount", remount, "again"),
                              ("--format all", format_all, "all"), ("ratarmount", ratarmount, None)):
            print(f"{n:,} images: {what} ...", file=sys.stderr)
            step(what, fn, key)
    finally:
        unmount(mnt)
        os.rmdir(mnt)
        shutil.rmtree(cache, ignore_errors=True)
    for key, mine, theirs in (("first_x", "first", "rat_first"), ("again_x", "again", "rat_again")):
        a, b = out.get(mine), out.get(theirs)
        if isinstance(a, float) and isinstance(b, float) and b:
            out[key] = a / b
    return out


def _cell(key: str, value: float | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if key in ("listdir_n", "edits"):
        return f"{value:,.0f}"
    return f"{value:,.0f}" if key.endswith(("rss", "rss0", "rss1", "hwm")) else f"{value:.2f}"


def scale_table(results: dict[int, dict[str, float | str]]) -> str:
    """Metrics down, sizes across, then the target and the largest size's ratio to it."""
    sizes = sorted(results)
    largest = sizes[-1]
    lines = ["| metric | " + " | ".join(f"{n:,}" for n in sizes) + " | target at 10^6 | "
             f"{largest:,} ÷ target |", "|---|" + "---|" * (len(sizes) + 2)]
    for key, label, target, bound in SCALE_ROWS:
        cells = [_cell(key, results[n].get(key)) for n in sizes]
        value = results[largest].get(key)
        ratio = f"{value / bound:.2f}" if bound and isinstance(value, float) else ""
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} | {ratio} |")
    return "\n".join(lines)


def bench_scale(sizes: list[int], work: Path, edits: int, timeout: float, ratarmount: bool) -> str:
    """The issue-9 targets on lean projects of each size: one table, then what failed."""
    if os.geteuid() != 0:
        print("(not root: the page cache is not dropped before cold mounts)", file=sys.stderr)
    notes: list[str] = []
    results: dict[int, dict[str, float | str]] = {}
    for n in sizes:
        results[n] = scale_size(n, work, edits, timeout, ratarmount, notes)
        if n != sizes[-1]:
            print(scale_table(results), file=sys.stderr)
    return scale_table(results) + "".join(f"\n\n{note}" for note in notes)


LEFT_OUT = re.compile(r"^(\d+) (.+?) label\(s\) cannot be expressed")  # formats/common/labels.py
UNWRITTEN_TAGS = re.compile(r"(\d+) tag\(s\) of \d+ (.+?)\(s\) not written")  # the CVAT view's cuboids
NOT_EXPORTED = re.compile(r"(\d+) (?:'[^']*'|\"[^\"]*\") \(([^:)]+)")  # the COCO view's per-file summary


def left_out_counts(project: Path, fmt: str) -> tuple[list[str], str]:
    """The generated files of view ``fmt`` (every file but the images served as source bytes,
    masks included), and what the view reported as not representable, summed over the project by
    kind of label (``12 line, 3 point``), from its problem log after every file was read in process."""
    log = ProblemLog(keep=None)  # every problem counts
    tree = VirtualTree(build_view(read_project(str(project), report=log), [fmt], ViewOptions()))
    generated = []
    for path in tree.walk_files():
        if not isinstance(tree.node(path), SourceBytes):
            generated.append(path)
        with contextlib.suppress(Exception):  # an unreadable file is counted by the problem it logs
            tree.read_file(path)
    counts: dict[str, int] = {}
    for problem in log.all():
        found = LEFT_OUT.match(problem.message)
        if found:
            pairs = [(found.group(2), int(found.group(1)))]
        elif (tags := UNWRITTEN_TAGS.search(problem.message)) is not None:
            pairs = [(f"tags of {tags.group(2)}", int(tags.group(1)))]
        elif problem.message.startswith("not exported: "):
            pairs = [(what, int(n)) for n, what in NOT_EXPORTED.findall(problem.message)]
        else:
            pairs = [(problem.message[:60], 1)]
        for what, n in pairs:
            counts[what] = counts.get(what, 0) + n
    return generated, ", ".join(f"{n:,} {what}" for what, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def bench_views(images: int, work: Path) -> str:
    """Per view: the time to list the whole tree and read every generated file (everything but the
    images, which are source bytes) on a fresh mount, against reading and parsing the source
    annotations themselves, and what the view reported as not representable. The project is
    generated with ``--format-tags``, so identity, text and tracking views have content."""
    from make_sample_project import make_project

    project = work / f"views-{images}-tagged"
    if not (project / ".complete").exists():
        shutil.rmtree(project, ignore_errors=True)
        make_project(project, images, form="blob", seed=0, image_kind="small", format_tags=True)
        (project / ".complete").write_text("")
    started = time.perf_counter()
    for ann in project.rglob("ann/*.json"):
        json.loads(ann.read_bytes())
    baseline = time.perf_counter() - started
    rows = ["| view | generated files (of all listed) | MB | list + first read (s) | x source JSON parse "
            "| reported as not representable |",
            "|---|---|---|---|---|---|",
            f"| source `ann/*.json` (read + json.loads) | {images:,} | - | {baseline:.2f} | 1.00 | - |"]
    for fmt in FORMATS:
        generated, left_out = left_out_counts(project, fmt)
        cache = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
        mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)
        try:
            with Mount("slyfs", [str(project)], mnt, cache, ("--format", fmt)):
                started = time.perf_counter()
                listed = sum(len(files) for _, _, files in os.walk(mnt))
                paths = [os.path.join(mnt, path) for path in generated]
                for path in paths:  # the first stat renders the file
                    os.stat(path)
                size = _read_paths(paths)
                took = time.perf_counter() - started
        finally:
            unmount(mnt)
            os.rmdir(mnt)
            shutil.rmtree(cache, ignore_errors=True)
        rows.append(f"| {fmt} | {len(paths):,} of {listed:,} | {size / 1e6:.1f} | {took:.2f} | {took / baseline:.1f} "
                    f"| {left_out} |")
        print(rows[-1], file=sys.stderr)
    return "\n".join(rows)


# ---------------------------------------------------------------- loader mode (issue 11)


TORCH_MISSING = ("--loader needs torch, CPU build (a bench extra, never a dependency of slyfs): "
                 "pip install torch==2.13.0 where pip finds the CPU wheel, else add "
                 "--index-url https://download.pytorch.org/whl/cpu (PyPI's Linux wheel is the multi-GB CUDA build)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class LoaderSystem:
    """One column of the loader table: where the DataLoader reads the images from."""

    column: str
    kind: str  # "extracted", "slyfs" or "ratarmount"
    extra: tuple[str, ...] = ()  # slyfs mount arguments
    env: dict[str, str] = field(default_factory=dict)  # slyfs: the daemon's extra environment


def loader_variant(spec: str) -> LoaderSystem:
    """``NAME=ARGS`` (--loader-variant): slyfs mounted with ARGS added to its mount command, as the
    column ``slyfs NAME``. Leading ``VAR=value`` words of ARGS go to the daemon's environment, as in a
    shell (``"lazy=SLYFS_X=1 --snapshot"``), so that an experimental switch can be compared too."""
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip():
        raise SystemExit(f"--loader-variant {spec!r}: expected NAME=ARGS, e.g. \"snapshot=--snapshot\"")
    words = shlex.split(rest)
    env: dict[str, str] = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return LoaderSystem(f"slyfs {name.strip()}", "slyfs", tuple(words), env)


def loader_workload(work: Path, name: str, jpegs: int, kind: str) -> Workload:
    """``jpegs`` JPEGs from one tar of a blob project. One image in eight the generator writes is a
    PNG, so the project is made larger and the first ``jpegs`` JPEGs in tar order are taken; each
    is checked to start as a JPEG does (the extracted copy's decode pass proves them decodable)."""
    w = prepare(work, name, jpegs * 8 // 7 + 64, kind)
    chosen = [i for i, path in enumerate(w.view_paths) if path.lower().endswith((".jpg", ".jpeg"))][:jpegs]
    if len(chosen) < jpegs:
        raise SystemExit(f"{w.project}: {len(chosen)} JPEGs in its largest tar, {jpegs} asked for")
    fd = os.open(w.tar, os.O_RDONLY)
    try:
        not_jpeg = [w.members[i] for i in chosen if os.pread(fd, 3, w.refs[i][0]) != b"\xff\xd8\xff"]
    finally:
        os.close(fd)
    if not_jpeg:
        raise SystemExit(f"{w.tar}: {len(not_jpeg)} chosen members are not JPEGs, e.g. {not_jpeg[0]}")

    def pick(items: list[T]) -> list[T]:
        return [items[i] for i in chosen]

    return Workload(name, w.project, w.tar, pick(w.refs), pick(w.view_paths), pick(w.members), pick(w.files))


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads), from /proc/PID/stat."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


@dataclass
class LoaderPass:
    seconds: float
    images: int
    checksum: int  # raw: total bytes; decode: the sum of every decoded pixel value
    daemon_cpu: float | None  # CPU seconds the serving daemon spent during the pass


def loader_pass(paths: list[str], pipeline: str, workers: int, number: int, daemon: int | None,
                timeout: float, what: str) -> LoaderPass:
    """One timed epoch, in a thread so that a hung mount is reported instead of hanging the run."""
    from loader_pipeline import epoch

    def run() -> LoaderPass:
        cpu_before = cpu_seconds(daemon)
        started = time.perf_counter()
        images, checksum = epoch(paths, pipeline, workers, number)
        seconds = time.perf_counter() - started
        cpu_after = cpu_seconds(daemon)
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return LoaderPass(seconds, images, checksum, cpu)

    return within(timeout, what, run)[1]


def loader_system_passes(s: LoaderSystem, w: Workload, pipeline: str, workers: int, cold: bool, timeout: float,
                         mnt: str, cache: str) -> list[LoaderPass]:
    """1 + REPEAT epochs of one pipeline on one system: the first after dropping the page cache (on a
    fresh mount for slyfs and ratarmount, so their own caches are cold too), then the warm ones."""
    what = f"{s.column}, {pipeline}, {workers} workers"
    if s.kind == "extracted":
        if cold:
            drop_caches()
        return [loader_pass(w.files, pipeline, workers, i, None, timeout, f"{what}, epoch {i}")
                for i in range(1 + REPEAT)]
    source, paths = (str(w.project), w.view_paths) if s.kind == "slyfs" else (w.tar, w.members)
    with Mount(s.kind, [source], mnt, cache, s.extra, timeout, s.env) as m:
        if m.pid is None:
            raise StepFailed(f"{what}: no daemon process found for {mnt}")
        if cold:
            drop_caches()
        full = [os.path.join(mnt, p) for p in paths]
        return [loader_pass(full, pipeline, workers, i, m.pid, timeout, f"{what}, epoch {i}")
                for i in range(1 + REPEAT)]


def bench_loader_workload(w: Workload, systems: list[LoaderSystem], workers_list: list[int], pipelines: list[str],
                          cold: bool, timeout: float, work: Path, table: Table, notes: list[str]) -> None:
    """Every system, pipeline and worker count on one workload, into ``table``. Systems are interleaved
    per (pipeline, workers) so that the machine's drift between minutes hits them alike. Any pass
    that served a different number of images or different content than the extracted copy (raw: bytes;
    decode: pixels) fails its system's cells, so a broken mount cannot look fast."""
    n = len(w.refs)
    label = f"{w.name} {n:,}x{w.total_bytes / n / 1000:.1f}KB JPEG"
    caches: dict[str, str] = {}
    mnt = tempfile.mkdtemp(prefix="bench-mnt-", dir=work)
    results: dict[tuple[str, int, str], dict[str, float | None]] = {}
    try:
        working = []
        for s in systems:
            if s.kind == "extracted":
                working.append(s)
                continue
            caches[s.column] = tempfile.mkdtemp(prefix="bench-cache-", dir=work)
            source = str(w.project) if s.kind == "slyfs" else w.tar
            try:  # the first mount builds the index the measured mounts then load, as a user's second mount does
                with Mount(s.kind, [source], mnt, caches[s.column], s.extra, timeout, s.env):
                    pass
                working.append(s)
            except StepFailed as e:
                notes.append(f"{label}, {s.column}: left out: {e}")
        for pipeline in pipelines:
            for workers in workers_list:
                expected: int | None = w.total_bytes if pipeline == "raw" else None
                print(f"{label}: {pipeline}, {workers} workers ...", file=sys.stderr)
                for s in working:
                    try:
                        passes = loader_system_passes(s, w, pipeline, workers, cold, timeout, mnt,
                                                      caches.get(s.column, ""))
                    except StepFailed as e:
                        notes.append(f"{label}, {pipeline}, {workers} workers, {s.column}: {e}")
                        continue
                    if expected is None and s.kind == "extracted":
                        expected = passes[0].checksum
                    wrong = [p for p in passes if p.images != n or expected not in (None, p.checksum)]
                    if wrong:
                        notes.append(f"{label}, {pipeline}, {workers} workers, {s.column}: served {wrong[0].images} "
                                     f"images with checksum {wrong[0].checksum}, expected {n} and "
                                     f"{expected}: not counted")
                        continue
                    warm = passes[1:]
                    row = results.setdefault((pipeline, workers, s.column), {})
                    row["cold"] = n / passes[0].seconds if cold else None
                    row["warm"] = n / min(p.seconds for p in warm)
                    cpus = [p.daemon_cpu for p in warm]
                    if passes[0].daemon_cpu is not None and cold:
                        row["cpu cold"] = passes[0].daemon_cpu * 1000 / n
                    if all(c is not None for c in cpus):
                        row["cpu warm"] = sum(c for c in cpus if c is not None) * 1000 / (n * len(warm))
                    print(f"  {s.column}: " + ", ".join(f"{k} {v:,.2f}" for k, v in row.items() if v is not None),
                          file=sys.stderr)
    finally:
        unmount(mnt)
        os.rmdir(mnt)
        for cache in caches.values():
            shutil.rmtree(cache, ignore_errors=True)
    states = ("cold", "warm") if cold else ("warm",)
    for pipeline in pipelines:
        for workers in workers_list:
            head = f"{label}: {pipeline}, {workers} worker{'' if workers == 1 else 's'}"
            measured = [(s.column, results.get((pipeline, workers, s.column), {})) for s in systems]
            for key, unit, suffix in [*((st, "images/s", "") for st in states),
                                      *((f"cpu {st}", "s/1k img", ": daemon CPU") for st in states)]:
                table.add(f"{head}, {key.removeprefix('cpu ')}{suffix}", unit,
                          {column: row.get(key) for column, row in measured}, unit == "images/s")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (ext4, xfs, tmpfs ...), from the kernel's mount table."""
    best, fstype = "", "?"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        point = fields.split()[4]
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, tail.split()[0]
    return fstype


def bench_loader(args: argparse.Namespace) -> str:
    """The training-pipeline table: images/s of a torch DataLoader over the same JPEGs extracted to a
    local folder (the baseline), through slyfs and its variants, and through ratarmount."""
    if importlib.util.find_spec("torch") is None:
        raise SystemExit(TORCH_MISSING)
    import PIL
    import torch
    from loader_pipeline import BATCH, SIDE

    systems = [LoaderSystem("extracted", "extracted"), LoaderSystem("slyfs", "slyfs"),
               *[loader_variant(v) for v in args.loader_variant]]
    if len({s.column for s in systems}) != len(systems):
        raise SystemExit("--loader-variant: every NAME must be different (and not empty)")
    rat = ratarmount_command()
    if not args.no_ratarmount and rat:
        systems.append(LoaderSystem("ratarmount", "ratarmount"))
    if args.loader_systems:
        keep = set(args.loader_systems.split(","))
        unknown = keep - {s.column for s in systems}
        if unknown:
            raise SystemExit(f"--loader-systems: no such system {', '.join(sorted(unknown))} "
                             f"(measured: {', '.join(s.column for s in systems)})")
        systems = [s for s in systems if s.kind == "extracted" or s.column in keep]
    pipelines = args.loader_pipelines.split(",")
    workers_list = [int(x) for x in args.loader_workers.split(",")]
    wanted = args.loader_workloads.split(",")
    if not set(pipelines) <= {"decode", "raw"} or not set(wanted) <= {"small", "large"}:
        raise SystemExit("--loader-pipelines takes decode,raw and --loader-workloads small,large")
    cold = os.geteuid() == 0 and drop_caches()
    rat_version = (subprocess.run([rat, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
                   if rat and any(s.kind == "ratarmount" for s in systems) else "not measured")
    lines = [f"torch {torch.__version__}, Pillow {PIL.__version__}; ratarmount: {rat_version}",
             f"pipeline: DataLoader(batch_size={BATCH}, shuffle=True, seeded), each file opened with open(); "
             f"decode = PIL open + RGB + resize to {SIDE}x{SIDE} + uint8 tensor, raw = the bytes' length",
             f"extracted: one folder on {filesystem_type(args.workdir)} (the baseline, x = ratio to it); "
             "slyfs: --format yolo, images/<split>/<name>; ratarmount: the tar's member paths",
             f"cold: the first epoch after dropping the page cache, on a fresh mount; warm: best of {REPEAT} "
             f"further epochs; daemon CPU: utime+stime of the serving process per 1,000 images (warm: mean of "
             f"the {REPEAT})"]
    for s in systems:
        if s.extra or s.env:
            lines.append(f"{s.column}: slyfs mount ... {' '.join([*(f'{k}={v}' for k, v in s.env.items()), *s.extra])}")
    table = Table([s.column for s in systems], base="extracted")
    notes: list[str] = []
    sizes = {"small": (args.loader_small, "small"), "large": (args.loader_large, "large")}
    for name in wanted:
        images, kind = sizes[name]
        w = loader_workload(args.workdir, name, images, kind)
        bench_loader_workload(w, systems, workers_list, pipelines, cold, args.step_timeout, args.workdir, table, notes)
    if not cold:
        notes.append("(not root: the page cache cannot be dropped, cold passes skipped)")
    return "\n".join(lines) + "\n\n" + table.render() + "".join(f"\n\n{note}" for note in notes)
S3_BUCKET = "slyfs-bench"
S3_SAMPLE = 2000  # images read per pass through the mount


def _fetched(requests: list, tars: set[str]) -> tuple[int, int, int]:
    """(GETs of tar objects, bytes they asked for, GETs without a Range header) in a request log."""
    gets = [r for r in requests if r.is_get and r.path.rsplit("/", 1)[-1] in tars]
    ranged = 0
    for r in gets:
        if r.range:
            first, last = (int(x) for x in r.range.removeprefix("bytes=").split("-"))
            ranged += last - first + 1
    return len(gets), ranged, sum(1 for r in gets if not r.range)


def s3_size(n: int, work: Path, table: Table, timeout: float) -> None:
    """One project size in a local S3 server: slyfs straight from the bucket against downloading
    every object with boto3 and mounting the copy (the baseline), each mount's time to a listable
    root, image reads through it (cold: first read after a fresh mount, page cache dropped; warm:
    again), and what the server sent per image read."""
    from s3_server import s3_server_process, upload  # beside this script: first on sys.path

    project = scale_project(work, n)
    tars = {p.name for p in (project / "blob").glob("*.tar")}
    with s3_server_process(work / "s3-requests.log") as server:
        ENV.update(os.environ)  # the mounts reach this server, with its dummy credentials
        client = server.client()
        client.create_bucket(Bucket=S3_BUCKET)
        took = time.perf_counter()
        objects = upload(client, project, S3_BUCKET, project.name, threads=8)
        print(f"  {n:,}: uploaded {objects:,} objects in {time.perf_counter() - took:.0f} s", file=sys.stderr)
        url = f"s3://{S3_BUCKET}/{project.name}"
        label = f"{n:,} images"
        cache = tempfile.mkdtemp(prefix="bench-s3-cache-", dir=work)
        mnt = tempfile.mkdtemp(prefix="bench-s3-mnt-", dir=work)
        values: dict[str, dict[str, float | None]] = {}

        def record(key: str, column: str, value: float | None) -> None:
            values.setdefault(key, {})[column] = value
            print(f"  {n:,}: {key} [{column}] = {value}", file=sys.stderr)

        # the baseline: every object downloaded with boto3 (8 threads), then a local mount
        copy = Path(tempfile.mkdtemp(prefix="bench-s3-copy-", dir=work))
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET)
                for o in page.get("Contents", [])]
        took = time.perf_counter()

        def download(key: str) -> None:
            target = copy / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read())

        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(download, keys))
        downloaded = time.perf_counter() - took
        local_cache = tempfile.mkdtemp(prefix="bench-s3-local-", dir=work)
        for column, source, cache_dir, extra in (("download+mount", str(copy / project.name), local_cache, 0.0),
                                                  ("slyfs s3", url, cache, None)):
            server.clear()
            drop_caches()
            with Mount("slyfs", [source], mnt, cache_dir, (), timeout) as m:
                record("first", column, m.ready_s + (downloaded if extra is not None else 0.0))
                record("first_requests", column, len(server.clear()) if extra is None else float(len(keys)))
                images = sorted(p for p in Path(mnt, "images", "train").iterdir())[:S3_SAMPLE]
                drop_caches()
                server.clear()
                took = time.perf_counter()
                sizes = [len(p.read_bytes()) for p in images]
                record("cold", column, len(images) / (time.perf_counter() - took))
                gets, sent, whole = _fetched(server.clear(), tars)
                if extra is None:
                    record("per_image", column, sent / len(images))
                    record("image_size", column, sum(sizes) / len(sizes))
                    record("whole_tar_gets", column, float(whole))
                took = time.perf_counter()
                for p in images:
                    p.read_bytes()
                record("warm", column, len(images) / (time.perf_counter() - took))
            server.clear()
            drop_caches()
            with Mount("slyfs", [source], mnt, cache_dir, (), timeout) as m:
                record("again", column, m.ready_s)
                requests = server.clear()
                record("again_requests", column, float(len(requests)) if extra is None else 0.0)
                if extra is None:
                    record("again_non_listing", column, float(sum(1 for r in requests if not r.is_listing)))
        shutil.rmtree(copy, ignore_errors=True)
        rows = [("first", "mount -> listable root, first (baseline: + download)", "s", False),
                ("first_requests", "requests to the server, first mount", "n", False),
                ("again", "mount -> listable root, again", "s", False),
                ("again_requests", "requests to the server, remount", "n", False),
                ("again_non_listing", "requests other than listings, remount", "n", False),
                ("cold", f"cold reads, {S3_SAMPLE} images, 1 reader", "files/s", True),
                ("warm", f"warm reads, {S3_SAMPLE} images, 1 reader", "files/s", True),
                ("per_image", "bytes fetched per image read", "B", False),
                ("image_size", "mean image size", "B", False),
                ("whole_tar_gets", "GETs of a tar without a range", "n", False)]
        for key, what, unit, higher in rows:
            if key in values:
                table.add(f"{label}: {what}", unit, values[key], higher)


def bench_s3(sizes: list[int], work: Path, timeout: float) -> str:
    table = Table(["download+mount", "slyfs s3"], base="download+mount")
    for n in sizes:
        s3_size(n, work, table, timeout)
    return table.render()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GB RAM, Linux {platform.release()}, " \
           f"Python {platform.python_version()}"


def revision() -> str:
    """The checkout's commit, marked when its files differ from it."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True).stdout.strip()
    modified = " (modified)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"commit {git('rev-parse', '--short', 'HEAD') or '?'}{modified}"


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
    ap.add_argument("--scale", help="instead: the issue-9 targets (mount, remount, listing, COCO, edits, RSS) "
                                    "on lean projects of these comma-separated sizes, with --format yolo,coco")
    ap.add_argument("--edits", type=int, default=100, help="--scale: annotation edits to time (at most 2 minutes)")
    ap.add_argument("--step-timeout", type=float, default=600.0,
                    help="--scale, --loader, --s3: seconds one mount, read or epoch may take before it is reported "
                         "and forced away")
    ap.add_argument("--s3", metavar="SIZES",
                    help="instead: lean projects of these comma-separated sizes in a local S3 server (moto): slyfs "
                         "mounted from the bucket against downloading with boto3 and mounting the copy")
    ap.add_argument("--views", type=int, metavar="N",
                    help="instead: per view, the time to list and read every generated file of an N-image project "
                         "(generated with --format-tags) on a fresh mount, and what it reported as not representable")
    ap.add_argument("--loader", action="store_true",
                    help="instead: a torch DataLoader (decode and raw pipelines, 0 and 2 workers) over the same JPEGs "
                         "extracted, through slyfs (and --loader-variant mounts) and through ratarmount; needs torch")
    ap.add_argument("--loader-workloads", default="small,large", help="--loader: small, large or both")
    ap.add_argument("--loader-small", type=int, default=10_000, help="--loader: JPEGs of ~4 KB in the small workload")
    ap.add_argument("--loader-large", type=int, default=1_000, help="--loader: JPEGs of ~500 KB in the large workload")
    ap.add_argument("--loader-workers", default="0,2", help="--loader: DataLoader worker counts")
    ap.add_argument("--loader-pipelines", default="decode,raw", help="--loader: decode, raw or both")
    ap.add_argument("--loader-variant", action="append", default=[], metavar="NAME=ARGS",
                    help="--loader: also slyfs mounted with these extra arguments, as column 'slyfs NAME' "
                         "(repeatable; leading VAR=value words set the daemon's environment)")
    ap.add_argument("--loader-systems", metavar="COLUMNS",
                    help="--loader: only these columns besides the extracted baseline, e.g. 'slyfs snap,ratarmount'")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = args.workdir.resolve()
    print(f"machine: {machine()}")
    print(f"slyfs: {revision()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"command: {' '.join(['python', 'scripts/bench.py', *sys.argv[1:]])}")
    if args.scale:
        print(bench_scale([int(x) for x in args.scale.split(",")], args.workdir, args.edits, args.step_timeout,
                          not args.no_ratarmount))
        return
    if args.loader:
        print(bench_loader(args))
        return
    if args.views:
        print(bench_views(args.views, args.workdir))
        return
    if args.s3:
        print(bench_s3([int(x) for x in args.s3.split(",")], args.workdir, args.step_timeout))
        return
    cold = os.geteuid() == 0 and drop_caches()
    systems = [("slyfs", "slyfs", ()), ("slyfs snapshot", "slyfs", ("--snapshot",))]
    if args.variants:
        systems += [("slyfs 1 thread", "slyfs", ("--single-threaded",)),
                    ("slyfs t=3600", "slyfs", ("--timeout", "3600"))]
    if args.libfuse2:
        systems += [("slyfs libfuse2", "slyfs", ("--libfuse", "2")),
                    ("slyfs libfuse2 t=3600", "slyfs", ("--libfuse", "2", "--timeout", "3600"))]
    if not args.no_ratarmount and ratarmount_command():
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
