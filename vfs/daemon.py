"""Mount lifecycle: checks, background start with a readiness handshake, unmount, stale mounts."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import logging
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from slyfs.formats.contract import Progress, UserError
from slyfs.vfs.progress import ProgressLine, clear_line, terminal_writer
from slyfs.vfs.tree import VirtualTree

log = logging.getLogger("slyfs")

class MountError(UserError):
    """A mount cannot be started."""


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
    snapshot: bool = False  # the view never changes: the kernel may read with no OPEN (fuse_ops.open)


LIVE_TIMEOUT = 1.0  # without invalidation: how long a source change may take to show, after the rebuild
INVALIDATED_TIMEOUT = 3600.0  # with invalidation: stale entries are dropped when they change
PROBE_SECONDS = 2.0  # how long a slyfs mount found on the mountpoint has to answer statfs
UNMOUNT_WAIT_SECONDS = 5.0  # how long ``slyfs umount`` waits for the daemon to let go of the mountpoint


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


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo: where, which file system type, and its source (fsname)."""

    mountpoint: str
    fstype: str
    source: str
    device: str = ""  # "major:minor", as /sys/class/bdi names the mount's readahead settings

    @property
    def is_slyfs(self) -> bool:
        return self.fstype == "fuse.slyfs" and self.source == "slyfs"


def _unescape(field: bytes) -> str:
    """mountinfo writes space, tab, newline and backslash as ``\\ooo``."""
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field))


def _mounts() -> dict[str, MountEntry]:
    """The topmost mount on each mountpoint (a later line stacks on an earlier one)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise MountError(f"cannot read /proc/self/mountinfo ({e.strerror}): slyfs needs Linux with /proc") from None
    mounts = {}
    for line in lines:
        fields = line.split(b" ")
        if b"-" not in fields[6:]:
            continue
        sep = fields.index(b"-", 6)
        entry = MountEntry(_unescape(fields[4]), fields[sep + 1].decode(errors="replace"), _unescape(fields[sep + 2]),
                           fields[2].decode())
        mounts[entry.mountpoint] = entry
    return mounts


def _canonical(path: str, mounts: dict[str, MountEntry]) -> str:
    """``path`` with symlinks resolved, without touching it when it is a mount root: a stat of a FUSE
    mount whose daemon is stopped blocks until the daemon continues."""
    head, tail = os.path.split(os.path.abspath(path))
    near = os.path.join(os.path.realpath(head), tail)
    return near if near in mounts else os.path.realpath(near)


def mount_at(path: str) -> MountEntry | None:
    """The mount whose root is ``path``, if any; read from the kernel's table, never from the path."""
    mounts = _mounts()
    return mounts.get(_canonical(path, mounts))


def is_mounted(path: str) -> bool:
    return mount_at(path) is not None


def runtime_dir() -> Path:
    """Where this user's mountpoint locks live: $XDG_RUNTIME_DIR/slyfs, else a private folder in /tmp
    (not the cache dir, which may be read-only without stopping a mount)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "slyfs" if base else Path(tempfile.gettempdir()) / f"slyfs-{os.getuid()}"


def _lock_file(mountpoint: str) -> Path:
    """The mountpoint's lock file, named by a hash of its canonical path."""
    key = hashlib.sha1(os.fsencode(_canonical(mountpoint, _mounts()))).hexdigest()[:16]
    return runtime_dir() / f"{key}.lock"


def lock_mountpoint(mountpoint: str) -> int:
    """Take the mountpoint's lock (a descriptor, inherited by the daemon and held for its lifetime),
    so that of two ``slyfs mount`` on one mountpoint exactly one goes on; the other is refused at
    once, whatever state the holder is in (even stopped)."""
    path = _lock_file(mountpoint)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.parent.lstat()
    except OSError as e:
        raise MountError(f"cannot create the lock folder {path.parent} ({e.strerror}); set XDG_RUNTIME_DIR "
                         f"to a writable folder") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise MountError(f"the lock folder {path.parent} is not a folder of yours; set XDG_RUNTIME_DIR to one")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise MountError(f"cannot open the lock file {path} ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise MountError(f"mountpoint {mountpoint} is busy: slyfs (pid {holder}) is mounting or serving it "
                         f"(slyfs umount {mountpoint})") from None
    note_lock_holder(fd)
    return fd


