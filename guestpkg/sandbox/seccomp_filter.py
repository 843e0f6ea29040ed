# SPDX-License-Identifier: GPL-2.0-or-later
"""The seccomp filter every sandboxed command runs under (python3-seccomp).

The default action is to allow: the filter is a deny list in the spirit of Flatpak's
(``common/flatpak-run.c``, setup_seccomp) and Docker's default profile, aimed at the
kernel interfaces a build never needs and exploits often do.  Denied calls fail with
EPERM, so programs see an ordinary error rather than being killed; clone3 and the new
mount API fail with ENOSYS so that libc falls back to calls the filter can inspect
(clone3 passes its flags in memory that seccomp can't read: CVE-2021-41133).

The filter is loaded last, right before execve(2), after no_new_privs: the set-up code
itself needs mount(2) and friends.  The x86 (i386) and x32 ABIs are added to an
x86_64 filter, otherwise a 32-bit ``int 0x80`` call would bypass it; any other ABI is
killed (libseccomp's default bad-architecture action).

libseccomp can only name calls it knows, and a deny list lets everything else through:
calls newer than bookworm's libseccomp (``listmount``, ``open_tree_attr``,
``setxattrat``, ...) and calls newer than this filter.  So a second, hand-assembled
BPF program (:func:`guard_program`, loaded first) compares raw numbers for the x86_64,
i386 and x32 ABIs: every number above :data:`NEWEST_SYSCALL`, the newest call this
filter was reviewed against, fails with ENOSYS (libc then falls back, as for clone3),
and so do the reviewed new calls in :data:`NEW_NOT_IMPLEMENTED`.  The same program
allows only the socket families a build needs (:data:`SOCKET_FAMILIES`): the kernel
takes the strictest answer of all loaded filters (seccomp(2), "Filter return values").
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Sequence
from pathlib import Path

import seccomp

from guestpkg.sandbox.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    seccomp_set_mode_filter,
)

# include/uapi/asm-generic/ioctls.h
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

# include/uapi/linux/personality.h: PER_LINUX (0) and PER_LINUX32 (8); anything above
# carries flags such as ADDR_NO_RANDOMIZE or READ_IMPLIES_EXEC that weaken exploit
# mitigations.  (A single comparison: libseccomp 2.5 rejects two on one argument.)
PER_LINUX32 = 0x0008

#: Denied with EPERM, whatever the arguments.
DENIED = (
    # the kernel keyring is not namespaced (Docker, Flatpak)
    "add_key", "keyctl", "request_key",
    # widens race windows for kernel exploits (Documentation/admin-guide/mm/userfaultfd)
    "userfaultfd",
    # information leaks, many CVEs
    "perf_event_open",
    # inspecting or changing other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # loading kernel programs
    "bpf",
    # nested namespaces and mounts
    "mount", "umount", "umount2", "pivot_root", "chroot", "setns", "unshare",
    # an old container breakout (CVE-2014-3519 "shocker")
    "open_by_handle_at", "name_to_handle_at",
    # host-global state
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "settimeofday", "stime", "clock_settime",
    "clock_adjtime", "adjtimex", "acct", "quotactl", "quotactl_fd", "syslog",
    "lookup_dcookie", "nfsservctl", "vhangup", "iopl", "ioperm",
    # io_uring operations bypass seccomp entirely (Docker denies it since 2023)
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)

#: Allowed by the ``allow_chroot_mount`` relaxation (piuparts: chroot(8), mount(8),
#: umount(8)).  The command then runs in a mount and a pid namespace of its own user
#: namespace (guestpkg.sandbox.init.enter_own_namespaces): the kernel checks
#: CAP_SYS_CHROOT and CAP_SYS_ADMIN against that namespace, the mounts it inherited
#: are locked (mount_namespaces(7)), and only file systems marked FS_USERNS_MOUNT
#: (proc, devpts, tmpfs, binds, ...) can be mounted.  Everything else of DENIED stays
#: denied (pivot_root, setns, unshare and namespace flags of clone too), and so does
#: the new mount API (NOT_IMPLEMENTED: util-linux 2.38's mount(8) uses mount(2)).
CHROOT_MOUNT_CALLS = ("mount", "umount", "umount2", "chroot")

#: Answered with ENOSYS so libc uses an older call the filter can see.
NOT_IMPLEMENTED = ("clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
                   "fspick", "mount_setattr")

#: The newest system call this filter was reviewed against: Linux 6.17's file_setattr.
#: Numbers above it are answered ENOSYS by :func:`guard_program` on every ABI.  Since
#: Linux 5.1 a new call gets the same number on every architecture (424 onwards), so
#: one table serves x86_64, i386 and x32 (arch/x86/entry/syscalls/syscall_*.tbl).
NEWEST_SYSCALL = 469

#: The calls since Linux 6.5 that fail with ENOSYS, by number: libc falls back to an
#: older call the filter can see, or does without.  The others since then are allowed:
#: cachestat (451, page cache statistics of an open file), map_shadow_stack (453, CET
#: shadow stacks, used by newer libcs), futex_wake/wait/requeue (454-456, futex2) and
#: mseal (462, a hardening that only takes rights away).
NEW_NOT_IMPLEMENTED = {
    452: "fchmodat2",            # 6.6: glibc falls back to fchmodat, which is inspected
    457: "statmount",            # 6.8: mount introspection, no build needs it
    458: "listmount",
    459: "lsm_get_self_attr",    # 6.8: the LSM calls; /proc/self/attr remains
    460: "lsm_set_self_attr",
    461: "lsm_list_modules",
    463: "setxattrat",           # 6.13: libc falls back to the *xattr calls
    464: "getxattrat",
    465: "listxattrat",
    466: "removexattrat",
    467: "open_tree_attr",       # 6.15: the mount API, like open_tree
    468: "file_getattr",         # 6.17: the FS_IOC_FSGETXATTR ioctl remains
    469: "file_setattr",
}

# include/linux/socket.h, include/uapi/linux/netlink.h
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
#: The families socket(2) and socketpair(2) may create; the rest fail with
#: EAFNOSUPPORT, as on a kernel built without them.  AF_NETLINK only with
#: NETLINK_ROUTE (glibc's getifaddrs, ip(8)); see docs/threat-model.md for why the
#: others (AF_VSOCK, AF_PACKET, AF_ALG, NETLINK_KOBJECT_UEVENT, ...) are denied.
SOCKET_FAMILIES = (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK)

NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                   CLONE_NEWPID, CLONE_NEWNET)

#: chmod family: (syscall, index of the mode argument).
CHMOD_CALLS = (("chmod", 1), ("fchmod", 1), ("fchmodat", 2))


class SyscallFilter(seccomp.SyscallFilter):  # type: ignore[misc]
    """libseccomp's filter, plus what :func:`load` needs for the guard program."""

    i386_socketcall = False


