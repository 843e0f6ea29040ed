# SPDX-License-Identifier: GPL-2.0-or-later
"""Resource limits: a fork bomb, a memory hog, a disk filler and a /dev/shm filler each
end bounded, with a message that names the limit, the machine is fine afterwards (the
next sandbox runs), and no cgroup is left behind.

Every probe also gets rlimits as a second net (RLIMIT_NPROC counts the processes of
the sandbox's own uid, RLIMIT_AS and RLIMIT_FSIZE bound one process), set well above
the cgroup limits under test, so that a broken cgroup fails the test instead of
hurting the shared machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guestpkg.errors import ResourceLimitHit
from guestpkg.fsutil import tree_usage_bytes as usage_bytes
from guestpkg.sandbox import cgroups
from guestpkg.sandbox.syscalls import TMPFS_MAGIC, fstatfs_type
from tests.support.paths import TEST_AREA

from .conftest import ProbeRun

MiB = 1 << 20


def guestpkg_cgroups() -> list[Path]:
    """Every cgroup guestpkg made, in every hierarchy."""
    parents = cgroups.all_parents()
    assert parents, "no writable cgroup hierarchy"
    return sorted(child for parent in parents if parent.is_dir()
                  for child in parent.iterdir() if child.is_dir())


@pytest.fixture
def no_cgroups_left() -> Iterator[None]:
    """None of this process's cgroups is left (other guestpkgs on the machine make and
    remove theirs meanwhile: only ours, named after our pid, count)."""
    yield
    ours = [c for c in guestpkg_cgroups() if c.name.startswith(f"{os.getpid()}-")]
    assert not ours


def test_fork_bomb_is_bounded_and_reported(sandbox: Callable[..., ProbeRun],
                                           no_cgroups_left: None) -> None:
    with pytest.raises(ResourceLimitHit) as caught:
        sandbox("forkbomb", pids_max=64, timeout_s=3, rlimits={"CORE": 0, "NPROC": 400})
    error = caught.value
    assert error.returncode == 124  # the wall-clock limit ended it
    assert "the limit of 64 processes and threads (setting pids_max) refused" in error.what
    assert "--pids-max" in (error.hint or "")
    assert "forkbomb refused EAGAIN" in error.output_tail
    assert sandbox("fork").results["fork"] == "OK"  # the next sandbox is fine


def test_memory_hog_is_killed_and_reported(sandbox: Callable[..., ProbeRun],
                                           no_cgroups_left: None) -> None:
    with pytest.raises(ResourceLimitHit) as caught:
        sandbox("hog:512", memory_max_bytes=64 * MiB,
                rlimits={"CORE": 0, "AS": 1024 * MiB})
    error = caught.value
    assert error.returncode == 128 + 9  # SIGKILL from the OOM killer
    assert f"out of memory: the memory limit of {64 * MiB} bytes (setting memory_max)" \
        in error.what
    assert sandbox("hog:16", memory_max_bytes=64 * MiB).results["hog"] == "OK"


def test_disk_filler_is_bounded(sandbox: Callable[..., ProbeRun],
                                no_cgroups_left: None) -> None:
    run = sandbox("fill:/tmp/big", "write:/tmp/after:x", upper_size_bytes=16 * MiB,
                  rlimits={"CORE": 0, "FSIZE": 256 * MiB})
    assert run.results["fill"] == "ENOSPC", run.output
    filled = int(run.results["filled"].split()[0])
    assert 0 < filled <= 16
    assert run.status == 0


@pytest.fixture
def on_disk() -> Iterator[Path]:
    """An overlay upper and work directory on a disk file system (the disk cap leaves
    tmpfs alone: it has its size), as ``fork_upper = disk`` makes them; removed
    afterwards."""
    TEST_AREA.mkdir(parents=True, exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="disk-cap-", dir=TEST_AREA))
    try:
        fd = os.open(top, os.O_RDONLY)
        try:
            assert fstatfs_type(fd) != TMPFS_MAGIC, f"{TEST_AREA} must be on a disk"
        finally:
            os.close(fd)
        for name in ("upper", "work"):
            (top / name).mkdir()
        yield top
    finally:
        shutil.rmtree(top)


#: What the disk fillers below write at most: their own safety net, so that a broken
#: cap fails the test instead of filling the shared machine's disk.
FILLER_NET_MIB = 2048


def written_mib(what: str) -> float:
    found = re.search(r"it wrote ([0-9.]+) (MiB|GiB)", what)
    assert found, what
    return float(found.group(1)) * (1024 if found.group(2) == "GiB" else 1)


def test_disk_filler_on_disk_is_stopped_and_reported(
        sandbox: Callable[..., ProbeRun], on_disk: Path, no_cgroups_left: None) -> None:
    """With the upper on disk nothing but the cap stops a filler (RLIMIT_FSIZE bounds
    one file, not many): it is killed soon after it passed disk_max, the message says
    what it wrote and how to raise the limit, and the next command runs."""
    upper = {"upperdir": on_disk / "upper", "workdir": on_disk / "work",
             "disk_max_bytes": 64 * MiB}
    with pytest.raises(ResourceLimitHit) as caught:
        sandbox(f"fillfiles:/tmp:{FILLER_NET_MIB}", **upper,
                rlimits={"CORE": 0, "FSIZE": 32 * MiB})
    error = caught.value
    assert error.returncode == 128 + 9
    assert "more than its limit of 64 MiB (setting disk_max; raise it with --disk-max " \
        "SIZE)" in error.what
    assert f"({on_disk / 'upper'})" in error.what
    assert "--disk-max SIZE" in (error.hint or "")
    assert 64 < written_mib(error.what) < FILLER_NET_MIB
    assert "filled" not in error.output_tail  # killed, never finished
    assert usage_bytes_of(on_disk / "upper") < FILLER_NET_MIB * MiB
    assert "stopping everything: it wrote" in error.output_tail  # said in the log
    assert sandbox("fork", **upper).results["fork"] == "OK"  # the next one is fine


def usage_bytes_of(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return usage_bytes(fd, set())
    finally:
        os.close(fd)


def test_disk_reserve_stops_a_filler(sandbox: Callable[..., ProbeRun], on_disk: Path,
                                     no_cgroups_left: None) -> None:
    """The free space of the file system is kept, whoever uses it: a reserve of all
    but 256 MiB of what is free now stops the filler within about that much."""
    st = os.statvfs(on_disk)
    reserve = st.f_bavail * st.f_frsize - 256 * MiB
    with pytest.raises(ResourceLimitHit) as caught:
        sandbox(f"fillfiles:/tmp:{FILLER_NET_MIB}", upperdir=on_disk / "upper",
                workdir=on_disk / "work", disk_reserve_bytes=reserve,
                rlimits={"CORE": 0, "FSIZE": 32 * MiB})
    error = caught.value
    assert error.returncode == 128 + 9
    assert f"the file system of {on_disk / 'upper'} has only" in error.what
    assert "must stay free (setting disk_reserve; free some space, or lower it with " \
        "--disk-reserve SIZE)" in error.what
    assert "--disk-reserve SIZE" in (error.hint or "")
    assert usage_bytes_of(on_disk / "upper") < FILLER_NET_MIB * MiB


def test_shm_filler_is_bounded(sandbox: Callable[..., ProbeRun],
                               no_cgroups_left: None) -> None:
    run = sandbox("fill:/dev/shm/big", shm_size_bytes=8 * MiB,
                  rlimits={"CORE": 0, "FSIZE": 256 * MiB})
    assert run.results["fill"] == "ENOSPC", run.output
    assert 0 < int(run.results["filled"].split()[0]) <= 8


def test_limits_are_set_in_the_cgroup(sandbox: Callable[..., ProbeRun],
                                      no_cgroups_left: None) -> None:
    """What the kernel enforces is what the spec asked for (read from inside the
    sandbox's own cgroup files by the caller while the command runs is racy; the
    probe reads its /proc/self/cgroup instead and the limits through cgroupfs)."""
    limits = cgroups.Limits(memory_max_bytes=96 * MiB, pids_max=77, cpu_weight=50)
    with cgroups.limited(limits) as cgroup:
        assert cgroup is not None
        layout = cgroup.layout

        def read(controller: str, v2_name: str, v1_name: str) -> str:
            on_v2 = layout.place(controller) == "v2"
            directory = cgroup.directories[cgroups.V2 if on_v2 else controller]
            return (directory / (v2_name if on_v2 else v1_name)).read_text().strip()

        assert read("memory", "memory.max", "memory.limit_in_bytes") == str(96 * MiB)
        assert read("pids", "pids.max", "pids.max") == "77"
        assert read("cpu", "cpu.weight", "cpu.shares") == ("50" if layout.place("cpu") ==
                                                           "v2" else "512")
        made = list(cgroup.directories.values())
        assert all(d.is_dir() for d in made)
    assert not any(d.exists() for d in made)


def test_a_v2_cgroup_holds_the_sandbox_and_kills_what_outlives_it(
        no_cgroups_left: None) -> None:
    """On the real unified hierarchy (on this project's hybrid test machines it has
    none of memory, pids and cpu: they are v1's), every sandbox gets a v2 cgroup too,
    and a process left in it when the sandbox is over is killed (cgroup.kill) before
    the cgroup is removed."""
    layout = cgroups.find_layout()
    assert layout is not None and layout.unified is not None, "no cgroup v2 hierarchy"
    limits = cgroups.Limits(memory_max_bytes=96 * MiB, pids_max=77)
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        with cgroups.limited(limits) as cgroup:
            assert cgroup is not None
            v2 = cgroup.directories[cgroups.V2]
            assert v2.parent == layout.unified / "guestpkg"
            cgroups.join_pid(leftover.pid, [str(f) for f in cgroup.procs_files()])
            lines = Path(f"/proc/{leftover.pid}/cgroup").read_text().splitlines()
            assert f"0::/{v2.relative_to(layout.unified)}" in lines
            assert (v2 / "cgroup.procs").read_text().split() == [str(leftover.pid)]
            if layout.place("memory") == "v1":
                memory = cgroup.directories["memory"]
                assert any(line.endswith(":memory:/" + str(memory.relative_to(
                    layout.v1["memory"]))) for line in lines), lines
        assert leftover.wait(timeout=10) == -9
        assert not v2.exists()
    finally:
        leftover.kill()
        leftover.wait()


def test_unavailable_controllers_are_named(sandbox: Callable[..., ProbeRun], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A cgroup v2 hierarchy that offers none of memory, pids and cpu (this machine's
    offers only hugetlb) and no v1 hierarchy for them: the sandbox runs, and the log
    says which controllers are missing and which settings are not enforced."""
    fake = tmp_path / "cgroupfs"
    (fake / "unified").mkdir(parents=True)
    (fake / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", fake)
    run = sandbox("echo:ran", memory_max_bytes=64 * MiB, pids_max=64, cpu_weight=50)
    assert run.status == 0 and run.results["echo"] == "ran"
    assert (f"no cgroup controller memory, pids, cpu (the cgroup v2 hierarchy "
            f"{fake / 'unified'} offers only hugetlb, and no cgroup v1 hierarchy has them): "
            "the sandbox runs without memory_max, pids_max, cpu_weight") in caplog.text
    assert not (fake / "unified" / "guestpkg").exists()


def test_without_a_usable_cgroupfs_the_sandbox_runs_and_says_so(
        sandbox: Callable[..., ProbeRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A container's read-only or undelegated cgroupfs must not stop every build: here a
    cgroup v2 root whose guestpkg directory can't be made (a file is in the way)."""
    fake = tmp_path / "cgroupfs"
    fake.mkdir()
    (fake / "cgroup.controllers").write_text("cpu memory pids\n")
    (fake / "cgroup.subtree_control").write_text("memory pids\n")
    (fake / "guestpkg").write_text("in the way\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", fake)
    run = sandbox("echo:ran", memory_max_bytes=64 * MiB, pids_max=64)
    assert run.status == 0 and run.results["echo"] == "ran"
    assert "runs without memory, process and CPU limits" in caplog.text
