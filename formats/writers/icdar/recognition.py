"""ICDAR word recognition view (``--format icdar-recognition``), as Datumaro's
``icdar_word_recognition`` reads it:

```
<subset>/gt.txt            <image file>, "<caption>"     one line per image; no caption: "<image file>, "
<subset>/images/<file>     the source image bytes
.README.slyfs.txt          only when meta.json declares no caption tag (hidden: the reader takes
                           every .txt of the root as an annotation file)
```
The caption is the image tag ``text`` (``--opt icdar-recognition.text-tag=NAME``), escaped as
formats/common/text_regions.py says. Objects have no place in the format: every one of a kept
class is reported as left out. Image names keep whitespace out (``%20``): the reader strips lines and
splits them at ``", "``.
"""

from __future__ import annotations

import functools
from collections import Counter

from slyfs.formats.common.labels import GEOMETRY_NAMES, report_left_out
from slyfs.formats.common.naming import spaceless_component
from slyfs.formats.common.splits import item_names
from slyfs.formats.common.tagged import HIDDEN_NOTE_FILE, missing_tags_note
from slyfs.formats.common.tags import find_tag
from slyfs.formats.common.text_regions import caption_text, subset_labels
from slyfs.formats.contract import Generated, Node, image_node
from slyfs.formats.layout import ItemFile, Layout, SplitFile, SplitItems
from slyfs.formats.model import Project
from slyfs.formats.view import FormatOption, ViewOptions, selected_classes

VIEW = "icdar-recognition"
TEXT_TAG = FormatOption(f"{VIEW}.text-tag", "image tag whose value is the image's caption", default="text")
OPTIONS = (TEXT_TAG,)


def layout(project: Project, options: ViewOptions) -> Layout:
    tag = options.param(TEXT_TAG)
    kept = {c.title for c in selected_classes(project, options)}
    opt_key = options.key()

    def gt_text(split: SplitItems) -> bytes:
        lines = []
        for item, name in zip(split.items, split.names):
            ann = project.annotation(item)
            found = find_tag(ann.tags, tag)
            value = found.value if found is not None else None
            lines.append(f'{name}, "{caption_text(str(value))}"\n' if value is not None else f"{name}, \n")
            report_left_out(project, item, VIEW, Counter(GEOMETRY_NAMES[type(label.geometry)]
                                                         for label in ann.labels if label.class_title in kept))
        return "".join(lines).encode("utf-8")

    def gt(split: SplitItems) -> Node:
        return Generated((VIEW, "gt", split.split, split.key, opt_key), functools.partial(gt_text, split))

    return Layout(
        static=missing_tags_note(project, VIEW, [(tag, "captions", TEXT_TAG.key)], HIDDEN_NOTE_FILE),
        per_split=(SplitFile(lambda label: f"{label}/gt.txt", gt),),
        per_item=(ItemFile(lambda label: f"{label}/images", lambda item, _name: image_node(item)),),
        names=functools.partial(item_names, escape=spaceless_component),
        split_labels=subset_labels)
