"""YOLO (Ultralytics) detection view.

```
data.yaml                  names in meta.json order (or --classes order), no ``path:`` key
images/<split>/<name>      the source image bytes
labels/<split>/<stem>.txt  ``class cx cy w h`` per object with an extent, normalised
```
Every geometry with an extent is written as the box of the pixels it covers, cut to the
image; a point has none and is left out (counted in the log).
"""

from __future__ import annotations

from slyfs.formats.layout import Layout
from slyfs.formats.model import Project
from slyfs.formats.view import ViewOptions
from slyfs.formats.writers.yolo.shared import BOXES_TITLE, box_rows, class_layout


def layout(project: Project, options: ViewOptions) -> Layout:
    return class_layout(project, options, "yolo", BOXES_TITLE, box_rows)
