# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox's file system view, built inside its own mount namespace.

The steps, in the order :mod:`guestpkg.sandbox.init` runs them (all before pivot_root,
while the host's paths are still visible):

1. :func:`enter_private_mount_namespace`: a new mount namespace whose mounts don't
   propagate back to the host (``MS_REC | MS_PRIVATE`` on ``/``; see
   mount_namespaces(7)).  Everything below dies with the namespace, also on SIGKILL.
2. :func:`mount_staging`: a tmpfs on a host directory that no spec path lives under; it
   holds the new root's mount point and, without an ``upperdir``, the throwaway upper.
3. :func:`mount_root`: an overlay of the layers (``nosuid,nodev``), or a bind of
   ``root``; with a user namespace the layers and binds are idmapped mounts
   (:mod:`guestpkg.sandbox.idmap`).
4. :func:`mount_binds`, then :func:`mount_proc`, :func:`mount_dev`, :func:`mount_sys`:
   a fresh /proc with the kernel's sensitive files masked and /proc/sys read-only (the
   list follows Docker's masked and read-only paths), a minimal /dev (the six safe
   nodes, a private devpts instance, a tmpfs /dev/shm; never the host's console or
   disks), and a read-only sysfs with firmware, kernel, fs, power and module hidden.
5. :func:`pivot_into`: pivot_root(2) with the ``pivot_root(".", ".")`` idiom, then the
   old root is detached, so no host path is reachable any more.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from guestpkg.errors import SystemStateError, UsageError
from guestpkg.sandbox.spec import Bind, SandboxSpec
from guestpkg.sandbox.syscalls import (
    CLONE_NEWNS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    mount,
    pivot_root,
    umount2,
    unshare,
)
from guestpkg.sandbox.userrange import locked_flags

if TYPE_CHECKING:
    from guestpkg.sandbox.idmap import IdMapping

#: Host directories that may hold the staging tmpfs, first usable one wins.  The
#: namespace is private, so covering one of them hides nothing from the host.
STAGING_CANDIDATES = ("/mnt", "/media", "/srv", "/opt", "/run", "/boot", "/home", "/tmp")

#: Device nodes bound from the host: the harmless ones (bubblewrap's --dev set).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

#: /proc files hidden behind /dev/null, and directories behind an empty read-only tmpfs.
PROC_MASKED_FILES = ("kcore", "keys", "key-users", "kallsyms", "kmsg", "latency_stats",
                     "timer_list", "timer_stats", "sched_debug", "sysrq-trigger", "config.gz")
PROC_MASKED_DIRS = ("acpi", "asound", "scsi", "driver")
PROC_READONLY = ("sys", "bus", "fs", "irq")
SYS_MASKED_DIRS = ("firmware", "kernel", "fs", "power", "module")

NOSUID_NODEV_NOEXEC = MS_NOSUID | MS_NODEV | MS_NOEXEC


def enter_private_mount_namespace() -> None:
    """Give the calling process a mount namespace of its own whose mounts never
    propagate to the host.  The caller must be single-threaded: unshare(2) fails with
    EINVAL for CLONE_NEWNS (it implies CLONE_FS) when threads share the fs struct."""
    if threading.active_count() != 1:
        raise SystemStateError("enter_private_mount_namespace() needs a single-threaded "
                               "process")
    unshare(CLONE_NEWNS)
    make_private("/")


def make_private(path: str | Path) -> None:
    mount(None, path, None, MS_REC | MS_PRIVATE)


def mount_tmpfs(target: Path, size_bytes: int | None = None, mode: int = 0o755) -> None:
    """Mount a fresh tmpfs (``nosuid,nodev``) on *target*."""
    options = f"mode={mode:o}" + (f",size={size_bytes}" if size_bytes else "")
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def spec_paths(spec: SandboxSpec) -> list[str]:
    """Every host path the spec refers to, symlinks resolved."""
    paths = [*spec.lowerdirs, spec.upperdir, spec.workdir, spec.root,
             *(b.source for b in spec.binds)]
    return [os.path.realpath(p) for p in paths if p is not None]


