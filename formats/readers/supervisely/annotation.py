"""``ann/<item>.json`` → :class:`formats.model.Annotation`.

Parsing degrades per object: an object that cannot be understood is left out and
described in the returned messages; the rest of the annotation is kept. Class titles and
tag text are made encodable as in meta.json (:func:`formats.common.naming.encodable_text`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import zlib
from typing import Any, TypeGuard

import numpy as np
from PIL import Image, UnidentifiedImageError

from slyfs.formats.common.naming import encodable_text
from slyfs.formats.model import (
    Annotation,
    Cuboid2d,
    Geometry,
    Graph,
    GraphNode,
    Label,
    Line,
    Mask,
    OrientedBox,
    PointGeom,
    Polygon,
    ProjectMeta,
    Rectangle,
    Tag,
)

MAX_COORD = 1e7  # beyond this a coordinate is corrupt, not merely outside the image
MAX_SIDE = 1_000_000  # image side, pixels
MAX_IMAGE_PIXELS = 1 << 30  # a declared size beyond this is corrupt: the size is read from the image instead
MAX_LABELLED_PIXELS = 1 << 27  # past this (declared, or from the header) no labels: raster views would take minutes
MAX_OBJECTS = 100_000  # objects of one annotation; past it the image is served without labels
MAX_MASK_BYTES = 64 << 20  # decompressed bitmap PNG
MAX_MASK_PIXELS = 100_000_000


class GeometryError(ValueError):
    """One object's geometry cannot be decoded."""


def _coord(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GeometryError(f"coordinate {v!r} is not a number")
    if not math.isfinite(v) or abs(v) > MAX_COORD:
        raise GeometryError(f"coordinate {v!r} is not finite or absurdly large")
    return float(v) if isinstance(v, float) and not v.is_integer() else int(v)


def _point(p: Any) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or len(p) != 2:
        raise GeometryError(f"point {p!r} is not [x, y]")
    return (_coord(p[0]), _coord(p[1]))


def _points(seq: Any, minimum: int) -> tuple[tuple[float, float], ...]:
    if not isinstance(seq, list):
        raise GeometryError("points are not a list")
    pts = tuple(_point(p) for p in seq)
    if len(pts) < minimum:
        raise GeometryError(f"{len(pts)} point(s), at least {minimum} needed")
    return pts


def _exterior(obj: dict) -> Any:
    pts = obj.get("points")
    if not isinstance(pts, dict):
        raise GeometryError("'points' is missing or not an object")
    return pts.get("exterior"), pts.get("interior") or []


def decode_png_payload(data: Any) -> Image.Image:
    """Supervisely mask payload: base64 of zlib of a PNG (or of a bare PNG)."""
    if not isinstance(data, str):
        raise GeometryError("bitmap 'data' is not a string")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as e:
        raise GeometryError(f"bitmap data is not base64: {e}") from None
    if not raw.startswith(b"\x89PNG"):
        try:
            d = zlib.decompressobj()
            raw = d.decompress(raw, MAX_MASK_BYTES)
            if d.unconsumed_tail:
                raise GeometryError("bitmap data decompresses beyond the size limit")
        except zlib.error as e:
            raise GeometryError(f"bitmap data is not zlib: {e}") from None
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise GeometryError("bitmap data is not a PNG image")
    try:
        img = Image.open(io.BytesIO(raw), formats=("PNG",))
        if img.width * img.height > MAX_MASK_PIXELS:
            raise GeometryError(f"bitmap of {img.width}x{img.height} is too large")
        img.load()
    except GeometryError:
        raise
    except UnidentifiedImageError:
        raise GeometryError("bitmap data is not a PNG image") from None
    except Image.DecompressionBombError:
        raise GeometryError("bitmap is too large (decompression bomb)") from None
    except Exception as e:  # PIL raises many types on corrupt data
        raise GeometryError(f"bitmap data is not a readable PNG: {e}") from None
    return img


def _mask(obj: dict, alpha: bool) -> Mask:
    bm = obj.get("bitmap")
    if not isinstance(bm, dict):
        raise GeometryError("'bitmap' is missing or not an object")
    ox, oy = _point(bm.get("origin"))
    img = decode_png_payload(bm.get("data"))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if alpha:
        pixels = np.asarray(img.getchannel("A") if img.mode in ("RGBA", "LA") else img.convert("L"))
    elif has_alpha:
        pixels = np.asarray(img.convert("RGBA"))[:, :, 3] != 0
    else:
        pixels = np.asarray(img.convert("L")) != 0
    return Mask(origin=(math.floor(ox), math.floor(oy)), pixels=np.ascontiguousarray(pixels), alpha=alpha)


def _nodes(obj: dict, key: str) -> dict[str, dict]:
    nodes = obj.get(key)
    if not isinstance(nodes, dict):
        raise GeometryError(f"'{key}' is missing or not an object")
    return nodes


def parse_geometry(obj: dict) -> Geometry:
    """Decode the geometry of one annotation object by its ``geometryType``."""
    kind = obj.get("geometryType") or obj.get("shape")
    if kind == "rectangle":
        ext, _ = _exterior(obj)
        (x0, y0), (x1, y1) = _points(ext, 2)[:2]
        return Rectangle(math.floor(min(x0, x1)), math.floor(min(y0, y1)),
                         math.floor(max(x0, x1)), math.floor(max(y0, y1)))
    if kind == "polygon":
        ext, holes = _exterior(obj)
        if not isinstance(holes, list):
            raise GeometryError("'interior' is not a list")
        return Polygon(_points(ext, 3), tuple(_points(h, 3) for h in holes))
    if kind == "line":
        ext, _ = _exterior(obj)
        return Line(_points(ext, 2))
    if kind == "point":
        ext, _ = _exterior(obj)
        return PointGeom(*_points(ext, 1)[0])
    if kind in ("bitmap", "alpha_mask"):
        return _mask(obj, alpha=kind == "alpha_mask")
    if kind == "graph":
        out = {}
        for node_id, node in _nodes(obj, "nodes").items():
            if not isinstance(node, dict):
                raise GeometryError(f"graph node {node_id!r} is not an object")
            x, y = _point(node.get("loc"))
            out[str(node_id)] = GraphNode(x, y, bool(node.get("disabled", False)))
        if not out:
            raise GeometryError("graph has no nodes")
        return Graph(out)
    if kind == "cuboid_2d":
        verts = {}
        for name, v in _nodes(obj, "vertices").items():
            if not isinstance(v, dict):
                raise GeometryError(f"cuboid vertex {name!r} is not an object")
            verts[str(name)] = _point(v.get("loc"))
        if len(verts) < 3:
            raise GeometryError(f"cuboid has {len(verts)} vertices")
        return Cuboid2d(verts)
    if kind == "oriented_bbox":
        pts = obj.get("points")
        if isinstance(pts, dict):  # tolerate the exterior form too
            pts = pts.get("exterior")
        (x0, y0), (x1, y1) = _points(pts, 2)[:2]
        angle = obj.get("angle", 0.0)
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not math.isfinite(angle):
            raise GeometryError(f"angle {angle!r} is not a finite number")
        return OrientedBox(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), float(angle))
    raise GeometryError(f"unknown geometry type {kind!r}")


