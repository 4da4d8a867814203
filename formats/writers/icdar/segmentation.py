"""ICDAR text segmentation view (``--format icdar-segmentation``), as Datumaro's
``icdar_text_segmentation`` reads it:

```
<subset>/<id>_GT.txt       per object: R G B cx cy x1 y1 x2 y2 "text", then a blank line (each
                           object its own word); a text of one space: #R G B … " "
<subset>/<id>_GT.bmp       RGB: each object's pixels in its own colour, background white
<subset>/images/<id><ext>  the source image bytes
.README.slyfs.txt          only when meta.json declares no transcription tag (hidden, as in
                           the other ICDAR views)
```
An object is written when its class is kept, it has a ``text`` tag (``--opt
icdar-segmentation.text-tag=NAME``) and an area geometry: its pixels painted as the other mask views
paint them, later objects on top; colour k is the VOC colour map's k-th (never white); the box
is the edge box of its extent in the image, the centre the box's. The others are reported as left out.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from slyfs.formats.common.geometry import clipped_box, coordinate_text
from slyfs.formats.common.labels import report_left_out
from slyfs.formats.common.masks import check_drawable, painted_indices, voc_colormap
from slyfs.formats.common.naming import split_ext
from slyfs.formats.common.raster import has_area
from slyfs.formats.common.tagged import HIDDEN_NOTE_FILE, missing_tags_note
from slyfs.formats.common.text_regions import affixed_names, char_text, subset_labels, transcribed
from slyfs.formats.contract import Generated, Node, NotRenderable, image_node
from slyfs.formats.layout import ItemFile, Layout
from slyfs.formats.model import Annotation, Geometry, Item, Label, Project
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "icdar-segmentation"
TEXT_TAG = FormatOption(f"{VIEW}.text-tag", "object tag whose value is the object's characters", default="text")
OPTIONS = (TEXT_TAG,)
WHITE = (255, 255, 255)


def character_colors(n: int) -> list[tuple[int, int, int]]:
    """Colours of objects 1..n (index 0: the white background): distinct, none white."""
    return [WHITE, *voc_colormap(n + 1)[1:]]


def in_image(ann: Annotation) -> functools.partial[bool]:
    return functools.partial(_has_pixels_inside, width=ann.width, height=ann.height)


def _has_pixels_inside(geometry: Geometry, width: int, height: int) -> bool:
    return has_area(geometry) and clipped_box(geometry, width, height) is not None


def gt_lines(ann: Annotation, labels: list[tuple[Label, str]]) -> str:
    """The ``<id>_GT.txt`` text of the written objects, object k in colour k."""
    colors = character_colors(len(labels))
    out = []
    for k, (label, text) in enumerate(labels, 1):
        box = clipped_box(label.geometry, ann.width, ann.height)
        assert box is not None  # in_image said so
        x1, y1, x2, y2 = box
        rgb = " ".join(map(str, colors[k]))
        fields = " ".join(map(coordinate_text, ((x1 + x2) / 2, (y1 + y2) / 2, *box)))
        out.append(f'#{rgb} {fields} " "' if text == " " else f'{rgb} {fields} "{char_text(text)}"')
    return "".join(f"{line}\n\n" for line in out)


def gt_bmp(ann: Annotation, labels: list[tuple[Label, str]], where: str) -> bytes:
    """The colour image of the written objects (object k in colour k, later ones on top)."""
    if ann.width <= 0 or ann.height <= 0:
        raise NotRenderable(f"{where}: image size unknown: no mask can be drawn")
    check_drawable(where, ann.width, ann.height)
    index = painted_indices(ann.width, ann.height, [(label, k) for k, (label, _) in enumerate(labels, 1)], np.uint32)
    rgb = np.asarray(character_colors(len(labels)), dtype=np.uint8)[index]
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="BMP")
    return buf.getvalue()


def layout(project: Project, options: ViewOptions) -> Layout:
    tag = options.param(TEXT_TAG)
    kept = {c.title for c in selected_classes(project, options)}
    base_key = (VIEW, options.key(), tuple(sorted(kept)))

    def written(item: Item, report: bool) -> tuple[Annotation, list[tuple[Label, str]]]:
        ann = project.annotation(item)
        labels, left_out = transcribed(ann.labels, kept, tag, in_image(ann))
        if report:
            report_left_out(project, item, VIEW, left_out)
        return ann, labels

    def txt_bytes(item: Item) -> bytes:
        return gt_lines(*written(item, True)).encode("utf-8")

    def bmp_bytes(item: Item) -> bytes:
        return gt_bmp(*written(item, False), f"{item.dataset}/{item.name}")

    def txt(item: Item, _name: str) -> Node:
        return Generated((*base_key, "txt", *_item_key(item)), functools.partial(txt_bytes, item))

    def bmp(item: Item, _name: str) -> Node:
        return Generated((*base_key, "bmp", *_item_key(item)), functools.partial(bmp_bytes, item))

    return Layout(
        static=missing_tags_note(project, VIEW, [(tag, "transcriptions", TEXT_TAG.key)], HIDDEN_NOTE_FILE),
        per_item=(ItemFile(lambda label: f"{label}/images", lambda item, _name: image_node(item)),
                  ItemFile(lambda label: label, txt, lambda name: f"{split_ext(name)[0]}_GT.txt"),
                  ItemFile(lambda label: label, bmp, lambda name: f"{split_ext(name)[0]}_GT.bmp")),
        names=affixed_names(len("_GT")),
        split_labels=subset_labels)


def _item_key(item: Item) -> tuple:
    return (item.dataset, item.name, item.fingerprint)
