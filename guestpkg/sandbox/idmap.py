# SPDX-License-Identifier: GPL-2.0-or-later
"""How user ids inside the sandbox relate to user ids on the host.

Two implementations of :class:`IdMapping`, chosen by ``SandboxSpec.id_mapping``:

``userns`` (:class:`UserNamespace`, the default)
    The command runs in a user namespace (user_namespaces(7)) whose ids 0-65535 are a
    slice of guestpkg's subordinate range (:mod:`guestpkg.sandbox.subids`): uid 0 inside
    is, say, host uid 1879048192, and the build user 1234 is 1879049426; no host account
    has either, and two concurrent sandboxes have disjoint slices.  Capabilities the
    command keeps (apt's) are capabilities in that namespace only, over files whose
    owners it maps; in the initial namespace it has none, whatever it does.

    The trees on disk (base roots, dependency layers, the build directory) keep the
    ids they have always had (0-65535, "canonical"): the sandbox's set-up, still real
    root in the initial namespace, mounts each of them *idmapped* (mount_setattr(2)
    ``MOUNT_ATTR_IDMAP``, Linux >= 5.12; as overlayfs lower layers >= 5.19), so the
    command sees uid 0 where the disk says 0 and its writes land on disk as canonical
    ids again.  Only the overlay's upper directory holds host ids of the slice (tmpfs
    can be idmapped only from Linux 6.3, bookworm has 6.1); a fork's upper that becomes
    a layer is shifted back (:meth:`guestpkg.buildroot.forks.Fork.keep_upper`).

    Order: the helper, before it unshares anything, forks a child that unshares a user
    namespace and writes its maps (as root it may write any map: user_namespaces(7),
    "Defining user and group ID mappings"), keeping an fd of the namespace
    (:meth:`UserNamespace.prepare`); init mounts the idmapped layers with that fd
    (:meth:`UserNamespace.mount_tree`); the command enters it with setns(2) just
    before it drops its privileges (:meth:`UserNamespace.enter`).  The mount, pid,
    network, uts and ipc namespaces stay owned by the initial user namespace, so
    even the command's capabilities in its own namespace give it no power over them.

``user`` (:class:`UserOwnRange`, what ``userns`` becomes for a normal user)
    guestpkg run by a normal user: the whole sandbox, set-up included, runs in a user
    namespace on the user's own subordinate ids (:mod:`guestpkg.sandbox.userrange`),
    which also owns the mount, pid, network, uts and ipc namespaces.  No idmapped
    mounts (a normal user can't make them on the host's file systems): the trees on
    disk carry the shifted ids already.  The command's capability sets are emptied as
    in the other modes; it never had any in the initial namespace.

``root`` (:class:`RealRoot`)
    No user namespace: ids inside are the host's, made harmless by the empty capability
    sets, no_new_privs and the seccomp filter.  For kernels without idmapped mounts or
    user namespaces, behind the explicit setting ``id_mapping = root``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from guestpkg.errors import SystemStateError, UsageError
from guestpkg.sandbox import subids, userrange
from guestpkg.sandbox.syscalls import (
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MOUNT_ATTR_IDMAP,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_RDONLY,
    MS_REMOUNT,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    mount,
    mount_setattr,
    move_mount,
    open_tree,
    setfsgid,
    setfsuid,
    setns,
    unshare,
)
from guestpkg.sandbox.userrange import kernel_version, locked_flags

if TYPE_CHECKING:
    from guestpkg.sandbox.spec import SandboxSpec

#: overlayfs takes idmapped lower layers from Linux 5.19 ("ovl: support idmapped
#: layers"); idmapped mounts of ext4, xfs and btrfs exist since 5.12-5.15.
MIN_KERNEL = (5, 19)


class IdMapping(Protocol):
    """A way to map ids; the sandbox calls these in this order."""

    name: str

    def check(self) -> None:
        """Raise :class:`~guestpkg.errors.GuestpkgError` if this mapping can't work here."""

    def prepare(self) -> None:
        """In the helper, before it unshares anything (it may fork)."""

    def layer(self, source: Path, target: Path) -> Path:
        """An overlay lower layer as the sandbox must see it (*target* is a free
        directory for a mount, if one is needed); returns the path to use."""

    def mount_tree(self, source: Path, target: Path, *, readonly: bool) -> None:
        """Bind *source* at *target* (nosuid, nodev, not recursive)."""

    def own(self, path: Path) -> None:
        """Make a directory the sandbox writes through (an overlay upper) its own."""

    def creating(self, root: Path) -> contextlib.AbstractContextManager[None]:
        """In *root* (the working directory meanwhile: paths relative to it) while
        set-up creates mount points there: as the sandbox's root."""

    def enter(self) -> None:
        """In the command's process, before it drops its privileges."""

    def overlay_options(self) -> str:
        """Extra overlayfs options ("" or ",userxattr")."""

    def describe(self) -> str:
        """One line for the log: which mapping ran and with which host ids."""


