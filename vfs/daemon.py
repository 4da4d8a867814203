"""Mount lifecycle: checks, background start with a readiness handshake, unmount, stale mounts."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from formats.supervisely import SourceError
from formats.view import OptionError
from vfs.tree import VirtualTree

log = logging.getLogger("slyfs")

class MountError(Exception):
    """A mount cannot be started; the message is the one line the user sees."""


USER_ERRORS = (MountError, OptionError, SourceError)  # said as they are, without a class name


@dataclass
class MountSettings:
    mountpoint: str
    foreground: bool = False
    log_file: str | None = None
    debug: bool = False
    fuse_options: dict[str, object] = field(default_factory=dict)
    threads: bool = True  # libfuse's multithreaded loop: a slow render does not stall other files (README)
    timeout: float | None = None  # attr/entry/negative cache of the kernel, seconds; None: per backend
    libfuse: str = "auto"  # "3" (mfusepy), "2" (fusepy), or "auto": 3 when available


LIVE_TIMEOUT = 1.0  # without invalidation: how long a source change may take to show, after the rebuild
INVALIDATED_TIMEOUT = 3600.0  # with invalidation: stale entries are dropped when they change


@dataclass(frozen=True)
class Backend:
    """The Python binding in use and the libfuse it drives."""

    fuse: ModuleType
    libfuse: int  # major version

    @property
    def invalidates(self) -> bool:
        """libfuse 3's high-level API can drop one path's cached attributes and pages."""
        return self.libfuse == 3


def default_fuse_options(timeout: float = LIVE_TIMEOUT, negative_timeout: float | None = None) -> dict[str, object]:
    """Options chosen from measurements (README, section performance). Without invalidation the
    kernel's attribute/entry cache lasts ``timeout``: that is how long a source change may take
    to show, on top of the watcher's rebuild."""
    return {
        "ro": True,
        "default_permissions": True,
        "fsname": "slyfs",
        "subtype": "slyfs",
        "kernel_cache": False,  # per-file keep_cache is set in open() for source images only

        "attr_timeout": timeout,
        "entry_timeout": timeout,
        "negative_timeout": timeout if negative_timeout is None else negative_timeout,
        "max_read": 131072,
    }


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1 and parts[1].replace("\\040", " ") == real:
                    return True
    except OSError:
        pass
    return os.path.ismount(real)


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount with whichever tool this machine has (fusermount3, fusermount, umount)."""
    attempts = []
    for tool in ("fusermount3", "fusermount"):
        if shutil.which(tool):
            attempts.append([tool, "-u", *(["-z"] if lazy else []), mountpoint])
    if shutil.which("umount"):
        attempts.append(["umount", *(["-l"] if lazy else []), mountpoint])
    last = "no unmount tool found (install fuse3)"
    for cmd in attempts:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            return
        last = (r.stderr or r.stdout).strip() or f"{cmd[0]} exited {r.returncode}"
    raise MountError(f"cannot unmount {mountpoint}: {last}")


def check_mountpoint(mountpoint: str) -> None:
    """Refuse what cannot work, in one clear line; clean up a stale mount of a dead daemon."""
    try:
        os.stat(mountpoint)
        if is_mounted(mountpoint):  # statfs always reaches the daemon; stat may be answered from the kernel's cache
            os.statvfs(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            print(f"slyfs: {mountpoint}: stale mount of a daemon that died; unmounting it", file=sys.stderr)
            unmount(mountpoint, lazy=True)
        elif e.errno == errno.ENOENT:
            raise MountError(f"mountpoint {mountpoint} does not exist") from None
        else:
            raise MountError(f"mountpoint {mountpoint}: {e.strerror}") from None
    if not os.path.isdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not a directory")
    if is_mounted(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is busy: something is already mounted there "
                         f"(slyfs umount {mountpoint})")
    if os.listdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not empty")
    if not os.path.exists("/dev/fuse"):
        raise MountError("/dev/fuse does not exist: this machine (or container) has no FUSE "
                         "(load the fuse module, or run the container with --device /dev/fuse)")


def _load_fuse(libfuse: str = "auto") -> Backend:
    """mfusepy on libfuse 3 (path invalidation), else fusepy on libfuse 2."""
    errors = []
    if libfuse in ("auto", "3"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy reads it at import
        try:
            import mfusepy
            if mfusepy.fuse_version_major == 3:
                return Backend(mfusepy, 3)
            errors.append(f"mfusepy loaded libfuse {mfusepy.fuse_version_major}")
        except (ImportError, OSError, AttributeError) as e:
            errors.append(f"mfusepy: {e}")
    if libfuse in ("auto", "2"):
        try:
            import fuse
            return Backend(fuse, 2)
        except (ImportError, OSError, EnvironmentError) as e:
            errors.append(f"fusepy: {e}")
    raise MountError(f"libfuse is not usable ({'; '.join(errors)}); install mfusepy and the Debian "
                     "package fuse3 (or fusepy and libfuse2)")


class PathInvalidator:
    """Calls libfuse 3's ``fuse_invalidate_path`` for each stale path. Called from the watcher
    thread, never from a FUSE callback (the kernel may wait on the loop it would block); ctypes
    releases the GIL during the call, so the loop keeps serving meanwhile."""

    def __init__(self, libfuse: ctypes.CDLL, fuse_ptr: int) -> None:
        self._call = libfuse.fuse_invalidate_path
        self._call.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
        self._call.restype = ctypes.c_int
        self._fuse = ctypes.c_void_p(fuse_ptr)

    def __call__(self, paths: list[str]) -> None:
        # -ENOENT: the kernel never looked the path up, so it caches nothing about it
        done = sum(self._call(self._fuse, os.fsencode("/" + p)) == 0 for p in paths)
        log.debug("invalidated %d of %d stale paths in the kernel", done, len(paths))


FUSE_MAX_THREADS = 16  # requests served at once: a slow render and readers waiting for it leave workers (README)


def loop_thread_options() -> dict[str, object]:
    """libfuse 3's multithreaded loop with a fixed set of worker threads: idle ones never exit,
    so each keeps the Python thread state its first callback made (fuse_ops.hold_thread_state)."""
    return {"max_threads": FUSE_MAX_THREADS, "max_idle_threads": FUSE_MAX_THREADS}


def _serve(tree: VirtualTree, settings: MountSettings, on_ready: Callable[[], None]) -> None:
    backend = _load_fuse(settings.libfuse)
    from vfs.fuse_ops import Fuse2Operations, SlyfsOperations

    if settings.timeout is not None:
        options = default_fuse_options(settings.timeout)
    elif backend.invalidates:
        # New names cannot be invalidated (that needs the parent's inode number, which the
        # high-level API keeps to itself): missing names are cached as briefly as without.
        options = default_fuse_options(INVALIDATED_TIMEOUT, negative_timeout=LIVE_TIMEOUT)
    else:
        options = default_fuse_options(LIVE_TIMEOUT)
    if backend.libfuse == 3:
        # libfuse 3 refuses a max_read that init() does not repeat; its default is already
        # the kernel's 128 KiB (32 pages)
        del options["max_read"]
    options = {k: v for k, v in {**options, **settings.fuse_options}.items() if v is not False}

    def ready() -> None:
        if backend.invalidates:  # in a callback, so the context names this mount's struct fuse
            libfuse = backend.fuse._libfuse  # the very handle mfusepy loaded
            tree.on_stale = PathInvalidator(libfuse, libfuse.fuse_get_context().contents.fuse)
        on_ready()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # every open file holds a descriptor
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if settings.threads and backend.libfuse == 3:
        options.update(loop_thread_options())
    operations = (SlyfsOperations if backend.libfuse == 3 else Fuse2Operations)(tree, ready)
    log.info("serving through %s on libfuse %d, %s loop", backend.fuse.__name__, backend.libfuse,
             "multithreaded" if settings.threads else "single-threaded")
    backend.fuse.FUSE(operations, settings.mountpoint, raw_fi=True,
                      foreground=True, nothreads=not settings.threads, debug=settings.debug, **options)


def _setup_logging(log_file: str | None, debug: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers = [logging.FileHandler(log_file)]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def run_mount(make_tree: Callable[[], VirtualTree], settings: MountSettings,
              when_ready: Callable[[VirtualTree], None] | None = None) -> int:
    """Mount, and return once the mount is ready (background) or unmounted (foreground).
    ``when_ready(tree)`` runs in the daemon once the kernel accepted the mount (start the watcher)."""
    check_mountpoint(settings.mountpoint)
    _load_fuse(settings.libfuse)
    if settings.foreground:
        _setup_logging(settings.log_file, settings.debug)
        tree = make_tree()

        def ready_fg() -> None:
            log.info("mounted on %s", settings.mountpoint)
            if when_ready is not None:
                when_ready(tree)

        _serve(tree, settings, on_ready=ready_fg)
        return 0

    if settings.log_file:
        Path(settings.log_file).parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(read_end)
        code = 1
        try:
            os.setsid()
            _daemon_stdio(settings.log_file)
            _setup_logging(settings.log_file, settings.debug)
            tree = make_tree()

            def ready() -> None:
                os.write(write_end, b"ok\n")
                os.close(write_end)
                log.info("mounted on %s", settings.mountpoint)
                if when_ready is not None:
                    when_ready(tree)

            _serve(tree, settings, on_ready=ready)
            code = 0
        except BaseException as e:  # report any failure through the pipe, then exit
            msg = str(e) if isinstance(e, USER_ERRORS) else f"{type(e).__name__}: {e}"
            log.exception("mount failed")
            try:
                os.write(write_end, f"error {msg}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)

    os.close(write_end)
    reply = _read_reply(read_end)
    if reply != "ok":
        os.waitpid(pid, 0)
        where = f" (log: {settings.log_file})" if settings.log_file else ""
        raise MountError((reply.removeprefix("error ") or "the daemon exited before the mount was ready") + where)
    if not is_mounted(settings.mountpoint):  # "ready" comes from libfuse's init: make sure the mount is there
        where = f" (log: {settings.log_file})" if settings.log_file else ""
        raise MountError(f"the daemon reported ready but {settings.mountpoint} is not mounted{where}")
    return 0


def _read_reply(fd: int) -> str:
    """The daemon's one line: "ok", or "error <message>"; empty if it died first."""
    with os.fdopen(fd, "rb") as f:
        return f.readline().decode(errors="replace").strip()


def _daemon_stdio(log_file: str | None) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_file else devnull
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
