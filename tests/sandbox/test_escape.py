# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox escape suite: probes run inside the sandbox as the build user, each
asserting the expected failure.  Syscall probes pass invalid arguments (see probe.c),
and where the host gives a different answer for the same call, a control run on the
host shows that the sandbox, not the arguments, made the call fail."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guestpkg.sandbox import APT_CAPABILITIES, Bind
from guestpkg.sandbox.caps import capability_numbers

from .conftest import BUILD_UID, ID_MAPPINGS, ProbeRun

#: probe -> what it must give inside the default sandbox (as the build user).
FILTERED = {
    "mount": "EPERM", "umount": "EPERM", "pivot_root": "EPERM", "chroot": "EPERM",
    "unshare-user": "EPERM", "unshare-invalid": "EPERM", "clone-newuser": "EPERM",
    "setns": "EPERM", "clone3": "ENOSYS",
    "fsopen": "ENOSYS", "open_tree": "ENOSYS", "move_mount": "ENOSYS",
    "mount_setattr": "ENOSYS", "fchmodat2": "ENOSYS",
    "keyctl": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
    "bpf": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM",
    "ptrace-traceme": "EPERM", "process_vm_readv": "EPERM", "kcmp": "EPERM",
    "open_by_handle_at": "EPERM", "personality": "EPERM", "io_uring_setup": "EPERM",
    "init_module": "EPERM", "kexec_load": "EPERM", "reboot": "EPERM", "swapon": "EPERM",
    "clock_settime": "EPERM", "acct": "EPERM", "syslog": "EPERM",
    "tioclinux:0": "EPERM", "tiocsti:0": "EPERM", "tiocsti-high:0": "EPERM",
    # the same calls through the i386 ABI (int 0x80)
    "int80-mount": "EPERM", "int80-unshare": "EPERM", "int80-keyctl": "EPERM",
    "int80-setns": "EPERM",
}
# Syscalls newer than bookworm's libseccomp (Linux 6.8 .. 6.17), by number, through
# each ABI, and numbers no kernel the filter was written for has: ENOSYS, compared in
# the filter by raw number (guestpkg.sandbox.seccomp_filter.NEWEST_SYSCALL).
NEW_DENIED = (457, 458, 459, 460, 461, 463, 464, 465, 466, 467, 468, 469)
BEYOND = (470, 471, 999, 0x3FFFFFFF)
FILTERED |= {f"sys-{n}": "ENOSYS" for n in NEW_DENIED + BEYOND}
FILTERED |= {f"int80-sys-{n}": "ENOSYS" for n in NEW_DENIED + BEYOND}
FILTERED |= {f"x32-sys-{n}": "ENOSYS" for n in BEYOND}
#: New calls the filter lets through to the kernel: the same answer as on the host.
NEW_ALLOWED = ("sys-451", "sys-453", "sys-454", "sys-455", "sys-456", "sys-462",
               "int80-sys-451", "int80-sys-454", "int80-sys-462")

# Socket families: only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK with NETLINK_ROUTE;
# compared on the low 32 bits, as the kernel reads an int.
DENIED_FAMILIES = ("vsock", "packet", "alg", "xdp", "key", "unspec", "family-99",
                   "vsock-high", "netlink-uevent", "netlink-audit", "netlink-generic")
FILTERED |= {f"socket-{f}": "EAFNOSUPPORT" for f in DENIED_FAMILIES}
FILTERED |= {"socketpair-vsock": "EAFNOSUPPORT", "socketpair-packet": "EAFNOSUPPORT",
             "int80-socket-vsock": "EAFNOSUPPORT", "int80-socket-packet": "EAFNOSUPPORT",
             "int80-socket-netlink-uevent": "EAFNOSUPPORT",
             "x32-socket-vsock": "EAFNOSUPPORT", "x32-socket-netlink-uevent": "EAFNOSUPPORT",
             # i386 socketcall(2) passes the family in memory, out of the filter's sight:
             # SYS_SOCKET and SYS_SOCKETPAIR through it are refused whatever the family
             "int80-socketcall-vsock": "EAFNOSUPPORT", "int80-socketcall-unix": "EAFNOSUPPORT"}
