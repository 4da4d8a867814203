"""The projects every format test mounts (both SDK fixtures and a generated ``--format-tags``
sample in each form), mounted once for a whole module, and the checks every reader's import of a
mounted view must pass."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from slyfs.formats.model import Project
from slyfs.formats.readers.supervisely import read_project
from tests.conftest import BLOB, PLAIN, fuse_usable, mounted
from tests.helpers.readers import ImportReport, datumaro_import_all, require
from tests.helpers.scripts import load_script

SAMPLE_IMAGES = 40
SOURCES = ("fixture-plain", "fixture-blob", "sample-plain", "sample-blob")


def sample_sources(tmp_path_factory: pytest.TempPathFactory, seed: int) -> dict[str, Path]:
    """Name in ``SOURCES`` → project root: the SDK fixtures (no format tags) and a 40-image
    ``--format-tags`` sample made with ``seed``, plain and blob."""
    make_project = load_script("make_sample_project").make_project
    root = tmp_path_factory.mktemp("samples")
    out = {"fixture-plain": PLAIN, "fixture-blob": BLOB}
    for form in ("plain", "blob"):
        out[f"sample-{form}"] = make_project(root / form, SAMPLE_IMAGES, form, seed=seed, format_tags=True)
    return out


def require_fuse() -> None:
    """Fail (not skip) where FUSE is missing: the end-to-end checks must not pass unseen."""
    if not fuse_usable():
        pytest.fail("FUSE is not usable here (/dev/fuse and libfuse 3 or 2 are required for the end-to-end tests)")


@contextlib.contextmanager
def mounted_sources(roots: Mapping[str, Path], fmt: str, *options: str) -> Iterator[dict[str, Path]]:
    """Every project of ``roots`` mounted as ``fmt`` at once, for a whole module: name → mountpoint."""
    require_fuse()
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(mounted(root, "--format", fmt, *options)) for name, root in roots.items()}


def mount_once(source: Path, fmt: str, *options: str) -> Iterator[tuple[Path, Path]]:
    """(mountpoint, its log) of one real mount of ``source`` in ``fmt``, for a parametrised module fixture."""
    require_fuse()
    with mounted(source, "--format", fmt, *options) as mnt:
        yield mnt, mnt.with_suffix(".log")


def assert_clean_import(report: ImportReport, expected_items: int | None = None, *,
                        no_warnings: bool = False) -> None:
    """What every import of a view must show: no item or annotation error, a readable image for
    every item, ``expected_items`` items (when given) and, with ``no_warnings``, no logged warning."""
    assert report.errors == []
    if no_warnings:
        assert report.warnings == []
    assert report.missing_media() == []
    if expected_items is not None:
        assert len(report.dataset) == expected_items


def sources_fixture(seed: int) -> Any:
    """A module fixture ``sources``: name in ``SOURCES`` → project root (samples made with ``seed``)."""

    @pytest.fixture(scope="module")
    def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        return sample_sources(tmp_path_factory, seed)

    return sources


def mounts_fixture(fmt: str, *options: str) -> Any:
    """A module fixture mounting every project of the module's ``sources`` fixture as ``fmt`` at
    once, for the whole module: name → mountpoint."""

    @pytest.fixture(scope="module")
    def mounts(sources: dict[str, Path]) -> Iterator[dict[str, Path]]:
        with mounted_sources(sources, fmt, *options) as mnts:
            yield mnts

    return mounts


def each_mount_fixture(fmt: str, *options: str) -> Any:
    """A module fixture parametrised over ``SOURCES`` that mounts one project of the module's
    ``sources`` fixture at a time as ``fmt``: (project root, mountpoint, its log)."""

    @pytest.fixture(scope="module", params=SOURCES)
    def mounted_each(request: pytest.FixtureRequest, sources: dict[str, Path]) -> Iterator[tuple[Path, Path, Path]]:
        source = sources[request.param]
        for mnt, log in mount_once(source, fmt, *options):
            yield source, mnt, log

    return mounted_each


def tagged(source: Path) -> bool:
    """Whether ``source`` is a generated ``--format-tags`` sample (the SDK fixtures have no format tags)."""
    return source not in (PLAIN, BLOB)


def imports_fixture(importer: str) -> Any:
    """A module fixture: Datumaro's ``importer`` run once over each mount of the module's ``mounts``
    fixture, name → ImportReport."""

    @pytest.fixture(scope="module")
    def imports(mounts: dict[str, Path]) -> dict[str, ImportReport]:
        require("datumaro")
        return {name: datumaro_import_all(mnt, importer) for name, mnt in mounts.items()}

    return imports


def views_fixture() -> Any:
    """A module fixture: each mount of the module's ``mounts`` fixture with the reader's model of
    its source, name → (mountpoint, Project)."""

    @pytest.fixture(scope="module")
    def views(sources: dict[str, Path], mounts: dict[str, Path]) -> dict[str, tuple[Path, Project]]:
        return {name: (mnt, read_project(str(sources[name]))) for name, mnt in mounts.items()}

    return views


def plain_twin(source: Path) -> Path:
    """The plain project with the same images and annotations as ``source``: itself, the plain SDK
    fixture for the blob one, the plain sample beside a blob sample (both made with one seed)."""
    if source == BLOB:
        return PLAIN
    return source.parent / "plain" if tagged(source) and source.name == "blob" else source