@contextlib.contextmanager
def working_in(root: Path) -> Iterator[None]:
    """*root* as the working directory, then "/": what every mapping's
    :meth:`IdMapping.creating` does around making mount points."""
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir("/")


class RealRoot:
    """No user namespace: ids inside are the host's ids.  Needs real root."""

    name = "root"

    def check(self) -> None:
        if os.geteuid() != 0:
            raise SystemStateError(
                "the sandbox needs root (real uid 0) to create namespaces and mounts",
                hint="run guestpkg as root")

    def prepare(self) -> None:
        return None

    def layer(self, source: Path, target: Path) -> Path:
        return source

    def mount_tree(self, source: Path, target: Path, *, readonly: bool) -> None:
        # mount(2): flags other than MS_REC are ignored when a bind is made; the
        # remount applies them (as guestpkg.sandbox.mounts.bind, which imports us).
        mount(source, target, None, MS_BIND)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV |
              (MS_RDONLY if readonly else 0))

    def own(self, path: Path) -> None:
        return None

    def creating(self, root: Path) -> contextlib.AbstractContextManager[None]:
        return working_in(root)

    def enter(self) -> None:
        return None

    def overlay_options(self) -> str:
        return ""

    def describe(self) -> str:
        return "ids: real root (no user namespace; id_mapping = root)"


