"""YOLO (Ultralytics) pose view: the ``yolo`` layout for the labels of one keypoint class.

```
data.yaml                  names: {0: <pose class>}, kpt_shape: [K, 3], flip_idx
images/<split>/<name>      the source image bytes
labels/<split>/<stem>.txt  ``0 cx cy w h`` + K × ``x y v`` per graph label, normalised
```
- The pose class is ``--opt pose.class=<title>``, else the first graph class of meta.json
  (among ``--classes``); data.yaml says which one and names the others. Each view has one
  keypoint template, because Ultralytics has one ``kpt_shape`` per dataset. Without any
  graph class the view holds only an unreadable data.yaml saying so.
- Keypoints follow the class template's node order, K = template size; a node the label
  lacks, or whose pixel is outside the image, is ``0 0 0``. A node is written at its pixel
  centre ``((x + 0.5) / width, (y + 0.5) / height)`` with v=2, or v=1 when disabled
  (``--opt pose.disabled=0`` writes disabled nodes as ``0 0 0``).
- The box is the clipped pixel box of the written nodes (as ``yolo`` computes boxes); a label
  with no node written is left out and reported.
- ``flip_idx`` pairs nodes whose labels differ only by left/right (``left_eye``/``right_eye``,
  ``eye_l``/``eye_r``, ``l_eye``/``r_eye``, ``LeftEye``/``RightEye``), identity otherwise.
"""

from __future__ import annotations

import re
from collections import Counter

from slyfs.formats.common.geometry import clipped_box, normalized_cxcywh
from slyfs.formats.common.labels import report_left_out
from slyfs.formats.common.text import yaml_str
from slyfs.formats.contract import Unavailable
from slyfs.formats.layout import Layout, StaticFile
from slyfs.formats.model import Graph, GraphNode, Item, ObjClass, Project
from slyfs.formats.view import FormatOption, OptionError, ViewOptions, selected_classes
from slyfs.formats.writers.yolo.shared import ultralytics_layout

SIDE_WORDS = (("left", "right"), ("l", "r"))
POSE_CLASS = FormatOption("pose.class", "title of the graph class whose keypoints are written; none: the first one",
                          default="")
POSE_DISABLED = FormatOption("pose.disabled", "1: disabled nodes get v=1; 0: written as 0 0 0",
                             default="1", choices=("0", "1"))


def pose_class(project: Project, options: ViewOptions) -> tuple[ObjClass | None, list[ObjClass]]:
    """The chosen graph class and every graph class that could have been chosen."""
    graphs = [c for c in selected_classes(project, options) if c.shape == "graph" and c.template is not None]
    wanted = options.param(POSE_CLASS)
    if not wanted:
        return (graphs[0] if graphs else None), graphs
    for c in graphs:
        if c.title == wanted:
            return c, graphs
    raise OptionError(f"pose.class={wanted!r} is not a graph class"
                      + (f"; graph classes: {', '.join(c.title for c in graphs)}" if graphs else "; there are none"))


def _swap_side(name: str) -> str | None:
    """``name`` with its left/right part swapped, or None when it has none. A side is a
    whole word: separated by ``_ - . space``, or a capitalised part of a camelCase name."""
    parts = re.split(r"([_\-. ]+|(?<=[a-z])(?=[A-Z]))", name)
    for i, part in enumerate(parts):
        low = part.lower()
        for a, b in SIDE_WORDS:
            if low in (a, b):
                other = b if low == a else a
                swapped = other.upper() if part.isupper() and len(part) > 1 else (
                    other.capitalize() if part[:1].isupper() else other)
                return "".join(parts[:i] + [swapped] + parts[i + 1:])
    return None


def flip_idx(names: list[str]) -> list[int]:
    """For each keypoint, the index of its mirror image (itself when it has none)."""
    index = {n.lower(): i for i, n in enumerate(names)}
    out = list(range(len(names)))
    for i, n in enumerate(names):
        other = _swap_side(n)
        j = index.get(other.lower()) if other else None
        back = _swap_side(names[j]) if j is not None else None
        if j is not None and back is not None and index.get(back.lower()) == i:
            out[i] = j
    return out


def _node_pixel_inside(node: GraphNode, width: int, height: int) -> bool:
    return 0 <= node.x < width and 0 <= node.y < height


def label_text(project: Project, item: Item, pose: ObjClass, write_disabled: bool) -> bytes:
    assert pose.template is not None
    ann = project.annotation(item)
    rows = []
    left_out: Counter[str] = Counter()
    for label in ann.labels:
        if label.class_title != pose.title or not isinstance(label.geometry, Graph):
            continue
        nodes = label.geometry.nodes
        written = {nid: n for nid, n in nodes.items()
                   if nid in pose.template.node_ids and _node_pixel_inside(n, ann.width, ann.height)
                   and (write_disabled or not n.disabled)}
        box = clipped_box(Graph(written), ann.width, ann.height)
        if box is None:
            left_out["graph without a keypoint in the image"] += 1
            continue
        values = [f"{v:.6f}" for v in normalized_cxcywh(box, ann.width, ann.height)]
        for nid in pose.template.node_ids:
            node = written.get(nid)
            if node is None:
                values += ["0", "0", "0"]
            else:
                values += [f"{min(node.x + 0.5, ann.width) / ann.width:.6f}",
                           f"{min(node.y + 0.5, ann.height) / ann.height:.6f}", "1" if node.disabled else "2"]
        rows.append("0 " + " ".join(values) + "\n")
    report_left_out(project, item, f"YOLO pose ({pose.title})", left_out)
    return "".join(rows).encode()


OPTIONS = (POSE_CLASS, POSE_DISABLED)


def layout(project: Project, options: ViewOptions) -> Layout:
    pose, candidates = pose_class(project, options)
    if pose is None or pose.template is None:
        missing = Unavailable("yolo-pose: the project has no graph (keypoint) class")
        return Layout(static=(StaticFile("data.yaml", lambda split_names: missing),))
    disabled = options.param(POSE_DISABLED)
    template = pose.template
    kpt_names = [label or nid for label, nid in zip(template.labels, template.node_ids)]
    others = [c.title for c in candidates if c is not pose]
    extra = [f"kpt_shape: [{len(template.node_ids)}, 3]",
             f"flip_idx: [{', '.join(str(i) for i in flip_idx(kpt_names))}]",
             f"kpt_names: {{0: [{', '.join(yaml_str(n) for n in kpt_names)}]}}",
             f"# keypoints of class {yaml_str(pose.title)} in template order"
             + (f"; other graph classes ({', '.join(others)}): --opt pose.class=<title>" if others else "")]
    return ultralytics_layout("yolo-pose", [pose.title], lambda item: label_text(project, item, pose, disabled == "1"),
                              (pose.title, template, options.key()), extra)