#: Calls the filter must still allow.
ALLOWED = {"fork": "OK", "personality-linux": "OK", "socket-unix": "OK", "socket-inet": "OK",
           "socket-inet6": "OK", "socket-netlink-route": "OK", "socket-inet-high": "OK",
           "socket-netlink-route-high": "OK", "socketpair-unix": "OK",
           "int80-socket-unix": "OK", "int80-socket-netlink-route": "OK"}
#: Probes whose arguments make them harmless on the host too: the control run.
CONTROL = ("mount", "umount", "pivot_root", "chroot", "unshare-invalid", "setns", "clone3",
           "fsopen", "open_tree", "move_mount", "mount_setattr", "fchmodat2", "keyctl",
           "bpf", "perf_event_open", "userfaultfd", "kcmp", "open_by_handle_at",
           "process_vm_readv", "tioclinux:0", "tiocsti:0", "tiocsti-high:0",
           "int80-mount", "int80-unshare", "int80-keyctl", "int80-setns",
           *(f"sys-{n}" for n in NEW_DENIED), *(f"int80-sys-{n}" for n in NEW_DENIED))


def host_families() -> set[str]:
    """Probe names of the denied families this kernel has registered already, so that
    creating one in the control run loads no module (/proc/net/protocols names them)."""
    with open("/proc/net/protocols", encoding="ascii") as f:
        protocols = {line.split()[0] for line in f.readlines()[1:] if line.strip()}
    registered = {"vsock": "AF_VSOCK", "vsock-high": "AF_VSOCK", "packet": "PACKET",
                  "xdp": "XDP", "alg": "ALG", "netlink-uevent": "NETLINK",
                  "netlink-audit": "NETLINK", "netlink-generic": "NETLINK"}
    return {family for family, protocol in registered.items() if protocol in protocols}


SOCKET_PROBES = ("int80-socketcall-", "int80-socket-", "x32-socket-", "socketpair-", "socket-")


def family_of(probe: str) -> str | None:
    """The family a socket probe names, or None for any other probe."""
    for prefix in SOCKET_PROBES:
        if probe.startswith(prefix):
            return probe.removeprefix(prefix)
    return None


# Socket probes whose family the host has (AF_UNIX always): there they succeed, or fail
# otherwise than the filter makes them fail.
CONTROL += tuple(p for p in FILTERED if family_of(p) in host_families() | {"unix"})


def name(probe: str) -> str:
    return probe.split(":")[0]


@pytest.fixture(scope="module", params=ID_MAPPINGS)
def filtered_run(tiny_root: Path, probe: Path, tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> ProbeRun:
    from guestpkg.sandbox import SandboxSpec, run_sandboxed

    from .conftest import PROBE_ENV, parse

    log = tmp_path_factory.mktemp("filtered") / "log"
    spec = SandboxSpec(argv=("/probe", *FILTERED, *ALLOWED, *NEW_ALLOWED),
                       lowerdirs=(tiny_root,),
                       uid=BUILD_UID, gid=BUILD_UID, env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), id_mapping=request.param)
    status = run_sandboxed(spec, log_path=log, check=False)
    results, lines = parse(log.read_text())
    return ProbeRun(status, log.read_text(), results, lines)


