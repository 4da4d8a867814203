"""Keeping a mount live: build the view from the source, watch the source, rebuild on change.

The source is a ``WatchedSource`` (formats/contract.py): its reader says which folders and
files matter and takes the changed paths; nothing here knows a source's layout. A change
anywhere in the source (for Supervisely: an annotation edited, an image or dataset added or
removed, ``meta.json`` or an offsets file rewritten) is handed to the source, which says which
items it changed (or everything, for meta.json); the view makes its next version from that
change alone and names the paths it made stale, which the kernel is told to forget. Unchanged
generated files keep their cache entries because their keys did not change. The new version
replaces the old one atomically (``VirtualTree.replace``); open handles keep the version they opened.

Every update goes through one ``Updater``, whoever found the change: the watcher's events, a
request that opened a source file of another version than the view holds (``SourceChanged``: a
remount takes unchanged folders' stamps from the catalog, and an edit in place while unmounted
shows in no folder), and the ``BackgroundCheck`` that stats, after the mount is served, every
stamp taken from the catalog.

Changes are seen with inotify (Linux; through ctypes, no dependency). Where inotify is
missing, the watched folders and the files the source names in them (Supervisely:
``meta.json``, offsets files and tars) are polled once a second: that sees everything but a
per-item file (an annotation) edited in place without a rename.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator

from slyfs.formats.contract import Change, Progress, UserError, View, WatchedSource
from slyfs.formats.model import Stamp, file_stamp
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree

log = logging.getLogger("slyfs.live")

QUIET_SECONDS = 0.2  # rebuild once events stop for this long...
MAX_DELAY_SECONDS = 1.0  # ...or this long after the first one, whichever comes first
POLL_SECONDS = 1.0
RETRY_SECONDS = 1.0  # a failed rebuild is retried this long after, if no change comes first...
RETRY_MAX_SECONDS = 60.0  # ...and twice as long after each further failure, up to this
CHECK_PAUSE_SECONDS = 0.002  # the background check's pause after each chunk of files
CHECK_NICE = 10  # the background check's thread runs at this nice value
CHECK_WAIT_SECONDS = 120.0  # a request that keeps finding changed inputs waits this long at most for the check


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Building 10^6 small objects with the cyclic GC on costs ~2x: each collection walks
    all of them. Afterwards they are frozen (never scanned again; refcounting still frees them),
    after one collection of the youngest generation, where the GC being off kept every object
    made meanwhile: a garbage cycle frozen would never be freed, more of them each rebuild."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect(0)
        gc.freeze()
        if was:
            gc.enable()


class ViewSource:
    """Builds the requested view of a source as it is now."""

    def __init__(self, source: WatchedSource, formats: list[str], options: ViewOptions) -> None:
        self.source = source
        self.formats = formats
        self.options = options

    def build(self, progress: Progress | None = None) -> View:
        """The view of the source as it is now; ``progress`` hears how the scan is getting on."""
        with no_gc():
            project = self.source.scan(progress)
            if progress is not None:
                items = sum(len(ds.items) for ds in project.datasets)
                progress(items, f"building the {','.join(self.formats)} view")
            return build_view(project, self.formats, self.options)

    def update(self, view: View, paths: list[str]) -> tuple[View, Change]:
        """The next version of ``view`` after these source paths changed: only what they changed is redone."""
        with no_gc():
            project, change = self.source.update(paths)
            return view.updated(project, change), change


# ---------------------------------------------------------------- inotify through ctypes

IN_ATTRIB, IN_CLOSE_WRITE = 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_NONBLOCK, IN_CLOEXEC = 0x01000000, 0o4000, 0o2000000
WATCH_MASK = (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
              | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR)
_EVENT = struct.Struct("iIII")


class Inotify:
    """The three inotify calls, nothing more."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.paths: dict[int, str] = {}

    def watch(self, path: str) -> None:
        wd = self._add(self.fd, os.fsencode(path), WATCH_MASK)
        if wd >= 0:
            self.paths[wd] = path

    def read(self) -> list[tuple[str, int]]:
        """(changed path, mask) for every pending event; ("", IN_Q_OVERFLOW) when events were lost."""
        out: list[tuple[str, int]] = []
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return out
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, pos)
            name = data[pos + _EVENT.size: pos + _EVENT.size + length].rstrip(b"\0")
            pos += _EVENT.size + length
            if mask & IN_IGNORED:  # the watched folder is gone; its removal was reported already
                self.paths.pop(wd, None)
                continue
            base = self.paths.get(wd, "")
            out.append((os.path.join(base, os.fsdecode(name)) if name else base, mask))
        return out

    def close(self) -> None:
        os.close(self.fd)


