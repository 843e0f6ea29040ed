# SPDX-License-Identifier: GPL-2.0-or-later
"""Resource limits: every sandbox in a cgroup of its own, made in cgroupfs directly.

A :class:`Limits` (memory, number of tasks, CPU weight: from the settings
``memory_max``, ``pids_max``, ``cpu_weight``) becomes a cgroup per sandboxed command:

- **cgroup v2** (``/sys/fs/cgroup/cgroup.controllers`` lists memory and pids): a child
  ``guestpkg/<pid>-<random>`` of the root cgroup, which the "no internal processes"
  rule exempts (cgroups(7)), with ``memory.max``, ``memory.swap.max`` = 0,
  ``pids.max`` and ``cpu.weight``; ``memory.events`` and ``pids.events`` say afterwards
  whether a limit was hit.
- **cgroup v1** (a hybrid host, where those controllers are still bound to v1
  hierarchies, as on this project's test machines): the same below the caller's own
  cgroup of the ``memory``, ``pids`` and ``cpu`` hierarchies, with
  ``memory.limit_in_bytes``, ``pids.max`` and ``cpu.shares`` (weight 100 = 1024 shares).

The helper joins the cgroups first thing (``--cgroup DIR``), before it forks, so every
process of the sandbox is in them.  When the command is over (its pid namespace took
every process with it) the caller reads the events and removes the cgroups; the
directories of a guestpkg killed meanwhile are reaped by the next one (their creator
pid is in the name).  systemd's ``Delegate=`` and ``systemd-run --scope`` are not used:
guestpkg writes cgroupfs the way systemd documents for a delegated subtree, below a
directory of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
SUBTREE = "guestpkg"
V1_CONTROLLERS = ("memory", "pids", "cpu")
#: How long removal waits for the last processes of a sandbox to be reaped.
REMOVE_WAIT_S = 5.0


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use; None: no limit of that kind."""

    memory_max_bytes: int | None = None
    pids_max: int | None = None
    cpu_weight: int | None = None   # 1-10000, cgroup v2's scale (100: the default)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.memory_max_bytes, self.pids_max,
                                            self.cpu_weight))


@dataclass(frozen=True)
class LimitsHit:
    """What the kernel reported after the command: kills by the OOM killer in the
    cgroup, forks refused at pids.max."""

    oom_kills: int = 0
    pids_refused: int = 0

    def describe(self, limits: Limits) -> str:
        found = []
        if self.oom_kills:
            found.append(f"out of memory: the memory limit of {limits.memory_max_bytes} "
                         f"bytes (setting memory_max) was reached and the kernel killed "
                         f"{self.oom_kills} process(es)")
        if self.pids_refused:
            found.append(f"the limit of {limits.pids_max} processes and threads (setting "
                         f"pids_max) refused {self.pids_refused} fork(s)")
        return "; ".join(found)


def _read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (``key value`` lines: memory.events, pids.events)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
    return values


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path in the hierarchy of *controller* ("" for v2)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or (controller == "" and controllers == ""):
            return path
    return None