def note_lock_holder(fd: int) -> None:
    """Write this process's pid into the lock file, for the message of a refused mount."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _wait_unlocked(path: Path, seconds: float) -> None:
    """Wait until no daemon holds the lock at ``path`` (it releases it when its loop ends), so that
    a mount right after ``slyfs umount`` is not refused as busy."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
    finally:
        os.close(fd)


def unmount(mountpoint: str, lazy: bool = False) -> None:
    """Unmount a slyfs mount, and nothing else, with whichever tool this machine has
    (fusermount3, fusermount, umount); return once its daemon let go of the mountpoint.
    ``lazy`` is for the stale mount of a dead daemon, found by a mount that holds the lock itself."""
    entry = mount_at(mountpoint)
    if entry is None:
        raise MountError(f"{mountpoint} is not mounted")
    if not entry.is_slyfs:
        raise MountError(f"{mountpoint} is not a slyfs mount (it is {entry.fstype} from {entry.source}); "
                         f"not unmounting it")
    lock = _lock_file(entry.mountpoint)
    attempts = []
    for tool in ("fusermount3", "fusermount"):
        if shutil.which(tool):
            attempts.append([tool, "-u", *(["-z"] if lazy else []), entry.mountpoint])
    if shutil.which("umount"):
        attempts.append(["umount", *(["-l"] if lazy else []), entry.mountpoint])
    last = "no unmount tool found (install fuse3)"
    for cmd in attempts:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode == 0:
            if not lazy:
                _wait_unlocked(lock, UNMOUNT_WAIT_SECONDS)
            return
        last = (r.stderr or r.stdout).strip() or f"{cmd[0]} exited {r.returncode}"
    raise MountError(f"cannot unmount {mountpoint}: {last}")


