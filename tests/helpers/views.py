"""A view's files as a ``{path: node}`` map, for tests that look at nodes directly."""

from __future__ import annotations

from pathlib import Path
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


def write_view(view: VirtualTree | LayoutView | dict[str, Node], dest: Path) -> Path:
    """Every file of ``view`` (a tree, a layout view or a ``view_files`` map) rendered under
    ``dest``, for readers that want a real folder."""
    tree = view if isinstance(view, VirtualTree) else VirtualTree(view)
    for path in tree.walk_files():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tree.read_file(path))
    return dest
