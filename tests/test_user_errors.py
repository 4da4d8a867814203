"""Every failure the user can act on shares one base, which the CLI prints as one bare line."""

from __future__ import annotations

from pathlib import Path

import pytest

from slyfs.formats.contract import UserError
from slyfs.formats.readers.supervisely import SourceError
from slyfs.formats.registry import UnknownFormat
from slyfs.formats.view import OptionError
from slyfs.vfs.cli import main
from slyfs.vfs.daemon import MountError
from slyfs.vfs.export import ExportError


@pytest.mark.parametrize("error", [OptionError, SourceError, UnknownFormat, MountError, ExportError])
def test_user_errors_share_one_base(error: type[Exception]) -> None:
    assert issubclass(error, UserError)


def test_cli_prints_a_user_error_as_its_message_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code = main(["mount", str(missing), str(tmp_path), "--log-file", str(tmp_path / "log")])
    assert code == 1
    assert capsys.readouterr().err == f"slyfs: {missing}: no such directory\n"
