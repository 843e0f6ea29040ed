# SPDX-License-Identifier: GPL-2.0-or-later
"""The caller's side: :func:`run_sandboxed` starts ``python3 -m guestpkg.sandbox``.

The spec travels as JSON in a memfd (no file on disk to clean up after a SIGKILL), the
command's output goes wherever :func:`guestpkg.run.run` sends it (a log file, the log
and our stderr, or our terminal), and a failure raises
:class:`~guestpkg.errors.CommandFailed` whose hint says how to replay the very same
sandbox by hand: the spec is then saved next to the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import guestpkg
from guestpkg.errors import CommandFailed
from guestpkg.fsutil import atomic_write
from guestpkg.run import DEFAULT_PATH, read_log_tail, run
from guestpkg.sandbox.idmap import get_mapping
from guestpkg.sandbox.spec import SandboxSpec, to_json

log = logging.getLogger(__name__)

#: Debian's Python: the one with python3-seccomp and python3-prctl.
SANDBOX_PYTHON = "/usr/bin/python3"

#: Where the guestpkg package is imported from (works from a checkout, too).
PACKAGE_PARENT = Path(guestpkg.__file__).resolve().parent.parent


def helper_argv(*extra: str) -> list[str]:
    # -P: don't put the working directory first on sys.path, or a hostile source tree
    # could shadow our modules in a process running as root; -s: no user site.
    return [SANDBOX_PYTHON, "-P", "-s", "-B", "-m", "guestpkg.sandbox", *extra]


def helper_env() -> dict[str, str]:
    return {"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8", "PYTHONPATH": str(PACKAGE_PARENT)}


def replay_command(spec_path: Path) -> str:
    return (f"PYTHONPATH={PACKAGE_PARENT} {' '.join(helper_argv())} {spec_path}"
            " (as root; add --shell for a shell in the same sandbox)")


def log_relaxations(spec: SandboxSpec) -> None:
    for relaxation in spec.relaxations:
        log.warning("sandbox relaxation for %s: %s", spec.argv[0], relaxation)


@contextlib.contextmanager
def _terminal_signals_ignored(active: bool) -> Iterator[None]:
    """While an interactive command owns the terminal, Ctrl-C is the command's."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.signal(s, signal.SIG_IGN)
             for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTTOU)}
    try:
        yield
    finally:
        # The command had the terminal's foreground (see init.take_terminal): take it
        # back, or our next read from the terminal stops us with SIGTTIN.
        if os.isatty(0):
            with contextlib.suppress(OSError):
                os.tcsetpgrp(0, os.getpgrp())
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def save_spec(spec: SandboxSpec, log_path: Path | None) -> Path:
    """Keep the spec of a failed command for replaying it."""
    if log_path is not None:
        path = log_path.with_name(log_path.name + ".sandbox.json")
    else:
        fd, name = tempfile.mkstemp(prefix="guestpkg-sandbox-", suffix=".json")
        os.close(fd)
        path = Path(name)
    atomic_write(path, to_json(spec), mode=0o600)
    return path


def run_sandboxed(
    spec: SandboxSpec,
    *,
    log_path: Path | None = None,
    tee: bool = False,
    check: bool = True,
) -> int:
    """Run *spec*'s command in its sandbox and return its exit status (128+N if killed
    by signal N, 124 on the wall-clock limit, 125 if the sandbox could not be set up).

    With ``check``, a non-zero status raises CommandFailed with the output tail and a
    replay hint."""
    get_mapping(spec.id_mapping).check()  # a clear error here rather than status 125
    log_relaxations(spec)
    fd = os.memfd_create("guestpkg-sandbox-spec", 0)
    try:
        os.write(fd, to_json(spec).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        argv = helper_argv("--spec-fd", str(fd), "--parent-pid", str(os.getpid()))
        log.info("sandbox: %s", " ".join(spec.argv))
        with _terminal_signals_ignored(spec.interactive):
            result = run(argv, env=helper_env(), cwd="/", check=False, log_path=log_path,
                         tee=tee, pass_fds=(fd,),
                         stdin=None if spec.interactive else subprocess.DEVNULL)
    finally:
        os.close(fd)
    status = result.returncode
    if status != 0 and check:
        kept = save_spec(spec, log_path)
        tail = read_log_tail(log_path) if log_path is not None else ""
        raise CommandFailed(list(spec.argv), status, tail, log_path,
                            hint=f"the sandbox spec is {kept}; replay: {replay_command(kept)}")
    return status
