"""The formats slyfs can show, by name. Adding a format is one module and one line here."""

from __future__ import annotations

from typing import Callable

from formats import yolo
from formats.model import Project
from formats.nodes import Node
from formats.view import ViewOptions

View = Callable[[Project, ViewOptions], dict[str, Node]]

FORMATS: dict[str, View] = {
    "yolo": yolo.build,
}
