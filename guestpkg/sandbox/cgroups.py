# SPDX-License-Identifier: GPL-2.0-or-later
"""Resource limits: every sandbox in a cgroup of its own, made in cgroupfs directly.

A :class:`Limits` (memory, number of tasks, CPU weight: from the settings
``memory_max``, ``pids_max``, ``cpu_weight``) needs the ``memory``, ``pids`` and
``cpu`` controllers.  :func:`find_layout` looks where each one is:

- **cgroup v2** (the unified hierarchy: ``/sys/fs/cgroup`` itself, or
  ``/sys/fs/cgroup/unified`` on a hybrid host) when its root's ``cgroup.controllers``
  lists it: the sandbox's cgroup is ``guestpkg/<pid>-<random>`` below that root (which
  the "no internal processes" rule exempts, cgroups(7)), the controllers enabled in
  the root's and ``guestpkg``'s ``cgroup.subtree_control``, with ``memory.max``,
  ``memory.swap.max`` = 0, ``pids.max`` and ``cpu.weight``; ``memory.events`` and
  ``pids.events`` say afterwards whether a limit was hit;
- **cgroup v1** when a v1 hierarchy has it (a hybrid host, where systemd or the
  container manager left the controllers bound to v1 hierarchies, as on this
  project's test machines): the same below the caller's own cgroup of that
  hierarchy, with ``memory.limit_in_bytes``, ``pids.max`` and ``cpu.shares`` (weight
  100 = 1024 shares);
- **neither**: the sandbox runs without that limit, and the log names each missing
  controller and the setting that is not enforced.

When a unified hierarchy is mounted the sandbox always gets a v2 cgroup too, even if
none of the three controllers is on it: the command's processes are then one
cgroup's, and ``cgroup.kill`` (Linux 5.14) ends any that outlive their pid namespace
before the cgroup is removed.

The helper joins the cgroups first thing (``--cgroup-procs FILE``), before it forks, so
every process of the sandbox is in them.  When the command is over (its pid namespace
took every process with it) the caller reads the events and removes the cgroups; the
directories of a guestpkg killed meanwhile are reaped by the next one (their creator
pid is in the name).

Not done: where systemd is the init, it owns the cgroup tree, and its documented way
for others to make cgroups is a delegated subtree (a unit with ``Delegate=yes``, or a
transient ``systemd-run --scope -p Delegate=yes``).  guestpkg instead writes below
``guestpkg/`` in the root of the unified hierarchy, as container engines' "cgroupfs"
drivers do; systemd leaves foreign cgroups alone, and enables memory and pids in the
root for its own units by default, but nothing holds it to that.
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
#: The controller of each limit, and the setting it comes from.
CONTROLLERS = {"memory": "memory_max", "pids": "pids_max", "cpu": "cpu_weight"}
V1_CONTROLLERS = tuple(CONTROLLERS)
#: How long removal waits for the last processes of a sandbox to be reaped.
REMOVE_WAIT_S = 5.0
#: The key of the v2 directory in :attr:`Cgroup.directories`.
V2 = ""


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use; None: no limit of that kind."""

    memory_max_bytes: int | None = None
    pids_max: int | None = None
    cpu_weight: int | None = None   # 1-10000, cgroup v2's scale (100: the default)

    @property
    def any(self) -> bool:
        return bool(self.controllers)

    @property
    def controllers(self) -> list[str]:
        """The controllers these limits need."""
        wanted = {"memory": self.memory_max_bytes, "pids": self.pids_max,
                  "cpu": self.cpu_weight}
        return [c for c, value in wanted.items() if value is not None]


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


