# SPDX-License-Identifier: GPL-2.0-or-later
"""apt-hooks/: the Post-Invoke string and the shell hook, run the way apt runs them
(``sh -c STRING``), against a temporary state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HOOK = REPO / "apt-hooks" / "apt-post-invoke"


def snippet_command(hook: Path) -> str:
    text = (REPO / "apt-hooks" / "90guestpkg").read_text()
    assert text.count("DPkg::Post-Invoke") == 1
    command: str = json.loads(text[text.index('{ "') + 2:text.rindex('"; }') + 1])
    assert command.startswith("test -x /usr/lib/guestpkg/apt-post-invoke && ")
    assert command.endswith(" || true")
    return command.replace("/usr/lib/guestpkg/apt-post-invoke", str(hook))


def recorder(tmp_path: Path, status: int = 0) -> Path:
    """A stand-in for /usr/bin/guestpkg that records how it was called."""
    script = tmp_path / "guestpkg"
    script.write_text(f'#!/bin/sh\necho "$* active=$GUESTPKG_HOOK_ACTIVE" >> {tmp_path}/calls\n'
                      f"exit {status}\n")
    script.chmod(0o755)
    return script


def run_as_apt(tmp_path: Path, hook: Path = HOOK, **env: str) -> int:
    environment = {"PATH": "/usr/bin:/bin", "GUESTPKG_VARDIR": str(tmp_path / "var"),
                   "GUESTPKG_COMMAND": str(recorder(tmp_path, int(env.pop("STATUS", "0")))),
                   **env}
    return subprocess.run(["sh", "-c", snippet_command(hook)], env=environment).returncode


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_nothing_pending_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "var" / "pending").mkdir(parents=True)
    assert run_as_apt(tmp_path) == 0
    assert calls(tmp_path) == []


def test_no_state_directory_at_all(tmp_path: Path) -> None:
    assert run_as_apt(tmp_path) == 0
    assert calls(tmp_path) == []


def test_pending_host_runs_guestpkg_once_with_the_guard(tmp_path: Path) -> None:
    pending = tmp_path / "var" / "pending"
    pending.mkdir(parents=True)
    (pending / "a-installer").touch()
    (pending / "b-installer").touch()
    assert run_as_apt(tmp_path) == 0
    assert calls(tmp_path) == ["hook post-invoke active=1"]


def test_recursion_guard(tmp_path: Path) -> None:
    pending = tmp_path / "var" / "pending"
    pending.mkdir(parents=True)
    (pending / "a-installer").touch()
    assert run_as_apt(tmp_path, GUESTPKG_HOOK_ACTIVE="1") == 0
    assert calls(tmp_path) == []


def test_a_failing_hook_never_fails_apt(tmp_path: Path) -> None:
    pending = tmp_path / "var" / "pending"
    pending.mkdir(parents=True)
    (pending / "a-installer").touch()
    assert run_as_apt(tmp_path, STATUS="3") == 0
    assert calls(tmp_path) == ["hook post-invoke active=1"]


def test_a_missing_hook_never_fails_apt(tmp_path: Path) -> None:
    assert run_as_apt(tmp_path, hook=tmp_path / "gone") == 0


def test_bench_runs_and_reports(tmp_path: Path) -> None:
    # No timing assertion: the figures are for the report; this checks the bench works.
    result = subprocess.run([sys.executable, str(REPO / "bench" / "hook.py"), "--runs", "5",
                             "--json"], capture_output=True, text=True)
    figures = json.loads(result.stdout)
    assert figures["runs"] == 5 and figures["hook_median_ms"] > 0 and figures["ratio"] > 0