# ---------------------------------------------------------------- the watcher


class Watcher:
    """A daemon thread that keeps ``tree`` in step with the source."""

    def __init__(self, view: ViewSource, tree: VirtualTree,
                 on_rebuilt: Callable[[float], None] | None = None, updater: Updater | None = None) -> None:
        self.view = view
        self.tree = tree
        self.updater = updater or Updater(view, tree)
        self.on_rebuilt = on_rebuilt
        self._stop = threading.Event()
        self._pending: set[str] = set()  # changed paths no rebuild has taken in yet
        self._retry_at: float | None = None  # when to retry a failed rebuild
        self._backoff = RETRY_SECONDS
        self._polled: dict[str, Stamp] | None = None  # the poll signature taken at start
        self._thread = threading.Thread(target=self._run, name="slyfs-watcher", daemon=True)
        try:
            self._inotify: Inotify | None = Inotify()
        except (OSError, AttributeError) as e:
            log.warning("inotify unavailable (%s): polling the source every %.0f s", e, POLL_SECONDS)
            self._inotify = None

    def start(self) -> None:
        """Start following the source. The watches are set (or the first poll signature taken)
        before this returns, so an edit made as soon as the mount is announced is seen."""
        try:
            if self._inotify is not None:
                self._rewatch(self._inotify)
            else:
                self._polled = self._signature()
        except Exception:  # the loop watches again itself
            self._lost_track()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._inotify is not None:
            self._inotify.close()

    def _run(self) -> None:
        self.view.source.save()  # after the mount is ready, not before
        while not self._stop.is_set():
            try:
                if self._inotify is None:
                    self._poll_loop()
                else:
                    self._inotify_loop(self._inotify)
            except Exception:  # whatever broke, the mount must go on following the source
                self._lost_track()
                self._stop.wait(RETRY_SECONDS)

    def _lost_track(self) -> None:
        """After an error of the watcher's own: changes may have gone unseen, so the next pass
        rebuilds from the whole source once watching again."""
        log.exception("the watcher failed; watching again in %.0f s", RETRY_SECONDS)
        self._pending.add(self.view.source.root)
        self._retry_at = time.monotonic()

    def _rewatch(self, ino: Inotify) -> None:
        """Watch every folder that matters now (watching one twice is harmless)."""
        for d in self.view.source.watched_folders():
            ino.watch(d)

    def _inotify_loop(self, ino: Inotify) -> None:
        self._rewatch(ino)
        while not self._stop.is_set():
            ready, _, _ = select.select([ino.fd], [], [], self._wait_seconds())
            if ready:
                changed = self._batch(ino)
                if any(mask & IN_Q_OVERFLOW for _, mask in changed):  # events were lost: re-stat all
                    self.view.source.events_lost()
                self._pending.update(p for p, _ in changed)
            elif not self._retry_due() and not self._queued_due():
                continue
            if self._pending or self.updater.queued():
                self._apply_pending()
            self._rewatch(ino)

    @staticmethod
    def _batch(ino: Inotify) -> list[tuple[str, int]]:
        """The events of one burst: until they stop for QUIET_SECONDS, at most MAX_DELAY_SECONDS."""
        changed: list[tuple[str, int]] = []
        first = last = time.monotonic()
        while time.monotonic() - first < MAX_DELAY_SECONDS:
            events = ino.read()
            if events:
                changed += events
                last = time.monotonic()
            elif time.monotonic() - last >= QUIET_SECONDS:
                break
            select.select([ino.fd], [], [], QUIET_SECONDS / 4)
        return changed

    def _poll_loop(self) -> None:
        before = self._polled if self._polled is not None else self._signature()
        self._polled = None  # a later (restarted) loop takes its own
        while not self._stop.wait(POLL_SECONDS):
            now = self._signature()
            if now != before:
                self._pending.update(p for p in now.keys() | before.keys() if now.get(p) != before.get(p))
            elif not self._retry_due() and not self._queued_due():
                continue
            self._apply_pending()
            before = self._signature()

    def _signature(self) -> dict[str, Stamp]:
        """The stamps of the watched folders and of the files the source says to poll in them."""
        sig = {}
        for d in self.view.source.watched_folders():
            for e in [d, *self.view.source.poll_files(d)]:
                with contextlib.suppress(OSError):  # gone or unreadable: missing from the signature is a change
                    sig[e] = file_stamp(os.stat(e))
        return sig

    def _wait_seconds(self) -> float:
        """How long to wait for events: at most until a retry is due."""
        if self._retry_at is None:
            return 0.5
        return min(0.5, max(0.0, self._retry_at - time.monotonic()))

    def _retry_due(self) -> bool:
        return self._retry_at is not None and time.monotonic() >= self._retry_at

    def _queued_due(self) -> bool:
        """Whether inputs reported changed by requests wait for an update (and no failed one waits
        out its backoff)."""
        return self._retry_at is None and self.updater.queued()

    def _apply_pending(self) -> None:
        """Rebuild for every change since the last rebuild that worked. A failure keeps serving the
        previous version and keeps the changes: they are retried with the next change, or after a
        backoff (doubling up to RETRY_MAX_SECONDS) when the source is mended without an event."""
        try:
            self._apply(sorted(self._pending))
        except Exception as e:
            delay = self._backoff
            self._retry_at = time.monotonic() + delay
            self._backoff = min(delay * 2, RETRY_MAX_SECONDS)
            log.warning("rebuild after a source change failed; still serving the previous version; "
                        "retrying with the next change or in %.0f s: %s", delay, e,
                        exc_info=not isinstance(e, UserError))
            return
        self._pending.clear()
        self._retry_at = None
        self._backoff = RETRY_SECONDS

    def _apply(self, paths: list[str]) -> None:
        self.updater.apply(paths)
        if self.on_rebuilt is not None:
            self.on_rebuilt(self.updater.last_seconds)


