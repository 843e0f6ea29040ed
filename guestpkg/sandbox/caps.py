# SPDX-License-Identifier: GPL-2.0-or-later
"""Dropping privileges: capability sets, user and groups, no_new_privs.

capabilities(7) has five sets per thread.  The sandbox empties all of them, except that
a uid-0 command may keep a named few (``SandboxSpec.capabilities``, e.g. apt's):

- bounding: dropped first, while we still hold CAP_SETPCAP; it caps what any later
  execve(2), including of a setuid-root or file-capability binary, can grant;
- ambient: cleared (python-prctl 1.8 has no PR_CAP_AMBIENT, so through ctypes);
- inheritable, permitted, effective: set with capset(2) through python-prctl.  A
  setresuid(2) from 0 to another uid also clears permitted and effective (no
  SECBIT_KEEP_CAPS), and the explicit capset makes sure.

Finally PR_SET_NO_NEW_PRIVS: execve(2) can then never add privileges (setuid bits and
file capabilities are ignored, see the kernel's Documentation/userspace-api/no_new_privs).
It is also what allows loading a seccomp filter without CAP_SYS_ADMIN.
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Iterable, Mapping

import prctl

from guestpkg.sandbox.spec import CAPABILITY_NAMES

# include/uapi/linux/prctl.h
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc = ctypes.CDLL(None, use_errno=True)


def last_capability() -> int:
    """The highest capability number this kernel knows (it may know more than we do)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPABILITY_NAMES) - 1


def capability_numbers(names: Iterable[str]) -> set[int]:
    return {CAPABILITY_NAMES.index(n) for n in names}


def drop_bounding_set(keep: set[int]) -> None:
    for cap in range(last_capability() + 1):
        if cap not in keep:
            prctl.capbset_drop(cap)


def clear_ambient_set() -> None:
    if _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)")


def set_capability_sets(keep: set[int]) -> None:
    """Permitted and effective = *keep*; inheritable empty."""
    known = set(prctl.ALL_CAPS)
    kept = sorted(keep & known)
    dropped = sorted(known - keep)
    prctl.set_caps((kept, [prctl.CAP_PERMITTED, prctl.CAP_EFFECTIVE], True),
                   (dropped, [prctl.CAP_PERMITTED, prctl.CAP_EFFECTIVE], False),
                   (sorted(known), [prctl.CAP_INHERITABLE], False))


def set_rlimits(limits: Mapping[str, int]) -> None:
    """Lower soft and hard limit together: nothing inside may raise them again."""
    for name, value in limits.items():
        which = getattr(resource, "RLIMIT_" + name)
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard  # can only lower without CAP_SYS_RESOURCE
        resource.setrlimit(which, (value, value))


def drop_privileges(uid: int, gid: int, keep_names: Iterable[str]) -> None:
    """Become *uid*/*gid* with only *keep_names* (uid 0 only) and no_new_privs."""
    keep = capability_numbers(keep_names)
    drop_bounding_set(keep)
    clear_ambient_set()
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    set_capability_sets(keep if uid == 0 else set())
    prctl.set_no_new_privs(1)
