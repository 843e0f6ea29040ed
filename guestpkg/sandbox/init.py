# SPDX-License-Identifier: GPL-2.0-or-later
"""What runs inside: ``python3 -m guestpkg.sandbox`` sets the sandbox up and runs the
command.  Three processes, each with one job:

**helper** (this process, started by :func:`guestpkg.sandbox.run_sandboxed`)
    dies with its parent (PR_SET_PDEATHSIG), unshares the mount, pid, uts, ipc, cgroup
    and (unless ``network``) net namespaces, brings ``lo`` up, sets the host name,
    forks *init*, forwards signals to it and exits with its status.

**init** (pid 1 of the new pid namespace)
    dies with the helper, mounts the root, /proc, /dev and /sys, pivots into the root,
    forks the command and then only reaps children, forwards signals and enforces the
    wall-clock limit.  When pid 1 of a pid namespace exits the kernel kills every other
    process in it (pid_namespaces(7)), and the mount namespace with the overlay goes
    with the last of them: a SIGKILL of guestpkg leaves nothing behind.

**command**
    enters the user namespace (:mod:`.idmap`), a new session (no controlling terminal,
    so no TIOCSTI into ours: CVE-2017-5226), dies with init, rlimits and umask, drops
    to the build user, empties the capability
    sets, sets no_new_privs, loads the seccomp filter and execs.  With the
    ``allow_chroot_mount`` relaxation it first unshares a mount and a pid namespace of
    its user namespace and forks (:func:`enter_own_namespaces`): the child goes on.

Everything is imported before pivot_root(2): the host's Python library is not visible
afterwards.  Exit status: the command's (128+N if killed by signal N), 124 if the
wall-clock limit hit (as timeout(1)), 125 if the sandbox could not be set up.

A status says nothing of *why* a sandbox could not be set up, so with ``--report-fd``
the helper, init and the command (until its execve) write one JSON object to that
descriptor before exiting 125: the step that failed and the error, e.g. ``{"step":
"mount the root (overlay)", "error": "EINVAL: Invalid argument: (mount, ...)"}``.
The descriptor is close-on-exec, so the command never holds it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import os
import select
import signal
import sys
from pathlib import Path
from types import FrameType

import prctl
import seccomp

from guestpkg.errors import GuestpkgError
from guestpkg.sandbox import caps, cgroups, diskwatch, mounts, network, seccomp_filter
from guestpkg.sandbox.idmap import IdMapping, for_spec
from guestpkg.sandbox.spec import SandboxSpec, from_json
from guestpkg.sandbox.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    setdomainname,
    sethostname,
    setns,
    unshare,
)

TIMEOUT_STATUS = 124
SETUP_FAILED_STATUS = 125
EXEC_FAILED_STATUS = 127
MAX_FD = 2**31 - 1
#: After SIGTERM at the wall-clock limit, how long until SIGKILL.
KILL_GRACE_S = 10.0

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)
#: Signals the terminal sends to its whole foreground process group: in interactive
#: mode the command gets them directly, the helper and init must not die of them.
TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)


def _say(message: str) -> None:
    sys.stderr.write(f"guestpkg-sandbox: {message}\n")
    sys.stderr.flush()


#: At most this much of a report is written (the reader reads no more either).
REPORT_MAX_BYTES = 4096


def describe_error(error: BaseException) -> str:
    """An OS error as ``ENAME: text``, our own errors by their message."""
    if isinstance(error, OSError) and error.errno is not None:
        name = errno.errorcode.get(error.errno, str(error.errno))
        text = error.strerror or os.strerror(error.errno)
        if error.filename is not None:
            text += f": {error.filename}"
        return f"{name}: {text}"
    if isinstance(error, GuestpkgError):
        return error.message_and_hint
    return repr(error)


class SetupReport:
    """Which set-up step runs now, and where to report it if it fails."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.step = "start the sandbox helper"

    def at(self, step: str) -> None:
        self.step = step

    def failed(self, error: BaseException) -> None:
        """Say on stderr (the log) and write to the report descriptor what failed."""
        reason = describe_error(error)
        _say(f"cannot set up the sandbox: {self.step}: {reason}")
        if self.fd is None:
            return
        self._write({"step": self.step, "error": reason})

    def limit_hit(self, reason: str) -> None:
        """Say and report that the helper stopped the command at a limit it keeps
        itself (the disk cap); the caller raises ResourceLimitHit."""
        _say(f"stopping everything: {reason}")
        self._write({"limit": reason})

    def _write(self, report: dict[str, str]) -> None:
        if self.fd is None:
            return
        data = json.dumps(report).encode()
        with contextlib.suppress(OSError):
            os.write(self.fd, data[:REPORT_MAX_BYTES])