@dataclass(frozen=True)
class Layout:
    """Where the cgroup hierarchies are: the unified (v2) one's root, if mounted, with
    the controllers it offers, and the v1 hierarchy of each controller bound to one."""

    unified: Path | None = None
    v2_controllers: frozenset[str] = frozenset()
    v1: dict[str, Path] = field(default_factory=dict)

    def place(self, controller: str) -> str | None:
        """"v2", "v1" or None (unavailable): v2 first."""
        if controller in self.v2_controllers:
            return "v2"
        return "v1" if controller in self.v1 else None

    def parents(self, controllers: list[str]) -> dict[str, Path]:
        """The directory our cgroups go in, per hierarchy used for *controllers*: the
        v2 one (key ``V2``) whenever there is a unified hierarchy, and the v1 one of
        each controller that v2 lacks."""
        parents = {}
        if self.unified is not None:
            parents[V2] = self.unified / SUBTREE
        for controller in controllers:
            if self.place(controller) == "v1":
                own = _own_cgroup(controller) or "/"
                parents[controller] = self.v1[controller] / own.lstrip("/") / SUBTREE
        return parents


def find_layout() -> Layout | None:
    """The hierarchies under :data:`CGROUP_ROOT`; None if there is none we may write
    to (no cgroupfs, or not root)."""
    if os.geteuid() != 0:
        return None
    unified = None
    for candidate in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (candidate / "cgroup.controllers").exists():
            unified = candidate
            break
    offered: frozenset[str] = frozenset()
    if unified is not None:
        with contextlib.suppress(OSError):
            offered = frozenset((unified / "cgroup.controllers").read_text().split())
    v1 = {c: CGROUP_ROOT / c for c in CONTROLLERS
          if c not in offered and (CGROUP_ROOT / c / "cgroup.procs").exists()}
    if unified is None and not v1:
        return None
    return Layout(unified, offered, v1)


def all_parents() -> list[Path]:
    """Every directory guestpkg's cgroups may be in, on this host."""
    layout = find_layout()
    return [] if layout is None else list(layout.parents(list(CONTROLLERS)).values())


def _creator_alive(name: str) -> bool:
    pid = name.partition("-")[0]
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def reap_stale(parents: list[Path]) -> None:
    """Remove the cgroups of guestpkgs that died (their creator pid is gone)."""
    for parent in parents:
        with contextlib.suppress(OSError):  # none yet, or not ours to read
            for entry in parent.iterdir():
                if entry.is_dir() and not _creator_alive(entry.name):
                    with contextlib.suppress(OSError):  # still busy: next time
                        _kill_v2(entry)
                        entry.rmdir()


def _kill_v2(directory: Path) -> None:
    """cgroup.kill: SIGKILL every process of a v2 cgroup (Linux 5.14; v1 has none)."""
    kill = directory / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")


