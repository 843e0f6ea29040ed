# SPDX-License-Identifier: GPL-2.0-or-later
"""The one way out to the world: every external command goes through :func:`run`.

It takes an argv list (never a shell string), sets the environment explicitly, logs
``shlex.join(argv)`` before running, and raises :class:`~guestpkg.errors.CommandFailed`
on a non-zero exit.  Output can be captured, sent to a log file, or both shown and
logged (``tee``), which is how long builds keep a quiet console and a full log.
A logged command writes into a pipe that guestpkg copies into the log, bounded per
line and in total (:class:`LogSink`): never into the log file itself.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import guestpkg
from guestpkg.errors import CommandFailed
from guestpkg.text import printable_bytes

log = logging.getLogger(__name__)

#: The PATH every command gets unless the caller says otherwise.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Variables taken from our own environment when a caller asks for ``inherit``:
#: proxies and the terminal, nothing that changes what a tool builds.
INHERITED = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
             "NO_PROXY", "TERM", "DEBIAN_FRONTEND", "DEBCONF_NONINTERACTIVE_SEEN")

TAIL_LINES = 25

#: Bounds of what a command's output may take in a log (see LogSink): a line, and
#: the head and tail of the whole log that are kept.  The biggest Debian build logs
#: are some hundred MB; their interesting part, the failure, is at the end.
MAX_LINE_BYTES = 64 << 10
LOG_HEAD_BYTES = 256 << 20
LOG_TAIL_BYTES = 64 << 20


def base_env(extra: Mapping[str, str] | None = None, *, inherit: bool = False) -> dict[str, str]:
    """A clean environment: PATH, a UTF-8 C locale, and *extra* on top."""
    env = {"PATH": DEFAULT_PATH, "LC_ALL": "C.UTF-8", "HOME": "/root"}
    if inherit:
        env.update({k: os.environ[k] for k in INHERITED if k in os.environ})
    if extra:
        env.update(extra)
    return env


def apt_env(extra: Mapping[str, str] | None = None, *,
            throwaway_root: bool = False) -> dict[str, str]:
    """The one environment of every apt-get, dpkg and mmdebstrap run, in a root or on
    the host: no questions (a hook or a build has no terminal), and the proxies of our
    own environment, so an apt run that downloads reaches the mirror the way the user's
    own apt does (``buildroot update`` behind a proxy failed where ``create`` worked
    when each run wrote its own).

    *throwaway_root* marks the debconf questions answered by default as seen
    (debconf(7), ``DEBCONF_NONINTERACTIVE_SEEN``): right in a root that is thrown away,
    wrong on the user's system, where a later interactive run should still ask them."""
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if throwaway_root:
        env["DEBCONF_NONINTERACTIVE_SEEN"] = "true"
    return base_env({**env, **(extra or {})}, inherit=True)


#: Debian's Python (python3-seccomp, python3-prctl), whatever python3 PATH finds.
SYSTEM_PYTHON = "/usr/bin/python3"


def as_namespace_root(argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """*argv* run as root of a normal user's namespace on the user's subordinate ids
    (:mod:`guestpkg.sandbox.userrange`): how guestpkg run by a normal user copies,
    chowns and removes the trees on disk, which carry those ids, and runs
    mmdebstrap.  The package is found where this one was imported from, without
    changing the command's environment."""
    parent = str(Path(guestpkg.__file__).resolve().parent.parent)
    return [SYSTEM_PYTHON, "-P", "-s", "-B", "-c",
            "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from guestpkg.sandbox.userrange import main; sys.exit(main())",
            parent, "--", *(os.fspath(a) for a in argv)]


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
    if log_path is not None and (capture or input is not None):
        raise ValueError("capture and input go without log_path")

    if log_path is not None:
        return _run_logged(args, environment, cwd, check, log_path, tee, timeout_s,
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


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start *argv* in the background: a helper that lives while guestpkg works (the
    user-mode network of a sandbox).  Its output is appended to *log_path* (or
    dropped); the caller stops and waits for it."""
    args = [os.fspath(a) for a in argv]
    log.info("start: %s", shlex.join(args))
    output: int | IO[bytes] = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        output = open(log_path, "ab")  # noqa: SIM115 (the child keeps its own copy)
    try:
        return subprocess.Popen(args, env=dict(env) if env is not None else base_env(),
                                stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, pass_fds=tuple(pass_fds))
    except FileNotFoundError as e:
        raise CommandFailed(args, 127, str(e), hint=f"is {args[0]} installed?") from e
    finally:
        if not isinstance(output, int):
            output.close()


def _run_logged(
    args: list[str],
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    check: bool,
    log_path: Path,
    tee: bool,
    timeout_s: float | None,
    stdin: int | IO[bytes] | None,
    pass_fds: Sequence[int],
    hint: str | None,
) -> subprocess.CompletedProcess[bytes]:
    """The command writes into a pipe, never into the log file itself: a file
    descriptor of the log would let it rewrite or truncate what guestpkg wrote
    before (ftruncate(2) needs no permission on the path), and a line with no end
    would be buffered whole.  :class:`LogSink` bounds both."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab", buffering=0) as logfile:
        logfile.write(f"+ {shlex.join(args)}\n".encode())
        try:
            proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=stdin,
                                    pass_fds=tuple(pass_fds))
        except FileNotFoundError as e:
            raise CommandFailed(args, 127, str(e), log_path, hint) from e
        assert proc.stdout is not None
        sink = LogSink(logfile, sys.stderr.buffer if tee else None)
        try:
            returncode = _pump(proc, proc.stdout.fileno(), sink, timeout_s)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            sink.close()
            proc.stdout.close()
    if check and returncode != 0:
        raise CommandFailed(args, returncode, read_log_tail(log_path), log_path, hint)
    return subprocess.CompletedProcess(args, returncode)