@pytest.fixture(scope="module")
def host_results(probe: Path) -> dict[str, str]:
    out = subprocess.run([str(probe), *CONTROL], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.parametrize("probe_arg", sorted(FILTERED))
def test_denied_by_the_filter(filtered_run: ProbeRun, host_results: dict[str, str],
                              probe_arg: str) -> None:
    assert filtered_run.status == 0, filtered_run.output
    assert filtered_run.results[name(probe_arg)] == FILTERED[probe_arg]
    if probe_arg in CONTROL:
        assert host_results[name(probe_arg)] != FILTERED[probe_arg], \
            "the host gives the same answer: this probe proves nothing"


@pytest.mark.parametrize("probe_arg", sorted(ALLOWED))
def test_allowed_by_the_filter(filtered_run: ProbeRun, probe_arg: str) -> None:
    assert filtered_run.results[name(probe_arg)] == ALLOWED[probe_arg]


@pytest.mark.parametrize("probe_arg", NEW_ALLOWED)
def test_new_syscalls_the_filter_lets_through(filtered_run: ProbeRun, probe: Path,
                                              probe_arg: str) -> None:
    host = subprocess.run([str(probe), probe_arg], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=True).stdout.split()
    assert filtered_run.results[probe_arg] == host[1], filtered_run.output


def status_of(run: ProbeRun) -> dict[str, str]:
    pairs = (line.removeprefix("status ").split(":", 1) for line in run.lines
             if line.startswith("status ") and ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def test_proc_self_status_shows_no_privileges(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("status")
    status = status_of(run)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, (field, run.output)
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert status["Uid"].split() == [str(BUILD_UID)] * 4


def test_root_with_apt_capabilities_keeps_only_those(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("status", "mount", "unshare-user", "write:/tmp/f:x", "chmod:/tmp/f:4755",
                  "mknod:/tmp/null", uid=0, gid=0, capabilities=APT_CAPABILITIES)
    status = status_of(run)
    mask = sum(1 << n for n in capability_numbers(APT_CAPABILITIES))
    assert int(status["CapBnd"], 16) == mask
    assert int(status["CapEff"], 16) == mask
    assert int(status["CapPrm"], 16) == mask
    assert int(status["CapInh"], 16) == 0 and int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert run.results["mount"] == "EPERM"
    assert run.results["unshare-user"] == "EPERM"
    assert run.results["chmod"] == "EPERM"
    assert run.results["mknod"] == "EPERM"


def test_root_without_capabilities_has_none(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("status", "write:/etc/hostname:x", "mknod:/tmp/null", uid=0, gid=0)
    status = status_of(run)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, (field, run.output)
    assert run.results["mknod"] == "EPERM"
    assert run.results["write"] == "OK"  # uid 0 still owns the fork's files


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def accepted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def host_address() -> str:
    """A non-loopback address of this machine (the one a default route would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
            return str(s.getsockname()[0])
        except OSError:
            return "10.0.0.1"


def test_no_network(sandbox: Callable[..., ProbeRun], listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    run = sandbox(f"connect:127.0.0.1:{port}", f"connect:{host_address()}:{port}",
                  "connect:192.0.2.1:80")
    lines = [line for line in run.lines if line.startswith("connect ")]
    # lo is up (refused, not unreachable), but it is the sandbox's own lo
    assert lines[0] == "connect ECONNREFUSED", run.output
    assert lines[1] == "connect ENETUNREACH", run.output
    assert lines[2] == "connect ENETUNREACH", run.output
    assert not accepted(listener)


def test_network_relaxation_reaches_the_host(sandbox: Callable[..., ProbeRun],
                                             listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    run = sandbox(f"connect:127.0.0.1:{port}", network=True)
    assert run.results["connect"] == "OK", run.output
    assert accepted(listener)


def test_host_files_are_invisible(sandbox: Callable[..., ProbeRun], tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("secret\n")
    run = sandbox(f"read:{canary}", f"read:/proc/1/root{canary}", "read:/etc/hostname")
    reads = [line for line in run.lines if line.startswith("read ")]
    assert reads[0] == "read ENOENT", run.output
    # /proc/1/root is the sandbox's own init: its root is the sandbox's, and it is
    # root's, so not even that is open to the build user
    assert reads[1] in ("read ENOENT", "read EACCES"), run.output
    assert reads[2] == "read OK", run.output


def test_writes_stay_in_the_fork(sandbox: Callable[..., ProbeRun], tiny_root: Path,
                                 tmp_path: Path) -> None:
    from .conftest import snapshot

    before = snapshot(tiny_root)
    outside = tmp_path / "written-from-inside"
    run = sandbox(f"write:{outside}:x", "write:/etc/hostname:changed",
                  "write:/data/file:changed", "write:/new-file:x", "write:/tmp/x:x",
                  "chmod:/data/file:0777", uid=0, gid=0)
    writes = [line for line in run.lines if line.startswith(("write ", "chmod "))]
    assert writes[0] == "write ENOENT"
    assert writes[1:] == ["write OK"] * 4 + ["chmod OK"], run.output
    assert not outside.exists()
    assert snapshot(tiny_root) == before


def test_host_processes_are_invisible(sandbox: Callable[..., ProbeRun]) -> None:
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        pid = sleeper.pid
        run = sandbox(f"kill:{pid}:0", f"kill:{pid}:9", f"ptrace-attach:{pid}",
                      f"read:/proc/{pid}/cmdline", "processes")
        kills = [line for line in run.lines if line.startswith("kill ")]
        assert kills == ["kill ESRCH", "kill ESRCH"], run.output
        assert run.results["ptrace-attach"] == "EPERM"
        assert run.results["read"] == "ENOENT"
        # init and the probe: nothing else
        assert run.results["processes"] == "2", run.output
        assert sleeper.poll() is None, "the host process was killed"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_mknod_mount_and_umount_fail(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("mknod:/tmp/null", "mount-tmpfs:/tmp", "umount-real:/proc",
                  "umount-real:/dev/pts")
    assert run.results["mknod"] == "EPERM"
    assert run.results["mount-tmpfs"] == "EPERM"
    assert [line for line in run.lines if line.startswith("umount-real ")] == \
        ["umount-real EPERM", "umount-real EPERM"]


def test_setuid_chmod_is_refused(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("write:/tmp/f:x", "chmod:/tmp/f:4755", "fchmodat:/tmp/f:2755",
                  "fchmod:/tmp/f:6755", "chmod:/tmp/f:0755")
    lines = [line for line in run.lines if "chmod" in line.split()[0]]
    assert lines == ["chmod EPERM", "fchmodat EPERM", "fchmod EPERM", "chmod OK"], run.output


def test_allow_setuid_relaxation(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("write:/tmp/f:x", "chmod:/tmp/f:4755", allow_setuid=True)
    assert run.results["chmod"] == "OK", run.output


def test_setuid_root_binary_grants_nothing(sandbox: Callable[..., ProbeRun],
                                           tiny_root: Path) -> None:
    # Control: on the host the copy really is setuid root.
    host = subprocess.run(["setpriv", f"--reuid={BUILD_UID}", f"--regid={BUILD_UID}",
                           "--clear-groups", str(tiny_root / "setuid-probe"), "euid"],
                          capture_output=True, text=True, check=True)
    assert "euid 0" in host.stdout
    run = sandbox(argv=("/setuid-probe", "euid", "status", "setuid0", "capset"))
    assert f"euid {BUILD_UID}" in run.lines, run.output
    status = status_of(run)
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert run.results["setuid0"] == "EPERM"
    assert run.results["capset"] == "EPERM"


def test_kernel_interfaces_are_read_only_or_hidden(sandbox: Callable[..., ProbeRun]) -> None:
    hostname = socket.gethostname()
    run = sandbox("write:/proc/sys/kernel/hostname:guestpkg",
                  "write:/proc/sys/vm/drop_caches:1",
                  "write:/sys/class/net/lo/mtu:65536",
                  "write:/sys/kernel/mm/transparent_hugepage/enabled:never",
                  "read:/proc/kcore", "read:/proc/keys", "read:/proc/kallsyms",
                  "read:/sys/kernel/notes", "sethostname:guestpkg",
                  "mknod:/dev/sda")
    writes = [line for line in run.lines if line.startswith("write ")]
    assert writes[0] in ("write EROFS", "write EACCES"), run.output
    assert writes[1] in ("write EROFS", "write EACCES"), run.output
    assert writes[2] in ("write EROFS", "write EACCES"), run.output
    assert writes[3] in ("write ENOENT", "write EROFS", "write EACCES"), run.output
    reads = [line.split()[1] for line in run.lines if line.startswith("read ")]
    # missing, unreadable or masked by /dev/null (ENODATA: read 0 bytes)
    assert all(r in ("ENOENT", "EACCES", "EPERM", "ENODATA") for r in reads), run.output
    assert run.results["sethostname"] == "EPERM"
    assert run.results["mknod"] in ("EPERM", "EROFS")
    assert socket.gethostname() == hostname


def tiocsti_script(interactive: bool, probe: Path, tiny_root: Path, id_mapping: str) -> str:
    fd = 0 if interactive else 1
    return f"""
import os, select, sys, tty
from pathlib import Path
from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed
tty.setraw(0)  # injected characters become readable at once
spec = SandboxSpec(argv=("/probe", "tiocsti:{fd}", "tiocsti-high:{fd}", "tioclinux:{fd}"),
                   lowerdirs=(Path("{tiny_root}"),), uid={BUILD_UID}, gid={BUILD_UID},
                   binds=(Bind(Path("{probe}"), "/probe"),), interactive={interactive},
                   id_mapping="{id_mapping}")
status = run_sandboxed(spec, check=False)
ready, _, _ = select.select([0], [], [], 0)
injected = os.read(0, 100) if ready else b""
sys.stdout.write(f"\\r\\nSTATUS {{status}} INJECTED {{injected!r}}\\r\\n")
"""


@pytest.mark.parametrize("interactive", [False, True], ids=["batch", "interactive"])
def test_tiocsti_into_a_real_terminal(probe: Path, tiny_root: Path, interactive: bool,
                                      repo: Path, id_mapping: str) -> None:
    import pty

    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execve("/usr/bin/python3",
                  ["python3", "-c", tiocsti_script(interactive, probe, tiny_root,
                                                           id_mapping)],
                  {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, wait_status = os.waitpid(pid, 0)
    os.close(master)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(wait_status) == 0, text
    assert "tiocsti EPERM" in text, text
    assert "tiocsti-high EPERM" in text, text
    assert "tioclinux EPERM" in text, text
    assert "STATUS 0 INJECTED b''" in text, text


def test_socketcall_only_where_a_lower_layer_runs_i386_programs(
        sandbox: Callable[..., ProbeRun], tiny_root: Path, tmp_path: Path) -> None:
    """An i386 root's libc creates sockets through socketcall(2): allowed when a lower
    layer has the i386 loader, never because the fork's upper (what a build wrote)
    has one; socket(2) itself is checked either way."""
    i386 = tmp_path / "i386-layer"
    (i386 / "usr/lib").mkdir(parents=True)
    (i386 / "usr/lib/ld-linux.so.2").write_text("the i386 loader, as far as the check goes")
    probes = ("int80-socketcall-unix", "int80-socket-vsock")
    relaxed = sandbox(*probes, lowerdirs=(i386, tiny_root))
    assert relaxed.results["int80-socketcall-unix"] == "OK", relaxed.output
    assert relaxed.results["int80-socket-vsock"] == "EAFNOSUPPORT", relaxed.output
    upper, work = tmp_path / "upper", tmp_path / "work"
    (upper / "usr/lib").mkdir(parents=True)
    (upper / "usr/lib/ld-linux.so.2").write_text("planted by a build")
    work.mkdir()
    planted = sandbox(*probes, upperdir=upper, workdir=work)
    assert planted.results["int80-socketcall-unix"] == "EAFNOSUPPORT", planted.output