def _statfs_errno(path: str, seconds: float) -> int | None:
    """The errno of statfs on ``path`` (0: it answered), asked in a thread; None when no answer comes
    within ``seconds`` (a stopped daemon), so the caller never hangs."""
    result: list[int] = []

    def probe() -> None:
        try:
            os.statvfs(path)
            result.append(0)
        except OSError as e:
            result.append(e.errno or errno.EIO)

    thread = threading.Thread(target=probe, name="slyfs-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return result[0] if result else None


def check_mountpoint(mountpoint: str) -> None:
    """Refuse what cannot work, in one clear line; clean up a stale mount of a dead daemon.
    Called with the mountpoint's lock held: a slyfs mount found here has no live daemon of ours."""
    entry = mount_at(mountpoint)
    if entry is not None:
        busy = f"mountpoint {mountpoint} is busy"
        if not entry.is_slyfs:
            raise MountError(f"{busy}: {entry.fstype} from {entry.source} is mounted there")
        # statfs always reaches the daemon; stat may be answered from the kernel's cache
        answer = _statfs_errno(entry.mountpoint, PROBE_SECONDS)
        if answer is None:
            raise MountError(f"{busy}: a slyfs mount whose daemon does not answer (stopped?) is there "
                             f"(slyfs umount {mountpoint})")
        if answer != errno.ENOTCONN:
            raise MountError(f"{busy}: slyfs is already mounted there (slyfs umount {mountpoint})")
        print(f"slyfs: {mountpoint}: stale mount of a daemon that died; unmounting it", file=sys.stderr)
        unmount(mountpoint, lazy=True)
    try:
        os.stat(mountpoint)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise MountError(f"mountpoint {mountpoint} does not exist") from None
        raise MountError(f"mountpoint {mountpoint}: {e.strerror}") from None
    if not os.path.isdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not a directory")
    if os.listdir(mountpoint):
        raise MountError(f"mountpoint {mountpoint} is not empty")
    if os.geteuid() != 0 and not os.access(mountpoint, os.W_OK):  # fusermount3's own rule
        raise MountError(f"mountpoint {mountpoint} is not writable for you (uid {os.getuid()}): FUSE mounts "
                         f"only on a folder you may write to")
    check_fuse_device()


def check_fuse_device(device: str = "/dev/fuse") -> None:
    """libfuse needs to open the device for reading and writing (fusermount3 opens it with the
    caller's rights too); without, it fails with a bare number."""
    if not os.path.exists(device):
        raise MountError(f"{device} does not exist: this machine (or container) has no FUSE "
                         "(load the fuse module, or run the container with --device /dev/fuse)")
    if not os.access(device, os.R_OK | os.W_OK):
        st = os.stat(device)
        raise MountError(f"{device} is not readable and writable for you (uid {os.getuid()}; it is "
                         f"{stat.filemode(st.st_mode)} uid {st.st_uid} gid {st.st_gid}): FUSE needs read and "
                         f"write permission on it (add yourself to its group, or make it mode 0666)")


FUSE_CONF = "/etc/fuse.conf"


def check_fuse_options(options: dict[str, object]) -> None:
    """fusermount3 lets a user other than root pass allow_other only when fuse.conf allows it."""
    if not options.get("allow_other") or os.geteuid() == 0:
        return
    try:
        with open(FUSE_CONF, encoding="utf-8", errors="replace") as f:
            allowed = any(line.strip() == "user_allow_other" for line in f)
    except OSError:
        allowed = False
    if not allowed:
        raise MountError(f"--allow-other needs the line user_allow_other in {FUSE_CONF} (root can add it), "
                         f"or mount without --allow-other")


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
        except (ImportError, OSError) as e:
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


READAHEAD_KIB = 1024  # a mount's readahead: files up to 1 MiB read cold in one READ (README, Performance)
READAHEAD_ATTEMPTS = 20  # 50 ms apart: until the kernel has taken init's answer

# Requests served at once. One slow render (and up to two readers waiting for it) still leaves a worker for
# everything else; more workers measured slower with parallel readers of small files (GIL handovers, README).
FUSE_MAX_THREADS = 4


def loop_thread_options() -> dict[str, object]:
    """libfuse 3's multithreaded loop with a fixed set of worker threads: idle ones never exit,
    so each keeps the Python thread state its first callback made (fuse_ops.hold_thread_state)."""
    return {"max_threads": FUSE_MAX_THREADS, "max_idle_threads": FUSE_MAX_THREADS}


def widen_readahead(mountpoint: str, kib: int = READAHEAD_KIB) -> None:
    """The kernel gives a FUSE mount 128 KiB of readahead, which libfuse cannot raise (INIT caps it at
    the kernel's offer): a 500 KB image is then five READ round trips. The mount's own readahead
    setting can be raised, by root; anyone else keeps the kernel's. Run on a thread from init: the
    kernel sets the readahead when it takes init's answer, so it is set (and read back) after that."""
    entry = mount_at(mountpoint)
    if entry is None or not entry.device:
        return
    setting = Path(f"/sys/class/bdi/{entry.device}/read_ahead_kb")
    for _ in range(READAHEAD_ATTEMPTS):
        try:
            setting.write_text(str(kib))
            time.sleep(0.05)
            if setting.read_text().strip() == str(kib):  # still: the kernel had taken init's answer
                return
        except OSError as e:
            log.info("readahead left at the kernel's default (%s: %s)", setting, e.strerror)
            return


def _serve(tree: VirtualTree, settings: MountSettings, on_ready: Callable[[], None]) -> None:
    backend = _load_fuse(settings.libfuse)
    from slyfs.vfs.fuse_ops import Fuse2Operations, SlyfsOperations

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
        threading.Thread(target=widen_readahead, args=(settings.mountpoint,), name="slyfs-readahead",
                         daemon=True).start()
        on_ready()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # every open file holds a descriptor
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if settings.threads and backend.libfuse == 3:
        options.update(loop_thread_options())
    # libfuse 2 cannot tell whether the kernel reads without OPEN: a snapshot there opens files one by one
    no_open = settings.snapshot and backend.libfuse == 3
    operations = (SlyfsOperations if backend.libfuse == 3 else Fuse2Operations)(tree, ready, no_open=no_open)
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


# What libfuse 3's fuse_main returns, by step (helper.c); libfuse 2 returns 1 for every failure.
FUSE_MAIN_FAILURES = {1: "bad options", 2: "no mountpoint", 3: "setting up the file system failed",
                      4: "mounting failed", 5: "daemonizing failed",
                      6: "installing signal handlers failed", 7: "the event loop failed"}


@contextlib.contextmanager
def _fuse_main_errors(backend: Backend, mountpoint: str) -> Iterator[None]:
    """The bindings raise ``RuntimeError(<fuse_main's return code>)``: say which step failed
    (libfuse wrote its own reason, e.g. fusermount3's, to stderr: the daemon's log)."""
    try:
        yield
    except RuntimeError as e:
        code = e.args[0] if e.args else None
        if not isinstance(code, int):
            raise
        step = FUSE_MAIN_FAILURES.get(code, "unknown failure") if backend.libfuse == 3 else "mount or loop failed"
        raise MountError(f"libfuse failed to serve {mountpoint}: {step} (fuse_main returned {code}; "
                         f"libfuse said why just before, on stderr or in the log)") from None


TreeMaker = Callable[[Progress | None], VirtualTree]  # builds the tree; the progress sink hears how it goes


def run_mount(make_tree: TreeMaker, settings: MountSettings,
              when_ready: Callable[[VirtualTree], None] | None = None,
              when_done: Callable[[], None] | None = None) -> int:
    """Mount, and return once the mount is ready (background) or unmounted (foreground).
    ``when_ready(tree)`` runs in the daemon once the kernel accepted the mount (start the watcher);
    ``when_done()`` once it is unmounted, before the daemon exits (its threads die with it).
    A build that takes long shows its progress on the terminal (vfs/progress.py). The mountpoint's
    lock is taken first and held by the daemon until its loop ends."""
    lock = lock_mountpoint(settings.mountpoint)
    try:
        return _locked_mount(make_tree, settings, when_ready, when_done, lock)
    finally:
        os.close(lock)  # the daemon holds its own copy of the descriptor, so the lock stays


def _locked_mount(make_tree: TreeMaker, settings: MountSettings, when_ready: Callable[[VirtualTree], None] | None,
                  when_done: Callable[[], None] | None, lock: int) -> int:
    check_mountpoint(settings.mountpoint)
    check_fuse_options(settings.fuse_options)
    backend = _load_fuse(settings.libfuse)
    if settings.foreground:
        _setup_logging(settings.log_file, settings.debug)
        write = terminal_writer(sys.stderr.fileno())
        progress = ProgressLine(write) if write else None
        tree = make_tree(progress)
        if progress is not None and progress.shown:
            clear_line(sys.stderr.fileno())

        def ready_fg() -> None:
            log.info("mounted on %s", settings.mountpoint)
            if when_ready is not None:
                when_ready(tree)

        with _fuse_main_errors(backend, settings.mountpoint):
            _serve(tree, settings, on_ready=ready_fg)
        _finish(when_done, lock)
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
            note_lock_holder(lock)
            _daemon_stdio(settings.log_file)
            _setup_logging(settings.log_file, settings.debug)
            tree = make_tree(ProgressLine(functools.partial(_tell_parent, write_end)))

            def ready() -> None:
                if when_ready is not None:  # before the mount command returns: edits from then on are seen
                    when_ready(tree)
                os.write(write_end, b"ok\n")
                os.close(write_end)
                log.info("mounted on %s", settings.mountpoint)

            with _fuse_main_errors(backend, settings.mountpoint):
                _serve(tree, settings, on_ready=ready)
            _finish(when_done, lock)
            code = 0
        except BaseException as e:  # report any failure through the pipe, then exit
            msg = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            log.exception("mount failed")
            with contextlib.suppress(OSError):
                os.write(write_end, f"error {msg}\n".encode())
        finally:
            os._exit(code)

    os.close(write_end)
    reply = _read_reply(read_end, terminal_writer(sys.stderr.fileno()))
    if reply != "ok":
        os.waitpid(pid, 0)
        where = f" (log: {settings.log_file})" if settings.log_file else ""
        raise MountError((reply.removeprefix("error ") or "the daemon exited before the mount was ready") + where)
    if not is_mounted(settings.mountpoint):  # "ready" comes from libfuse's init: make sure the mount is there
        where = f" (log: {settings.log_file})" if settings.log_file else ""
        raise MountError(f"the daemon reported ready but {settings.mountpoint} is not mounted{where}")
    return 0


def _finish(when_done: Callable[[], None] | None, lock: int) -> None:
    """Run ``when_done`` after the loop ended, the mountpoint's lock let go first (a new mount
    there need not wait for it); its failure is logged, the unmount stands."""
    if when_done is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        when_done()
    except Exception:
        log.exception("after unmounting")


def _tell_parent(fd: int, line: str) -> None:
    """A progress line for the waiting ``slyfs mount`` (gone already, it is not told)."""
    with contextlib.suppress(OSError):
        os.write(fd, f"progress {line}\n".encode(errors="replace"))


def _read_reply(fd: int, show_progress: Callable[[str], None] | None) -> str:
    """The daemon's last line: "ok", or "error <message>"; empty if it died first. The progress
    lines before it go to ``show_progress`` (the terminal), or nowhere."""
    shown = False
    with os.fdopen(fd, "rb") as f:
        for raw in f:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("progress "):
                break
            if show_progress is not None:
                show_progress(line.removeprefix("progress "))
                shown = True
        else:
            line = ""
    if shown:
        clear_line(sys.stderr.fileno())
    return line


def _daemon_stdio(log_file: str | None) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_file else devnull
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