def choose_staging(paths: Iterable[str]) -> str:
    """A candidate directory that neither holds nor lies inside any of *paths*."""
    paths = list(paths)
    for candidate in STAGING_CANDIDATES:
        real = os.path.realpath(candidate)
        if not os.path.isdir(real) or real == "/":
            continue
        if not any(_is_within(p, real) or _is_within(real, p) for p in paths):
            return real
    raise SystemStateError("no directory to stage the sandbox root on",
                           hint=f"one of {', '.join(STAGING_CANDIDATES)} must exist and "
                           "hold none of the sandbox's paths")


def mount_staging(spec: SandboxSpec) -> Path:
    staging = Path(choose_staging(spec_paths(spec)))
    mount_tmpfs(staging, spec.upper_size_bytes, mode=0o700)
    (staging / "root").mkdir()
    return staging


def mount_root(spec: SandboxSpec, staging: Path, mapping: IdMapping) -> Path:
    """The sandbox's root at ``staging/root``: overlay of the layers, or a bind."""
    root = staging / "root"
    if spec.root is not None:
        if not spec.root.is_dir():
            raise UsageError(f"sandbox root {spec.root} is not a directory")
        mapping.mount_tree(spec.root, root, readonly=False)  # nosuid, nodev
        return root
    upper, work = spec.upperdir, spec.workdir
    if upper is None or work is None:
        upper, work = staging / "upper", staging / "work"
        upper.mkdir(mode=0o755)
        work.mkdir(mode=0o700)
    for path in (*spec.lowerdirs, upper, work):
        if not path.is_dir():
            raise UsageError(f"sandbox layer {path} is not a directory")
    mapping.own(upper)
    lowers = [mapping.layer(p, staging / f"lower-{i}") for i, p in enumerate(spec.lowerdirs)]
    lower = ":".join(str(p) for p in lowers)
    # nodev: device nodes in a layer must not open devices.  nosuid: setuid files
    # grant nothing, whatever the layers hold (no_new_privs and the empty bounding set
    # already make them harmless: the escape suite checks that on its own).
    mount("overlay", root, "overlay", MS_NODEV | MS_NOSUID,
          f"lowerdir={lower},upperdir={upper},workdir={work}{mapping.overlay_options()}")
    return root