def cgroup_version() -> int | None:
    """2 if the unified hierarchy has the memory and pids controllers, 1 if v1
    hierarchies do, None if neither (no cgroupfs, or not writable: not root)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(OSError):
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers):
            return 2
    if all((CGROUP_ROOT / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return 1
    return None


def _parents(version: int) -> dict[str, Path]:
    """Per hierarchy (v2: the one), the directory our cgroups go in."""
    if version == 2:
        return {"": CGROUP_ROOT / SUBTREE}
    parents = {}
    for controller in V1_CONTROLLERS:
        own = _own_cgroup(controller) or "/"
        parents[controller] = CGROUP_ROOT / controller / own.lstrip("/") / SUBTREE
    return parents


def _creator_alive(name: str) -> bool:
    pid = name.partition("-")[0]
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def reap_stale(version: int) -> None:
    """Remove the cgroups of guestpkgs that died (their creator pid is gone)."""
    for parent in _parents(version).values():
        with contextlib.suppress(OSError):  # none yet, or not ours to read
            for entry in parent.iterdir():
                if entry.is_dir() and not _creator_alive(entry.name):
                    with contextlib.suppress(OSError):  # still busy: next time
                        entry.rmdir()


@dataclass
class Cgroup:
    """The cgroups of one sandbox, one directory per hierarchy."""

    version: int
    limits: Limits
    directories: dict[str, Path] = field(default_factory=dict)

    def _write(self, controller: str, name: str, value: str) -> None:
        (self.directories[controller] / name).write_text(value)

    def apply(self) -> None:
        limits = self.limits
        if self.version == 2:
            if limits.memory_max_bytes is not None:
                self._write("", "memory.max", str(limits.memory_max_bytes))
                with contextlib.suppress(OSError):  # no swap accounting: nothing to stop
                    self._write("", "memory.swap.max", "0")
            if limits.pids_max is not None:
                self._write("", "pids.max", str(limits.pids_max))
            if limits.cpu_weight is not None:
                with contextlib.suppress(OSError):  # cpu not delegated: the rest holds
                    self._write("", "cpu.weight", str(limits.cpu_weight))
            return
        if limits.memory_max_bytes is not None:
            self._write("memory", "memory.limit_in_bytes", str(limits.memory_max_bytes))
            with contextlib.suppress(OSError):  # swap accounting off
                self._write("memory", "memory.memsw.limit_in_bytes",
                            str(limits.memory_max_bytes))
        if limits.pids_max is not None:
            self._write("pids", "pids.max", str(limits.pids_max))
        if limits.cpu_weight is not None:
            self._write("cpu", "cpu.shares", str(max(2, limits.cpu_weight * 1024 // 100)))

    def hits(self) -> LimitsHit:
        if self.version == 2:
            memory = _read_keyed(self.directories[""] / "memory.events")
            pids = _read_keyed(self.directories[""] / "pids.events")
            return LimitsHit(memory.get("oom_kill", 0), pids.get("max", 0))
        memory = _read_keyed(self.directories["memory"] / "memory.oom_control")
        pids = _read_keyed(self.directories["pids"] / "pids.events")
        return LimitsHit(memory.get("oom_kill", 0), pids.get("max", 0))

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.directories.values()]

    def remove(self) -> None:
        deadline = time.monotonic() + REMOVE_WAIT_S
        for directory in self.directories.values():
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: the last processes are still being reaped
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s still busy; the next guestpkg removes it",
                                    directory)
                        break
                    time.sleep(0.02)


def _enable_v2_controllers(parent: Path) -> None:
    """memory, pids (and cpu when available) for the children of *parent*: in the root
    cgroup's and in guestpkg's ``cgroup.subtree_control``."""
    available = set((CGROUP_ROOT / "cgroup.controllers").read_text().split())
    wanted = [c for c in ("memory", "pids", "cpu") if c in available]
    for directory in (CGROUP_ROOT, parent):
        enabled = set((directory / "cgroup.subtree_control").read_text().split())
        for controller in (c for c in wanted if c not in enabled):
            try:
                (directory / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:
                if controller != "cpu":  # cpu is a nicety (cpu.weight): go on without
                    raise


@contextlib.contextmanager
def limited(limits: Limits) -> Iterator[Cgroup | None]:
    """The cgroups for one sandbox with *limits* (None when there is nothing to limit
    or no cgroupfs to do it with), removed afterwards."""
    version = cgroup_version() if limits.any else None
    if version is None:
        if limits.any:
            log.warning("no writable cgroup hierarchy with memory and pids controllers: "
                        "the sandbox runs without memory, process and CPU limits")
        yield None
        return
    reap_stale(version)
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    cgroup = Cgroup(version, limits)
    try:
        try:
            for controller, parent in _parents(version).items():
                parent.mkdir(exist_ok=True)
                if version == 2:
                    _enable_v2_controllers(parent)
                cgroup.directories[controller] = parent / name
                (parent / name).mkdir()
            cgroup.apply()
        except OSError as e:
            # A read-only or undelegated cgroupfs (a container's, say): the build
            # still runs, as on a machine without cgroups, and the log says so.
            log.warning("cannot make a cgroup for the sandbox (%s): it runs without "
                        "memory, process and CPU limits", e)
            cgroup.remove()
            cgroup.directories.clear()
            yield None
            return
        yield cgroup
    finally:
        cgroup.remove()


def join(procs_files: list[str]) -> None:
    """In the helper: move this process into the sandbox's cgroups."""
    for path in procs_files:
        with open(path, "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
