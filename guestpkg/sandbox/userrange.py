# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg for a normal user: a user namespace on the user's own subordinate ids.

Without root there are no idmapped mounts of the host's file systems (mount_setattr(2)
wants CAP_SYS_ADMIN where the file system was mounted), so a normal user's trees on
disk (base roots, layers, fork uppers, build directories, under
``$XDG_STATE_HOME/guestpkg``) carry the *shifted* ids, as ``mmdebstrap --mode=unshare``
leaves them: the user namespace every guestpkg command of the user enters maps, for
uids and gids alike::

    inside 0-65535   the user's first 65536 subordinate ids (subuid(5), subgid(5))
    inside 65536     the user's own uid and gid

uid 0 inside, and the build user 1234, are then subordinate ids that no host account
has, as the issue asks of every mode, and what a build's root (``apt`` installing build
dependencies, with capabilities in the namespace) writes is never the user's own.
mmdebstrap maps the user's own uid to 0 instead, so that the user owns the result; we
don't, because then root inside *is* the user on the host: a compromised maintainer
script could write the user's files through any path it reaches.  The user's own uid
is still mapped, at 65536, outside Debian's id space: only so that set-up (root inside,
with the namespace's capabilities) may pass through the user's 0700 ``$HOME`` to the
state directory; capabilities count only over files whose owners the namespace maps
(capabilities(7)).  Nothing in a root is owned by 65536, the build phase has no
capabilities to become it, and after pivot_root(2) no file of the user is visible but
what a spec binds in.

