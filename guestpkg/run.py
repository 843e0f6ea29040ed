# SPDX-License-Identifier: GPL-2.0-or-later
"""The one way out to the world: every external command goes through :func:`run`.

It takes an argv list (never a shell string), sets the environment explicitly, logs
``shlex.join(argv)`` before running, and raises :class:`~guestpkg.errors.CommandFailed`
on a non-zero exit.  Output can be captured, sent to a log file, or both shown and
logged (``tee``), which is how long builds keep a quiet console and a full log.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from guestpkg.errors import CommandFailed

log = logging.getLogger(__name__)

#: The PATH every command gets unless the caller says otherwise.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Variables taken from our own environment when a caller asks for ``inherit``:
#: proxies and the terminal, nothing that changes what a tool builds.
INHERITED = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
             "NO_PROXY", "TERM", "DEBIAN_FRONTEND", "DEBCONF_NONINTERACTIVE_SEEN")

TAIL_LINES = 25


def base_env(extra: Mapping[str, str] | None = None, *, inherit: bool = False) -> dict[str, str]:
    """A clean environment: PATH, a UTF-8 C locale, and *extra* on top."""
    env = {"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"}
    if inherit:
        env.update({k: os.environ[k] for k in INHERITED if k in os.environ})
    if extra:
        env.update(extra)
    return env


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def read_log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last *lines* lines of the log at *path* (read from its last 64 KiB), or ""
    if it cannot be read: the tail a CommandFailed shows."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return _tail(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    capture: bool = False,
    input: bytes | None = None,
    log_path: Path | None = None,
    tee: bool = False,
    timeout_s: float | None = None,
    stdin: int | IO[bytes] | None = None,
    pass_fds: Sequence[int] = (),
    hint: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run *argv* and wait for it.

    - ``capture``: return stdout (and stderr) in the result instead of showing it.
    - ``log_path``: append stdout and stderr to this file (the console stays quiet).
    - ``tee`` with ``log_path``: also copy every line to our stderr as it comes.
    - ``env`` defaults to :func:`base_env`; pass a full mapping to change it.
    """
    args = [os.fspath(a) for a in argv]
    environment = dict(env) if env is not None else base_env()
    log.info("run: %s", shlex.join(args))
    if log_path is not None and capture:
        raise ValueError("capture and log_path are exclusive")

    if log_path is not None:
        return _run_logged(args, environment, cwd, check, input, log_path, tee, timeout_s,
                           stdin, pass_fds, hint)

    try:
        result = subprocess.run(
            args, env=environment, cwd=cwd, input=input, timeout=timeout_s,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            stdin=stdin if input is None else None, pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as e:
        raise CommandFailed(args, 127, str(e), hint=hint or f"is {args[0]} installed?") from e
    if check and result.returncode != 0:
        tail = _tail((result.stderr or b"").decode("utf-8", "replace")) if capture else ""
        raise CommandFailed(args, result.returncode, tail, hint=hint)
    return result


def _run_logged(
    args: list[str],
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    check: bool,
    input: bytes | None,
    log_path: Path,
    tee: bool,
    timeout_s: float | None,
    stdin: int | IO[bytes] | None,
    pass_fds: Sequence[int],
    hint: str | None,
) -> subprocess.CompletedProcess[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as logfile:
        logfile.write(f"+ {shlex.join(args)}\n".encode())
        if not tee:
            try:
                result = subprocess.run(
                    args, env=env, cwd=cwd, input=input, timeout=timeout_s,
                    stdout=logfile, stderr=subprocess.STDOUT,
                    stdin=stdin if input is None else None, pass_fds=tuple(pass_fds))
            except FileNotFoundError as e:
                raise CommandFailed(args, 127, str(e), log_path, hint) from e
            returncode = result.returncode
        else:
            returncode = _tee(args, env, cwd, logfile, timeout_s, stdin, pass_fds)
    if check and returncode != 0:
        raise CommandFailed(args, returncode, read_log_tail(log_path), log_path, hint)
    return subprocess.CompletedProcess(args, returncode)


def _tee(
    args: list[str],
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    logfile: IO[bytes],
    timeout_s: float | None,
    stdin: int | IO[bytes] | None,
    pass_fds: Sequence[int],
) -> int:
    try:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=stdin,
                                pass_fds=tuple(pass_fds))
    except FileNotFoundError as e:
        raise CommandFailed(args, 127, str(e)) from e
    assert proc.stdout is not None
    try:
        for line in iter(proc.stdout.readline, b""):
            logfile.write(line)
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()
        return proc.wait(timeout=timeout_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def spawn_detached(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> int:
    """Start *argv* detached and do not wait: a new session, stdin/stdout/stderr on
    /dev/null and every other descriptor closed except *pass_fds*.  Returns its pid.

    This is how a maintainer script leaves work for after the package manager has
    exited: debconf's frontend waits until every holder of its fd 3 has closed it
    (REFERENCE.md), so nothing of the script's may stay open in the child."""
    args = [os.fspath(a) for a in argv]
    log.info("detach: %s", shlex.join(args))
    try:
        proc = subprocess.Popen(
            args, env=dict(env) if env is not None else base_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=True, pass_fds=tuple(pass_fds), start_new_session=True, cwd="/")
    except FileNotFoundError as e:
        raise CommandFailed(args, 127, str(e), hint=f"is {args[0]} installed?") from e
    return proc.pid
