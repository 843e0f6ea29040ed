# SPDX-License-Identifier: GPL-2.0-or-later
"""The work directories of recipe builds and checks, and what killed ones leave.

Each build works in a directory of its own, and ``guestpkg recipe check`` keeps the
packages it compares in one::

    <vardir>/recipes/builds/.tmp-<name>.<hex>/        a build's overlay upper and work
    <vardir>/recipes/builds/.tmp-<name>.<hex>.lock    its owner holds an exclusive flock
    <vardir>/recipes/check/.tmp-check.<hex>/          a check's scratch, locked the same
    <cachedir>/dcfpkg/.tmp-<name>.<hex>.part           a result being written, named
                                                      after its build's directory, or
                                                      received from a buildhost (its
                                                      lock in builds/, no directory)

A directory is removed when its ``with`` block ends, also on an error or Ctrl-C.  A
build killed mid-way (SIGKILL, a power cut) leaves it, and the flock dies with the
process: ``guestpkg cache list`` shows such a directory as ``leftover`` and
``guestpkg cache clean`` (:func:`reap`) removes it, and never one whose lock is held
(``running``), as :func:`guestpkg.buildroot.forks.reap_forks` does for forks.  The
lock is taken before the directory is made, so a directory without a held lock has
no owner.  ``guestpkg recipe build`` reaps the leftovers of builds at its start
(:func:`reap` with ``kinds=("builds",)``), as forks are reaped when a build forks,
and ``guestpkg recipe check`` those of checks: a user whose build was killed does
not pile up trees until ``cache clean``.  Nothing is followed: only real
directories (``lstat``) and files named as above are touched, and
:func:`guestpkg.fsutil.remove_tree` removes trees of the build user's subordinate ids
and directories without permissions.

A result being written whose owner has neither lock nor directory in this state
directory is another state directory's over the same cache (two buildhosts on one
machine) and is left alone.  ``guestpkg buildhost serve`` reaps its builds'
leftovers when it starts, with its jobs' directories.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.config import Config

log = logging.getLogger(__name__)

KINDS = ("builds", "check")
RESULT_SUFFIX = ".part"  # not .dcfpkg: never taken for a result
_NAME = re.compile(r"\.tmp-[a-z0-9][a-z0-9+.-]*\.[0-9a-f]{12}")


def top(config: Config, kind: str) -> Path:
    return config.vardir / "recipes" / kind


def _lock(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextlib.contextmanager
def owned(config: Config, kind: str, name: str) -> Iterator[Path]:
    """A new, empty directory under :func:`top` for *name* (a recipe name), held until
    the context ends and then removed with its lock."""
    parent = top(config, kind)
    parent.mkdir(parents=True, exist_ok=True)
    directory = parent / f"{fsutil.TMP_PREFIX}{name}.{secrets.token_hex(6)}"
    with fsutil.owner_lock(_lock(directory)):
        directory.mkdir(mode=0o700)
        try:
            yield directory
        finally:
            fsutil.remove_tree(directory)
            _lock(directory).unlink(missing_ok=True)


@contextlib.contextmanager
def receiving(config: Config, name: str) -> Iterator[Path]:
    """A name in the results directory to receive *name*'s result into (the
    coordinator of ``recipe build --buildhosts``), not yet made, held as a build's
    result being written is (the lock in builds/, with no directory), and removed with
    its lock when the context ends."""
    parent = top(config, "builds")
    parent.mkdir(parents=True, exist_ok=True)
    results = config.cachedir / "dcfpkg"
    results.mkdir(parents=True, exist_ok=True)
    owner = f"{fsutil.TMP_PREFIX}{name}.{secrets.token_hex(6)}"
    with fsutil.owner_lock(parent / f"{owner}.lock"):
        try:
            yield results / f"{owner}{RESULT_SUFFIX}"
        finally:
            (results / f"{owner}{RESULT_SUFFIX}").unlink(missing_ok=True)
            (parent / f"{owner}.lock").unlink(missing_ok=True)



def _held(lock: Path) -> bool:
    """Whether a running build holds *lock* (a missing lock file: nobody)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return e.errno not in (errno.ENOENT, errno.ELOOP)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class WorkDir:
    path: Path
    kind: str          # builds, check or results (a result being written)
    running: bool      # its owner's lock is held

    @property
    def state(self) -> str:
        return "running" if self.running else "leftover"


def _candidates(config: Config) -> Iterator[tuple[Path, str, Path]]:
    """(path, kind, the lock of its owner) of every work directory and result being
    written, by lstat: links and other files are never ours."""
    for kind in KINDS:
        parent = top(config, kind)
        for entry in sorted(parent.iterdir()) if parent.is_dir() else ():
            if _NAME.fullmatch(entry.name) and stat.S_ISDIR(entry.lstat().st_mode):
                yield entry, kind, _lock(entry)
    # A result being written has its owner's lock (and a build's, its directory) in
    # the writer's state directory, made before the file and removed after it:
    # without either here it is another state directory's over the same cache (two
    # buildhosts, a user's GUESTPKG_VARDIR), not a dead owner's.
    results = config.cachedir / "dcfpkg"
    for entry in sorted(results.iterdir()) if results.is_dir() else ():
        owner = top(config, "builds") / entry.name.removesuffix(RESULT_SUFFIX)
        if (entry.name.endswith(RESULT_SUFFIX) and _NAME.fullmatch(owner.name)
                and stat.S_ISREG(entry.lstat().st_mode)
                and (os.path.lexists(_lock(owner)) or os.path.lexists(owner))):
            yield entry, "results", _lock(owner)


def list_workdirs(config: Config) -> list[WorkDir]:
    return [WorkDir(path, kind, _held(lock)) for path, kind, lock in _candidates(config)]


@dataclass(frozen=True)
class Reaped:
    removed: int = 0
    running: int = 0


def reap(config: Config, kinds: tuple[str, ...] = KINDS) -> Reaped:
    """Remove what killed builds and checks (of *kinds*: a build's results being
    written or received go with ``builds``) left, whose lock is free; a running one's
    stays.  Cheap when there is nothing: a listing of two or three directories."""
    removed = running = 0
    for path, kind, lock in list(_candidates(config)):
        if (kind if kind != "results" else "builds") not in kinds:
            continue
        with _free(lock) as free:
            if not free:
                running += 1
                continue
            log.info("removing %s, left by a killed guestpkg", path)
            fsutil.remove_tree(path)
            removed += 1
    for kind in kinds:  # the locks of what is gone (also of a build killed before mkdir)
        parent = top(config, kind)
        for entry in sorted(parent.glob(".tmp-*.lock")) if parent.is_dir() else ():
            directory = entry.with_name(entry.name.removesuffix(".lock"))
            if _NAME.fullmatch(directory.name) and not os.path.lexists(directory):
                with _free(entry) as free:
                    if free:
                        entry.unlink(missing_ok=True)
    return Reaped(removed, running)


@contextlib.contextmanager
def _free(lock: Path) -> Iterator[bool]:
    """Hold *lock* exclusively if nobody does (True), else yield False.  A missing lock
    file is free (no owner ever locked it, or the owner removed it when done), and so
    is a link (never followed: no owner locks through one)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        yield e.errno in (errno.ENOENT, errno.ELOOP)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