#: After the command exited, how long its pipe is still read (a child it left behind
#: may hold the pipe open; the sandbox kills its whole pid namespace, others may not).
DRAIN_AFTER_EXIT_S = 2.0


def _pump(proc: subprocess.Popen[bytes], fd: int, sink: LogSink,
          timeout_s: float | None) -> int:
    start = time.monotonic()
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        if timeout_s is not None and now - start > timeout_s:
            raise subprocess.TimeoutExpired(proc.args, timeout_s)
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
            break
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            sink.feed(data)
    return proc.wait()


class LogSink:
    """Output of a command into the log (and the console), bounded.

    A line longer than *max_line* bytes is cut there and says how much was cut; of a
    log longer than *head* bytes, the first *head* bytes and the last *tail* bytes
    (whole lines) are kept, with a line saying how much was cut between them.  Memory
    use is about *max_line* + *tail*, whatever the command writes."""

    def __init__(self, logfile: IO[bytes], console: IO[bytes] | None, *,
                 max_line: int = MAX_LINE_BYTES, head: int = LOG_HEAD_BYTES,
                 tail: int = LOG_TAIL_BYTES) -> None:
        self.logfile, self.console = logfile, console
        self.max_line, self.head, self.tail = max_line, head, tail
        self.partial = bytearray()
        self.cut_in_line = 0
        self.written = 0
        self.kept_tail: collections.deque[bytes] = collections.deque()
        self.tail_bytes = 0
        self.cut_lines = 0
        self.cut_bytes = 0

    def feed(self, data: bytes) -> None:
        while data:
            newline = data.find(b"\n")
            chunk, data = ((data, b"") if newline < 0 else
                           (data[:newline + 1], data[newline + 1:]))
            room = self.max_line - len(self.partial)
            if room > 0:
                self.partial += chunk[:room]
            self.cut_in_line += max(0, len(chunk) - max(room, 0))
            if newline >= 0:
                self._line(self._finish_line())

    def _finish_line(self) -> bytes:
        line = bytes(self.partial)
        if self.cut_in_line:
            line = (line.rstrip(b"\n") +
                    f" [guestpkg: {self.cut_in_line} more bytes of this line cut]\n".encode())
        if not line.endswith(b"\n"):
            line += b"\n"
        self.partial.clear()
        self.cut_in_line = 0
        return line

    def _line(self, line: bytes) -> None:
        if self.console is not None:  # escaped: the build chooses these bytes
            self.console.write(printable_bytes(line))
            self.console.flush()
        if self.written + len(line) <= self.head and not self.kept_tail:
            self.logfile.write(line)
            self.written += len(line)
            return
        self.kept_tail.append(line)
        self.tail_bytes += len(line)
        while self.tail_bytes > self.tail:
            dropped = self.kept_tail.popleft()
            self.tail_bytes -= len(dropped)
            self.cut_lines += 1
            self.cut_bytes += len(dropped)

    def close(self) -> None:
        if self.partial or self.cut_in_line:
            self._line(self._finish_line())
        if self.cut_lines:
            self.logfile.write(f"[guestpkg: {self.cut_lines} lines ({self.cut_bytes} bytes) "
                               f"of output cut here; the log keeps its first "
                               f"{self.head} and last {self.tail} bytes]\n".encode())
        self.logfile.writelines(self.kept_tail)
        self.kept_tail.clear()


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
    (docs/reference.md), so nothing of the script's may stay open in the child."""
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
