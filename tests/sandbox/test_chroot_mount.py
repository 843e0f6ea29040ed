# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``allow_chroot_mount`` relaxation (piuparts): chroot(2) and mount(2) as uid 0
of the sandbox's user namespace, in a mount and pid namespace that namespace owns.
Escape probes with harmless arguments (scratch directories of the throwaway root,
the sandbox's own binds), as in test_escape.py: the classic chroot escape ends in
the sandbox's own root, the sandbox's mounts are locked, a fresh proc shows only the
sandbox's processes, the ids are a slice of guestpkg's range, and what the filter
refuses besides (mknod, keyrings, bpf, ptrace, modules, kexec, namespaces) stays
refused."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from guestpkg.errors import UsageError
from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed, subids
from guestpkg.sandbox.spec import CHROOT_MOUNT_CAPABILITIES

from .conftest import PROBE_ENV, ProbeRun, parse
from .test_lifecycle import all_mountinfo_text, processes_with, wait_until

#: Still refused with the relaxation, and how.
STILL_FILTERED = {
    "keyctl": "EPERM", "add_key": "EPERM", "bpf": "EPERM", "ptrace-traceme": "EPERM",
    "init_module": "EPERM", "kexec_load": "EPERM", "reboot": "EPERM",
    "unshare-user": "EPERM", "unshare-invalid": "EPERM", "clone-newuser": "EPERM",
    "setns": "EPERM", "pivot_root": "EPERM", "open_by_handle_at": "EPERM",
    "perf_event_open": "EPERM", "userfaultfd": "EPERM", "io_uring_setup": "EPERM",
    "fsopen": "ENOSYS", "open_tree": "ENOSYS", "move_mount": "ENOSYS",
    "mount_setattr": "ENOSYS", "fspick": "ENOSYS", "fsconfig": "ENOSYS", "fsmount": "ENOSYS",
    # statmount, listmount, open_tree_attr: the guard program's raw numbers
    "sys-457": "ENOSYS", "sys-458": "ENOSYS", "sys-467": "ENOSYS",
    "clone3": "ENOSYS", "int80-unshare": "EPERM",
    "int80-keyctl": "EPERM", "int80-setns": "EPERM",
    # clone's namespace flags, also through the i386 ABI (CLONE_FS beside them makes
    # an unfiltered call EINVAL: nothing is cloned either way)
    "clone-newns": "EPERM", "int80-clone-newns": "EPERM", "int80-clone-newuser": "EPERM",
}


#: Mounts that would undo a locked mount or reach beyond the sandbox's own namespaces,
#: each with what the kernel answers (lines "NAME RESULT", in this order).
MOUNT_ATTACKS = (
    # a copy of the read-only bind is as locked as the bind itself
    "write:/tmp/copy:x", "bind-mount:/probe:/tmp/copy", "remount-rw:/tmp/copy",
    # a locked mount can't be moved from over what it covers
    "mkdir:/tmp/m", "move-mount-real:/dev/shm:/tmp/m",
    # /sys has masked (locked) directories: a non-recursive bind would show them
    "mkdir:/tmp/s", "bind-mount:/sys:/tmp/s",
    # the superblocks belong to the initial user namespace: /dev/shm's size stays
    "remount-sb:/dev/shm",
    # file systems of namespaces the sandbox's user namespace does not own (sysfs:
    # network, cgroup2: cgroup, mqueue: ipc), and bpffs
    "mount-type:sysfs:/tmp/s", "mount-type:cgroup2:/tmp/s", "mount-type:mqueue:/tmp/s",
    "mount-type:bpf:/tmp/s",
    # the uts namespace is the initial user namespace's: the current name, unchanged
    "sethostname:guestpkg",
)
#: A probe's result line ("NAME OK", "NAME EPERM"), not one of its other lines.
RESULT = re.compile(r"^\S+ (OK|E[A-Z0-9]+)$")
MOUNT_ATTACK_RESULTS = [
    "write OK", "bind-mount OK", "remount-rw EPERM",
    "mkdir OK", "move-mount-real EINVAL",
    "mkdir OK", "bind-mount EINVAL",
    "remount-sb EPERM",
    "mount-type EPERM", "mount-type EPERM", "mount-type EPERM", "mount-type EPERM",
    "sethostname EPERM",
]


def run_probes(tiny_root: Path, probe: Path, tmp_path: Path, *probes: str,
               binds: tuple[Bind, ...] = (), **fields: object) -> ProbeRun:
    spec = SandboxSpec(argv=("/probe", *probes), lowerdirs=(tiny_root,), env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"), *binds), uid=0, gid=0,
                       capabilities=CHROOT_MOUNT_CAPABILITIES, allow_chroot_mount=True,
                       **fields)  # type: ignore[arg-type]
    log = tmp_path / "probe.log"
    status = run_sandboxed(spec, log_path=log, check=False)
    output = log.read_text()
    results, lines = parse(output)
    return ProbeRun(status, output, results, lines)


@pytest.fixture(scope="module")
def relaxed(tiny_root: Path, probe: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> ProbeRun:
    """One sandbox with the relaxation: every probe, in this order (the escape last:
    it changes the probe's root for what follows)."""
    return run_probes(
        tiny_root, probe, tmp_path_factory.mktemp("chroot-mount"),
        "cat:/proc/self/uid_map", "status", "processes",
        "mkdir:/tmp/t", "mount-tmpfs:/tmp/t", "mkdir:/tmp/p", "mount-proc:/tmp/p",
        "processes-in:/tmp/p", *STILL_FILTERED, "mknod:/tmp/null",
        "remount-rw:/probe", "remount-suid:/probe", "umount-real:/probe",
        "umount-real:/dev/pts", "umount-real:/etc", *MOUNT_ATTACKS,
        "mkdir:/tmp/c", "chroot-into:/tmp/c",
        "chroot-escape:x", "cat:/etc/hostname", "cat:/data/file",
        "chroot-fchdir:/tmp/f", "cat:/etc/hostname")


def test_the_relaxation_allows_what_piuparts_needs(relaxed: ProbeRun) -> None:
    assert relaxed.status == 0, relaxed.output
    assert relaxed.results["mount-tmpfs"] == "OK", relaxed.output
    assert relaxed.results["mount-proc"] == "OK", relaxed.output
    assert relaxed.results["chroot-into"] == "OK", relaxed.output


def test_classic_chroot_escape_ends_in_the_sandbox_root(relaxed: ProbeRun) -> None:
    # The walk up with ".." stops at the root of the sandbox's mount namespace: the
    # tiny root (its /etc/hostname), never the host's.  chroot-into above moved the
    # probe's root to the empty /tmp/c first: the escape starts from there.  So does
    # the walk from a descriptor of "/" opened before chroot(2) (fchdir).
    assert relaxed.results["chroot-escape"] == "OK", relaxed.output
    assert relaxed.results["chroot-fchdir"] == "OK", relaxed.output
    cats = [line for line in relaxed.lines
            if line.startswith("cat ") and line != "cat OK"][-3:]
    assert cats == ["cat tiny", "cat lower layer content", "cat tiny"], relaxed.output


def test_mounts_cant_undo_the_locks_or_reach_other_namespaces(relaxed: ProbeRun) -> None:
    # one result line per probe, in order: MOUNT_ATTACKS's follow the umount probes
    results = [line for line in relaxed.lines if RESULT.match(line)]
    first = results.index("umount-real EINVAL") + 3
    assert results[first:first + len(MOUNT_ATTACKS)] == MOUNT_ATTACK_RESULTS, relaxed.output


def test_a_fresh_proc_shows_only_the_sandbox(relaxed: ProbeRun) -> None:
    # The probe is pid 1 of its own pid namespace: alone in /proc and in a new proc.
    counts = [line for line in relaxed.lines
              if line.startswith("processes ") and line.split()[1].isdigit()]
    assert counts == ["processes 1", "processes 1"], relaxed.output


def test_the_capabilities_are_exactly_the_relaxations(relaxed: ProbeRun) -> None:
    # apt's, CAP_SYS_CHROOT and CAP_SYS_ADMIN (bits 0-7, 18, 21): no CAP_NET_ADMIN,
    # CAP_SYS_PTRACE, CAP_MKNOD, CAP_SETFCAP or CAP_SETPCAP; nothing inheritable or
    # ambient; no_new_privs and the filter on
    status = dict(line.split()[1:3] for line in relaxed.lines
                  if line.startswith("status ") and len(line.split()) == 3)
    assert {name: status.get(name) for name in (
        "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:")} \
        == {"CapInh:": "0" * 16, "CapPrm:": "00000000002400ff", "CapEff:": "00000000002400ff",
            "CapBnd:": "00000000002400ff", "CapAmb:": "0" * 16, "NoNewPrivs:": "1",
            "Seccomp:": "2"}, relaxed.output


def test_the_ids_are_a_slice_not_the_hosts(relaxed: ProbeRun) -> None:
    maps = [line.split()[1:] for line in relaxed.lines if line.startswith("cat ")][:1]
    assert maps and maps[0][0] == "0", relaxed.output
    _inside, outside, count = (int(word) for word in maps[0])
    # a slice of guestpkg's own subordinate range, never the host's ids
    guestpkg = subids.find_range(subids.SUBUID_FILE, (subids.RANGE_OWNER,))
    assert guestpkg.start <= outside and outside + count <= guestpkg.end, relaxed.output
    assert count == subids.SLICE_SIZE, relaxed.output


def test_inherited_mounts_are_locked(relaxed: ProbeRun) -> None:
    # The read-only, nosuid, nodev bind of the probe can't be made writable or lose
    # nosuid; neither it nor the sandbox's /dev/pts or the root can be unmounted.
    assert relaxed.results["remount-rw"] == "EPERM", relaxed.output
    assert relaxed.results["remount-suid"] == "EPERM", relaxed.output
    umounts = [line for line in relaxed.lines if line.startswith("umount-real ")]
    assert umounts == ["umount-real EINVAL"] * 3, relaxed.output


def test_the_rest_of_the_filter_stays(relaxed: ProbeRun) -> None:
    for probe, expected in STILL_FILTERED.items():
        assert relaxed.results[probe] == expected, f"{probe}: {relaxed.output}"
    assert relaxed.results["mknod"] == "EPERM", relaxed.output


def test_the_sandboxs_own_proc_under_the_commands_shows_nothing_to_use(
        tiny_root: Path, probe: Path, tmp_path: Path) -> None:
    """The command's /proc is its own mount: unmounting it uncovers the sandbox's
    unmasked proc, of the sandbox's pid namespace.  Its init (real root) and the
    process that waits for the command (the user namespace's full capabilities) are
    hidden there (``hidepid=invisible``); behind that, neither's descriptors,
    namespaces, memory or root are the command's to open, nor can it signal them
    through a /proc directory taken for a pidfd (pid 1 and 2 of the *sandbox's* pid
    namespace; signal 0 sends nothing).  The kernel's files are real root's, its
    addresses hidden."""
    run = run_probes(tiny_root, probe, tmp_path, "umount-real:/proc", "remount-proc:/proc",
                     "processes",
                     "foreign-fds:/proc", "write:/proc/sys/kernel/hostname:x",
                     "read:/proc/kcore", "write:/proc/sysrq-trigger:h",
                     "read:/proc/1/ns/mnt", "read:/proc/2/ns/user", "read:/proc/1/environ",
                     "read:/proc/2/mem", "read:/proc/1/root/etc/hostname",
                     "read:/proc/1/exe", "read:/proc/2/exe",
                     "pidfd-signal:/proc/1", "pidfd-signal:/proc/2",
                     "kernel-addresses:/proc/kallsyms")
    assert run.results["umount-real"] == "OK", run.output
    # the proc's superblock is the initial user namespace's: hidepid stays
    assert run.results["remount-proc"] == "EPERM", run.output
    counts = [int(line.split()[1]) for line in run.lines
              if line.startswith("processes ") and line.split()[1].isdigit()]
    assert counts == [1], run.output      # the probe alone: not init, not the waiter
    assert "foreign-fds 0" in run.lines, run.output
    # real root's files (or missing from this kernel)
    writes = [line.split()[1] for line in run.lines if line.startswith("write ")]
    assert writes[0] == "EACCES" and writes[1] in ("EACCES", "ENOENT"), run.output
    reads = [line.split()[1] for line in run.lines if line.startswith("read ")]
    assert reads[0] in ("EACCES", "EPERM", "ENOENT"), run.output
    # init's and the waiter's files: hidden, and refused behind that.  Their exe is
    # the host's python3 (runc's CVE-2019-5736 wrote through such a link): opened
    # for reading only here.
    assert len(reads) == 8 and all(r in ("ENOENT", "EACCES") for r in reads[1:8]), \
        run.output
    signals = [line.split()[1] for line in run.lines if line.startswith("pidfd-signal ")]
    assert signals and all(r in ("ENOENT", "EINVAL") for r in signals), run.output
    # /proc/kallsyms lists symbols, their addresses zeroed: showing them needs
    # CAP_SYSLOG in the initial user namespace (or, for every user of the host,
    # kernel.perf_event_paranoid <= 1 with kptr_restrict 0, which this test assumes not)
    shown = [line.split()[1:] for line in run.lines if line.startswith("kernel-addresses ")]
    assert shown and shown[0][0] == "0" and int(shown[0][2]) > 1000, run.output


def test_mounts_made_inside_propagate_nowhere(tiny_root: Path, probe: Path,
                                              tmp_path: Path) -> None:
    """A mount made shared inside, then a tmpfs under it: nothing reaches the host's
    mount namespace (the sandbox's mounts are private, and the command's mount
    namespace, of a less privileged user namespace, only ever receives)."""
    marker = f"guestpkg-redteam-{os.getpid()}-{tmp_path.name}"
    run = run_probes(tiny_root, probe, tmp_path, "make-rshared:/", "mkdir:/tmp/mk",
                     f"mount-named-tmpfs:{marker}:/tmp/mk", "count:/proc/self/mountinfo:"
                     + marker)
    assert run.results["make-rshared"] == "OK", run.output
    assert run.results["mount-named-tmpfs"] == "OK", run.output
    assert "count 1" in run.lines, run.output
    # the host's view, of this test's own marker only
    assert marker not in Path("/proc/self/mountinfo").read_text()


def test_a_binfmt_misc_entry_made_inside_stays_inside(tiny_root: Path, probe: Path,
                                                     tmp_path: Path) -> None:
    """binfmt_misc mounts in a user namespace (Linux >= 6.7) as an instance of that
    namespace's own, whose entries apply to programs it runs.  While the sandbox
    still holds its entry, a binfmt_misc mounted in the initial user namespace (in a
    private mount namespace: the host's instance) does not have it; as real root the
    sandbox's mount would be that very instance."""
    control = tmp_path / "control"
    control.mkdir()
    result: list[ProbeRun] = []
    sandbox = threading.Thread(target=lambda: result.append(run_probes(
        tiny_root, probe, tmp_path, "mkdir:/tmp/b", "mount-type:binfmt_misc:/tmp/b",
        "binfmt-register:/tmp/b", "read:/tmp/b/guestpkg-redteam", "wait-for:/control/done",
        binds=(Bind(control, "/control"),))))
    sandbox.start()
    log = tmp_path / "probe.log"
    deadline = time.monotonic() + 30
    while "\nread " not in (log.read_text() if log.exists() else "") \
            and sandbox.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    host = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-euc",
         "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
         "cd /proc/sys/fs/binfmt_misc; ls; "
         # never leave it behind, should it ever get there
         "if [ -e guestpkg-redteam ]; then echo -1 > guestpkg-redteam; fi"],
        capture_output=True, text=True, check=True)
    (control / "done").touch()
    sandbox.join()
    run = result[0]
    assert run.results["mount-type"] == "OK", run.output
    assert run.results["binfmt-register"] == "OK", run.output
    assert run.results["read"] == "OK", run.output      # the entry exists inside
    assert run.results["wait-for"] == "OK", run.output  # still, when the host looked
    assert "register" in host.stdout.split(), host
    assert "guestpkg-redteam" not in host.stdout.split(), host


