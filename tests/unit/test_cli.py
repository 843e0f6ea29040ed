# SPDX-License-Identifier: GPL-2.0-or-later
"""The command table: every command module exists and has the agreed shape, --help
works for each, and errors become one line, a hint and an exit code."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from guestpkg import cli
from guestpkg.errors import ChecksumMismatch, UsageError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda c: c.name)
def test_command_module_shape(command: cli.Command) -> None:
    module = importlib.import_module(f"guestpkg.commands.{command.module}")
    assert callable(module.add_arguments) and callable(module.run)
    assert module.DESCRIPTION.strip()


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda c: c.name)
def test_help_of_every_command(command: cli.Command) -> None:
    result = subprocess.run([sys.executable, "-m", "guestpkg", command.name, "--help"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"guestpkg {command.name}" in result.stdout


def test_top_level_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "guestpkg", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    for command in cli.COMMANDS:
        assert command.name in result.stdout


def test_errors_print_one_line_and_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.report(ChecksumMismatch("http://x/y.tar.gz", "aa", "bb"))
    err = capsys.readouterr().err.splitlines()
    assert code == 3
    assert err[0] == "guestpkg: error: http://x/y.tar.gz: SHA256 mismatch: expected aa, got bb"
    assert err[1].startswith("guestpkg: hint: upstream may have re-rolled")
    assert cli.report(UsageError("bad")) == 2