class Updater:
    """Brings the served tree up to date with source changes, one batch at a time, whoever found
    them: the watcher's events, a request that opened another version of a file than the catalog
    said (``SourceChanged``: answered again once the update is served), the background check.
    It tells the source whom to report changed inputs to, and the tree whom to ask for an update."""

    def __init__(self, view: ViewSource, tree: VirtualTree) -> None:
        self.view = view
        self.tree = tree
        self.last_seconds = 0.0
        self.checked = threading.Event()  # clear while a background check runs
        self.checked.set()
        self._lock = threading.RLock()  # one update at a time
        self._queued: set[str] = set()  # inputs reported changed, taken by the next update
        self._queued_lock = threading.Lock()
        self._in_request = threading.local()  # set while a request thread updates (see _stale)
        self._invalidate = tree.on_stale
        if tree.on_stale is not None:
            tree.on_stale = self._stale
        view.source.on_input_changed = self.queue
        tree.on_source_changed = self.now

    def _stale(self, paths: list[str]) -> None:
        """The kernel is told of stale paths from another thread than a request's (FUSE callbacks
        must not invalidate: the kernel may wait on the loop they block), after the view is served."""
        assert self._invalidate is not None
        if getattr(self._in_request, "active", False):
            threading.Thread(target=self._invalidate, args=(paths,), name="slyfs-invalidate", daemon=True).start()
        else:
            self._invalidate(paths)

    def queue(self, path: str) -> None:
        """``path`` changed: the next update (the watcher's within a second, or a request's) takes it."""
        with self._queued_lock:
            self._queued.add(path)

    def queued(self) -> bool:
        return bool(self._queued)

    def now(self, paths: Collection[str], attempt: int) -> None:
        """A request found ``paths`` changed (its ``attempt``-th time): update now, so that it is
        answered again from the updated view. From the second attempt on it waits (a while) for
        the background check, which finds every other changed file in one pass."""
        if attempt >= 1:
            self.checked.wait(CHECK_WAIT_SECONDS)
        self._in_request.active = True
        try:
            self.apply(paths)
        finally:
            self._in_request.active = False

    def apply(self, paths: Collection[str]) -> None:
        """Tell the source what changed and serve the view it leads to (a rewritten tar or image
        gets a new stamp in its ImageRefs, so the sources open it afresh)."""
        with self._lock:
            with self._queued_lock:
                batch, self._queued = sorted({*paths, *self._queued}), set()
            if not batch:
                return
            started = time.monotonic()
            try:
                view, change = self.view.update(self.tree.view, batch)
            except BaseException:
                with self._queued_lock:  # retried with the next update
                    self._queued.update(batch)
                raise
            stale = self.tree.replace(view, change)
            self.view.source.save()
            self.last_seconds = took = time.monotonic() - started
            what = "everything" if change.everything else f"{len(change.items)} items"
            log.info("source changed (%d paths, %s): view updated in %.2f s, %d paths stale",
                     len(batch), what, took, len(stale))


