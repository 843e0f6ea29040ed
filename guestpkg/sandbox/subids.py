# SPDX-License-Identifier: GPL-2.0-or-later
"""Subordinate ids: guestpkg's range in /etc/subuid and /etc/subgid, cut into slices.

subuid(5) and subgid(5) hold lines ``owner:start:count``.  guestpkg's package
(debian/guestpkg.postinst, through :func:`ensure_range`) adds one ``guestpkg`` line to
each file; guestpkg running as root maps its sandboxes' ids into that range.  The range
is cut into slices of :data:`SLICE_SIZE` ids (uid 0-65535 inside a sandbox, as on a
Debian system) and every live sandbox (or fork of a buildroot, whose commands share
files) holds one slice exclusively: a flock(2) on ``<LOCK_DIR>/slice-<n>.lock`` for as
long as it runs.  So two concurrent builds have disjoint host ids and can't touch each
other's files, and no host account has any of them.

The range is placed above every range already given out, at or above
:data:`DEFAULT_START` (0x70000000): above useradd(8)'s SUB_UID_MAX (600100000) and
systemd-nspawn's container range (0x00080000-0x6FFFFFFF, systemd's UIDS-GIDS.md), below
its foreign-uid range (0x7FFE0000) and 2^31, where tools that keep ids in signed ints
start to break.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.errors import SystemStateError

SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
RANGE_OWNER = "guestpkg"
#: ids per sandbox: 0-65535 inside, as Debian's uid and gid space (base-passwd).
SLICE_SIZE = 65536
#: slices in the range ensure_range makes: as many concurrent builds.
DEFAULT_SLICES = 64
DEFAULT_START = 0x70000000
#: Where the slice locks live (root's; /run is a tmpfs, so nothing outlives a boot).
LOCK_DIR = Path("/run/guestpkg/id-slices")

_LINE = re.compile(r"^([^:\s]+):(\d+):(\d+)$")


@dataclass(frozen=True)
class IdRange:
    """``count`` ids starting at ``start`` (one subuid(5) or subgid(5) line)."""

    owner: str
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count


def parse_subids(text: str) -> list[IdRange]:
    """Every well-formed line of a subuid(5)/subgid(5) file; others are skipped, as
    newuidmap(1) skips them."""
    ranges = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            ranges.append(IdRange(m.group(1), int(m.group(2)), int(m.group(3))))
    return ranges


def read_subids(path: Path) -> list[IdRange]:
    try:
        return parse_subids(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return []


def find_range(path: Path, owners: tuple[str, ...]) -> IdRange:
    """The first range of one of *owners* (a name, or a uid as text) with at least one
    slice; a clear error naming the fix when there is none."""
    for found in read_subids(path):
        if found.owner in owners and found.count >= SLICE_SIZE:
            return found
    raise SystemStateError(
        f"{path} gives {owners[0]} no range of {SLICE_SIZE} subordinate ids, which the "
        "sandbox maps its ids to",
        hint=("as root: python3 -m guestpkg.sandbox.subids (what installing guestpkg "
              "does), or run with --id-mapping=root" if owners[0] == RANGE_OWNER else
              f"ask root for one: usermod --add-subuids N-M --add-subgids N-M {owners[0]}"
              f" (at least {SLICE_SIZE} ids)"))


@dataclass(frozen=True)
class Slice:
    """The host ids of one sandbox: uid ``uid_base + n`` is uid n inside."""

    index: int
    uid_base: int
    gid_base: int
    count: int = SLICE_SIZE

    def shift_uid(self, host_uid: int) -> int:
        """A host uid of this slice back to the uid inside; others unchanged."""
        inside = host_uid - self.uid_base
        return inside if 0 <= inside < self.count else host_uid

    def shift_gid(self, host_gid: int) -> int:
        inside = host_gid - self.gid_base
        return inside if 0 <= inside < self.count else host_gid


def slices(uids: IdRange, gids: IdRange) -> list[Slice]:
    n = min(uids.count, gids.count) // SLICE_SIZE
    return [Slice(i, uids.start + i * SLICE_SIZE, gids.start + i * SLICE_SIZE)
            for i in range(n)]


@contextlib.contextmanager
def allocated_slice(subuid: Path = SUBUID_FILE, subgid: Path = SUBGID_FILE,
                    lock_dir: Path = LOCK_DIR) -> Iterator[Slice]:
    """Hold a free slice of guestpkg's range for the duration of the block."""
    all_slices = slices(find_range(subuid, (RANGE_OWNER,)), find_range(subgid, (RANGE_OWNER,)))
    lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for candidate in all_slices:
        with fsutil.locked(lock_dir / f"slice-{candidate.index}.lock", blocking=False) as free:
            if free:
                yield candidate
                return
    raise SystemStateError(f"all {len(all_slices)} id slices of guestpkg's range are in "
                           "use by other sandboxes", hint="wait for a build to finish")


def place_range(existing: list[IdRange], count: int, start: int = DEFAULT_START) -> int:
    """Where a new range of *count* ids goes: at or above *start*, aligned to a slice,
    overlapping none of *existing*."""
    candidate = start
    for r in sorted(existing, key=lambda r: r.start):
        if r.end > candidate and r.start < candidate + count:
            candidate = -(-r.end // SLICE_SIZE) * SLICE_SIZE
    return candidate


def ensure_range(subuid: Path = SUBUID_FILE, subgid: Path = SUBGID_FILE,
                 owner: str = RANGE_OWNER, count: int = DEFAULT_SLICES * SLICE_SIZE
                 ) -> tuple[IdRange, IdRange]:
    """Give *owner* a range in both files unless it has one (idempotent, atomic writes;
    the same start in both, so uid n and gid n of a slice line up)."""
    uid_ranges, gid_ranges = read_subids(subuid), read_subids(subgid)
    have_u = [r for r in uid_ranges if r.owner == owner and r.count >= SLICE_SIZE]
    have_g = [r for r in gid_ranges if r.owner == owner and r.count >= SLICE_SIZE]
    start = place_range([*uid_ranges, *gid_ranges], count)
    result = []
    for path, have in ((subuid, have_u), (subgid, have_g)):
        if have:
            result.append(have[0])
            continue
        try:
            old = path.read_text(encoding="utf-8")
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            old, mode = "", 0o644
        if old and not old.endswith("\n"):
            old += "\n"
        fsutil.atomic_write(path, f"{old}{owner}:{start}:{count}\n", mode=mode)
        result.append(IdRange(owner, start, count))
    return result[0], result[1]


def main() -> int:
    """``python3 -m guestpkg.sandbox.subids``: make guestpkg's range (postinst)."""
    uids, gids = ensure_range()
    print(f"guestpkg: subordinate ids {uids.start}-{uids.end - 1} (subuid), "
          f"{gids.start}-{gids.end - 1} (subgid)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
