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
import dataclasses
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import guestpkg
from guestpkg.errors import CommandFailed, ResourceLimitHit, SandboxSetupFailed
from guestpkg.fsutil import atomic_write
from guestpkg.run import DEFAULT_PATH, read_log_tail, run
from guestpkg.sandbox import cgroups
from guestpkg.sandbox.cgroups import Cgroup, Limits
from guestpkg.sandbox.idmap import for_spec, resolve
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
            " (as the same user; add --shell for a shell in the same sandbox)")


def log_relaxations(spec: SandboxSpec, level: int = logging.WARNING) -> None:
    for relaxation in spec.relaxations:
        log.log(level, "sandbox relaxation for %s: %s", spec.argv[0], relaxation)


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


@dataclass(frozen=True)
class HelperReport:
    """What the helper wrote to its report pipe: a set-up failure (the step and the
    error, before it exited 125) or a limit it stopped the command at (the disk cap:
    :mod:`guestpkg.sandbox.diskwatch`)."""

    step: str = ""
    error: str = ""
    limit: str = ""


def read_helper_report(fd: int) -> HelperReport | None:
    """The helper's report, or None if it wrote nothing (set up, and stopped at no
    limit).  Bounded and validated: it is our own helper's output, but malformed text
    must not turn into a traceback."""
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 2 * REPORT_MAX_BYTES)
    except BlockingIOError:
        return None
    if not data:
        return None
    try:
        report = json.loads(data[:2 * REPORT_MAX_BYTES].decode("utf-8", "replace"))
        if "limit" in report:
            return HelperReport(limit=str(report["limit"])[:REPORT_MAX_BYTES])
        step, error = str(report["step"]), str(report["error"])
    except (ValueError, KeyError, TypeError):
        return HelperReport("report", f"unreadable set-up report: {data[:200]!r}")
    return HelperReport(step[:200], error[:REPORT_MAX_BYTES])


#: What the sandbox's side writes at most (guestpkg.sandbox.init.REPORT_MAX_BYTES; not
#: imported: init imports prctl and seccomp, which the caller's side does not need).
REPORT_MAX_BYTES = 4096


def run_sandboxed(
    spec: SandboxSpec,
    *,
    log_path: Path | None = None,
    tee: bool = False,
    check: bool = True,
    relaxations_level: int = logging.WARNING,
) -> int:
    """Run *spec*'s command in its sandbox and return its exit status (128+N if killed
    by signal N, 124 on the wall-clock limit, 125 if the sandbox could not be set up).

    With ``check``, a non-zero status raises CommandFailed with the output tail and a
    replay hint; a sandbox that could not be set up raises SandboxSetupFailed, which
    names the step that failed and the OS error (also logged), with or without
    ``check``.  The ways *spec* is weaker than the default are logged at
    *relaxations_level*: a caller whose relaxation is by design and recorded in its
    own log (a source recipe's user-mode network) keeps them off the console."""
    # A normal user's "userns" is the user's own range (guestpkg.sandbox.userrange).
    spec = dataclasses.replace(spec, id_mapping=resolve(spec.id_mapping))
    mapping = for_spec(spec)
    mapping.check()  # a clear error here rather than status 125
    log_relaxations(spec, relaxations_level)
    limits = Limits(spec.memory_max_bytes, spec.pids_max, spec.cpu_weight)
    with cgroups.limited(limits) as cgroup:
        status, report = _run_helper(spec, mapping.describe(), cgroup, log_path, tee)
        hit = cgroup.hits() if cgroup is not None else None
    if report is not None and report.limit:
        log.error("%s hit its limits: %s", spec.argv[0], report.limit)
        tail = read_log_tail(log_path) if log_path is not None else ""
        raise ResourceLimitHit(list(spec.argv), status, report.limit, tail, log_path)
    if report is not None:
        step, error = report.step, report.error
        kept = save_spec(spec, log_path)
        log.error("the sandbox for %s could not be set up: %s: %s", spec.argv[0], step,
                  error)
        raise SandboxSetupFailed(list(spec.argv), status, step, error, log_path,
                                 hint=f"the sandbox spec is {kept}; replay: "
                                 f"{replay_command(kept)}")
    if status != 0 and hit is not None and (hit.oom_kills or hit.pids_refused):
        # With or without check: the command did not fail on its own.
        what = hit.describe(limits)
        log.error("%s hit its limits: %s", spec.argv[0], what)
        tail = read_log_tail(log_path) if log_path is not None else ""
        raise ResourceLimitHit(list(spec.argv), status, what, tail, log_path)
    if status != 0 and check:
        kept = save_spec(spec, log_path)
        tail = read_log_tail(log_path) if log_path is not None else ""
        raise CommandFailed(list(spec.argv), status, tail, log_path,
                            hint=f"the sandbox spec is {kept}; replay: {replay_command(kept)}")
    return status


def _run_helper(spec: SandboxSpec, ids: str, cgroup: Cgroup | None, log_path: Path | None,
                tee: bool) -> tuple[int, HelperReport | None]:
    """Start the helper, wait for it; its status and its report."""
    fd = os.memfd_create("guestpkg-sandbox-spec", 0)
    report_read, report_write = os.pipe()
    try:
        os.write(fd, to_json(spec).encode())
        os.lseek(fd, 0, os.SEEK_SET)
        argv = helper_argv("--spec-fd", str(fd), "--parent-pid", str(os.getpid()),
                           "--report-fd", str(report_write))
        for procs in cgroup.procs_files() if cgroup is not None else ():
            argv += ["--cgroup-procs", str(procs)]
        log.info("sandbox (%s): %s", ids, " ".join(spec.argv))
        with _terminal_signals_ignored(spec.interactive):
            result = run(argv, env=helper_env(), cwd="/", check=False, log_path=log_path,
                         tee=tee, pass_fds=(fd, report_write),
                         stdin=None if spec.interactive else subprocess.DEVNULL)
        os.close(report_write)
        report_write = -1
        report = read_helper_report(report_read)
    finally:
        os.close(fd)
        os.close(report_read)
        if report_write >= 0:
            os.close(report_write)
    return result.returncode, report
