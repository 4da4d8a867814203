"""``slyfs``: mount a Supervisely project as a training-format directory."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slyfs.formats.common.naming import printable
from slyfs.formats.contract import Progress, UserError
from slyfs.formats.readers.supervisely import SourceError
from slyfs.formats.readers.supervisely.check import CheckFailed, check_project, report_json, report_text
from slyfs.formats.registry import FORMATS, options_help, parse_formats
from slyfs.formats.view import OptionError, ViewOptions
from slyfs.vfs.cache import DEFAULT_DISK_BYTES, DISK_MIN_BYTES
from slyfs.vfs.daemon import MountSettings, run_mount, unmount
from slyfs.vfs.export import (
    ProgressBar,
    check_overlap,
    exit_on_termination,
    export_tree,
    generated_mode_for,
)
from slyfs.vfs.opening import CacheSettings, Opening, Served, checked_view_options, default_cache_dir, open_source
from slyfs.vfs.sources import DEFAULT_POLL_SECONDS, is_url, open_project_source, parse_storage_options
from slyfs.vfs.tree import DEFAULT_CACHE_BYTES, VirtualTree

SNAPSHOT_TIMEOUT = 3600.0  # nothing changes: let the kernel answer lookups and stat() itself


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``1048576`` → bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    try:
        size = int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, OverflowError):
        size = 0
    if size <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M)")
    return size


def view_options(args: argparse.Namespace, names: list[str]) -> ViewOptions:
    """The view options of the command line, checked before anything is mounted or written."""
    params = {}
    for kv in args.opt or []:
        key, sep, value = kv.partition("=")
        if not sep:
            raise OptionError(f"--opt {kv!r}: expected key=value")
        params[key] = value
    return checked_view_options(names, args.split, args.classes.split(",") if args.classes else None,
                                include_empty=not args.no_empty, params=params)


def add_follow_links_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--follow-external-links", action="store_true",
                   help="follow symbolic links that lead outside the project (by default they are reported "
                        "and not followed: a mount could otherwise show other users what they name)")


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="Supervisely project (plain, blob or mixed): a directory, or a URL such as "
                                  "s3://bucket/prefix (needs pip install 'slyfs[s3]')")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="passed to the fsspec file system of a URL source (a JSON value is decoded), e.g. "
                        "endpoint_url=http://127.0.0.1:9000 or anon=true; AWS_ENDPOINT_URL, AWS_PROFILE and "
                        "the usual credentials chain apply without it")
    add_follow_links_argument(p)


def cache_root_of(args: argparse.Namespace) -> Path:
    return Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_cache_dir()


def opened_source(args: argparse.Namespace, names: list[str], options: ViewOptions) -> Opening:
    """The source the command line names (a folder, or a URL mirrored under the cache directory), checked."""
    return open_source(args.source, names, options, args.follow_external_links,
                       storage_options=parse_storage_options(args.storage_option), cache_root=cache_root_of(args),
                       cache_images=getattr(args, "cache_images", None))


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    add_source_arguments(p)
    p.add_argument("--format", default="yolo",
                   help=f"one of {', '.join(FORMATS)}; several comma-separated, or 'all' (each in its own folder)")
    p.add_argument("--split", default="dataset", help="dataset (default) | tags | ratio:0.8 | ratio:0.7,0.2")
    p.add_argument("--classes", help="keep only these classes, comma-separated")
    p.add_argument("--no-empty", action="store_true", help="leave out images without objects")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="a format's own setting, checked before anything starts (the list is below)")


def cmd_mount(args: argparse.Namespace) -> int:
    names = parse_formats(args.format)
    opening = opened_source(args, names, view_options(args, names))  # a URL's project is listed here, in the terminal
    mountpoint = os.path.abspath(args.mountpoint)
    log_file = args.log_file
    if log_file is None and not args.foreground:
        log_file = str(default_cache_dir() / "logs" / (hashlib.sha1(mountpoint.encode()).hexdigest()[:12] + ".log"))
    log_file = usable_log_file(log_file)
    caches = CacheSettings(cache_root_of(args), index=not args.no_index,
                           memory_bytes=args.cache_size, disk_bytes=args.disk_cache_size,
                           disk_threshold=args.disk_cache_threshold)
    served: list[Served] = []

    def make_tree(progress: Progress | None) -> VirtualTree:
        served.append(opening.serve(caches, progress))  # in the daemon: the index is never opened across the fork
        if args.snapshot:  # before it is served: a snapshot takes no update later
            served[0].start(watch=False)
        return served[0].tree

    def when_ready(tree: VirtualTree) -> None:
        if not args.snapshot:
            served[0].start(watch=True, poll=args.poll)

    run_mount(make_tree, MountSettings(mountpoint=mountpoint, foreground=args.foreground, log_file=log_file,
                                       debug=args.debug, threads=not args.single_threaded, libfuse=args.libfuse,
                                       fuse_options={"allow_other": True} if args.allow_other else {},
                                       timeout=args.timeout if args.timeout is not None else
                                       (SNAPSHOT_TIMEOUT if args.snapshot else None), snapshot=args.snapshot),
              when_ready, when_done=lambda: served[0].finish() if served else None)
    if not args.foreground:
        where = opening.remote.url if opening.remote else opening.root
        print(f"slyfs: {where} mounted on {mountpoint} as {','.join(names)} "
              f"(log: {log_file}; unmount: slyfs umount {mountpoint})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    names = parse_formats(args.format)
    options = view_options(args, names)
    if not is_url(args.source):
        check_overlap(args.source, args.dest)  # before the scan: refused at once
    opening = opened_source(args, names, options)
    served = opening.serve(CacheSettings())
    project = served.source.project
    assert project is not None  # scanned by serve()
    try:
        with exit_on_termination():
            # a mirror's placeholders are never linked: their bytes are the objects' (copied through the store)
            result = export_tree(served.tree, args.dest, source=project.root, force=args.force,
                                 link=not args.copy and opening.remote is None,
                                 skip_unreadable=args.skip_unreadable, generated_mode=generated_mode_for(project),
                                 progress=ProgressBar(sys.stderr))
    finally:
        served.close()
    for skipped in result.skipped:
        print(f"slyfs: left out (unreadable): {skipped}", file=sys.stderr)
    if result.replaced_links:
        print(f"slyfs: replaced {len(result.replaced_links)} symlink(s) in the destination by the exported files and "
              f"folders (their targets were not touched), first {result.replaced_links[0]}", file=sys.stderr)
    print(f"slyfs: exported {result.files} files ({result.bytes / (1 << 20):.1f} MiB) to {result.dest} as "
          f"{','.join(names)}: {result.linked} hard-linked, {result.copied} copied, {result.generated} generated")
    return 0

def usable_log_file(path: str | None) -> str | None:
    """The log file if it can be created and written; otherwise None and one line saying so
    (a read-only or full cache directory must not stop a mount)."""
    if path is None:
        return None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as e:
        print(f"slyfs: cannot write the log {path} ({e.strerror}); mounting without a log "
              f"(slyfs check SOURCE lists the source's problems)", file=sys.stderr)
        return None
    return path


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0: nothing wrong; 1: problems (each served as well as it can be); 2: not mountable;
    3: the check itself failed (no verdict)."""
    root = args.source if is_url(args.source) else os.path.abspath(args.source)
    try:
        opened = open_project_source(args.source, parse_storage_options(args.storage_option), cache_root_of(args))
        problems = check_project(opened.root, args.follow_external_links)
    except CheckFailed as e:
        print(f"slyfs: check failed: {e}", file=sys.stderr)
        return 3
    except SourceError as e:
        if args.json:
            print(json.dumps({"source": root, "mountable": False, "error": str(e), "problems": []}))
        else:
            print(f"slyfs: {printable(str(e))}; cannot be mounted", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"source": root, "mountable": True, "problems": report_json(problems, opened.root)},
                         ensure_ascii=True, indent=1))
    else:
        sys.stdout.write(report_text(problems, opened.root))
    return 1 if problems else 0


