# SPDX-License-Identifier: GPL-2.0-or-later
"""Thin ctypes wrappers, one per system call, for what Python 3.11's :mod:`os` lacks.

Each wrapper calls the C library's function of the same name and turns ``-1`` into an
:class:`OSError` carrying ``errno`` and the call's arguments, exactly like :mod:`os`
does.  The constants keep the kernel's names verbatim (``CLONE_NEWNS``, ``MS_BIND``,
``MNT_DETACH``) so that each line can be checked against its man page: unshare(2),
mount(2), umount2(2), pivot_root(2), sethostname(2).  As in mkosi's ``sandbox.py``,
nothing here decides policy; :mod:`guestpkg.sandbox.init` does.
"""

from __future__ import annotations

import ctypes
import os

# include/uapi/linux/sched.h
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080  # only for unshare/clone3: in clone's flags 0x80 is CSIGNAL

# include/uapi/linux/mount.h
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

# include/linux/fs.h
MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# arch/x86/entry/syscalls/syscall_64.tbl: glibc 2.36 has no pivot_root() wrapper.
SYS_pivot_root = 155

# The C library is already loaded into python3: CDLL(None) finds its functions without
# ctypes.util.find_library, which would run ldconfig(8) in a subprocess.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(result: int, *args: object) -> int:
    if result < 0:
        error = ctypes.get_errno()
        shown = ", ".join(repr(a) for a in args)
        raise OSError(error, f"{os.strerror(error)}: ({shown})")
    return result


def _bytes(value: str | os.PathLike[str] | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """unshare(2): move the calling thread into new namespaces."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int) -> None:
    """setns(2): move the calling thread into the namespace *fd* refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", fd, hex(nstype))


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int,
    options: str | None = None,
) -> None:
    """mount(2)."""
    result = _libc.mount(_bytes(source), _bytes(target), _bytes(fstype),
                         ctypes.c_ulong(flags), _bytes(options))
    _check(result, "mount", source, os.fspath(target), fstype, hex(flags), options)


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_bytes(target), ctypes.c_int(flags)), "umount2", os.fspath(target))


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    """pivot_root(2), through syscall(2) because glibc has no wrapper."""
    result = _libc.syscall(ctypes.c_long(SYS_pivot_root), _bytes(new_root), _bytes(put_old))
    _check(result, "pivot_root", os.fspath(new_root), os.fspath(put_old))


def sethostname(name: str) -> None:
    """sethostname(2): only ever called inside a new UTS namespace."""
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))), "sethostname", name)


def setdomainname(name: str) -> None:
    """setdomainname(2): only ever called inside a new UTS namespace."""
    data = name.encode()
    _check(_libc.setdomainname(data, ctypes.c_size_t(len(data))), "setdomainname", name)


# include/uapi/linux/prctl.h, include/uapi/linux/seccomp.h
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    """struct sock_fprog (include/uapi/linux/filter.h)."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(program: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): install a classic BPF program
    of ``struct sock_filter`` (8 bytes each); needs no_new_privs or CAP_SYS_ADMIN."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    result = _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                         ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(result, "prctl", "PR_SET_SECCOMP", len(program) // 8)
