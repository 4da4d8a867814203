"""How a long first mount is getting on: one terminal line, rewritten as it goes, like
ratarmount's while it indexes (items scanned, rate, what is being done). A mount that is ready
within ``SHOW_AFTER`` seconds shows nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from slyfs.formats.common.naming import printable

SHOW_AFTER = float(os.environ.get("SLYFS_PROGRESS_AFTER", "1.5"))  # seconds before the first line
EVERY = 0.5  # seconds between two lines


class ProgressLine:
    """Called with (items scanned so far, what is being done); passes a line to ``write`` once
    ``show_after`` seconds have gone by, then at most every ``every`` seconds."""

    def __init__(self, write: Callable[[str], None], show_after: float = SHOW_AFTER, every: float = EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._write, self._show_after, self._every, self._clock = write, show_after, every, clock
        self._start = clock()
        self._last: float | None = None
        self.shown = False

    def __call__(self, items: int, doing: str) -> None:
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self._show_after or (self._last is not None and now - self._last < self._every):
            return
        self._last = now
        rate = f", {items / elapsed:,.0f}/s" if elapsed >= 1 else ""  # a rate over less is noise
        self._write(f"{items:,} items scanned ({elapsed:.0f} s{rate}): {printable(doing)}")
        self.shown = True


def terminal_writer(fd: int) -> Callable[[str], None] | None:
    """Writes each line over the previous one on the terminal ``fd``; None when ``fd`` is not a terminal."""
    if not os.isatty(fd):
        return None

    def write(line: str) -> None:
        os.write(fd, f"\r\x1b[Kslyfs: {line}".encode(errors="replace"))
    return write


def clear_line(fd: int) -> None:
    """Removes the progress line from the terminal ``fd``."""
    os.write(fd, b"\r\x1b[K")
