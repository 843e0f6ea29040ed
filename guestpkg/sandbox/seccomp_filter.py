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

Syscalls newer than bookworm's libseccomp 2.5.4 are given by number: the kernel uses
one number for them on every architecture since 5.1 (``NEW_SYSCALLS``).
"""

from __future__ import annotations

import errno
import stat

import seccomp

from guestpkg.sandbox.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
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

#: Answered with ENOSYS so libc uses an older call the filter can see.
NOT_IMPLEMENTED = ("clone3", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
                   "fspick", "mount_setattr")

#: Calls libseccomp 2.5.4 doesn't know, by their (unified) number: ENOSYS.
#: (Not open_tree_attr, 467, new in 6.15: libseccomp 2.5.4 refuses that number for the
#: compat ABIs.  It needs CAP_SYS_ADMIN to clone a tree, which no sandbox keeps, and
#: move_mount, which is denied.)
NEW_SYSCALLS = {
    452: "fchmodat2",        # 6.6; glibc falls back to fchmodat, which we inspect
}

NAMESPACE_FLAGS = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                   CLONE_NEWPID, CLONE_NEWNET)

#: chmod family: (syscall, index of the mode argument).
CHMOD_CALLS = (("chmod", 1), ("fchmod", 1), ("fchmodat", 2))


def build_filter(*, allow_setuid: bool = False) -> seccomp.SyscallFilter:
    """The filter as a libseccomp object; :func:`load` installs it."""
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # system_arch() is unsigned, the Arch constants are signed: compare 32-bit values.
    if seccomp.system_arch() & 0xFFFFFFFF == seccomp.Arch.X86_64 & 0xFFFFFFFF:
        f.add_arch(seccomp.Arch.X86)
        f.add_arch(seccomp.Arch.X32)
    eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    for name in DENIED:
        f.add_rule(eperm, name)
    for name in NOT_IMPLEMENTED:
        f.add_rule(enosys, name)
    for number in NEW_SYSCALLS:
        f.add_rule(enosys, number)
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


def load(f: seccomp.SyscallFilter) -> None:
    """Install *f* on the calling thread; needs no_new_privs or CAP_SYS_ADMIN."""
    f.load()