def test_sigkill_of_guestpkg_leaves_nothing_of_the_nested_namespaces(
        tiny_root: Path, probe: Path, tmp_path: Path, repo: Path) -> None:
    """The relaxation adds a process outside the command's pid namespace (the one that
    waits) and a mount namespace of the command's own with its mounts: a SIGKILL of
    guestpkg still ends every process of the sandbox, nested pid namespace included,
    and every mount the command made."""
    marker = f"guestpkg-redteam-kill-{os.getpid()}"
    token = f"sleep:{600 + os.getpid() % 1000}"
    log = tmp_path / "log"
    script = f"""
from pathlib import Path
from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed
from guestpkg.sandbox.spec import CHROOT_MOUNT_CAPABILITIES
spec = SandboxSpec(argv=("/probe", "mkdir:/tmp/mk", "mount-named-tmpfs:{marker}:/tmp/mk",
                         "echo:started", "{token}"),
                   lowerdirs=(Path("{tiny_root}"),), uid=0, allow_chroot_mount=True,
                   capabilities=CHROOT_MOUNT_CAPABILITIES,
                   binds=(Bind(Path("{probe}"), "/probe"),))
run_sandboxed(spec, log_path=Path("{log}"))
"""
    guestpkg = subprocess.Popen(["/usr/bin/python3", "-c", script],
                                env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    # the helper, init and the waiting process name guestpkg's pid; the probe its sleep
    ours = (f"--parent-pid\0{guestpkg.pid}\0", token)
    try:
        wait_until(lambda: log.exists() and "echo started" in log.read_text(),
                   "the sandboxed command to start")
        assert processes_with(ours[0]) and processes_with(ours[1]), log.read_text()
        assert marker in all_mountinfo_text()   # the command's mount is seen from here
        guestpkg.send_signal(signal.SIGKILL)
        guestpkg.wait()
        wait_until(lambda: not any(processes_with(t) for t in ours),
                   "every process of the sandbox to die")
        wait_until(lambda: marker not in all_mountinfo_text(),
                   "the command's mounts to go away")
    finally:
        guestpkg.kill()
        guestpkg.wait()
        for pid in {p for t in ours for p in processes_with(t)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_no_writable_bind_with_the_relaxation(tiny_root: Path, probe: Path,
                                             tmp_path: Path) -> None:
    """Binds are idmapped: a file uid 0 inside writes through a writable bind is owned
    by real root on the host's disk, and with allow_setuid (which piuparts needs for
    dpkg) the command can make it setuid.  The relaxation's spec takes read-only
    binds only (piuparts's log is read from the fork's upper, whose files carry the
    slice's ids)."""
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UsageError, match="writable bind"):
        run_probes(tiny_root, probe, tmp_path, "copy-setuid:/out/x",
                   binds=(Bind(out, "/out", readonly=False),), allow_setuid=True)
    assert list(out.iterdir()) == []


def test_without_the_relaxation_the_same_calls_are_refused(
        tiny_root: Path, probe: Path, tmp_path: Path) -> None:
    """Control: uid 0 with apt's capabilities, no relaxation: mount and chroot fail."""
    spec = SandboxSpec(argv=("/probe", "mkdir:/tmp/t", "mount-tmpfs:/tmp/t",
                             "chroot-into:/tmp/t"), lowerdirs=(tiny_root,), env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), uid=0, gid=0)
    log = tmp_path / "control.log"
    assert run_sandboxed(spec, log_path=log, check=False) == 0
    results, _ = parse(log.read_text())
    assert results["mount-tmpfs"] == "EPERM" and results["chroot-into"] == "EPERM"
