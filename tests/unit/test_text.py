# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.text and where it is used: escape sequences from an upstream or a build
never reach the terminal or the state raw (issue 10, finding 8)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guestpkg import cli
from guestpkg.commands import status
from guestpkg.config import Config
from guestpkg.errors import BuildFailed, NetworkError
from guestpkg.host import lifecycle
from guestpkg.host.state import HostState
from guestpkg.log import setup_logging
from guestpkg.text import one_line, printable, printable_bytes

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "a\x1b]0;owned\x07b\x1b[2J\rc\x9b31m\u202ed\x7f"


def test_printable_escapes_controls_and_keeps_newline_and_tab() -> None:
    assert printable(HOSTILE + "\n\tnext") == (
        "a\\x1b]0;owned\\x07b\\x1b[2J\\x0dc\\x9b31m\\u202ed\\x7f\n\tnext")
    assert printable("plain text, ünïcödé, 東京 -> ok") == "plain text, ünïcödé, 東京 -> ok"


def test_one_line_escapes_newlines_too() -> None:
    assert one_line("fine\nguestpkg: installed\tok") == "fine\\x0aguestpkg: installed\\x09ok"


def test_printable_bytes_keeps_invalid_utf8_visible() -> None:
    assert printable_bytes(b"\x1b[31mred\xff\n") == b"\\x1b[31mred\\xff\n"


def test_error_report_escapes_message_hint_and_output(capsys: pytest.CaptureFixture[str]) -> None:
    error = BuildFailed(f"build of {HOSTILE} failed", Path(f"/tmp/{HOSTILE}.build"),
                        output_tail=f"make: {HOSTILE}\nError 1")
    assert cli.report(error) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err and "\x9b" not in err
    assert "\u202e" not in err
    assert "build of a\\x1b]0;owned\\x07b" in err
    assert "make: a\\x1b]0;owned" in err and "\nError 1\n" in err


def test_console_and_log_lines_are_escaped(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging(Config.defaults(logdir=tmp_path), verbose=1)
        logging.getLogger("guestpkg.fetch.transport").info("redirect: %s", HOSTILE)
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "redirect: a\\x1b]0;owned\\x07b" in err and "\x1b" not in err
    logged = (tmp_path / "guestpkg.log").read_text()
    assert "a\\x1b]0;owned" in logged and "\x1b" not in logged


def test_the_hooks_line_in_apt_output_is_one_escaped_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    lifecycle.say(NetworkError(f"http://x/{HOSTILE}\nguestpkg: fake line").message)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert "\\x0aguestpkg: fake line" in err


def test_the_state_keeps_the_last_error_escaped() -> None:
    state = HostState("foo-installer")
    state.record_failure(f"fetch failed: {HOSTILE}\nsecond line", now=1000.0,
                         retry_delay_s=60.0, permanent_after_s=86400.0)
    assert "\x1b" not in state.failure.last_error
    assert "\n" not in state.failure.last_error
    assert state.failure.last_error.startswith("fetch failed: a\\x1b]0;owned\\x07b")


def test_status_escapes_what_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    row: dict[str, Any] = {
        "host": "foo-installer", "state": "waiting to retry", "consent": True,
        "guest_package": "foo", "bundled_version": f"1.0{HOSTILE}",
        "built_version": None, "installed_version": None, "in_progress": None,
        "failures": 1, "last_error": f"raw {HOSTILE}", "next_retry": "soon"}
    status._print_row(row)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "last error (1 failures): raw a\\x1b]0;owned" in out


def test_build_output_teed_to_the_console_is_escaped(tmp_path: Path) -> None:
    """A real command through the one gateway (run.run with tee): what it prints
    reaches our stderr escaped; the log keeps the bytes as written."""
    script = (
        "import sys; from pathlib import Path; from guestpkg.run import run; "
        "run(['printf', r'\\033]0;owned\\007building\\033[2J\\n'], "
        "log_path=Path(sys.argv[1]), tee=True)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.build")],
                          cwd=REPO, capture_output=True, check=True)
    assert b"\x1b" not in done.stderr and b"\x07" not in done.stderr
    assert b"\\x1b]0;owned\\x07building\\x1b[2J\n" in done.stderr
    assert b"\x1b]0;owned\x07building" in (tmp_path / "x.build").read_bytes()
