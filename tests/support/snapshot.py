# SPDX-License-Identifier: GPL-2.0-or-later
"""File tree snapshots of a system root and their comparison, in the manner of piuparts.

:meth:`tests.support.sysroot.SystemRoot.tree_snapshot` runs :data:`SNAPSHOT_SCRIPT`
inside the root (its own python3): every path, not following links, with its type and
mode, owner, size or link target and, if asked, its SHA256.  :func:`compare_trees`
lists what was added, removed and modified between two snapshots, leaving out paths
that match the caller's regexes (the package manager's own state, say).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Run inside the root by tree_snapshot(): one JSON object per path, never follows links.
SNAPSHOT_SCRIPT = r"""
import hashlib, json, os, stat, sys
excluded = set(json.loads(sys.argv[1])); contents = sys.argv[2] == "1"
def entry(path, st):
    e = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISREG(st.st_mode):
        e["size"] = st.st_size
        if contents:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            e["sha256"] = h.hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        e["target"] = os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        e["rdev"] = st.st_rdev
    return e
out = {}
for top, dirs, files in os.walk("/", onerror=lambda e: None):
    dirs[:] = sorted(d for d in dirs if os.path.join(top, d) not in excluded)
    for name in [*dirs, *sorted(files)]:
        path = os.path.join(top, name)
        if path in excluded:
            continue
        try:
            out[path] = entry(path, os.lstat(path))
        except OSError:
            pass
json.dump(out, sys.stdout)
"""

#: Paths tree_snapshot() never descends into: kernel file systems, per-boot tmpfs, the
#: test's bind mounts (sysroot.LOCAL_REPO, sysroot.OUTER_VARDIR, the host's resolv.conf),
#: apt's caches.
SNAPSHOT_EXCLUDED: tuple[str, ...] = (
    "/proc", "/sys", "/dev", "/run", "/tmp", "/srv/guestpkg-test-repo",
    "/srv/guestpkg-test-vardir", "/var/cache/apt/archives", "/var/lib/apt/lists",
    "/etc/resolv.conf",
)


@dataclass(frozen=True)
class TreeDiff:
    """What changed between two :meth:`SystemRoot.tree_snapshot` results."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def describe(self) -> str:
        lines = [f"+ {p}" for p in self.added] + [f"- {p}" for p in self.removed]
        return "\n".join(lines + [f"~ {p}" for p in self.modified])


Snapshot = dict[str, dict[str, object]]


def compare_trees(before: Snapshot, after: Snapshot, ignore: Sequence[str] = ()) -> TreeDiff:
    """Paths added, removed and modified (type, mode, owner, size, link target, content
    if snapshotted), leaving out those for which a regex in *ignore* matches."""
    patterns = [re.compile(p) for p in ignore]

    def kept(path: str) -> bool:
        return not any(p.match(path) for p in patterns)

    added = sorted(p for p in after.keys() - before.keys() if kept(p))
    removed = sorted(p for p in before.keys() - after.keys() if kept(p))
    modified = sorted(p for p in before.keys() & after.keys()
                      if before[p] != after[p] and kept(p))
    return TreeDiff(added, removed, modified)
