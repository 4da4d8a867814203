"""Each format's ``--opt`` settings, declared once as a FormatOption: a bad value is refused in
one place (before anything is mounted or written), the defaults change nothing, and
``mount --help`` / ``export --help`` list every option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slyfs.formats.readers.supervisely import read_project
from slyfs.formats.registry import FORMATS, build_view, check_params, format_options
from slyfs.formats.view import FormatOption, OptionError, ViewOptions
from slyfs.vfs.cli import main
from slyfs.vfs.tree import VirtualTree
from tests.conftest import BLOB, PLAIN

DECLARED = [(name, option) for name in FORMATS for option in format_options(name)]
CHOICE_OPTIONS = [(name, option) for name, option in DECLARED if option.choices is not None]

# The one line each refused value gets, written out: the message is part of the interface.
REFUSED = {
    "coco.disabled_visibility": "--opt coco.disabled_visibility='7': accepted values are 0, 1, 2",
    "pose.disabled": "--opt pose.disabled='7': accepted values are 0, 1",
    "voc.jpeg": "--opt voc.jpeg='7': accepted values are 0, 1",
    "cityscapes.instance-ids": "--opt cityscapes.instance-ids='7': accepted values are instances, classes",
    "cvat.cuboid-attributes": "--opt cvat.cuboid-attributes='7': accepted values are 0, 1",
    "imagenet.layout": "--opt imagenet.layout='7': accepted values are folders, txt",
}


def rendered(root: Path, name: str, params: dict[str, str]) -> dict[str, bytes]:
    tree = VirtualTree(build_view(read_project(str(root)), [name], ViewOptions(params=params)))
    return {path: tree.read_file(path) for path in tree.walk_files()}


def test_every_option_with_choices_has_its_refusal_written_out() -> None:
    assert {option.key for _, option in CHOICE_OPTIONS} == set(REFUSED)


@pytest.mark.parametrize(("name", "option"), CHOICE_OPTIONS, ids=[o.key for _, o in CHOICE_OPTIONS])
def test_a_bad_value_is_refused_up_front_with_one_line(name: str, option: FormatOption) -> None:
    with pytest.raises(OptionError) as refused:
        check_params([name], {option.key: "7"})
    assert str(refused.value) == REFUSED[option.key]
    # the same check, and the same line, when a view is built without the command line
    with pytest.raises(OptionError) as at_build:
        build_view(read_project(str(BLOB)), [name], ViewOptions(params={option.key: "7"}))
    assert str(at_build.value) == REFUSED[option.key]


@pytest.mark.parametrize(("name", "option"), DECLARED, ids=[o.key for _, o in DECLARED])
def test_every_accepted_value_passes_the_check(name: str, option: FormatOption) -> None:
    for value in option.choices or ("any title",):
        check_params([name], {option.key: value})


def test_an_unknown_key_is_still_refused_before_any_value() -> None:
    with pytest.raises(OptionError, match=r"^unknown --opt voc\.jpg for voc; valid: voc\.jpeg \("):
        check_params(["voc"], {"voc.jpg": "7", "voc.jpeg": "7"})


@pytest.mark.parametrize("root", [PLAIN, BLOB], ids=["plain", "blob"])
@pytest.mark.parametrize("name", sorted({name for name, _ in DECLARED}))
def test_the_defaults_given_explicitly_change_no_byte(root: Path, name: str) -> None:
    defaults = {option.key: option.default for option in format_options(name)}
    assert rendered(root, name, defaults) == rendered(root, name, {})


@pytest.mark.parametrize("command", ["mount", "export"])
def test_help_lists_every_option_with_its_values_default_and_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    for name, option in DECLARED:
        head = f"  {option.key}={option.accepted()}  ({name}; default {option.default or 'none'})"
        assert head in lines
        assert lines[lines.index(head) + 1] == f"      {option.help}"


def test_parsing_a_command_line_imports_no_format() -> None:
    """Only printing help gathers the options; a mount of one format imports that one alone."""
    code = ("import sys; from slyfs.vfs.cli import parser; parser().parse_args(['export', 'src', 'dest']); "
            "print(sorted(m for m in sys.modules if m.startswith('slyfs.formats.writers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_export_refuses_a_bad_value_before_writing(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "out"
    status = main(["export", str(BLOB), str(dest), "--format", "coco", "--opt", "coco.disabled_visibility=7"])
    assert status == 1 and not dest.exists()
    assert capsys.readouterr().err == f"slyfs: {REFUSED['coco.disabled_visibility']}\n"