def lower_priority() -> None:
    """The calling thread yields the CPU to the rest (Linux gives each thread its own nice value)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICE)


class CheckStopped(Exception):
    """The background check was asked to stop (raised at its next pause)."""


class BackgroundCheck:
    """A daemon thread that runs the source's ``verify`` once the mount is served: every stamp
    the scan took from the catalog unchecked is checked against its file, at low priority and in
    chunks (a pause after each), and every mismatch updates the view as an event would. Serving
    never waits for it (except a request that keeps finding changed files, see ``Updater.now``)."""

    def __init__(self, updater: Updater) -> None:
        self.updater = updater
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slyfs-check", daemon=True)

    def start(self) -> None:
        self.updater.checked.clear()
        self.updater.tree.cache.stamps_checked = self.updater.checked
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """End the check at its next pause and wait for it (the folders it confirmed so far are
        written by the next save): a view closed in a process that goes on (the Python API)
        leaves no thread behind."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        lower_priority()
        started = time.monotonic()
        try:
            checked, changed = self.updater.view.source.verify(self._changed, self._pause)
            self.updater.apply(())  # what requests reported meanwhile
            self.updater.view.source.save(final=True)  # the folders it confirmed
            log.info("catalog checked: %d files stat'ed, %d changed, in %.1f s",
                     checked, changed, time.monotonic() - started)
        except CheckStopped:
            log.info("the background check of the catalog was stopped")
        except Exception:  # the watcher, the requests' own checks and the next mount still hold
            log.exception("the background check of the catalog failed")
        finally:
            self.updater.checked.set()

    def _changed(self, paths: list[str]) -> None:
        try:
            self.updater.apply(paths)
        except Exception as e:  # the watcher's next update retries them (they stay queued)
            log.warning("update after the background check failed: %s", e, exc_info=not isinstance(e, UserError))

    def _pause(self) -> None:
        if self._stopping.wait(CHECK_PAUSE_SECONDS):
            raise CheckStopped



def take_snapshot(view: ViewSource, tree: VirtualTree) -> None:
    """Make ``tree`` a snapshot: the background check done before it is served (a remount took
    folders from the catalog unchecked, and a snapshot takes no update later), then no follower.
    A file whose source changes after this is refused (EIO, logged), never made from the new
    version: the kernel keeps every size and page of a snapshot for the whole mount."""
    started = time.monotonic()
    updater = Updater(view, tree)
    checked, changed = view.source.verify(updater.apply, lambda: None)
    updater.apply(())
    view.source.save(final=True)
    view.source.on_input_changed = _changed_under_snapshot
    tree.on_source_changed = None
    log.info("snapshot taken: %d files stat'ed, %d changed since the catalog, in %.1f s",
             checked, changed, time.monotonic() - started)


def _changed_under_snapshot(path: str) -> None:
    """What a snapshot does with a source file found changed: nothing is made from it (its files are EIO)."""
    log.warning("%s changed after the snapshot was taken: what is made from it is not served (remount to see it)", path)
