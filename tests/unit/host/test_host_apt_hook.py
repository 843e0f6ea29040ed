# SPDX-License-Identifier: GPL-2.0-or-later
"""apt-hooks/: the Post-Invoke string and the shell hook, run the way apt runs them
(``sh -c STRING``), against a temporary state directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guestpkg import config

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


# -- the vardir of guestpkg.conf reaches the shell entry points --------------------------

PENDING_SH = REPO / "apt-hooks" / "pending.sh"


def configured(tmp_path: Path, *files: tuple[str, str]) -> dict[str, str]:
    """An environment whose only guestpkg setting is a configuration directory
    holding *files* (name relative to it, text)."""
    confdir = tmp_path / "etc"
    (confdir / "guestpkg.conf.d").mkdir(parents=True, exist_ok=True)
    for name, text in files:
        (confdir / name).write_text(text)
    return {"PATH": "/usr/bin:/bin", "GUESTPKG_CONFDIR": str(confdir)}


def test_the_hook_finds_the_vardir_of_guestpkg_conf(tmp_path: Path) -> None:
    # Without it, a vardir set in guestpkg.conf was invisible to the hook: the marker
    # was written there, the hook looked in /var/lib/guestpkg, no build ever started.
    env = configured(tmp_path, ("guestpkg.conf.d/50-local.conf",
                                f"vardir = {tmp_path}/elsewhere\n"))
    (tmp_path / "elsewhere" / "pending").mkdir(parents=True)
    (tmp_path / "elsewhere" / "pending" / "a-installer").touch()
    env["GUESTPKG_COMMAND"] = str(recorder(tmp_path))
    assert subprocess.run(["sh", "-c", snippet_command(HOOK)], env=env).returncode == 0
    assert calls(tmp_path) == ["hook post-invoke active=1"]


def test_cron_daily_finds_the_vardir_of_guestpkg_conf(tmp_path: Path) -> None:
    env = configured(tmp_path, ("guestpkg.conf", f'VarDir = "{tmp_path}/elsewhere"\n'))
    script = (REPO / "apt-hooks" / "cron.daily").read_text()
    for installed, here in (("/usr/lib/guestpkg/pending.sh", str(PENDING_SH)),
                            ("/usr/bin/guestpkg", str(recorder(tmp_path))),
                            ("/run/systemd/system", str(tmp_path / "no-systemd"))):
        assert installed in script
        script = script.replace(installed, here)
    cron = tmp_path / "cron.daily"
    cron.write_text(script)
    assert subprocess.run(["sh", str(cron)], env=env).returncode == 0
    assert calls(tmp_path) == []
    (tmp_path / "elsewhere" / "pending").mkdir(parents=True)
    (tmp_path / "elsewhere" / "pending" / "a-installer").touch()
    assert subprocess.run(["sh", str(cron)], env=env).returncode == 0
    assert calls(tmp_path) == ["hook job active="]


@pytest.mark.parametrize(("files", "environ"), [
    ((), {}),
    ((("guestpkg.conf", "vardir = /srv/a\n"),), {}),
    ((("guestpkg.conf", "# vardir = /srv/no\n  VARDIR=  \"/srv/b\"  \r\n"),), {}),
    ((("guestpkg.conf", "vardir = /srv/a\nvardir = /srv/c"),), {}),
    ((("guestpkg.conf", "vardir = /srv/a\n"),
      ("guestpkg.conf.d/10-x.conf", "vardir = /srv/d\n"),
      ("guestpkg.conf.d/20-y.conf", "timeout = 5m\n"),
      ("guestpkg.conf.d/30-z.conf.disabled", "vardir = /srv/no\n")), {}),
    ((("guestpkg.conf.d/10-x.conf", "vardir = /srv/d\n"),
      ("guestpkg.conf.d/20-y.conf", "vardir = /srv/e\n")), {}),
    ((("guestpkg.conf", "vardir = /srv/a\n"),), {"GUESTPKG_VARDIR": "/srv/env"}),
    ((("guestpkg.conf", "vardir = /srv/with space\n"),), {}),
])
def test_shell_and_python_agree_on_the_vardir(tmp_path: Path, files: tuple[tuple[str, str], ...],
                                              environ: dict[str, str]) -> None:
    env = {**configured(tmp_path, *files), **environ}
    shell = subprocess.run(
        ["sh", "-c", f'. {PENDING_SH} && guestpkg_vardir && printf %s "$guestpkg_vardir"'],
        env=env, capture_output=True, text=True, check=True).stdout
    assert Path(shell) == config.load(environ=env).vardir
