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

from pathlib import Path

import pytest

from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed, subids
from guestpkg.sandbox.spec import CHROOT_MOUNT_CAPABILITIES

from .conftest import PROBE_ENV, ProbeRun, parse

#: Still refused with the relaxation, and how.
STILL_FILTERED = {
    "keyctl": "EPERM", "add_key": "EPERM", "bpf": "EPERM", "ptrace-traceme": "EPERM",
    "init_module": "EPERM", "kexec_load": "EPERM", "reboot": "EPERM",
    "unshare-user": "EPERM", "unshare-invalid": "EPERM", "clone-newuser": "EPERM",
    "setns": "EPERM", "pivot_root": "EPERM", "open_by_handle_at": "EPERM",
    "perf_event_open": "EPERM", "userfaultfd": "EPERM", "io_uring_setup": "EPERM",
    "fsopen": "ENOSYS", "open_tree": "ENOSYS", "move_mount": "ENOSYS",
    "mount_setattr": "ENOSYS", "clone3": "ENOSYS", "int80-unshare": "EPERM",
    "int80-keyctl": "EPERM", "int80-setns": "EPERM",
}


def run_probes(tiny_root: Path, probe: Path, tmp_path: Path, *probes: str,
               **fields: object) -> ProbeRun:
    spec = SandboxSpec(argv=("/probe", *probes), lowerdirs=(tiny_root,), env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), uid=0, gid=0,
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
        "cat:/proc/self/uid_map", "processes",
        "mkdir:/tmp/t", "mount-tmpfs:/tmp/t", "mkdir:/tmp/p", "mount-proc:/tmp/p",
        "processes-in:/tmp/p", *STILL_FILTERED, "mknod:/tmp/null",
        "remount-rw:/probe", "remount-suid:/probe", "umount-real:/probe",
        "umount-real:/dev/pts", "umount-real:/etc", "mkdir:/tmp/c", "chroot-into:/tmp/c",
        "chroot-escape:x", "cat:/etc/hostname", "cat:/data/file")


def test_the_relaxation_allows_what_piuparts_needs(relaxed: ProbeRun) -> None:
    assert relaxed.status == 0, relaxed.output
    assert relaxed.results["mount-tmpfs"] == "OK", relaxed.output
    assert relaxed.results["mount-proc"] == "OK", relaxed.output
    assert relaxed.results["chroot-into"] == "OK", relaxed.output


def test_classic_chroot_escape_ends_in_the_sandbox_root(relaxed: ProbeRun) -> None:
    # The walk up with ".." stops at the root of the sandbox's mount namespace: the
    # tiny root (its /etc/hostname), never the host's.  chroot-into above moved the
    # probe's root to the empty /tmp/c first: the escape starts from there.
    assert relaxed.results["chroot-escape"] == "OK", relaxed.output
    cats = [line for line in relaxed.lines
            if line.startswith("cat ") and line != "cat OK"][-2:]
    assert cats == ["cat tiny", "cat lower layer content"], relaxed.output


def test_a_fresh_proc_shows_only_the_sandbox(relaxed: ProbeRun) -> None:
    # The probe is pid 1 of its own pid namespace: alone in /proc and in a new proc.
    counts = [line for line in relaxed.lines
              if line.startswith("processes ") and line.split()[1].isdigit()]
    assert counts == ["processes 1", "processes 1"], relaxed.output


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
    unmasked proc, of the sandbox's pid namespace (its init, real root, and the
    process that waits for the command, with more capabilities): neither lets the
    command into its descriptors."""
    run = run_probes(tiny_root, probe, tmp_path, "umount-real:/proc", "processes",
                     "foreign-fds:/proc", "write:/proc/sys/kernel/hostname:x",
                     "read:/proc/kcore", "write:/proc/sysrq-trigger:h")
    assert run.results["umount-real"] == "OK", run.output
    counts = [int(line.split()[1]) for line in run.lines
              if line.startswith("processes ") and line.split()[1].isdigit()]
    assert counts and counts[0] >= 3, run.output      # init, the waiter, the probe
    assert "foreign-fds 0" in run.lines, run.output
    # real root's files (or missing from this kernel)
    writes = [line.split()[1] for line in run.lines if line.startswith("write ")]
    assert writes[0] == "EACCES" and writes[1] in ("EACCES", "ENOENT"), run.output
    assert run.results["read"] in ("EACCES", "EPERM", "ENOENT"), run.output


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
