"""``slyfs check``: everything the mount would find wrong with a source, found up front.

A check is the mount's own reading, done eagerly: scan (meta.json, offsets files against
their tars), parse every annotation, and probe every image (all its bytes present, a
header an image decoder accepts, the size the annotation declares, an end marker where
the format has one). Every problem comes from the same :class:`Problem` reports the
mount writes to its log, so the two never disagree.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict
from typing import BinaryIO

from PIL import Image

from slyfs.formats.common.naming import printable
from slyfs.formats.model import Annotation, ImageRef, Item, Problem
from slyfs.formats.readers.supervisely.project import HEADER_PROBE_BYTES, ProblemLog, Report, SourceError, read_project
from slyfs.formats.source_bytes import open_regular, remote_reader

SERVED_AS_IS = "served byte for byte as it is"
TRAILER_BYTES = 64 << 10  # the end of an image read for its end marker (zero padding after it included)


def _trailer_problem(data: bytes, fmt: str | None) -> str | None:
    """A cheap truncation test: PNG ends with its IEND chunk, JPEG with the EOI marker
    (zero padding after it is common and allowed)."""
    if fmt == "PNG" and not data.endswith(b"IEND\xaeB`\x82"):
        return "PNG does not end with an IEND chunk (truncated?)"
    if fmt in ("JPEG", "MPO") and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "JPEG does not end with an end-of-image marker (truncated?)"
    return None


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def _head_and_tail(ref: ImageRef) -> tuple[int, bytes, bytes]:
    """How many of the image's bytes are present, its first HEADER_PROBE_BYTES and last TRAILER_BYTES
    (from the file, or by range from object storage, where a short object is the store's error)."""
    remote = remote_reader(ref.path)
    if remote is not None:
        if ref.size <= HEADER_PROBE_BYTES + TRAILER_BYTES:
            head = tail = remote.read_range(ref, ref.size, 0)
        else:
            head = remote.read_range(ref, HEADER_PROBE_BYTES, 0)
            tail = remote.read_range(ref, TRAILER_BYTES, ref.size - TRAILER_BYTES)
        return ref.size, head, tail
    fd, st = open_regular(ref.path)
    with os.fdopen(fd, "rb") as f:
        present = max(0, min(ref.size, st.st_size - ref.offset))
        if present <= HEADER_PROBE_BYTES + TRAILER_BYTES:  # small: all of it, once
            head = tail = _read_at(f, ref.offset, present)
        else:
            head = _read_at(f, ref.offset, HEADER_PROBE_BYTES)
            tail = _read_at(f, ref.offset + present - TRAILER_BYTES, TRAILER_BYTES)
    return present, head, tail


def probe_image(item: Item, ann: Annotation, report: Report) -> None:
    """Report an image whose bytes are missing, undecodable, or disagree with its annotation.
    Reads the header (``HEADER_PROBE_BYTES``, as the mount does) and the last ``TRAILER_BYTES``,
    never the whole image."""
    ref = item.image
    if ref is None:  # already reported by the scan (bad offsets entry, annotation without image)
        return
    try:
        present, head, tail = _head_and_tail(ref)
    except OSError as e:
        report(Problem(ref.path, f"image unreadable: {e.strerror or e}", "reading it gives EIO", item.name))
        return
    if present != ref.size:
        report(Problem(ref.path, f"only {present} of the image's {ref.size} bytes are present",
                       "reading past them gives EIO", item.name))
        return
    try:
        with Image.open(io.BytesIO(head)) as img:
            size, fmt = img.size, img.format
    except Exception as e:  # PIL raises many types on corrupt data
        report(Problem(ref.path, f"not a decodable image ({type(e).__name__})",
                       f"{SERVED_AS_IS}; its labels cannot be sized from it", item.name))
        return
    why = _trailer_problem(tail, fmt)
    if why:
        report(Problem(ref.path, why, SERVED_AS_IS, item.name))
    if ann.width and (ann.width, ann.height) != size:
        report(Problem(item.ann_path or ref.path,
                       f"annotation size {ann.width}x{ann.height} differs from the image's {size[0]}x{size[1]}",
                       "the annotation's size is used (boxes are cut to it)", item.name))


class CheckFailed(Exception):
    """The check itself broke (out of memory, a bug): no verdict on the source."""


def check_project(root: str, follow_external_links: bool = False) -> list[Problem]:
    """Every problem of the project at ``root``, sorted by file and item, symbolic links that
    lead outside it included (named with their targets; not followed unless
    ``follow_external_links``, as the mount does). Raises SourceError when it cannot be mounted
    at all, CheckFailed when the check could not finish."""
    problems = ProblemLog(keep=None)  # the check lists every problem
    try:
        project = read_project(root, report=problems, follow_external_links=follow_external_links)
        for item in project.items():
            probe_image(item, project.annotation(item), problems)
    except SourceError:
        raise
    except Exception as e:  # MemoryError included: the check broke, the source is not judged
        raise CheckFailed(f"{type(e).__name__}: {e}") from e
    return sorted(problems.all(), key=lambda p: (p.path, p.item or "", p.message))


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def report_text(problems: list[Problem], root: str) -> str:
    """One block per problem: where, what is wrong, what slyfs does; then a count."""
    lines = []
    for p in problems:
        where = _relative(p.path, root) + (f" [{p.item}]" if p.item else "")
        lines += [printable(where), f"  problem: {printable(p.message)}", f"  slyfs:   {printable(p.action)}"]
    files = len({p.path for p in problems})
    lines.append(f"{len(problems)} problem(s) in {files} file(s)" if problems else "no problems found")
    return "\n".join(lines) + "\n"


def report_json(problems: list[Problem], root: str) -> list[dict]:
    return [{**asdict(p), "path": _relative(p.path, root)} for p in problems]


__all__ = ["CheckFailed", "SourceError", "check_project", "probe_image", "report_json", "report_text"]