def resolve_inside(root: Path, target: str, *, directory: bool) -> Path:
    """*target* under *root*, creating missing parts; symlinks are refused, so a tree
    written by an earlier build can't redirect a bind mount to a host path."""
    current = root
    parts = [p for p in target.split("/") if p and p != "."]
    for index, part in enumerate(parts):
        if part == "..":
            raise UsageError(f"bind target {target} must not contain '..'")
        current = current / part
        last = index == len(parts) - 1
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if last and not directory:
                current.touch(mode=0o644)
            else:
                current.mkdir(mode=0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UsageError(f"bind target {target}: {current} is a symlink in the root")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise UsageError(f"bind target {target}: {current} is not a directory")
    return current


def bind(source: Path | str, target: Path, *, readonly: bool, flags: int = 0) -> None:
    """A non-recursive bind mount, then the remount that applies the flags (mount(2):
    flags other than MS_REC are ignored when a bind is created)."""
    mount(source, target, None, MS_BIND)
    mount(None, target, None,
          MS_BIND | MS_REMOUNT | flags | (MS_RDONLY if readonly else 0) |
          locked_flags(target))


def mount_binds(root: Path, binds: Iterable[Bind], mapping: IdMapping) -> None:
    for b in binds:
        if not b.source.exists():
            raise UsageError(f"bind source {b.source} does not exist")
        is_dir = b.source.is_dir()
        with mapping.creating(root):
            target = root / resolve_inside(Path("."), b.target, directory=is_dir)
        mapping.mount_tree(b.source, target, readonly=b.readonly)


def make_mount_points(root: Path, mapping: IdMapping) -> None:
    """/proc, /dev and /sys in the root, made as the sandbox's root."""
    with mapping.creating(root):
        for name in ("proc", "dev", "sys"):
            _ensure_dir(Path(name))


def _ensure_dir(path: Path) -> Path:
    if path.is_symlink():
        raise UsageError(f"{path} is a symlink in the root")
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def _mask_empty(path: Path) -> None:
    mount("tmpfs", path, "tmpfs", MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0,mode=0555")


def mount_proc(root: Path, *, masked: bool = True, hide_others: bool = False) -> None:
    """A fresh proc for the new pid namespace (the caller must already be in it);
    *masked*: its sensitive files hidden and /proc/sys read-only.  Unmasked only for
    the ``allow_chroot_mount`` relaxation, whose command runs in a user namespace:
    there every masked file belongs to real root, whom the namespace does not map,
    and needs capabilities in the initial user namespace (docs/threat-model.md).
    *hide_others*: ``hidepid=invisible`` (proc(5), Linux >= 5.8), only the processes
    the reader may ptrace show: the relaxation's command, which can unmount its own
    proc and uncover this one, then does not see the sandbox's init and the process
    that waits for it.  The kernel's check of a proc mount in a user namespace
    (``mount_too_revealing()``) looks at mount flags and masks, not at hidepid."""
    proc = _ensure_dir(root / "proc")
    mount("proc", proc, "proc", NOSUID_NODEV_NOEXEC, "hidepid=invisible" if hide_others else None)
    if not masked:
        return
    for name in PROC_READONLY:
        if (proc / name).is_dir():
            mount(proc / name, proc / name, None, MS_BIND | MS_REC)
            mount(None, proc / name, None, MS_BIND | MS_REMOUNT | MS_RDONLY | NOSUID_NODEV_NOEXEC)
    for name in PROC_MASKED_FILES:
        if (proc / name).exists():
            bind("/dev/null", proc / name, readonly=True, flags=NOSUID_NODEV_NOEXEC)
    for name in PROC_MASKED_DIRS:
        if (proc / name).is_dir():
            _mask_empty(proc / name)


def mount_dev(root: Path, shm_size_bytes: int | None = None) -> None:
    """A minimal /dev: see the module docstring.  The tmpfs is read-only at the end,
    so nothing (with CAP_MKNOD or not) adds nodes."""
    dev = _ensure_dir(root / "dev")
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        node = dev / name
        node.touch(mode=0o666)
        bind(f"/dev/{name}", node, readonly=False, flags=MS_NOSUID | MS_NOEXEC)
    (dev / "pts").mkdir()
    # newinstance: a devpts of our own, so the sandbox can't open the host's ptys;
    # gid=5 is Debian's static "tty" group (base-passwd).
    mount("devpts", dev / "pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", dev / "ptmx")
    (dev / "shm").mkdir()
    mount("tmpfs", dev / "shm", "tmpfs", MS_NOSUID | MS_NODEV,
          "mode=1777" + (f",size={shm_size_bytes}" if shm_size_bytes else ""))
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    mount(None, dev, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
          "mode=0755,size=64k")


def mount_sys(root: Path) -> None:
    """A read-only sysfs of the sandbox's network namespace, kernel internals hidden."""
    sys_dir = _ensure_dir(root / "sys")
    try:
        mount("sysfs", sys_dir, "sysfs", MS_RDONLY | NOSUID_NODEV_NOEXEC)
    except PermissionError:
        # A normal user's sandbox with the host's network (apt downloading): sysfs
        # belongs to the network namespace, which the user's namespace does not own.
        # An empty /sys then: apt and dpkg need none.
        _mask_empty(sys_dir)
        return
    for name in SYS_MASKED_DIRS:
        if (sys_dir / name).is_dir():
            _mask_empty(sys_dir / name)


def pivot_into(root: Path) -> None:
    """Make *root* the root directory and detach the old one (pivot_root(2) NOTES:
    ``pivot_root(".", ".")`` stacks the old root on the new one; umount it lazily)."""
    os.chdir(root)
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")
