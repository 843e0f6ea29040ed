# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg shell``: commands and an interactive shell in a throwaway fork of a real
buildd base root (the ``base_root`` fixture), as the build user."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def shell_env(base_root: Any, test_config: Any, repo: Path) -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(repo),
            "GUESTPKG_VARDIR": str(test_config.vardir),
            "GUESTPKG_LOGDIR": str(test_config.logdir),
            "GUESTPKG_CONFDIR": str(test_config.vardir.parent / "etc")}


def guestpkg_shell(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "shell", *argv], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_command_runs_sandboxed_as_the_build_user(shell_env: dict[str, str],
                                                  base_root: Any) -> None:
    result = guestpkg_shell(
        shell_env, "--", "sh", "-c",
        "id -un; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
        "touch $HOME/written && echo wrote; exit 3")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == base_root.build_user
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines and "Seccomp:\t2" in lines
    assert "wrote" in lines
    # thrown away: neither the base root nor the next fork has it
    assert not (base_root.path / "home" / base_root.build_user / "written").exists()
    again = guestpkg_shell(shell_env, "--", "sh", "-c", "test -e $HOME/written")
    assert again.returncode == 1, again.stderr


def test_network_only_when_asked(shell_env: dict[str, str]) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"
    try:
        closed = guestpkg_shell(shell_env, "--", "bash", "-c", probe)
        assert closed.returncode != 0 and "connected" not in closed.stdout
        opened = guestpkg_shell(shell_env, "--network", "--", "bash", "-c", probe)
        assert opened.returncode == 0 and "connected" in opened.stdout, opened.stderr
        assert "relaxation" in opened.stderr and "network" in opened.stderr
    finally:
        server.close()


def test_interactive_shell_on_a_terminal(shell_env: dict[str, str]) -> None:
    import pty

    pid, master = pty.fork()
    if pid == 0:
        os.execve("/usr/bin/python3",
                  ["python3", "-m", "guestpkg", "shell", "--", "/bin/sh", "-i"], shell_env)
    os.write(master, b"echo answer=$((6*7)); exit 5\n")
    output = b""
    deadline = time.monotonic() + 120  # a hang guard only
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert b"answer=42" in output, output
    assert os.waitstatus_to_exitcode(status) == 5, output
