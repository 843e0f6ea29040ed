# SPDX-License-Identifier: GPL-2.0-or-later
"""The errors guestpkg raises on purpose.

Library code raises these; only :mod:`guestpkg.cli` turns them into a message and an
exit code.  Anything else that escapes is a bug and is reported as one.

Exit codes (documented in guestpkg(1)):

====  =======================================================
 0    success
 1    a build or command that guestpkg ran failed
 2    usage or configuration error
 3    bad input: a malformed file, a hostile archive, a wrong checksum
 4    the network or an upstream server failed
 5    the system is not in a state guestpkg can work with
 6    a signature or trust check refused the package
 70   a bug in guestpkg (EX_SOFTWARE)
 130  interrupted
====  =======================================================
"""

from __future__ import annotations

from pathlib import Path


class GuestpkgError(Exception):
    """An error with a one-line message for the user and an optional hint."""

    exit_code = 1
    #: the last lines of a failed command's output, shown before the hint
    output_tail = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def message_and_hint(self) -> str:
        """``message (hint)``: the error on one line, for apt's output and the state."""
        return self.message + (f" ({self.hint})" if self.hint else "")


class UsageError(GuestpkgError):
    """The command line or a configuration file is wrong."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file or environment variable has a bad value."""


class InputError(GuestpkgError):
    """Input from a file or a peer is malformed or hostile."""

    exit_code = 3


class ParseError(InputError):
    """A file could not be parsed; carries ``path:line`` like python-debian does."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message, hint)
        self.path = path
        self.line = line


class ChecksumMismatch(InputError):
    """A download or file does not have the pinned SHA256."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{url}: SHA256 mismatch: expected {expected}, got {actual}",
            hint="upstream may have re-rolled the tarball under the same name; "
            "nothing was kept. Check with upstream before updating the pinned checksum.",
        )
        self.url = url
        self.expected = expected
        self.actual = actual


class UnsafeArchive(InputError):
    """An archive member would escape the extraction directory or is not allowed."""


class NetworkError(GuestpkgError):
    """A download or an upstream server failed."""

    exit_code = 4


class SystemStateError(GuestpkgError):
    """The system (dpkg database, locks, mounts, disk) is not usable right now."""

    exit_code = 5


class TrustError(GuestpkgError):
    """A signature or the trust policy refused a package."""

    exit_code = 6


class CommandFailed(GuestpkgError):
    """An external command exited non-zero."""

    def __init__(
        self,
        argv: list[str],
        returncode: int,
        output_tail: str = "",
        log_path: Path | None = None,
        hint: str | None = None,
    ) -> None:
        import shlex

        message = f"command failed with exit status {returncode}: {shlex.join(argv)}"
        if returncode < 0:
            message = f"command killed by signal {-returncode}: {shlex.join(argv)}"
        super().__init__(message, hint)
        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail
        self.log_path = log_path

    @property
    def status_text(self) -> str:
        """How it ended, for a message that names the step: ``exit status 2``."""
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"


class ResourceLimitHit(CommandFailed):
    """A sandboxed command ended after it hit its limits (memory, processes: its
    cgroup's; disk: guestpkg.sandbox.diskwatch's): which limit, and how to raise it."""

    def __init__(self, argv: list[str], returncode: int, what: str, output_tail: str = "",
                 log_path: Path | None = None) -> None:
        conf = "in /etc/guestpkg/guestpkg.conf"
        if "(setting disk_reserve" in what:
            hint = ("free some space on that file system (guestpkg cache clean removes "
                    f"unused layers), or lower --disk-reserve SIZE (or disk_reserve {conf})")
        elif "(setting disk_max" in what:
            hint = ("raise the limit if the build really needs more: --disk-max SIZE (or "
                    f"disk_max {conf})")
        else:
            hint = ("raise the limit if the build really needs more: --memory-max SIZE, "
                    f"--pids-max N (or memory_max, pids_max {conf})")
        super().__init__(argv, returncode, output_tail, log_path, hint=hint)
        self.what = what
        self.message = f"{argv[0] if argv else '?'} hit its resource limits: {what}"

    @property
    def status_text(self) -> str:
        return f"{super().status_text}; {self.what}"


class SandboxSetupFailed(CommandFailed):
    """The sandbox for a command could not be set up (the command never ran): which
    set-up step failed and the OS error, as the sandbox reported them."""

    def __init__(self, argv: list[str], returncode: int, step: str, reason: str,
                 log_path: Path | None = None, hint: str | None = None) -> None:
        super().__init__(argv, returncode, "", log_path, hint)
        self.step = step
        self.reason = reason
        self.message = (f"the sandbox for {argv[0] if argv else '?'} could not be set up: "
                        f"{step}: {reason}")
        self.args = (self.message,)

    @property
    def status_text(self) -> str:
        return f"the sandbox could not be set up: {self.step}: {self.reason}"


class BuildFailed(GuestpkgError):
    """A package build failed; the log has the details."""

    def __init__(self, message: str, log_path: Path | None, output_tail: str = "") -> None:
        hint = f"the full log is {log_path}" if log_path else None
        super().__init__(message, hint)
        self.log_path = log_path
        self.output_tail = output_tail


class Interrupted(GuestpkgError):
    """The user or a signal stopped guestpkg."""

    exit_code = 130


class RecipeError(InputError):
    """A recipe tree has problems; each is a ``path:line: message`` line."""

    def __init__(self, problems: list[str], root: Path) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(problems[0] + more,
                         hint=f"guestpkg recipe lint --recipes {root} lists every problem")
        self.problems = problems
