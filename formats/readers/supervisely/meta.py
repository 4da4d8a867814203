"""``meta.json``: classes (shape, colour, keypoint template) and tag metas.

Text is made encodable here, once for every view (:func:`formats.common.naming.encodable_text`):
a title, tag name or value, or node label holding unpaired surrogates (valid JSON, not
valid Unicode) gets ``%XX`` for them, and a class title that changes so is reported."""

from __future__ import annotations

from typing import Any

from slyfs.formats.common.naming import encodable_text
from slyfs.formats.model import GraphTemplate, ObjClass, ProjectMeta, TagMeta

SHAPES = frozenset({"rectangle", "polygon", "bitmap", "line", "point", "graph", "alpha_mask",
                    "cuboid_2d", "oriented_bbox", "any"})


class MetaError(ValueError):
    """``meta.json`` is unusable as a whole (without it no class can be named)."""


def parse_color(value: object) -> tuple[int, int, int]:
    """``#RRGGBB`` → (r, g, b); anything else → grey, so a bad colour never stops a mount."""
    if isinstance(value, str) and len(value) == 7 and value[0] == "#":
        try:
            return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))
        except ValueError:
            pass
    return (128, 128, 128)


def _template(config: Any) -> GraphTemplate | None:
    if not isinstance(config, dict) or not isinstance(config.get("nodes"), dict):
        return None
    nodes = config["nodes"]
    ids = tuple(str(k) for k in nodes)
    labels = tuple(encodable_text(str(v.get("label", k)) if isinstance(v, dict) else str(k)) for k, v in nodes.items())
    edges = []
    edge_list = config.get("edges")
    for e in edge_list if isinstance(edge_list, list) else ():
        if isinstance(e, dict) and str(e.get("src")) in nodes and str(e.get("dst")) in nodes:
            edges.append((str(e["src"]), str(e["dst"])))
    return GraphTemplate(node_ids=ids, labels=labels, edges=tuple(edges))


def parse_meta(data: Any, warn: list[str]) -> ProjectMeta:
    """Parse the decoded ``meta.json``. Bad class/tag entries are skipped with a message in
    ``warn``; a document that is not an object with a ``classes`` list raises MetaError."""
    if not isinstance(data, dict) or not isinstance(data.get("classes", []), list):
        raise MetaError("meta.json is not an object with a 'classes' list")
    classes: list[ObjClass] = []
    seen: set[str] = set()
    for i, c in enumerate(data.get("classes", [])):
        title = c.get("title") if isinstance(c, dict) else None
        if not isinstance(title, str) or not title:
            warn.append(f"class #{i} has no title: skipped")
            continue
        clean = encodable_text(title)
        if clean != title:
            warn.append(f"class title {title!r} holds unpaired surrogates (not valid Unicode): "
                        f"named {clean!r} in every view")
            title = clean
        if title in seen:
            warn.append(f"class {title!r} is declared twice: the first declaration is used")
            continue
        shape = c.get("shape")
        if shape not in SHAPES:
            warn.append(f"class {title!r} has unknown shape {shape!r}: treated as 'any'")
            shape = "any"
        seen.add(title)
        template = _template(c.get("geometry_config")) if shape == "graph" else None
        classes.append(ObjClass(title=title, shape=shape, color=parse_color(c.get("color")),
                                template=template))
    tag_metas: list[TagMeta] = []
    for t in data.get("tags", []) if isinstance(data.get("tags", []), list) else []:
        if isinstance(t, dict) and isinstance(t.get("name"), str):
            values = t.get("values")
            if not isinstance(values, list):
                values = []
            tag_metas.append(TagMeta(name=encodable_text(t["name"]), value_type=str(t.get("value_type", "none")),
                                     values=tuple(encodable_text(str(v)) for v in values)))
    return ProjectMeta(classes=tuple(classes), tag_metas=tuple(tag_metas))
