"""From what the user names (a folder, or a URL such as ``s3://bucket/prefix``) to a project source:
the folder the reader reads and the byte store its images come from. Every front end (``slyfs
mount``, ``check``, ``export``, the Python API) opens its source through :func:`open_project_source`.

A URL is read through fsspec (``s3fs`` for S3, installed with ``pip install slyfs[s3]``; any other
fsspec protocol whose package is installed works the same way, untested). The standard AWS
configuration applies (``AWS_ENDPOINT_URL``, the credentials chain, ``AWS_PROFILE``, the region);
``--storage-option key=value`` passes anything else to the file system.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slyfs.formats.contract import ByteStore, UserError
from slyfs.formats.readers.supervisely import SourceError
from slyfs.formats.readers.supervisely.remote import RemoteProject, mirror_folder
from slyfs.vfs.stores import ObjectStore, RangeCache

log = logging.getLogger("slyfs.source")

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEFAULT_POLL_SECONDS = 10.0
# Each request to S3: connecting and each wait for bytes time out, and botocore retries a failed
# request (backoff with jitter) this many times in all; vfs/stores.py bounds a whole read on top.
S3_CONFIG = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 3, "mode": "standard"}}
S3FS_RETRIES = 2  # s3fs's own retries around botocore's (its default is 5)


def is_url(text: str) -> bool:
    return bool(URL.match(text))


def parse_storage_options(pairs: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; a value that reads as JSON (``true``, ``5``, ``{"a": 1}``) is taken so."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--storage-option {pair!r}: expected key=value")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@dataclass
class ProjectSource:
    """A source ready for the reader: ``root`` is the folder it reads (the project itself, or the
    mirror of one in object storage); ``store`` where its image bytes come from (None: local files)."""

    name: str  # what the user named: the folder or the URL
    root: str
    store: ByteStore | None = None
    remote: RemoteProject | None = None


def open_project_source(text: str, storage_options: Mapping[str, Any] | None = None,
                        cache_root: Path | None = None, sync: bool = True,
                        cache_images: int | None = None) -> ProjectSource:
    """The source ``text`` names. A local folder is taken as it is; a URL's project is mirrored
    under ``cache_root`` (see remote.py), listed and brought up to date when ``sync`` (a daemon
    whose parent synced starts from the mirror as left), its images kept on disk up to
    ``cache_images`` bytes when given. Raises SourceError (a UserError) when it cannot be read."""
    if not is_url(text):
        if storage_options:
            raise UserError("--storage-option applies to a URL source (s3://bucket/prefix), not a folder")
        root = os.path.abspath(text)
        return ProjectSource(text, root)
    if cache_root is None:
        raise UserError(f"{text}: a source in object storage needs a cache directory")
    options = dict(storage_options or {})
    fs, path = _file_system(text, options)
    url = text.rstrip("/")
    folder = mirror_folder(cache_root, url, {k: json.dumps(v) for k, v in options.items()})
    remote = RemoteProject(fs, path, url, folder)
    if sync:
        remote.sync()
    else:
        remote.load()
    ranges = RangeCache(folder / "images", cache_images) if cache_images else None
    return ProjectSource(text, remote.tree, ObjectStore(remote, ranges), remote)


def _file_system(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the project's path in it, with slyfs's timeouts and
    retries for S3 unless the options set their own."""
    try:
        import fsspec
    except ImportError:
        raise UserError(f"{url}: reading object storage needs fsspec and its protocol's package "
                        "(for S3: pip install 'slyfs[s3]')") from None
    protocol = url.split("://", 1)[0]
    kwargs = dict(options)
    if protocol in ("s3", "s3a"):
        config = dict(S3_CONFIG)
        config.update(kwargs.pop("config_kwargs", {}) or {})
        kwargs["config_kwargs"] = config
    kwargs.setdefault("skip_instance_cache", True)  # a daemon's own, never one made before its fork
    try:
        fs, path = fsspec.core.url_to_fs(url, **kwargs)
    except ImportError as e:
        raise UserError(f"{url}: no fsspec file system for {protocol}:// is installed ({e}; for S3: "
                        "pip install 'slyfs[s3]')") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{url}: {e}") from None
    if hasattr(fs, "retries"):
        fs.retries = S3FS_RETRIES
    path = path.rstrip("/")
    if not path:
        raise SourceError(f"{url}: no bucket named")
    return fs, path


class Poller:
    """Follows a project in object storage: every ``interval`` seconds (or at once when woken: a
    read found an object replaced) the prefix is listed and the mirror brought in step; the
    mount's watcher sees the mirror's files change as it sees a local project's. A failed listing
    (the endpoint down, credentials refused) is logged and tried again at the next poll; the mount
    keeps serving what it has."""

    def __init__(self, remote: RemoteProject, interval: float = DEFAULT_POLL_SECONDS) -> None:
        self.remote = remote
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="slyfs-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.poll()

    def poll(self) -> None:
        try:
            result = self.remote.sync()
        except Exception as e:  # SourceError, and anything else: the next poll tries again
            if not self._failing:
                log.warning("%s: %s; serving what was read before, trying again every %.0f s",
                            self.remote.url, e, self.interval)
            self._failing = True
            return
        if self._failing:
            log.warning("%s: listed again", self.remote.url)
        self._failing = False
        if result.changed:
            log.info("%s: %d object(s) fetched, %d placeholder(s) made, %d removed", self.remote.url,
                     result.fetched, result.placeholders, result.removed)
