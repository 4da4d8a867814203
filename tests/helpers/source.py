"""A Supervisely project's annotations read straight from its JSON files, for tests that compute
what a view must hold without the reader or the writers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceAnnotation:
    dataset: str  # "train/sub" for a nested dataset (the "datasets/" folders left out)
    name: str  # the item name, extension included
    data: dict  # the parsed annotation JSON

    @property
    def top(self) -> str:
        return self.dataset.split("/", 1)[0]


def source_annotations(root: Path) -> Iterator[SourceAnnotation]:
    """Every ``ann/<item>.json`` under ``root``, in path order."""
    for path in sorted(root.rglob("ann/*.json")):
        parts = path.parent.parent.relative_to(root).parts
        dataset = "/".join(p for i, p in enumerate(parts) if not (i % 2 and p == "datasets"))
        yield SourceAnnotation(dataset, path.name[: -len(".json")], json.loads(path.read_text(encoding="utf-8")))


def meta_of(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text(encoding="utf-8"))


def renamed_copy(source: Path, dest: Path, renames: dict[str, str]) -> Path:
    """A copy of project ``source`` at ``dest`` with top-level datasets renamed (old → new)."""
    shutil.copytree(source, dest)
    for old, new in renames.items():
        (dest / old).rename(dest / new)
    return dest


def write_tree(files: Mapping[str, bytes], dest: Path) -> Path:
    """A view's files (path → bytes) written under ``dest``, for readers that want a real folder."""
    for path, data in files.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest
