# SPDX-License-Identifier: GPL-2.0-or-later
"""Forks: throwaway copy-on-write views of a base root, one per build.

A fork is an overlayfs(5) stack: optional extra layers (cached build dependencies) over
a base root generation, both read-only, and the fork's own upper and work directories
that take every write.  The overlay itself is mounted by the sandbox inside its own
mount namespace, once per command; what persists between the commands of one build is
the upper directory.  It lives under ``<vardir>/forks/``::

    forks/<id>/upper  forks/<id>/work    the fork's writes (overlay upperdir, workdir)
    forks/<id>.lock                      the owner holds an exclusive flock(2) on it

With ``fork_upper = tmpfs`` (the default) ``forks/<id>`` is a tmpfs mounted in a private
mount namespace of the guestpkg process (mount_namespaces(7)): no other process sees it,
and the kernel unmounts it when guestpkg dies, even by SIGKILL.  With ``disk`` the
writes go to the state directory's file system (for builds larger than memory).

With the user-namespace sandbox (``id_mapping = userns``, the default) a fork holds
one slice of guestpkg's subordinate ids for its whole life
(:mod:`guestpkg.sandbox.subids`), so its commands share the ids of the files they
write in the upper directory, and no concurrent fork has the same ones.

A fork is destroyed when its ``with`` block ends, also on an error or Ctrl-C.  If
guestpkg is killed, the lock dies with it, and the next :func:`fork` or buildroot
command (:func:`reap_forks`) removes every fork directory whose lock nobody holds.
While a fork lives it holds a shared lock on its base root generation, so ``update``
and ``remove`` never take a tree from under it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guestpkg import fsutil
from guestpkg.buildroot.roots import BaseRoot, release_generation, require_root
from guestpkg.config import Config, SandboxLimits
from guestpkg.errors import SystemStateError, UsageError
from guestpkg.run import as_namespace_root, run
from guestpkg.sandbox.idmap import resolve
from guestpkg.sandbox.subids import Slice, allocated_slice

if TYPE_CHECKING:
    from guestpkg.sandbox import SandboxSpec

log = logging.getLogger(__name__)


def forks_dir(config: Config) -> Path:
    return config.vardir / "forks"


@dataclass
class Fork:
    """A live fork; get one from :func:`fork`."""

    id: str
    base: BaseRoot
    layers: tuple[Path, ...]
    directory: Path
    on_tmpfs: bool
    id_mapping: str = "userns"
    slice: Slice | None = None      # the fork's host ids, with id_mapping userns
    limits: SandboxLimits | None = None  # resource fields of its specs
    spent: bool = field(default=False, init=False)

    @property
    def upperdir(self) -> Path:
        return self.directory / "upper"

    @property
    def workdir(self) -> Path:
        return self.directory / "work"

    @property
    def lowerdirs(self) -> tuple[Path, ...]:
        """Topmost first, the base root last, as overlayfs(5) and SandboxSpec take them."""
        return (*self.layers, self.base.path)

    def spec(self, argv: Sequence[str], **kwargs: Any) -> SandboxSpec:
        """A :class:`~guestpkg.sandbox.SandboxSpec` that runs *argv* in this fork;
        *kwargs* are the spec's other fields (env, uid, network, ...)."""
        from guestpkg.sandbox import SandboxSpec

        if self.spent:
            raise UsageError(f"fork {self.id}: its upper directory was kept, the fork is "
                             "spent; start a new fork on top of the kept layer")
        kwargs.setdefault("id_mapping", self.id_mapping)
        for name, value in (self.limits or {}).items():
            kwargs.setdefault(name, value)
        if kwargs["id_mapping"] == "userns" and self.slice is not None:
            kwargs.setdefault("host_ids", (self.slice.uid_base, self.slice.gid_base))
        return SandboxSpec(argv=tuple(argv), lowerdirs=self.lowerdirs,
                           upperdir=self.upperdir, workdir=self.workdir, **kwargs)

    def keep_upper(self, dest: Path) -> None:
        """Move the fork's writes to *dest* (which must not exist), to be used later as
        a layer of another fork.  The fork is spent afterwards: :meth:`spec` refuses.

        On disk the move is one rename(2).  From a tmpfs the tree is copied with
        ``cp -a`` (it keeps overlayfs's whiteouts, 0/0 character devices, and its
        ``trusted.overlay.*`` xattrs) beside *dest* and renamed into place, so *dest*
        never holds a partial tree.  Files the fork's user namespace wrote carry its
        slice's host ids: they get the canonical ids back (:func:`shift_ids`) before
        the rename, as every layer on disk has them."""
        if self.spent:
            raise UsageError(f"fork {self.id}: its upper directory was already kept")
        if dest.exists():
            raise UsageError(f"{dest} exists already")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.spent = True
        with fsutil.atomic_directory(dest) as tmp:
            moved = False
            if self.id_mapping == "user":
                # Owned by the user's subordinate ids: moving a directory to another
                # parent needs write access to it (rename(2)), which only root of the
                # user's namespace has.
                run(as_namespace_root(["mv", "--no-target-directory", "--",
                                       str(self.upperdir), str(tmp)]))
                moved = True
            elif not self.on_tmpfs and os.stat(tmp).st_dev == os.stat(self.upperdir).st_dev:
                try:
                    os.rename(self.upperdir, tmp)  # onto the empty directory: rename(2)
                    moved = True
                except OSError as e:
                    # One file system seen through two mounts (bind mounts of the state
                    # directory's parts): rename(2) says EXDEV; copy instead.
                    if e.errno != errno.EXDEV:
                        raise
            if not moved:
                run(["cp", "-a", "--reflink=auto", "--no-target-directory",
                     str(self.upperdir), str(tmp)])
            if self.slice is not None:
                shift_ids(tmp, self.slice)
        fsutil.fsync_dir(dest.parent)