class UserNamespace:
    """A user namespace on a slice of guestpkg's subordinate range; see the module
    docstring.  *host_ids* is the slice's (uid, gid) of id 0 when the caller holds a
    slice (a fork does, for all its commands); otherwise :meth:`prepare` takes one."""

    name = "userns"

    def __init__(self, host_ids: tuple[int, int] | None = None) -> None:
        self.host_ids = host_ids
        self.userns_fd: int | None = None
        self._held = contextlib.ExitStack()

    def check(self) -> None:
        if os.geteuid() != 0:
            raise SystemStateError(
                "the sandbox needs root (real uid 0) to create namespaces and mounts",
                hint="run guestpkg as root")
        if kernel_version() < MIN_KERNEL:
            raise SystemStateError(
                f"Linux {os.uname().release} has no idmapped overlay layers (needs "
                f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]} or later) for the user-namespace sandbox",
                hint="run with --id-mapping=root (or id_mapping = root in "
                "/etc/guestpkg/guestpkg.conf)")
        if self.host_ids is None:
            subids.find_range(subids.SUBUID_FILE, (subids.RANGE_OWNER,))
            subids.find_range(subids.SUBGID_FILE, (subids.RANGE_OWNER,))

    def prepare(self) -> None:
        if self.host_ids is None:
            taken = self._held.enter_context(subids.allocated_slice())
            self.host_ids = (taken.uid_base, taken.gid_base)
        uid_base, gid_base = self.host_ids
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the namespace's first member: unshares, then waits to be let go
            status = 1
            try:
                os.close(ready_r)
                os.close(done_w)
                try:
                    unshare(CLONE_NEWUSER)
                except PermissionError:
                    # unshare(2): EPERM for CLONE_NEWUSER in a chroot (guestpkg itself
                    # installed in one, as the tests' system roots are).  This process
                    # only makes the namespace, which holds no files: it may move to
                    # the mount namespace of the pid namespace's init, and so to its
                    # root, which is that namespace's root (setns(2)).
                    mount_ns = os.open("/proc/1/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
                    setns(mount_ns, CLONE_NEWNS)
                    unshare(CLONE_NEWUSER)
                os.write(ready_w, b"u")
                os.read(done_r, 1)
                status = 0
            finally:
                os._exit(status)
        os.close(ready_w)
        os.close(done_r)
        try:
            if os.read(ready_r, 1) != b"u":
                raise SystemStateError("cannot create a user namespace",
                                       hint="run with --id-mapping=root")
            for name, base in (("uid_map", uid_base), ("gid_map", gid_base)):
                with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
                    f.write(f"0 {base} {subids.SLICE_SIZE}\n")
            self.userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(ready_r)
            os.close(done_w)
            os.waitpid(pid, 0)

    def _idmapped(self, source: Path, target: Path, attributes: int) -> None:
        """An idmapped bind of *source* on *target*: open_tree(2) makes a detached copy,
        mount_setattr(2) gives it the namespace's idmapping, move_mount(2) attaches it."""
        assert self.userns_fd is not None, "prepare() first"
        fd = open_tree(source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
        try:
            try:
                mount_setattr(fd, MOUNT_ATTR_IDMAP | attributes, self.userns_fd)
            except OSError as e:
                raise SystemStateError(
                    f"cannot make an idmapped mount of {source}: {e.strerror} (its file "
                    "system must support idmapped mounts: ext4, xfs, btrfs, tmpfs >= 6.3)",
                    hint="keep guestpkg's state on such a file system, or run with "
                    "--id-mapping=root") from e
            move_mount(fd, target)
        finally:
            os.close(fd)

    def layer(self, source: Path, target: Path) -> Path:
        target.mkdir(mode=0o700)
        self._idmapped(source, target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV)
        return target

    def mount_tree(self, source: Path, target: Path, *, readonly: bool) -> None:
        self._idmapped(source, target, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                       (MOUNT_ATTR_RDONLY if readonly else 0))

    def own(self, path: Path) -> None:
        assert self.host_ids is not None
        st = os.lstat(path)
        if st.st_uid < subids.SLICE_SIZE and st.st_gid < subids.SLICE_SIZE:
            os.chown(path, self.host_ids[0] + st.st_uid, self.host_ids[1] + st.st_gid)

    @contextlib.contextmanager
    def creating(self, root: Path) -> Iterator[None]:
        """Files made through an idmapped mount get the caller's fsuid mapped back
        through the idmapping, and host uid 0 has no image there (EOVERFLOW): so set-up
        creates mount points as the sandbox's root, the slice's first id.  CAP_SYS_ADMIN
        stays; the file-system capabilities come back with fsuid 0 (capabilities(7)).
        The working directory is *root* first: the staging directory above it is
        root's alone (0700)."""
        assert self.host_ids is not None
        with working_in(root):
            setfsgid(self.host_ids[1])
            setfsuid(self.host_ids[0])
            try:
                yield
            finally:
                setfsuid(0)
                setfsgid(0)

    def enter(self) -> None:
        assert self.userns_fd is not None, "prepare() first"
        setns(self.userns_fd, CLONE_NEWUSER)
        os.close(self.userns_fd)

    def overlay_options(self) -> str:
        return ""

    def describe(self) -> str:
        if self.host_ids is None:
            return "ids: user namespace on a slice of guestpkg's subordinate ids"
        uid, gid = self.host_ids
        return (f"ids: user namespace, uid 0-{subids.SLICE_SIZE - 1} inside = host uid "
                f"{uid}-{uid + subids.SLICE_SIZE - 1}, gid {gid}-{gid + subids.SLICE_SIZE - 1}")


class UserOwnRange:
    """A normal user's sandbox: see the module docstring and
    :mod:`guestpkg.sandbox.userrange`."""

    name = "user"

    def __init__(self) -> None:
        self.range: userrange.UserRange | None = None

    def check(self) -> None:
        if os.geteuid() == 0 and not userrange.in_user_namespace():
            raise SystemStateError("id mapping 'user' is for normal users",
                                   hint="as root, use --id-mapping=userns")
        self.range = userrange.check()

    def prepare(self) -> None:
        assert self.range is not None, "check() first"
        userrange.enter(self.range)

    def layer(self, source: Path, target: Path) -> Path:
        return source

    def mount_tree(self, source: Path, target: Path, *, readonly: bool) -> None:
        mount(source, target, None, MS_BIND)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV |
              (MS_RDONLY if readonly else 0) | locked_flags(target))

    def own(self, path: Path) -> None:
        """A directory the user made (the user's own id, OWN_ID inside) becomes
        root's inside, as the root of the tree over which it lies."""
        st = os.lstat(path)
        if st.st_uid == userrange.OWN_ID:
            os.chown(path, 0, 0)

    def creating(self, root: Path) -> contextlib.AbstractContextManager[None]:
        return working_in(root)

    def enter(self) -> None:
        return None

    def overlay_options(self) -> str:
        # overlayfs(5): trusted.* xattrs need CAP_SYS_ADMIN in the initial namespace.
        return ",userxattr"

    def describe(self) -> str:
        if self.range is None:
            with contextlib.suppress(SystemStateError):
                self.range = userrange.find_user_range()
        if self.range is None:
            return "ids: user namespace on the user's own subordinate ids"
        return self.range.describe()


MAPPINGS = ("userns", "root")


def resolve(name: str) -> str:
    """The mapping *name* (a setting's value) stands for here: ``userns`` is the
    user's own range for a normal user."""
    return "user" if name == "userns" and os.geteuid() != 0 else name


def get_mapping(name: str, host_ids: tuple[int, int] | None = None) -> IdMapping:
    if name == "userns":
        return UserNamespace(host_ids)
    if name == "user":
        return UserOwnRange()
    if name == "root":
        return RealRoot()
    raise UsageError(f"unknown id mapping {name!r}", hint=f"known: {', '.join(MAPPINGS)}")


def for_spec(spec: SandboxSpec) -> IdMapping:
    return get_mapping(spec.id_mapping, spec.host_ids)
