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

from .test_lifecycle import mountinfo, processes_with, wait_until


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


def test_bind_option(shell_env: dict[str, str], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # writable for the build user: only the bind stops it
    (shared / "hello.txt").write_text("from the host\n")
    result = guestpkg_shell(shell_env, "--bind", f"{shared}:/srv/in", "--", "sh", "-c",
                            "cat /srv/in/hello.txt; touch /srv/in/x")
    assert result.stdout.splitlines() == ["from the host"], result.stderr
    assert "Read-only file system" in result.stderr
    assert not (shared / "x").exists()


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


def tree_state(tree: Path) -> dict[str, tuple[int, int, int]]:
    """Mode, size and mtime of every entry: cheap enough for a whole buildd root."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            state[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return state


def test_sigkill_mid_command_then_run_again(shell_env: dict[str, str], base_root: Any,
                                            test_config: Any) -> None:
    before_mounts, before_root = mountinfo(), tree_state(base_root.path)
    forks = test_config.vardir / "forks"

    def fork_dirs() -> set[Path]:
        return {p for p in forks.iterdir() if p.is_dir()} if forks.exists() else set()

    before_forks = fork_dirs()
    token = f"{900 + os.getpid() % 97}.5"  # a unique sleep argument to find it by
    guestpkg = subprocess.Popen(
        ["/usr/bin/python3", "-m", "guestpkg", "shell", "--as-root", "--", "sh", "-c",
         f"echo junk > /etc/junk; touch /usr/bin/junk; exec sleep {token}"],
        env=shell_env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: bool(processes_with(f"sleep{chr(0)}{token}")),
                   "the command to start")
        ours = fork_dirs() - before_forks  # (other test sessions may fork meanwhile)
        assert ours, "the killed run's fork is not under the vardir"
    finally:
        guestpkg.kill()
        guestpkg.wait()
    wait_until(lambda: not processes_with(f"sleep{chr(0)}{token}"), "the command to die")
    assert mountinfo() == before_mounts
    # the next run reaps the dead run's fork
    again = guestpkg_shell(shell_env, "--", "true")
    assert again.returncode == 0, again.stderr
    assert not ours & fork_dirs(), "the dead run's fork was not reaped"
    assert mountinfo() == before_mounts
    assert tree_state(base_root.path) == before_root
    assert not (base_root.path / "etc" / "junk").exists()
