# SPDX-License-Identifier: GPL-2.0-or-later
"""The disk cap: what a sandboxed command writes to disk, measured while it runs.

A tmpfs upper and /dev/shm have sizes, but nothing in the kernel bounds what a process
tree writes to a directory of an ordinary file system: cgroups have no disk
controller, project quotas (ext4 ``-O project``, XFS ``prjquota``) need a file system
made and mounted for them, and a loop-mounted image per build needs root and its size
up front.  sbuild, pbuilder, Nix and bubblewrap have no cap either (bwrap sizes a
tmpfs only).  So the sandbox's helper, which waits outside the sandbox for it, keeps
watch over the places the command writes to on disk: the overlay's upper directory
and the writable binds (a build's tree), each skipped when it is on a tmpfs (that is
sized already):

- every :data:`POLL_S`, ``fstatvfs`` of each watched file system: when the free space
  falls below ``disk_reserve_bytes`` (setting ``disk_reserve``), or its free inodes
  below 1 %, the command is stopped, whoever filled it: the machine keeps room to
  work (apt, logs, the next build);
- the growth of the watched directories since the command started (``st_blocks`` of
  every entry, hard links once) against ``disk_max_bytes`` (setting ``disk_max``):
  measured at most every :data:`WALK_SHARE` times the last measurement took (a
  twentieth of a CPU), at least every :data:`WALK_MAX_INTERVAL_S`, and at once when
  the file system's used space grew by more than the command has left.

Stopping is a SIGKILL of the sandbox's init: the kernel then kills every process of
its pid namespace.  The helper reports the reason to the caller, which raises
:class:`~guestpkg.errors.ResourceLimitHit`.  A command can overshoot the cap by what
it writes between two measurements.

The walk runs as real root over trees the command wrote, so it goes by file
descriptors only: each directory opened with ``O_NOFOLLOW`` relative to its parent,
entries stat'ed with ``fstatat(AT_SYMLINK_NOFOLLOW)``, nothing on another file system
entered.  A symlink swapped in during the walk is never followed.  The descriptors of
the watched directories are opened before the sandbox is set up, because the helper
shares the sandbox's mount namespace and ends up in its root after pivot_root(2).
Everything here is imported before: the helper imports nothing afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from guestpkg.fsutil import tree_usage_bytes
from guestpkg.sandbox.syscalls import TMPFS_MAGIC, fstatfs_type

#: How often the free space is looked at.
POLL_S = 0.1
#: The usage walk takes at most 1/WALK_SHARE of the time ...
WALK_SHARE = 20
#: ... and runs at least this often.
WALK_MAX_INTERVAL_S = 30.0
#: The free-inode floor, in per cent of the file system's inodes.
INODE_RESERVE_PERCENT = 1
MiB = 1 << 20


def size_text(size_bytes: int) -> str:
    """``2 GiB``, ``2.5 GiB``, ``300 MiB``, ``64.2 MiB``: whole units without decimals,
    so that a figure just over a limit never reads the same as the limit."""
    unit, name = (1 << 30, "GiB") if size_bytes >= 1 << 30 else (MiB, "MiB")
    if size_bytes % unit == 0:
        return f"{size_bytes // unit} {name}"
    return f"{size_bytes / unit:.1f} {name}"


@dataclass
class Watched:
    """One directory the command writes to, opened before the sandbox is set up."""

    path: str
    fd: int


@dataclass
class DiskWatch:
    """The cap of one command; see the module docstring."""

    watched: list[Watched]
    max_bytes: int | None
    reserve_bytes: int | None
    baseline: int = 0
    last_usage: int = 0
    walk_s: float = 0.0
    walked_at: float = 0.0
    next_walk: float = 0.0
    fs_used_at_walk: int = 0
    devices: dict[int, Watched] = field(default_factory=dict)

    @classmethod
    def open(cls, paths: list[Path], max_bytes: int | None,
             reserve_bytes: int | None) -> DiskWatch | None:
        """A watch over those of *paths* that are not on a tmpfs; None when there is
        nothing to watch or no limit to watch for."""
        if max_bytes is None and reserve_bytes is None:
            return None
        watched = []
        for path in paths:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if fstatfs_type(fd) == TMPFS_MAGIC:
                os.close(fd)
                continue
            watched.append(Watched(str(path), fd))
        if not watched:
            return None
        watch = cls(watched, max_bytes, reserve_bytes)
        for w in watched:
            watch.devices.setdefault(os.fstat(w.fd).st_dev, w)
        return watch

    def close(self) -> None:
        for w in self.watched:
            with contextlib.suppress(OSError):
                os.close(w.fd)
        self.watched = []

    def usage(self) -> int:
        seen: set[tuple[int, int]] = set()
        return sum(tree_usage_bytes(w.fd, seen) for w in self.watched)

    def _fs_used(self) -> int:
        total = 0
        for w in self.devices.values():
            st = os.fstatvfs(w.fd)
            total += (st.f_blocks - st.f_bfree) * st.f_frsize
        return total

    def start(self) -> None:
        """Measure what is there before the command runs: only growth counts (nothing
        to measure for the reserve alone)."""
        if self.max_bytes is not None:
            self._walk(time.monotonic())
            self.baseline = self.last_usage

    def _walk(self, now: float) -> None:
        self.walked_at = now
        self.fs_used_at_walk = self._fs_used()
        self.last_usage = self.usage()
        self.walk_s = time.monotonic() - now
        self.next_walk = now + min(WALK_MAX_INTERVAL_S, max(POLL_S, WALK_SHARE * self.walk_s))

    def _short_of_space(self) -> str | None:
        for w in self.devices.values():
            st = os.fstatvfs(w.fd)
            free = st.f_bavail * st.f_frsize
            if self.reserve_bytes is not None and free < self.reserve_bytes:
                return (f"the file system of {w.path} has only {size_text(free)} free, less "
                        f"than the {size_text(self.reserve_bytes)} that must stay free "
                        "(setting disk_reserve; free some space, or lower it with "
                        "--disk-reserve SIZE)")
            if st.f_files and st.f_favail * 100 < st.f_files * INODE_RESERVE_PERCENT:
                return (f"the file system of {w.path} has only {st.f_favail} free inodes, "
                        f"less than {INODE_RESERVE_PERCENT} % of its {st.f_files}")
        return None

    def poll(self) -> str | None:
        """Why the command must stop now, or None."""
        reason = self._short_of_space()
        if reason is not None or self.max_bytes is None:
            return reason
        now = time.monotonic()
        headroom = self.max_bytes - (self.last_usage - self.baseline)
        grew = self._fs_used() - self.fs_used_at_walk
        # A fast writer shows first in the file system's used space: measure at once,
        # but give the walk at most a fifth of the time then.
        if now >= self.next_walk or (grew > headroom and now >= self.walked_at
                                     + 5 * self.walk_s):
            self._walk(now)
        written = self.last_usage - self.baseline
        if written > self.max_bytes:
            places = ", ".join(w.path for w in self.watched)
            return (f"it wrote {size_text(written)} to disk ({places}), more than its limit "
                    f"of {size_text(self.max_bytes)} (setting disk_max; raise it with "
                    "--disk-max SIZE)")
        return None