def parse_tags(raw: Any, problems: list[str], where: str) -> tuple[Tag, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{where}: 'tags' is not a list; tags ignored")
        return ()
    tags = []
    for t in raw:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            problems.append(f"{where}: tag {t!r} has no name; tag ignored")
            continue
        value = t.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            value = str(value)
        name = encodable_text(t["name"])
        text = encodable_text(value) if isinstance(value, str) else value
        if name != t["name"] or text != value:
            problems.append(f"{where}: tag {t['name']!r} = {value!r} holds unpaired surrogates (not valid Unicode); "
                            f"written as {name!r} = {text!r}")
        tags.append(Tag(name, text))
    return tuple(tags)


def _is_side(v: object) -> TypeGuard[int]:
    """An image side: a positive integer (not a bool) up to MAX_SIDE."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE


def parse_size(data: Any) -> tuple[int, int] | None:
    """``size`` → (width, height), or None when it is missing or not two positive integers."""
    size = data.get("size") if isinstance(data, dict) else None
    if not isinstance(size, dict):
        return None
    w, h = size.get("width"), size.get("height")
    if not (_is_side(w) and _is_side(h)):
        return None
    if w * h > MAX_IMAGE_PIXELS:
        return None
    return (w, h)


def size_problem(size: tuple[int, int]) -> str | None:
    """Why an image of ``size`` gets no labels (its masks, areas and contours would take minutes), or None."""
    if size[0] * size[1] > MAX_LABELLED_PIXELS:
        return (f"image of {size[0]}x{size[1]} = {size[0] * size[1]} pixels is over the limit of "
                f"{MAX_LABELLED_PIXELS} (MAX_LABELLED_PIXELS)")
    return None


def parse_annotation(data: Any, meta: ProjectMeta, size: tuple[int, int],
                     problems: list[str]) -> Annotation:
    """Build an Annotation of an image of ``size`` (width, height) from the decoded JSON.

    Every object that cannot be used is left out and described in ``problems``.
    """
    if not isinstance(data, dict):
        problems.append("annotation is not a JSON object; served without labels")
        return Annotation(size[0], size[1])
    too_large = size_problem(size)
    if too_large:
        problems.append(f"{too_large}; served without labels")
        return Annotation(size[0], size[1])
    known = meta.class_index()
    labels: list[Label] = []
    objects = data.get("objects", [])
    if not isinstance(objects, list):
        problems.append("'objects' is not a list; served without labels")
        objects = []
    elif len(objects) > MAX_OBJECTS:
        problems.append(f"{len(objects)} objects, over the limit of {MAX_OBJECTS} (MAX_OBJECTS); served without labels")
        objects = []
    for i, obj in enumerate(objects):
        where = f"object #{i}"
        if not isinstance(obj, dict):
            problems.append(f"{where} is not an object; object left out")
            continue
        title = obj.get("classTitle")
        if isinstance(title, str):
            title = encodable_text(title)
        if not isinstance(title, str) or title not in known:
            problems.append(f"{where}: class {title!r} is not in meta.json; object left out")
            continue
        try:
            geometry = parse_geometry(obj)
        except GeometryError as e:
            problems.append(f"{where} ({title}): {e}; object left out")
            continue
        instance = obj.get("instance")
        labels.append(Label(class_title=title, geometry=geometry,
                            tags=parse_tags(obj.get("tags"), problems, where),
                            instance=str(instance) if instance not in (None, "") else None))
    return Annotation(width=size[0], height=size[1],
                      tags=parse_tags(data.get("tags"), problems, "image"), labels=tuple(labels))
