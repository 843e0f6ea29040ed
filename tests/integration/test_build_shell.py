# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --shell-on-failure, driven through a pseudo-terminal as a user
would: the tiny package's build fails, a shell opens in the failed build's fork as
the build user, in the build's sandbox (no network), the test types commands and
``exit``, the build ends failed, and the fork is gone."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guestpkg.buildroot import BaseRoot
from guestpkg.buildroot.forks import forks_dir
from guestpkg.config import Config
from tests.integration.test_build_failures import REPO, make_tiny

pytestmark = [pytest.mark.integration]


def read_until(fd: int, buffer: bytearray, pattern: bytes, timeout_s: float) -> bool:
    """Read *fd* into *buffer* until *pattern* is in it (True), EOF or the time is up."""
    deadline = time.monotonic() + timeout_s
    while pattern not in buffer:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        try:
            chunk = os.read(fd, 65536)
        except OSError:           # EIO: the other side closed the terminal
            return False
        if not chunk:
            return False
        buffer += chunk
    return True


def test_shell_on_failure_in_the_failed_fork_through_a_pty(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src", build="@echo left-by-build > built-marker; exit 1")
    env = {**os.environ, "GUESTPKG_VARDIR": str(test_config.vardir),
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO),
           "TERM": "dumb"}
    argv = [sys.executable, "-m", "guestpkg", "build", "--quiet-build",
            "--shell-on-failure", str(tree), str(tmp_path / "out")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: guestpkg on the pty's slave side
        os.execve(sys.executable, argv, env)
    output = bytearray()
    try:
        assert read_until(fd, output, b"exit it to end the build", 300), output.decode(
            errors="replace")
        # the shell's prompt, then the commands a user would type
        assert read_until(fd, output, b"$ ", 60), output.decode(errors="replace")
        os.write(fd, b"id -u; ls /build/tiny-1.0; echo marker-$((6*7)); "
                     b"getent hosts example.org || echo no-network; exit 3\n")
        read_until(fd, output, b"\x00never", 120)    # to EOF
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace").replace("\r\n", "\n")
    assert os.waitstatus_to_exitcode(status) == 1, text
    assert "marker-42\n" in text                     # the shell ran our commands
    assert "built-marker" in text                    # in the failed build's tree
    assert "no-network\n" in text
    uid = re.search(r"^(\d+)$", text, re.M)
    assert uid is not None and uid.group(1) != "0", text   # the build user, not root
    assert "the shell exited with status 3" in text
    fork_id = re.search(r"in fork ([0-9a-f]{16}) at", text)
    assert fork_id is not None, text
    assert not (forks_dir(test_config) / fork_id.group(1)).exists()
    assert not (forks_dir(test_config) / f"{fork_id.group(1)}.lock").exists()


def test_shell_on_failure_without_a_terminal_opens_none(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src", build="@exit 1")
    env = {**os.environ, "GUESTPKG_VARDIR": str(test_config.vardir),
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "guestpkg", "build", "--quiet-build",
                             "--shell-on-failure", str(tree), str(tmp_path / "out")],
                            env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 1
    assert "standard input is not a terminal; no shell" in result.stderr
