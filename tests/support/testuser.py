# SPDX-License-Identifier: GPL-2.0-or-later
"""A throwaway normal user for the tests of guestpkg without root.

``guestpkg-t-user`` (no home, no password, no login shell that matters) with a range
of 65536 subordinate ids in /etc/subuid and /etc/subgid that overlaps nobody's:
what ``usermod --add-subuids`` gives a user on a real machine.  Made once, as root,
idempotently (a second test run, or a concurrent session waiting on the lock, finds it
and changes nothing); the user keeps nothing of its own but what a test's scratch
``HOME`` holds.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from guestpkg.sandbox import subids
from tests.support.paths import TEST_AREA

NAME = "guestpkg-t-user"
#: Below guestpkg's own range (0x70000000) and systemd's, above useradd's.
START = 0x60000000
COUNT = subids.SLICE_SIZE


@dataclass(frozen=True)
class NormalUser:
    name: str
    uid: int
    gid: int
    subuid: int
    subgid: int


def ensure_test_user() -> NormalUser:
    TEST_AREA.mkdir(parents=True, exist_ok=True)
    with open(TEST_AREA / "test-user.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(NAME)
        except KeyError:
            # SUB_*_COUNT=0: no automatic range; ours is placed below.
            subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", "--comment",
                            "guestpkg tests (normal user)", "-K", "SUB_UID_COUNT=0",
                            "-K", "SUB_GID_COUNT=0", NAME], check=True)
            entry = pwd.getpwnam(NAME)
        uids, gids = subids.read_subids(subids.SUBUID_FILE), subids.read_subids(subids.SUBGID_FILE)
        mine_u = [r for r in uids if r.owner in (NAME, str(entry.pw_uid)) and r.count >= COUNT]
        mine_g = [r for r in gids if r.owner in (NAME, str(entry.pw_uid)) and r.count >= COUNT]
        if not mine_u or not mine_g:
            others = [r for r in (*uids, *gids) if r.owner not in (NAME, str(entry.pw_uid))]
            start = subids.place_range(others, COUNT, START)
            ids = f"{start}-{start + COUNT - 1}"
            argv = ["usermod"]
            if not mine_u:
                argv += ["--add-subuids", ids]
            if not mine_g:
                argv += ["--add-subgids", ids]
            subprocess.run([*argv, NAME], check=True)
            uids, gids = (subids.read_subids(subids.SUBUID_FILE),
                          subids.read_subids(subids.SUBGID_FILE))
            mine_u = [r for r in uids if r.owner == NAME and r.count >= COUNT]
            mine_g = [r for r in gids if r.owner == NAME and r.count >= COUNT]
        return NormalUser(NAME, entry.pw_uid, entry.pw_gid, mine_u[0].start, mine_g[0].start)


def as_user(user: NormalUser, argv: list[str], env: dict[str, str], cwd: Path,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """*argv* as *user* (real and effective ids, no supplementary groups, no
    capabilities: setpriv(1)) with exactly *env*."""
    return subprocess.run(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}",
                           "--clear-groups", "--", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def chown_to(user: NormalUser, path: Path) -> None:
    os.chown(path, user.uid, user.gid)
