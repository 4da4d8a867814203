"""Index images and their palettes: class and instance masks painted from the labels, the
VOC colour map every palette-mask format uses (VOC, Segmentation Mask, CamVid, Cityscapes'
colour PNGs), PNG encoding and datumaro's ``labelmap.txt``."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image

from slyfs.formats.common.naming import distinct_texts, line_unsafe, text_field, uncommented
from slyfs.formats.common.raster import geometry_mask
from slyfs.formats.contract import NotRenderable
from slyfs.formats.model import Annotation, Label
from slyfs.formats.readers.supervisely.annotation import size_problem

MAX_OBJECT_INDEX = 254  # 255 is VOC's "void" index


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


def segmentation_arrays(ann: Annotation, labels: list[Label],
                        class_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Class and object index images; object k (1-based) is ``labels[k-1]``, painted in order."""
    cls = np.zeros((ann.height, ann.width), dtype=np.uint8)
    obj = np.zeros((ann.height, ann.width), dtype=np.uint8)
    for k, label in enumerate(labels, 1):
        mask = geometry_mask(label.geometry, ann.width, ann.height)
        if mask is None:
            continue
        cls[mask] = class_index[label.class_title]
        obj[mask] = k if k <= MAX_OBJECT_INDEX else 0
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
    out = np.zeros((height, width), dtype=dtype)
    for label, value in shapes:
        mask = geometry_mask(label.geometry, width, height)
        if mask is not None:
            out[mask] = value
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
