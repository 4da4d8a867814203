"""slyfs installs as ``slyfs.formats`` and ``slyfs.vfs`` only: nothing named ``formats`` or ``vfs``
at the top of site-packages, and no module of the checkout imports them by those names (the same
file loaded twice, as ``formats.x`` and ``slyfs.formats.x``, would hold two copies of its state)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE_IMPORT = re.compile(r"^\s*(from|import)\s+(formats|vfs)(\.|\s|$)", re.M)


def python_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True).stdout.split()
    files = [REPO / f for f in tracked if not f.startswith("tests/fixtures/")]
    return files or [p for p in REPO.rglob("*.py") if "fixtures" not in p.parts]


def test_no_module_imports_formats_or_vfs_by_their_bare_names() -> None:
    files = python_files()
    assert len(files) > 40  # the walk found the checkout
    offenders = [f"{f.relative_to(REPO)}: {m.group(0).strip()}" for f in files
                 for m in BARE_IMPORT.finditer(f.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_installed_package_has_only_slyfs_names() -> None:
    probe = ("import importlib.util, sys; "
             "print([n for n in ('formats', 'vfs') if importlib.util.find_spec(n)], "
             "importlib.util.find_spec('slyfs.formats.registry') is not None, "
             "importlib.util.find_spec('slyfs.vfs.cli') is not None)")
    out = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True True"


def test_the_console_script_runs_the_slyfs_cli() -> None:
    r = subprocess.run(["slyfs", "--help"], cwd="/", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "mount" in r.stdout and "export" in r.stdout
    assert importlib.util.find_spec("slyfs.vfs.cli") is not None


READER_IMPORT = re.compile(r"^\s*(from|import)\s+slyfs\.formats\.readers(\.|\s|$)", re.M)


# where a source is opened (mount, export, the Python API), what its name opens to, and check
COMPOSITION = ("opening.py", "sources.py", "cli.py")


def test_vfs_imports_no_reader_but_in_the_composition() -> None:
    """vfs/ serves any source through formats/contract.py; only the composition picks the reader
    (vfs/opening.py, vfs/sources.py, and the CLI's check command), so a new kind of source plugs in without the
    rest of vfs/ knowing its layout."""
    modules = sorted((REPO / "vfs").glob("*.py"))
    assert len(modules) > 5 and all(REPO / "vfs" / name in modules for name in COMPOSITION)  # the walk found vfs/
    offenders = [f"{f.relative_to(REPO)}: {m.group(0).strip()}" for f in modules if f.name not in COMPOSITION
                 for m in READER_IMPORT.finditer(f.read_text(encoding="utf-8"))]
    assert offenders == []
