# SPDX-License-Identifier: GPL-2.0-or-later
"""The seccomp guard program (raw syscall numbers, socket families), run here by a
small classic-BPF interpreter over every number and family, as the kernel would run
it.  The escape suite (tests/sandbox/test_escape.py) checks the same on the kernel,
for the numbers and families the kernel has."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from guestpkg.sandbox.seccomp_filter import (
    AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
    NEW_NOT_IMPLEMENTED,
    NEWEST_SYSCALL,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    X32_SYSCALL_BIT,
    guard_program,
)

ALLOW = SECCOMP_RET_ALLOW
ENOSYS = SECCOMP_RET_ERRNO | errno.ENOSYS
EAFNOSUPPORT = SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT
AUDIT_ARCH_AARCH64 = 0xC00000B7
PROGRAM = guard_program()


def run(nr: int, arch: int = AUDIT_ARCH_X86_64, *args: int, program: bytes = PROGRAM) -> int:
    """The program's verdict on one system call (struct seccomp_data, little-endian)."""
    full = (*args, *(0,) * (6 - len(args)))
    data = struct.pack("<iIQ6Q", nr if nr < 2**31 else nr - 2**32, arch, 0, *full)
    code = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    pc, accumulator = 0, 0
    for _ in range(len(code)):          # forward jumps only: each line at most once
        op, jt, jf, k = code[pc]
        if op == 0x20:                  # BPF_LD | BPF_W | BPF_ABS
            accumulator = struct.unpack_from("<I", data, k)[0]
        elif op == 0x14:                # BPF_ALU | BPF_SUB | BPF_K
            accumulator = (accumulator - k) & 0xFFFFFFFF
        elif op == 0x15:                # BPF_JMP | BPF_JEQ | BPF_K
            pc += jt if accumulator == k else jf
        elif op == 0x35:                # BPF_JMP | BPF_JGE | BPF_K
            pc += jt if accumulator >= k else jf
        elif op == 0x06:                # BPF_RET | BPF_K
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
        pc += 1
    raise AssertionError("fell off the end of the program")


SOCKET_CALLS = [(AUDIT_ARCH_X86_64, 41), (AUDIT_ARCH_X86_64, 53),
                (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 41),
                (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 53),
                (AUDIT_ARCH_I386, 359), (AUDIT_ARCH_I386, 360)]
ABIS = [(AUDIT_ARCH_X86_64, 0), (AUDIT_ARCH_X86_64, X32_SYSCALL_BIT), (AUDIT_ARCH_I386, 0)]


@pytest.mark.parametrize(("arch", "bit"), ABIS, ids=["x86_64", "x32", "i386"])
def test_every_number_up_to_the_newest_reviewed_one(arch: int, bit: int) -> None:
    sockets = {nr for a, nr in SOCKET_CALLS if a == arch}
    for nr in range(NEWEST_SYSCALL + 1):
        if (nr | bit) in sockets or (arch == AUDIT_ARCH_I386 and nr == 102):
            continue
        expected = ENOSYS if nr in NEW_NOT_IMPLEMENTED else ALLOW
        assert run(nr | bit, arch) == expected, nr


@pytest.mark.parametrize(("arch", "bit"), ABIS, ids=["x86_64", "x32", "i386"])
@pytest.mark.parametrize("nr", [NEWEST_SYSCALL + 1, 470, 471, 511, 999, 0x3FFFFFFF])
def test_numbers_above_the_newest_are_enosys(arch: int, bit: int, nr: int) -> None:
    assert run((nr | bit) & 0xFFFFFFFF, arch) == ENOSYS


def test_x32_keeps_its_own_calls_and_nothing_beyond() -> None:
    for nr in range(512, 548):
        assert run(X32_SYSCALL_BIT | nr) == ALLOW, nr
    for nr in (548, 600, 0x3FFFFFFF):
        assert run(X32_SYSCALL_BIT | nr) == ENOSYS, nr
    assert run(0xFFFFFFFF) == ENOSYS            # nr -1, and anything with the top bits


def test_other_architectures_are_left_to_libseccomp() -> None:
    assert run(9999, AUDIT_ARCH_AARCH64) == ALLOW


@pytest.mark.parametrize(("arch", "nr"), SOCKET_CALLS)
def test_only_the_families_a_build_needs(arch: int, nr: int) -> None:
    allowed = {1, 2, 10, 16}                    # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
    for family in range(64):
        assert run(nr, arch, family, 1, 0) == (ALLOW if family in allowed else EAFNOSUPPORT)
    # the kernel reads an int: only the low 32 bits count, both ways
    assert run(nr, arch, 0x1_0000_0028, 1, 0) == EAFNOSUPPORT       # AF_VSOCK
    assert run(nr, arch, 0x1_0000_0001, 1, 0) == ALLOW              # AF_UNIX
    assert run(nr, arch, 0xFFFF_FFFF, 1, 0) == EAFNOSUPPORT


@pytest.mark.parametrize(("arch", "nr"), SOCKET_CALLS)
def test_netlink_route_only(arch: int, nr: int) -> None:
    for protocol in range(32):
        assert run(nr, arch, 16, 3, protocol) == (ALLOW if protocol == 0 else EAFNOSUPPORT)
    assert run(nr, arch, 16, 3, 0x1_0000_0000) == ALLOW              # NETLINK_ROUTE
    assert run(nr, arch, 16, 3, 0x1_0000_000F) == EAFNOSUPPORT       # KOBJECT_UEVENT


def test_i386_socketcall_may_not_create_sockets() -> None:
    for call in range(1, 21):                   # include/uapi/linux/net.h SYS_*
        expected = EAFNOSUPPORT if call in (1, 8) else ALLOW        # SOCKET, SOCKETPAIR
        assert run(102, AUDIT_ARCH_I386, call, 0xFFFF0000) == expected, call
    # 102 on x86_64 is getuid: untouched
    assert run(102, AUDIT_ARCH_X86_64, 1) == ALLOW


def test_an_i386_root_keeps_socketcall() -> None:
    """In a root made to run 32-bit programs their libc creates sockets through
    socketcall(2), whose family no filter can see: allowed there, and only there."""
    relaxed = guard_program(i386_socketcall=True)
    assert relaxed != PROGRAM
    for call in range(1, 21):
        assert run(102, AUDIT_ARCH_I386, call, program=relaxed) == ALLOW, call
    # the direct calls are still checked
    assert run(359, AUDIT_ARCH_I386, 40, 1, 0, program=relaxed) == EAFNOSUPPORT
    assert run(41, AUDIT_ARCH_X86_64, 40, 1, 0, program=relaxed) == EAFNOSUPPORT


def test_i386_programs_are_recognised_by_the_lower_layers_only(tmp_path: Path) -> None:
    from guestpkg.sandbox.seccomp_filter import runs_i386_programs

    amd64, i386, upper = tmp_path / "amd64", tmp_path / "i386", tmp_path / "upper"
    for tree in (amd64, i386, upper):
        (tree / "usr/lib").mkdir(parents=True)
    (i386 / "usr/lib/ld-linux.so.2").symlink_to("i386-linux-gnu/ld-linux.so.2")
    (upper / "usr/lib/ld-linux.so.2").write_text("planted by a build")
    assert runs_i386_programs((i386, amd64))
    assert not runs_i386_programs((amd64,))
    # a regular file counts as much as the loader's symlink: the caller decides which
    # trees are asked, and never passes a fork's upper (see init.run_helper)
    assert runs_i386_programs((upper,))
