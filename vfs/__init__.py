"""Serving views: the virtual tree, its caches and stores, live updates, the FUSE mount, export,
the CLI, and the Python API (``from slyfs.vfs import open_view``), imported on first use so that
the mount and the CLI never load fsspec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slyfs.vfs.api import ViewFileSystem, open_view

__all__ = ["ViewFileSystem", "open_view"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from slyfs.vfs import api
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
