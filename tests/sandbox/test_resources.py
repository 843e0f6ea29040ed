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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guestpkg.errors import ResourceLimitHit
from guestpkg.sandbox import cgroups

from .conftest import ProbeRun

MiB = 1 << 20


def guestpkg_cgroups() -> list[Path]:
    """Every cgroup guestpkg made, in every hierarchy."""
    version = cgroups.cgroup_version()
    assert version is not None, "no writable cgroup hierarchy with memory and pids"
    return sorted(child for parent in cgroups._parents(version).values() if parent.is_dir()
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
        if cgroup.version == 2:
            directory = cgroup.directories[""]
            assert (directory / "memory.max").read_text().strip() == str(96 * MiB)
            assert (directory / "pids.max").read_text().strip() == "77"
        else:
            memory = cgroup.directories["memory"]
            assert (memory / "memory.limit_in_bytes").read_text().strip() == str(96 * MiB)
            assert (cgroup.directories["pids"] / "pids.max").read_text().strip() == "77"
            assert (cgroup.directories["cpu"] / "cpu.shares").read_text().strip() == "512"
        made = list(cgroup.directories.values())
        assert all(d.is_dir() for d in made)
    assert not any(d.exists() for d in made)


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
