"""Index images and their palettes: every view's class and instance masks painted from the labels
(one rasterisation per label for all of an item's layers), the check that an image is small enough
to draw, the VOC colour map every palette-mask format uses (VOC, Segmentation Mask, CamVid,
Cityscapes' colour PNGs), the PNG writers (palette, 8/16-bit gray, RGB) and datumaro's
``labelmap.txt``."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from slyfs.formats.common.memo import BoundedMemo
from slyfs.formats.common.naming import distinct_texts, line_unsafe, text_field, uncommented
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.contract import NotRenderable
from slyfs.formats.model import Annotation, Geometry, Item, Label, Project
from slyfs.formats.readers.supervisely.annotation import size_problem

MAX_OBJECT_INDEX = 254  # 255 is VOC's "void" index
MASK_CACHE_BYTES = 64 << 20  # an item's index images, kept while its other mask PNGs are read


def mask_memo() -> BoundedMemo[tuple[np.ndarray, ...]]:
    """A view's memo of each item's index images, drawn once for all the PNGs made from them."""
    return BoundedMemo(MASK_CACHE_BYTES, lambda masks: sum(m.nbytes for m in masks))


def spread_colour(k: int) -> tuple[int, int, int]:
    """Colour ``k`` of the VOC devkit's colour map: the bits of k spread over r, g, b from the top
    bit down. Past 255 it goes on the same way, distinct for every k below 2**24."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= (k & 1) << shift
        g |= ((k >> 1) & 1) << shift
        b |= ((k >> 2) & 1) << shift
        k >>= 3
    return (r, g, b)


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """The first ``n`` colours of the VOC devkit's colour map."""
    return [spread_colour(k) for k in range(n)]


PALETTE: list[int] = [v for rgb in voc_colormap() for v in rgb]


def check_drawable(where: str, width: int, height: int) -> None:
    """Refuse (NotRenderable) to draw a mask of an image too large for its labels to be read
    (``size_problem``): ``where`` names the item in the message."""
    too_large = size_problem((width, height))
    if too_large:
        raise NotRenderable(f"{where}: {too_large}: no mask is drawn")


def painted_layers(width: int, height: int, geometries: Sequence[Geometry],
                   layers: Sequence[tuple[Sequence[int], type[np.integer]]]) -> list[np.ndarray]:
    """Index images made in one rasterisation of each geometry: layer ``(values, dtype)`` holds
    ``values[i]`` where geometry i lies, later geometries over earlier ones, 0 elsewhere."""
    out = [np.zeros((height, width), dtype=dtype) for _, dtype in layers]
    for i, geometry in enumerate(geometries):
        mask = geometry_mask(geometry, width, height)
        if mask is None:
            continue
        for image, (values, _) in zip(out, layers):
            image[mask] = values[i]
    return out


def drawable_annotation(project: Project, item: Item) -> Annotation:
    """The item's annotation, to draw its masks from (NotRenderable when :func:`check_drawable` refuses)."""
    ann = project.annotation(item)
    check_drawable(f"{item.dataset}/{item.name}", ann.width, ann.height)
    return ann


def segmentation_arrays(ann: Annotation, labels: list[Label],
                        class_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """VOC's class and object index images; object k (1-based) is ``labels[k-1]``, painted in
    order (past ``MAX_OBJECT_INDEX`` an object paints 0 in the object image)."""
    cls, obj = painted_layers(ann.width, ann.height, [label.geometry for label in labels],
                              [([class_index[label.class_title] for label in labels], np.uint8),
                               ([k if k <= MAX_OBJECT_INDEX else 0 for k in range(1, len(labels) + 1)], np.uint8)])
    return cls, obj


def palette_png(indices: np.ndarray, palette: Sequence[int] = PALETTE) -> bytes:
    """A mode-P PNG of an index image; the palette (flat r, g, b…) defaults to the VOC colour map."""
    _check_size(indices.shape)
    height, width = indices.shape
    img = Image.frombytes("P", (width, height), np.ascontiguousarray(indices).tobytes())
    img.putpalette(palette)
    return _png(img)


def labelmap_text(background: str, names: list[str], colours: Sequence[tuple[int, int, int]] | None = None) -> bytes:
    """datumaro's labelmap.txt; colour k is ``colours[k]`` (0: the background's), by default the
    VOC colour map's, as in the mask palettes."""
    colors = voc_colormap(len(names) + 1) if colours is None else colours
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{n}:{','.join(map(str, colors[k]))}::" for k, n in enumerate([background, *names])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def background_name(names: Iterable[str]) -> str:
    """The name of index 0 in a label map: ``background``, with ``_`` in front until no class has it."""
    taken = set(names)
    name = "background"
    while name in taken:
        name = "_" + name
    return name


def painted_indices(width: int, height: int, shapes: Iterable[tuple[Label, int]],
                    dtype: type[np.unsignedinteger] = np.uint16) -> np.ndarray:
    """An index image of ``dtype`` (0 where nothing is painted): each label's pixels (RASTER) set
    to its value, in order, later over earlier; labels without area paint nothing."""
    pairs = list(shapes)
    (out,) = painted_layers(width, height, [label.geometry for label, _ in pairs], [([v for _, v in pairs], dtype)])
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _check_size(shape: tuple[int, ...]) -> None:
    if shape[0] == 0 or shape[1] == 0:
        raise NotRenderable("image size unknown (no readable image or annotation size): no mask can be drawn")


def gray_png(indices: np.ndarray) -> bytes:
    """A 1-channel PNG of an index image: 8-bit for ``uint8``, 16-bit for ``uint16`` (the integer
    masks of KITTI, Cityscapes' labelIds and instanceIds, MOTS, Open Images), values exactly as in
    the array."""
    _check_size(indices.shape)
    if indices.dtype == np.uint8:
        return _png(Image.fromarray(np.ascontiguousarray(indices)))
    if indices.dtype != np.uint16:
        raise TypeError(f"gray_png takes uint8 or uint16 indices, not {indices.dtype}")
    return _png(Image.fromarray(np.ascontiguousarray(indices, dtype="<u2")))


def rgb_png(indices: np.ndarray, colours: list[tuple[int, int, int]]) -> bytes:
    """An RGB PNG of an index image, index k painted ``colours[k]`` (exact, no antialiasing)."""
    _check_size(indices.shape)
    table = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    return _png(Image.fromarray(table[indices]))


def labelmap_name(title: str) -> str:
    """A class title as the first field of a ``name:r,g,b:parts:actions`` line: ``:`` and control
    characters become ``%XX``, as do leading/trailing blanks (the reader strips lines) and a
    leading ``#`` (a comment to it)."""
    return uncommented(text_field(title, lambda ch: line_unsafe(ch) or ch == ":"))


def labelmap_names(titles: Sequence[str]) -> list[str]:
    """:func:`labelmap_name` of each title, distinct for distinct titles."""
    return distinct_texts(titles, labelmap_name)