@dataclass
class Cgroup:
    """The cgroups of one sandbox, one directory per hierarchy (``V2`` for the unified
    one, the controller's name for a v1 one)."""

    layout: Layout
    limits: Limits
    directories: dict[str, Path] = field(default_factory=dict)

    def _dir(self, controller: str) -> Path:
        return self.directories[V2 if self.layout.place(controller) == "v2" else controller]

    def _write(self, controller: str, name: str, value: str) -> None:
        (self._dir(controller) / name).write_text(value)

    def apply(self) -> None:
        limits, v2 = self.limits, self.layout.v2_controllers
        if limits.memory_max_bytes is not None:
            size = str(limits.memory_max_bytes)
            if "memory" in v2:
                self._write("memory", "memory.max", size)
                with contextlib.suppress(OSError):  # no swap accounting: nothing to stop
                    self._write("memory", "memory.swap.max", "0")
            else:
                self._write("memory", "memory.limit_in_bytes", size)
                with contextlib.suppress(OSError):  # swap accounting off
                    self._write("memory", "memory.memsw.limit_in_bytes", size)
        if limits.pids_max is not None:
            self._write("pids", "pids.max", str(limits.pids_max))
        if limits.cpu_weight is not None:
            if "cpu" in v2:
                with contextlib.suppress(OSError):  # cpu not delegated: the rest holds
                    self._write("cpu", "cpu.weight", str(limits.cpu_weight))
            else:
                self._write("cpu", "cpu.shares", str(max(2, limits.cpu_weight * 1024 // 100)))

    def hits(self) -> LimitsHit:
        oom = pids = 0
        if "memory" in self.limits.controllers:
            name = "memory.events" if "memory" in self.layout.v2_controllers \
                else "memory.oom_control"
            oom = _read_keyed(self._dir("memory") / name).get("oom_kill", 0)
        if "pids" in self.limits.controllers:
            pids = _read_keyed(self._dir("pids") / "pids.events").get("max", 0)
        return LimitsHit(oom, pids)

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.directories.values()]

    def remove(self) -> None:
        deadline = time.monotonic() + REMOVE_WAIT_S
        for key, directory in self.directories.items():
            killed = False
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY: the last processes are still being reaped
                    if key == V2 and not killed and time.monotonic() > deadline - 4:
                        _kill_v2(directory)  # a second on: none may outlive the sandbox
                        killed = True
                    if time.monotonic() > deadline:
                        log.warning("cgroup %s still busy; the next guestpkg removes it",
                                    directory)
                        break
                    time.sleep(0.02)


def _enable_v2_controllers(root: Path, parent: Path, controllers: list[str]) -> None:
    """*controllers* for the children of *parent*: in the root cgroup's and in
    guestpkg's ``cgroup.subtree_control``."""
    for directory in (root, parent):
        enabled = set((directory / "cgroup.subtree_control").read_text().split())
        for controller in (c for c in controllers if c not in enabled):
            try:
                (directory / "cgroup.subtree_control").write_text(f"+{controller}")
            except OSError:
                if controller != "cpu":  # cpu is a nicety (cpu.weight): go on without
                    raise


def _say_unavailable(limits: Limits, layout: Layout | None) -> None:
    """One warning naming each limit that no hierarchy can enforce here."""
    missing = [c for c in limits.controllers if layout is None or layout.place(c) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        why = "guestpkg runs as a normal user, who may not make cgroups"
    elif layout is None:
        why = "no cgroup hierarchy is mounted under " + str(CGROUP_ROOT)
    else:
        where = (f"the cgroup v2 hierarchy {layout.unified} offers only "
                 f"{' '.join(sorted(layout.v2_controllers)) or 'none'}"
                 if layout.unified is not None else "there is no cgroup v2 hierarchy")
        why = f"{where}, and no cgroup v1 hierarchy has them"
    log.warning("no cgroup controller %s (%s): the sandbox runs without %s",
                ", ".join(missing), why,
                ", ".join(f"{CONTROLLERS[c]}" for c in missing))


@contextlib.contextmanager
def limited(limits: Limits) -> Iterator[Cgroup | None]:
    """The cgroups for one sandbox with *limits* (None when there is nothing to limit
    or no cgroupfs to do it with), removed afterwards."""
    layout = find_layout() if limits.any else None
    if limits.any:
        _say_unavailable(limits, layout)
    usable = [c for c in limits.controllers if layout is not None and layout.place(c)]
    if layout is None or not usable:
        yield None
        return
    parents = layout.parents(usable)
    reap_stale(list(parents.values()))
    name = f"{os.getpid()}-{secrets.token_hex(4)}"
    cgroup = Cgroup(layout, limits)
    try:
        try:
            on_v2 = [c for c in usable if layout.place(c) == "v2"]
            for key, parent in parents.items():
                try:
                    parent.mkdir(exist_ok=True)
                    if key == V2 and layout.unified is not None:
                        _enable_v2_controllers(layout.unified, parent, on_v2)
                    (parent / name).mkdir()
                except OSError as e:
                    if key == V2 and not on_v2:  # only for cgroup.kill: go on without
                        log.debug("no cgroup v2 directory for the sandbox: %s", e)
                        continue
                    raise
                cgroup.directories[key] = parent / name
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
    join_pid(os.getpid(), procs_files)


def join_pid(pid: int, procs_files: list[str]) -> None:
    """Move process *pid* into the cgroups of *procs_files*."""
    for path in procs_files:
        with open(path, "w", encoding="ascii") as f:
            f.write(str(pid))