def cmd_umount(args: argparse.Namespace) -> int:
    unmount(os.path.abspath(args.mountpoint))
    return 0


class HelpParser(argparse.ArgumentParser):
    """A parser whose epilog can be computed when help is printed and only then: the list of
    format options imports every format module, which a mount of one format must not do."""

    def __init__(self, *args: Any, lazy_epilog: Callable[[], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_epilog = lazy_epilog

    def format_help(self) -> str:
        if self.lazy_epilog is not None:
            self.epilog = self.lazy_epilog()
        return super().format_help()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="slyfs", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=HelpParser)
    view_help: dict[str, Any] = {"lazy_epilog": options_help, "formatter_class": argparse.RawDescriptionHelpFormatter}

    m = sub.add_parser("mount", help="mount SOURCE on MOUNTPOINT (returns once it is ready)", **view_help)
    add_view_arguments(m)
    m.add_argument("mountpoint")
    m.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground until unmounted")
    m.add_argument("--cache-size", type=parse_size, default=DEFAULT_CACHE_BYTES,
                   help="byte budget of generated files kept in memory (default 512M); parsed annotations "
                        "(128M) and VOC masks (64M) have budgets of their own")
    m.add_argument("--disk-cache-size", type=parse_size, default=DEFAULT_DISK_BYTES,
                   help="byte budget of large generated files kept under CACHE_DIR/render/ (default 4G; "
                        "least recently used deleted first); they outlive the mount, so a remount of an "
                        "unchanged project serves them without rendering")
    m.add_argument("--disk-cache-threshold", type=parse_size, default=DISK_MIN_BYTES,
                   help="generated files larger than this go to the disk cache, smaller ones stay in "
                        "memory (default 4M)")
    m.add_argument("--cache-dir", help="where the persistent index, the disk cache and the mirrors of projects in "
                                       "object storage live (default ~/.cache/slyfs)")
    m.add_argument("--poll", type=float, default=DEFAULT_POLL_SECONDS, metavar="S",
                   help=f"a URL source: list the bucket every S seconds to follow changes (default "
                        f"{DEFAULT_POLL_SECONDS:.0f}; --snapshot: never)")
    m.add_argument("--cache-images", type=parse_size, metavar="SIZE",
                   help="a URL source: keep fetched image bytes on disk up to SIZE (e.g. 20G; least recently "
                        "used deleted first); by default every read fetches from the server")
    m.add_argument("--no-index", action="store_true", help="keep no persistent index (rescan all at mount)")
    m.add_argument("--snapshot", "--no-watch", dest="snapshot", action="store_true",
                   help="serve the project as it is at mount and never update it (for training runs): files are "
                        "read with no round trip per open, and a file whose source changes later keeps the "
                        "snapshot's bytes where the kernel still holds them, else is EIO")
    m.add_argument("--timeout", type=float,
                   help="seconds the kernel caches names and attributes (default 3600 on libfuse 3, which "
                        "invalidates what changes; 1 on libfuse 2, where a longer one delays live changes "
                        "by as much)")
    m.add_argument("--libfuse", choices=("auto", "3", "2"), default="auto",
                   help="libfuse 3 through mfusepy, or 2 through fusepy (default: 3 when available)")
    m.add_argument("--single-threaded", action="store_true",
                   help="libfuse's single-threaded loop: a slow render stalls every other file (for experiments)")
    m.add_argument("--log-file", help="daemon log (default: ~/.cache/slyfs/logs/<mountpoint hash>.log)")
    m.add_argument("--allow-other", action="store_true",
                   help="let other local users read the mount (FUSE allow_other); each file keeps its "
                        "source's read bits and owner, which the kernel enforces; off by default")
    m.add_argument("--debug", action="store_true", help="log every FUSE call")
    m.set_defaults(func=cmd_mount)

    e = sub.add_parser("export", help="write what a mount would show to DEST as real files", **view_help)
    add_view_arguments(e)
    e.add_argument("dest", help="directory to create (or an empty one)")
    e.add_argument("--force", action="store_true",
                   help="write into a non-empty DEST (files at the same paths are replaced, others kept; "
                        "a symlink at such a path is replaced itself, never written through)")
    e.add_argument("--copy", action="store_true",
                   help="copy every image; by default whole source files are hard-linked when possible "
                        "(a hard link IS the source file: editing it edits the source)")
    e.add_argument("--skip-unreadable", action="store_true",
                   help="leave out files the source cannot provide instead of stopping")
    e.add_argument("--cache-dir", help="where the mirror of a URL source lives (default ~/.cache/slyfs)")
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("check", help="validate a source without mounting it; exit 1 if anything is wrong")
    add_source_arguments(c)
    c.add_argument("--json", action="store_true", help="machine-readable report")
    c.add_argument("--cache-dir", help="where the mirror of a URL source lives (default ~/.cache/slyfs)")
    c.set_defaults(func=cmd_check)

    u = sub.add_parser("umount", help="unmount a slyfs mount")
    u.add_argument("mountpoint")
    u.set_defaults(func=cmd_umount)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"slyfs: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
