# SPDX-License-Identifier: GPL-2.0-or-later
"""Thin ctypes wrappers, one per system call, for what Python 3.11's :mod:`os` lacks.

Each wrapper calls the C library's function of the same name and turns ``-1`` into an
:class:`OSError` carrying ``errno`` and the call's arguments, exactly like :mod:`os`
does.  The constants keep the kernel's names verbatim (``CLONE_NEWNS``, ``MS_BIND``,
``MNT_DETACH``) so that each line can be checked against its man page: unshare(2),
mount(2), umount2(2), pivot_root(2), sethostname(2), setns(2), open_tree(2),
mount_setattr(2), move_mount(2).  As in mkosi's ``sandbox.py``,
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

# include/uapi/linux/mount.h: the new mount API, for idmapped mounts (mount_setattr(2))
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_IDMAP = 0x00100000
# include/uapi/linux/fcntl.h
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000

# arch/x86/entry/syscalls/syscall_64.tbl: glibc 2.36 has no pivot_root(), open_tree(),
# move_mount() or mount_setattr() wrappers.
SYS_pivot_root = 155
SYS_open_tree = 428
SYS_move_mount = 429
SYS_mount_setattr = 442

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


def open_tree(path: str | os.PathLike[str], flags: int) -> int:
    """open_tree(2): with OPEN_TREE_CLONE, a detached bind mount of *path* as an fd."""
    result = _libc.syscall(ctypes.c_long(SYS_open_tree), ctypes.c_int(AT_FDCWD),
                           _bytes(path), ctypes.c_uint(flags))
    return _check(result, "open_tree", os.fspath(path), hex(flags))


class MountAttr(ctypes.Structure):
    """struct mount_attr (include/uapi/linux/mount.h, MOUNT_ATTR_SIZE_VER0)."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(fd: int, attr_set: int, userns_fd: int | None = None) -> None:
    """mount_setattr(2) on the mount *fd* (AT_EMPTY_PATH)."""
    attr = MountAttr(attr_set, 0, 0, 0 if userns_fd is None else userns_fd)
    result = _libc.syscall(ctypes.c_long(SYS_mount_setattr), ctypes.c_int(fd), b"",
                           ctypes.c_uint(AT_EMPTY_PATH), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)))
    _check(result, "mount_setattr", fd, hex(attr_set))


def move_mount(fd: int, target: str | os.PathLike[str]) -> None:
    """move_mount(2) of the detached mount *fd* onto *target*."""
    result = _libc.syscall(ctypes.c_long(SYS_move_mount), ctypes.c_int(fd), b"",
                           ctypes.c_int(AT_FDCWD), _bytes(target),
                           ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    _check(result, "move_mount", fd, os.fspath(target))


def setfsuid(uid: int) -> int:
    """setfsuid(2): returns the previous fsuid (the call reports no errors)."""
    return int(_libc.setfsuid(ctypes.c_uint(uid)))


def setfsgid(gid: int) -> int:
    """setfsgid(2): returns the previous fsgid."""
    return int(_libc.setfsgid(ctypes.c_uint(gid)))


def sethostname(name: str) -> None:
    """sethostname(2): only ever called inside a new UTS namespace."""
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))), "sethostname", name)


def setdomainname(name: str) -> None:
    """setdomainname(2): only ever called inside a new UTS namespace."""
    data = name.encode()
    _check(_libc.setdomainname(data, ctypes.c_size_t(len(data))), "setdomainname", name)


# include/uapi/linux/magic.h
TMPFS_MAGIC = 0x01021994


def fstatfs_type(fd: int) -> int:
    """fstatfs(2)'s ``f_type`` of the file system *fd* is on (``os.fstatvfs`` lacks it):
    the first member of ``struct statfs``, a ``long`` on every Linux ABI."""
    buffer = (ctypes.c_long * 32)()  # struct statfs is 120 bytes on x86_64
    _check(_libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buffer)), "fstatfs", fd)
    return int(buffer[0]) & 0xFFFFFFFF


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