def build_filter(*, allow_setuid: bool = False, i386_socketcall: bool = False,
                 allow_chroot_mount: bool = False) -> seccomp.SyscallFilter:
    """The filter as a libseccomp object; :func:`load` installs it with the guard.
    *i386_socketcall*: see :func:`runs_i386_programs`; *allow_chroot_mount*: see
    :data:`CHROOT_MOUNT_CALLS`."""
    f = SyscallFilter(defaction=seccomp.ALLOW)
    f.i386_socketcall = i386_socketcall
    # system_arch() is unsigned, the Arch constants are signed: compare 32-bit values.
    if seccomp.system_arch() & 0xFFFFFFFF == seccomp.Arch.X86_64 & 0xFFFFFFFF:
        f.add_arch(seccomp.Arch.X86)
        f.add_arch(seccomp.Arch.X32)
    eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    for name in DENIED:
        if not (allow_chroot_mount and name in CHROOT_MOUNT_CALLS):
            f.add_rule(eperm, name)
    for name in NOT_IMPLEMENTED:
        f.add_rule(enosys, name)
    # ioctl requests are 32 bits (unsigned int in the kernel): compare under that mask,
    # or a request with high bits set slips past a 64-bit comparison (CVE-2019-10063).
    for request in (TIOCSTI, TIOCLINUX):
        f.add_rule(eperm, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    for flag in NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(eperm, "personality", seccomp.Arg(0, seccomp.GT, PER_LINUX32))
    if not allow_setuid:
        for name, index in CHMOD_CALLS:
            for bit in (stat.S_ISUID, stat.S_ISGID):
                f.add_rule(eperm, name, seccomp.Arg(index, seccomp.MASKED_EQ, bit, bit))
    return f


# The guard program ----------------------------------------------------------------

# include/uapi/linux/audit.h
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000
#: x32's own calls, 512..547 (arch/x86/entry/syscalls/syscall_64.tbl, "x32" rows)
X32_FIRST_OWN, X32_END_OWN = 512, 548

# include/uapi/linux/seccomp.h
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

# include/uapi/linux/bpf_common.h: classic BPF opcodes
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20    # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_SUB_K = 0x04 | 0x10 | 0x00   # BPF_ALU | BPF_SUB | BPF_K
BPF_JMP_JEQ_K = 0x05 | 0x10          # BPF_JMP | BPF_JEQ | BPF_K
BPF_JMP_JGE_K = 0x05 | 0x30          # BPF_JMP | BPF_JGE | BPF_K
BPF_RET_K = 0x06 | 0x00              # BPF_RET | BPF_K

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
# The low 32 bits of an argument, on a little-endian machine: what the kernel reads
# for an int parameter such as socket(2)'s family, whatever the caller put above.
OFFSET_NR, OFFSET_ARCH = 0, 4


def _low_word_of_arg(index: int) -> int:
    return 16 + 8 * index


# (i386 socket, socketpair, socketcall) and x86_64/x32 (socket, socketpair)
I386_SOCKET, I386_SOCKETPAIR, I386_SOCKETCALL = 359, 360, 102
X86_64_SOCKET, X86_64_SOCKETPAIR = 41, 53
# include/uapi/linux/net.h: socketcall(2)'s call numbers
SYS_SOCKET, SYS_SOCKETPAIR = 1, 8

Label = str
Instruction = tuple[int, Label | None, Label | None, int]


class _Assembler:
    """Classic BPF with named jump targets; jumps only go forward, as the kernel
    requires (Documentation/networking/filter.rst)."""

    def __init__(self) -> None:
        self.code: list[Instruction] = []
        self.labels: dict[Label, int] = {}

    def label(self, name: Label) -> None:
        self.labels[name] = len(self.code)

    def load(self, offset: int) -> None:
        self.code.append((BPF_LD_W_ABS, None, None, offset))

    def subtract(self, value: int) -> None:
        self.code.append((BPF_ALU_SUB_K, None, None, value))

    def jump(self, op: int, value: int, if_true: Label | None,
             if_false: Label | None = None) -> None:
        """Compare the accumulator with *value*; None continues with the next line."""
        self.code.append((op, if_true, if_false, value))

    def ret(self, value: int) -> None:
        self.code.append((BPF_RET_K, None, None, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for index, (op, if_true, if_false, k) in enumerate(self.code):
            jt, jf = self._offset(index, if_true), self._offset(index, if_false)
            if jt > 255 or jf > 255:
                raise ValueError("seccomp guard: a conditional jump is too long")
            out += struct.pack("<HBBI", op, jt, jf, k)
        return bytes(out)

    def _offset(self, index: int, target: Label | None) -> int:
        if target is None:
            return 0
        offset = self.labels[target] - index - 1
        if offset < 0:
            raise ValueError(f"seccomp guard: backward jump to {target}")
        return offset


def _numbers(asm: _Assembler, socket_calls: tuple[int, ...], socketcall: int | None) -> None:
    """With the syscall number in the accumulator: newer than reviewed, one of the
    reviewed new calls (decided at ``reviewed-new``), a socket call, or allowed.  The
    common case, an old call, takes four to seven comparisons."""
    asm.jump(BPF_JMP_JGE_K, NEWEST_SYSCALL + 1, "enosys")
    asm.jump(BPF_JMP_JGE_K, min(NEW_NOT_IMPLEMENTED), "reviewed-new")
    for number in socket_calls:
        asm.jump(BPF_JMP_JEQ_K, number, "socket")
    if socketcall is not None:
        asm.jump(BPF_JMP_JEQ_K, socketcall, "socketcall")
    asm.ret(SECCOMP_RET_ALLOW)


def guard_program(*, i386_socketcall: bool = False) -> bytes:
    """The raw-number and socket-family filter, as ``struct sock_filter[]`` bytes.
    With *i386_socketcall*, i386's socketcall(2) may create sockets (unchecked)."""
    asm = _Assembler()
    asm.load(OFFSET_ARCH)
    asm.jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, "x86_64")
    asm.jump(BPF_JMP_JEQ_K, AUDIT_ARCH_I386, "i386")
    asm.ret(SECCOMP_RET_ALLOW)          # other ABIs: libseccomp's filter kills them
    asm.label("x86_64")
    asm.load(OFFSET_NR)
    asm.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, "x32", "x86_64-numbers")
    asm.label("x32")                    # x86_64's numbers plus the bit, and 512..547
    asm.subtract(X32_SYSCALL_BIT)
    asm.jump(BPF_JMP_JGE_K, X32_END_OWN, "enosys")
    asm.jump(BPF_JMP_JGE_K, X32_FIRST_OWN, "allow")
    asm.label("x86_64-numbers")
    _numbers(asm, (X86_64_SOCKET, X86_64_SOCKETPAIR), None)
    asm.label("i386")
    asm.load(OFFSET_NR)
    _numbers(asm, (I386_SOCKET, I386_SOCKETPAIR), None if i386_socketcall else I386_SOCKETCALL)
    asm.label("reviewed-new")           # the same numbers on every ABI since Linux 5.1
    for number in sorted(NEW_NOT_IMPLEMENTED):
        asm.jump(BPF_JMP_JEQ_K, number, "enosys")
    asm.ret(SECCOMP_RET_ALLOW)
    asm.label("socketcall")
    # i386's multiplexer keeps the real arguments in memory, where seccomp can't look:
    # creating sockets through it is refused, the direct socket(2) is checked instead.
    asm.load(_low_word_of_arg(0))
    asm.jump(BPF_JMP_JEQ_K, SYS_SOCKET, "eafnosupport")
    asm.jump(BPF_JMP_JEQ_K, SYS_SOCKETPAIR, "eafnosupport")
    asm.ret(SECCOMP_RET_ALLOW)
    asm.label("socket")
    asm.load(_low_word_of_arg(0))
    for family in SOCKET_FAMILIES:
        asm.jump(BPF_JMP_JEQ_K, family, "netlink" if family == AF_NETLINK else "allow")
    asm.ret(SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)
    asm.label("netlink")
    asm.load(_low_word_of_arg(2))
    asm.jump(BPF_JMP_JEQ_K, NETLINK_ROUTE, "allow", "eafnosupport")
    asm.label("eafnosupport")
    asm.ret(SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)
    asm.label("enosys")
    asm.ret(SECCOMP_RET_ERRNO | errno.ENOSYS)
    asm.label("allow")
    asm.ret(SECCOMP_RET_ALLOW)
    return asm.assemble()


#: The i386 dynamic loader (Debian's libc6:i386 ships both names).
I386_LOADERS = ("lib/ld-linux.so.2", "usr/lib/ld-linux.so.2")


def runs_i386_programs(trees: Sequence[Path]) -> bool:
    """Is one of *trees* made to run 32-bit x86 programs (an i386 buildroot, a
    recipe's i586 set, libc6:i386 installed)?  Their libc (bookworm's, built for
    kernels before 4.3) creates every socket through socketcall(2), whose arguments
    lie in memory where seccomp can't look: in such a root the guard lets it through
    rather than take all sockets from them.  The caller passes trusted trees only (the
    base root, dependency layers made by apt), never a fork's upper: nothing a build
    writes turns this on."""
    return any(os.path.lexists(Path(tree) / loader) for tree in trees
               for loader in I386_LOADERS)


def load(f: seccomp.SyscallFilter) -> None:
    """Install the guard and *f* on the calling thread; needs no_new_privs (or
    CAP_SYS_ADMIN).  The guard is only written for x86 machines; elsewhere *f* alone
    is loaded (docs/threat-model.md, "Other ABIs")."""
    if seccomp.system_arch() & 0xFFFFFFFF == AUDIT_ARCH_X86_64:
        seccomp_set_mode_filter(guard_program(
            i386_socketcall=getattr(f, "i386_socketcall", False)))
    f.load()