def shift_ids(tree: Path, ids: Slice) -> None:
    """Give every entry of *tree* owned by a host id of *ids* the id it has inside
    (host uid ``uid_base + n`` becomes n); other owners (whiteouts overlayfs made as
    the mounter, root) stay.  chown(2) clears setuid and setgid bits of regular
    files: they are set again.  Not shifted: ids inside POSIX ACLs and the root id of
    v3 file capabilities (apt gets no CAP_SETFCAP, so a layer has none)."""
    def shift(path: str) -> None:
        st = os.lstat(path)
        uid, gid = ids.shift_uid(st.st_uid), ids.shift_gid(st.st_gid)
        if (uid, gid) == (st.st_uid, st.st_gid):
            return
        os.chown(path, uid, gid, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    shift(str(tree))
    for directory, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            shift(os.path.join(directory, name))



def reap_forks(config: Config) -> list[Path]:
    """Remove the forks whose owner died (nobody holds their lock); returns them."""
    top = forks_dir(config)
    if not top.is_dir():
        return []
    reaped = []
    for fork_id in sorted({e.name.removesuffix(".lock") for e in top.iterdir()}):
        lock = top / f"{fork_id}.lock"
        with fsutil.locked(lock, blocking=False) as free:
            if not free:
                continue
            directory = top / fork_id
            if directory.exists():
                log.info("removing fork %s, left by a guestpkg that died", directory)
                fsutil.remove_tree(directory)
                reaped.append(directory)
            lock.unlink(missing_ok=True)
    return reaped


@contextlib.contextmanager
def _generation_in_use(base: BaseRoot) -> Iterator[None]:
    with fsutil.locked(base.lock_path, shared=True):
        # Checked under the lock: the collector renames a tree away only while it
        # holds the exclusive lock (see guestpkg.buildroot.roots).
        if not base.path.is_dir():
            raise SystemStateError(f"buildroot {base.name!r}: generation {base.generation} "
                                   "was removed by an update", hint="run the command again")
        yield


@contextlib.contextmanager
def _upper_tmpfs(directory: Path, size_bytes: int | None) -> Iterator[None]:
    from guestpkg.sandbox import enter_private_mount_namespace, mount_tmpfs
    from guestpkg.sandbox.syscalls import MNT_DETACH, umount2

    # A private namespace for this process (again for each fork: cheap, and it needs
    # no state to remember whether we are in one already).
    enter_private_mount_namespace()
    mount_tmpfs(directory, size_bytes)
    try:
        yield
    finally:
        umount2(directory, MNT_DETACH)


@contextlib.contextmanager
def fork(config: Config, base: BaseRoot, layers: Sequence[Path] = ()) -> Iterator[Fork]:
    """A fresh fork of *base* with *layers* (topmost first) stacked over it."""

    for layer in layers:
        if not layer.is_dir():
            raise UsageError(f"layer {layer} is not a directory")
    reap_forks(config)
    top = forks_dir(config)
    fsutil.private_directory(top)
    fork_id = secrets.token_hex(8)
    directory = top / fork_id
    with contextlib.ExitStack() as stack:
        # The lock first: a directory without a held lock is the reaper's to take.
        stack.enter_context(fsutil.owner_lock(top / f"{fork_id}.lock"))
        stack.callback(lambda: (top / f"{fork_id}.lock").unlink(missing_ok=True))
        stack.callback(release_generation, base)
        stack.enter_context(_generation_in_use(base))
        directory.mkdir(mode=0o700)
        stack.callback(fsutil.remove_tree, directory)
        # A normal user can't mount: the upper is on disk (docs/buildroots.md).
        on_tmpfs = config.fork_upper == "tmpfs" and os.geteuid() == 0
        if on_tmpfs:
            stack.enter_context(_upper_tmpfs(directory, config.upper_size or None))
        (directory / "upper").mkdir(mode=0o755)
        (directory / "work").mkdir(mode=0o700)
        mapping = resolve(config.id_mapping)
        if mapping == "root":
            require_root("a fork with id_mapping = root")
        ids = stack.enter_context(allocated_slice()) if mapping == "userns" else None
        log.debug("fork %s of %s (%s), upper on %s, ids %s", fork_id, base.name,
                  base.generation, "tmpfs" if on_tmpfs else "disk",
                  ids or ("the user's own range" if mapping == "user" else "real root"))
        yield Fork(fork_id, base, tuple(layers), directory, on_tmpfs, mapping, ids,
                   config.sandbox_limits)