The maps are written by newuidmap(1) and newgidmap(1) (package ``uidmap``, setuid root,
the only privileged helpers), which allow exactly the user's /etc/subuid range and the
user's own id.  :func:`enter` does it for the calling process (the sandbox helper);
:func:`guestpkg.run.as_namespace_root` wraps a command (``rm -rf`` of a tree,
``chown``, ``mv``, ``cp -a``, mmdebstrap) so that it runs as root of that namespace
(``python3 -m guestpkg.sandbox.userrange -- CMD...``).
A user removes guestpkg's state by hand the same way:
``python3 -m guestpkg.sandbox.userrange -- rm -rf ~/.local/state/guestpkg``
(``unshare --map-auto`` maps the subordinate ids but not the user's own id, without
which root inside can't pass through a 0700 ``$HOME``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from guestpkg.errors import SystemStateError
from guestpkg.sandbox import subids
from guestpkg.sandbox.syscalls import (
    CLONE_NEWUSER,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    unshare,
)

#: ids inside that are the user's subordinate ids: Debian's uid and gid space.
COUNT = subids.SLICE_SIZE
#: The id inside that is the user's own uid and gid.
OWN_ID = COUNT
#: overlayfs in a user namespace ("ovl: unprivileged mounts") exists from Linux 5.11.
MIN_KERNEL = (5, 11)
NEWUIDMAP = "/usr/bin/newuidmap"
NEWGIDMAP = "/usr/bin/newgidmap"
PROC_SYS = Path("/proc/sys")


@dataclass(frozen=True)
class UserRange:
    """The calling user's ids and the start of their subordinate ranges."""

    name: str
    uid: int
    gid: int
    subuid: int
    subgid: int

    def uid_map(self) -> list[str]:
        return ["0", str(self.subuid), str(COUNT), str(OWN_ID), str(self.uid), "1"]

    def gid_map(self) -> list[str]:
        return ["0", str(self.subgid), str(COUNT), str(OWN_ID), str(self.gid), "1"]

    def describe(self) -> str:
        return (f"ids: user namespace of user {self.name}, uid 0-{COUNT - 1} inside = "
                f"host uid {self.subuid}-{self.subuid + COUNT - 1}, gid {self.subgid}-"
                f"{self.subgid + COUNT - 1} (subuid(5)); {self.name} is {OWN_ID} inside")


def find_user_range(uid: int | None = None, subuid: Path = subids.SUBUID_FILE,
                    subgid: Path = subids.SUBGID_FILE) -> UserRange:
    """The calling user's range; newuidmap accepts lines naming the user or its uid."""
    uid = os.getuid() if uid is None else uid
    try:
        entry = pwd.getpwuid(uid)
        name, gid = entry.pw_name, entry.pw_gid
    except KeyError:
        name, gid = str(uid), os.getgid()
    owners = (name, str(uid))
    uids = subids.find_range(subuid, owners)
    gids = subids.find_range(subgid, owners)
    return UserRange(name, uid, gid, uids.start, gids.start)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return None


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of uname -r, e.g. (6, 1) for ``6.1.0-18-amd64``."""
    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def kernel_problem(release: str) -> SystemStateError | None:
    if kernel_version(release) >= MIN_KERNEL:
        return None
    return SystemStateError(
        f"Linux {release} has no overlayfs in user namespaces (needs "
        f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]} or later), which guestpkg as a normal user needs",
        hint="run guestpkg as root, or install a newer kernel (bookworm has 6.1)")


def sysctl_problem(proc_sys: Path = PROC_SYS) -> SystemStateError | None:
    """Unprivileged user namespaces switched off: Debian's old sysctl, the generic
    limit, and Ubuntu's AppArmor restriction."""
    for relative, bad, fix in (
            ("kernel/unprivileged_userns_clone", "0",
             "sysctl -w kernel.unprivileged_userns_clone=1"),
            ("user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
            ("kernel/apparmor_restrict_unprivileged_userns", "1",
             "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")):
        if _read(proc_sys / relative) == bad:
            name = relative.replace("/", ".")
            return SystemStateError(
                f"unprivileged user namespaces are disabled ({name} = {bad}), which "
                "guestpkg as a normal user needs",
                hint=f"as root: {fix} (and in /etc/sysctl.d/ to keep it), or run "
                "guestpkg as root")
    return None


def helper_problem(paths: tuple[str, ...] = (NEWUIDMAP, NEWGIDMAP)) -> SystemStateError | None:
    for path in paths:
        if not os.access(path, os.X_OK):
            return SystemStateError(
                f"{path} is missing: guestpkg as a normal user maps its ids with "
                "newuidmap and newgidmap", hint="as root: apt install uidmap")
    return None


def check() -> UserRange:
    """Everything a normal user's sandbox needs, or the first thing missing, in one
    line with the fix."""
    for problem in (kernel_problem(os.uname().release), helper_problem(), sysctl_problem()):
        if problem is not None:
            raise problem
    return find_user_range()


def enter(user: UserRange) -> None:
    """Move the calling process (single-threaded) into a new user namespace with the
    user's map, as root inside with the namespace's full capabilities.

    A process can't map itself (newuidmap is setuid root, and exec in a namespace
    without maps fails), so a child forked first waits until we have unshared, then
    runs newuidmap and newgidmap on our pid and exits."""
    ready_r, ready_w = os.pipe()
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(ready_w)
            if os.read(ready_r, 1) == b"u":
                status = _write_maps(parent, user)
        finally:
            os._exit(status)
    os.close(ready_r)
    try:
        try:
            unshare(CLONE_NEWUSER)
        finally:
            os.write(ready_w, b"u")
            os.close(ready_w)
    finally:
        _, wait_status = os.waitpid(pid, 0)
    if not os.WIFEXITED(wait_status) or os.WEXITSTATUS(wait_status) != 0:
        raise SystemStateError(
            "newuidmap/newgidmap could not map the user namespace's ids",
            hint=f"check {subids.SUBUID_FILE} and {subids.SUBGID_FILE} for {user.name} "
            "(their lines must not overlap another user's)")
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def _write_maps(parent: int, user: UserRange) -> int:
    """In the forked child: the two helpers, through the one subprocess gateway."""
    from guestpkg.run import run

    for helper, ids in ((NEWUIDMAP, user.uid_map()), (NEWGIDMAP, user.gid_map())):
        result = run([helper, str(parent), *ids], check=False, capture=True)
        if result.returncode != 0:
            sys.stderr.write(f"guestpkg: {helper}: "
                             f"{result.stderr.decode('utf-8', 'replace').strip()}\n")
            return 1
    return 0


def in_user_namespace() -> bool:
    """True in a namespace other than the initial one (whose map is the identity)."""
    text = _read(Path("/proc/self/uid_map")) or ""
    return text.split() != ["0", "0", "4294967295"]


def locked_flags(path: Path) -> int:
    """The restrictions of the mount at *path* that a user namespace may not lift
    (mount_namespaces(7): locked mount flags); 0 in the initial namespace, where
    root may."""
    if not in_user_namespace():
        return 0
    flags = os.statvfs(path).f_flag
    return ((MS_RDONLY if flags & os.ST_RDONLY else 0) |
            (MS_NOSUID if flags & os.ST_NOSUID else 0) |
            (MS_NODEV if flags & os.ST_NODEV else 0) |
            (MS_NOEXEC if flags & os.ST_NOEXEC else 0))



def main(argv: list[str] | None = None) -> int:
    """``python3 -m guestpkg.sandbox.userrange -- CMD [ARG...]``: CMD as root of the
    calling user's namespace."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.stderr.write("usage: python3 -m guestpkg.sandbox.userrange -- CMD [ARG...]\n")
        return 2
    try:
        enter(check())
    except SystemStateError as e:
        sys.stderr.write(f"guestpkg: {e.message_and_hint}\n")
        return 125
    command = shutil.which(args[0]) or args[0]
    try:
        os.execv(command, args)  # noqa: S606  (an exec, as init.py's)
    except OSError as e:
        sys.stderr.write(f"guestpkg: cannot run {args[0]}: {e.strerror}\n")
    return 127


if __name__ == "__main__":
    raise SystemExit(main())