def _status(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


# -- the command ---------------------------------------------------------------------


def take_terminal() -> None:
    """Interactive mode: a process group of our own in the terminal's foreground.

    The caller's process group lies outside our pid namespace, so a shell that
    remembered it could not give the terminal back to it (tcsetpgrp(3): ESRCH); and
    Ctrl-C should reach the command only.  The caller takes the terminal back after."""
    os.setpgid(0, 0)
    if os.isatty(0):
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # we are in background
        with contextlib.suppress(OSError):  # not our controlling terminal: nothing to do
            os.tcsetpgrp(0, os.getpgrp())
        signal.signal(signal.SIGTTOU, previous)


def close_other_fds(keep: int | None) -> None:
    """Every fd but stdio and *keep* (the report descriptor, close-on-exec), before
    RLIMIT_NOFILE may hide high ones from SC_OPEN_MAX; Python closes each range with
    one close_range(2)."""
    if keep is None:
        os.closerange(3, MAX_FD)
        return
    os.closerange(3, keep)
    os.closerange(keep + 1, MAX_FD)
    os.set_inheritable(keep, False)


def exec_command(spec: SandboxSpec, seccomp_rules: seccomp.SyscallFilter,
                 report: SetupReport, mapping: IdMapping) -> None:
    """In the command's process: drop everything, then execve.  Never returns."""
    try:
        report.at(f"enter the id mapping ({mapping.name})")
        mapping.enter()
        report.at("start a new session")
        if spec.interactive:
            take_terminal()
        else:
            os.setsid()
        prctl.set_pdeathsig(signal.SIGKILL)
        # Python ignores SIGPIPE and SIGXFSZ and handles SIGINT; execve keeps ignored
        # signals ignored (signal(7)), so give the command the defaults back.
        for sig in (*FORWARDED, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGALRM,
                    signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        close_other_fds(report.fd)
        if spec.allow_chroot_mount:
            report.at("enter a mount and pid namespace of the user namespace")
            enter_own_namespaces(report.fd)
        report.at("set resource limits")
        caps.set_rlimits(spec.rlimits)
        os.umask(spec.umask)
        report.at(f"change to the working directory {spec.cwd}")
        os.chdir(spec.cwd)
        report.at(f"drop privileges (uid {spec.uid}, gid {spec.gid})")
        caps.drop_privileges(spec.uid, spec.gid, spec.capabilities)
        report.at("load the seccomp filter")
        seccomp_filter.load(seccomp_rules)
    except BaseException as e:  # report, never unwind into init's code
        report.failed(e)
        os._exit(SETUP_FAILED_STATUS)
    try:
        os.execvpe(spec.argv[0], list(spec.argv), dict(spec.env))  # noqa: S606
    except OSError as e:
        _say(f"cannot run {spec.argv[0]}: {e.strerror}")
    os._exit(EXEC_FAILED_STATUS)


def enter_own_namespaces(report_fd: int | None) -> None:
    """The ``allow_chroot_mount`` relaxation, in the command's process (already in its
    user namespace, with that namespace's capabilities): what ``unshare --mount --pid
    --fork --mount-proc`` gives a normal user of a user namespace.  A new mount
    namespace and a new pid namespace, both owned by the user namespace, so that
    mount(2) and chroot(2) are checked against capabilities in it; every mount
    inherited from the sandbox's namespace is locked to it (mount_namespaces(7),
    "Restrictions on mount namespaces": it can be neither unmounted nor made
    writable, and nothing under it shows).  This process forks: the child is pid 1
    of the new pid namespace and goes on to run the command, with a fresh /proc of
    that namespace; this process waits for it and exits with its status.

    The waiting process keeps the user namespace's full capabilities, so the command
    (with fewer) may not inspect it through a /proc of the sandbox's pid namespace,
    which it can uncover by unmounting its own (ptrace(2), "Ptrace access mode
    checking": the target's permitted set must be a subset of the caller's); it is
    also made non-dumpable, and holds no descriptor but the log's."""
    unshare(CLONE_NEWNS | CLONE_NEWPID)
    child = os.fork()
    if child != 0:
        if report_fd is not None:
            os.close(report_fd)
        prctl.set_dumpable(False)
        while True:
            try:
                _, wait_status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        sys.stdout.flush()
        os._exit(_status(wait_status))
    prctl.set_pdeathsig(signal.SIGKILL)
    mounts.mount_proc(Path("/"), masked=False)


# -- init: pid 1 of the new pid namespace ------------------------------------------


def kill_all(signum: int) -> None:
    """Signal every process of the pid namespace except pid 1 itself (kill(2): pid -1)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signum)


class Supervisor:
    """pid 1's loop: reap everything, forward signals, enforce the time limit."""

    def __init__(self, child: int, spec: SandboxSpec) -> None:
        self.child = child
        self.spec = spec
        self.timed_out = False

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child, signum)

    def alarm(self, _signum: int, _frame: FrameType | None) -> None:
        if not self.timed_out:
            self.timed_out = True
            _say(f"wall-clock limit of {self.spec.timeout_s:g} s reached: stopping everything")
            kill_all(signal.SIGTERM)
            signal.setitimer(signal.ITIMER_REAL, KILL_GRACE_S)
        else:
            kill_all(signal.SIGKILL)

    def install(self) -> None:
        for sig in FORWARDED:
            signal.signal(sig, self.forward)
        if self.spec.interactive:
            for sig in TERMINAL_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
        if self.spec.timeout_s:
            signal.signal(signal.SIGALRM, self.alarm)
            signal.setitimer(signal.ITIMER_REAL, self.spec.timeout_s)

    def wait(self) -> int:
        status = None
        while True:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == self.child:
                status = _status(wait_status)
                # Daemons the command left behind die with it.
                kill_all(signal.SIGKILL)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if self.timed_out:
            return TIMEOUT_STATUS
        return SETUP_FAILED_STATUS if status is None else status


def forbid_imports() -> None:
    """No module may be imported after pivot_root: Python would look for it in the
    sandbox's root, where an earlier command in the same fork (uid 0 installing build
    dependencies, say) could have planted it, and init runs it as real root.  With the
    finders gone, a missed lazy import fails with ImportError instead; modules already
    in sys.modules keep working."""
    sys.meta_path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.path.clear()


def _helper_alive(pipe_read: int) -> bool:
    """The helper holds the pipe's write end: EOF means it already died."""
    readable, _, _ = select.select([pipe_read], [], [], 0)
    return not readable


def run_init(spec: SandboxSpec, seccomp_rules: seccomp.SyscallFilter, pipe_read: int,
             report: SetupReport, mapping: IdMapping) -> None:
    """pid 1: build the root, start the command, supervise.  Never returns."""
    status = SETUP_FAILED_STATUS
    try:
        prctl.set_pdeathsig(signal.SIGKILL)
        if not _helper_alive(pipe_read):
            os._exit(SETUP_FAILED_STATUS)
        report.at("mount the staging tmpfs")
        staging = mounts.mount_staging(spec)
        report.at("mount the root" + (" (bind)" if spec.root is not None else " (overlay)"))
        root = mounts.mount_root(spec, staging, mapping)
        report.at("mount the binds")
        mounts.mount_binds(root, spec.binds, mapping)
        mounts.make_mount_points(root, mapping)
        # A change of credentials clears the parent-death signal (prctl(2),
        # PR_SET_PDEATHSIG), and mapping.creating() changed our fsuid: set it again,
        # then make sure the helper did not die in between.
        prctl.set_pdeathsig(signal.SIGKILL)
        if not _helper_alive(pipe_read):
            os._exit(SETUP_FAILED_STATUS)
        os.close(pipe_read)
        report.at("mount /proc")
        # A proc mount in a mount namespace of a user namespace needs a proc already
        # mounted there with nothing over it (the kernel's mount_too_revealing()).
        mounts.mount_proc(root, masked=not spec.allow_chroot_mount,
                          hide_others=spec.allow_chroot_mount)
        report.at("mount /dev")
        mounts.mount_dev(root, spec.shm_size_bytes)
        report.at("mount /sys")
        mounts.mount_sys(root)
        forbid_imports()
        report.at("pivot_root into the new root")
        mounts.pivot_into(root)
        report.at("fork the command")
        child = os.fork()
        if child == 0:
            exec_command(spec, seccomp_rules, report, mapping)
        if report.fd is not None:
            os.close(report.fd)  # only the command reports from now on
        supervisor = Supervisor(child, spec)
        supervisor.install()
        status = supervisor.wait()
    except BaseException as e:  # pid 1 must end with _exit
        report.failed(e)
    sys.stdout.flush()
    os._exit(status)


# -- the helper ------------------------------------------------------------------------


def namespace_flags(spec: SandboxSpec) -> int:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP
    return flags if spec.network or spec.join_netns else flags | CLONE_NEWNET


def join_network_namespace(path: str) -> None:
    """Enter the network namespace a user-mode network serves (guestpkg.sandbox.usernet):
    opened without following links, and refused unless it is one."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNET)  # EINVAL unless fd is a network namespace
    finally:
        os.close(fd)


def watch_disk(pid: int, watch: diskwatch.DiskWatch) -> str | None:
    """Until init (*pid*) exits: keep the disk cap; SIGKILL init when it is passed, and
    say why.  If the watch itself fails (a tree it can't read), it says so and only
    waits."""
    pidfd = os.pidfd_open(pid)
    try:
        while not select.select([pidfd], [], [], diskwatch.POLL_S)[0]:
            reason = watch.poll()
            if reason is not None:
                os.kill(pid, signal.SIGKILL)
                return reason
    except OSError as e:
        _say(f"cannot measure the disk usage any more ({describe_error(e)}): the command "
             "runs on without its disk cap")
    finally:
        os.close(pidfd)
        watch.close()
    return None


def run_helper(spec: SandboxSpec, parent_pid: int | None, report: SetupReport) -> int:
    report.at("check the id mapping")
    mapping = for_spec(spec)
    mapping.check()
    prctl.set_pdeathsig(signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        return SETUP_FAILED_STATUS  # guestpkg died before we could notice
    report.at("build the seccomp filter")
    # lower layers only: a bound root= is writable, a fork's upper is the build's
    rules = seccomp_filter.build_filter(
        allow_setuid=spec.allow_setuid, allow_chroot_mount=spec.allow_chroot_mount,
        i386_socketcall=seccomp_filter.runs_i386_programs(spec.lowerdirs))
    # Nothing may fork between this and the fork of init: the first child after
    # unshare(CLONE_NEWPID) becomes the namespace's pid 1 (pid_namespaces(7)); the id
    # mapping's own child comes and goes before.
    report.at(f"create the id mapping ({mapping.name})")
    mapping.prepare()
    # A normal user's mapping changed our credentials, which clears the parent-death
    # signal (prctl(2)): set it again, and check the parent once more.
    prctl.set_pdeathsig(signal.SIGKILL)
    if parent_pid is not None and os.getppid() != parent_pid:
        return SETUP_FAILED_STATUS
    report.at("measure what the command's places on disk hold")
    # Before anything else is unshared or pivoted: these are the host's paths.  After
    # the id mapping: a normal user's helper is then root of the user's namespace and
    # may read every directory of its trees (its subordinate ids own them).
    watch = diskwatch.DiskWatch.open(spec.disk_paths, spec.disk_max_bytes,
                                     spec.disk_reserve_bytes)
    if watch is not None:
        watch.start()
    if spec.join_netns:
        report.at("join the network namespace")
        join_network_namespace(spec.join_netns)
    report.at("unshare the namespaces")
    unshare(namespace_flags(spec))
    report.at("make the mounts private")
    mounts.make_private("/")
    if not spec.network:
        report.at("bring up the loopback interface")
        network.bring_up_loopback()
    report.at("set the host name")
    sethostname(spec.hostname)
    setdomainname("(none)")
    pipe_read, pipe_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    report.at("fork the sandbox's init")
    pid = os.fork()
    if pid == 0:
        os.close(pipe_write)
        if watch is not None:
            watch.close()
        run_init(spec, rules, pipe_read, report, mapping)
    os.close(pipe_read)
    # Once init pivots, our root is the sandbox's too (pivot_root(2) moves every process
    # of the mount namespace whose root was the old one): no import may look there.
    forbid_imports()

    def forward(signum: int, _frame: FrameType | None) -> None:
        os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    if spec.interactive:
        for sig in TERMINAL_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    stopped = watch_disk(pid, watch) if watch is not None else None
    _, wait_status = os.waitpid(pid, 0)
    if stopped is not None:
        report.limit_hit(stopped)
    return _status(wait_status)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m guestpkg.sandbox",
        description="Run the command of a guestpkg sandbox spec (JSON) in that sandbox. "
        "guestpkg writes the spec of a failed command next to its log for this.")
    parser.add_argument("spec", nargs="?", type=Path, help="the spec file (JSON)")
    parser.add_argument("--spec-fd", type=int, help="read the spec from this fd")
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cgroup-procs", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--shell", action="store_true",
                        help="run an interactive /bin/sh in the same sandbox instead")
    args = parser.parse_args(argv)
    if (args.spec is None) == (args.spec_fd is None):
        parser.error("give a spec file or --spec-fd")
    return args


def read_spec(args: argparse.Namespace) -> SandboxSpec:
    if args.spec_fd is not None:
        with os.fdopen(args.spec_fd, "r", encoding="utf-8") as f:
            text = f.read()
    else:
        text = args.spec.read_text(encoding="utf-8")
    spec = from_json(text)
    if args.shell:
        spec = dataclasses.replace(spec, argv=("/bin/sh", "-i"), interactive=True,
                                   timeout_s=None)
    return spec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report = SetupReport(args.report_fd)
    try:
        if args.cgroup_procs:
            # First thing, before anything forks: every process of the sandbox is
            # then in the cgroups with its limits (guestpkg.sandbox.cgroups).
            report.at("join the cgroups")
            cgroups.join(args.cgroup_procs)
        report.at("read the sandbox spec")
        spec = read_spec(args)
        return run_helper(spec, args.parent_pid, report)
    except Exception as e:  # reported as a set-up failure, never as the command's
        report.failed(e)
    return SETUP_FAILED_STATUS
