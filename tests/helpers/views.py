"""A view's files as a ``{path: node}`` map, for tests that look at nodes directly."""

from __future__ import annotations

from types import ModuleType

from slyfs.formats.contract import Node
from slyfs.formats.layout import LayoutView
from slyfs.formats.model import Project
from slyfs.formats.registry import build_view
from slyfs.formats.view import ViewOptions
from slyfs.vfs.tree import VirtualTree


def view_files(fmt: ModuleType | list[str], project: Project, options: ViewOptions) -> dict[str, Node]:
    """Every file of the view of ``project`` in format ``fmt`` (a writer module, or format names)."""
    tree = VirtualTree(LayoutView(fmt.layout, project, options) if isinstance(fmt, ModuleType)
                       else build_view(project, fmt, options))
    out = {}
    for path in tree.walk_files():
        node = tree.node(path)
        assert node is not None
        out[path] = node
    return out
