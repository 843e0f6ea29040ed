# SPDX-License-Identifier: GPL-2.0-or-later
"""Atomic changes on disk: no partial file ever sits at a final path.

Write to a temporary name in the same directory, fsync, rename; a directory is built
under a temporary name and renamed into place.  Temporary names start with ``.tmp-``
so that a later run can recognise and reap what an interrupted one left.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from guestpkg.run import as_namespace_root, run

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Open a temporary file beside *path*; on success it replaces *path* atomically,
    on any error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    with atomic_file(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside *path*; on success rename it to *path*
    (which must not exist), on error remove it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent))
    try:
        yield tmp
        os.rename(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        remove_tree(tmp)
        raise


def private_directory(path: Path) -> Path:
    """*path* as a directory that only root may enter: made 0700 (with its parents), or,
    if an older guestpkg made it open, tightened to 0700 root:root.

    For the state that holds base roots, dependency layers, forks and build trees:
    they carry setuid-root binaries of the suite they were made from, which never get
    the host's security updates, and no local user may reach them."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.fchown(fd, 0, 0)
            st = os.fstat(fd)
        if st.st_mode & 0o7777 != 0o700 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def remove_tree(path: Path) -> None:
    """Remove *path* whatever it is; read-only directories inside don't stop it."""
    def onerror(func: object, p: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        try:
            shutil.rmtree(path, onerror=onerror)
        except RecursionError:
            # shutil.rmtree recurses once per level: a build's tree nested deeper than
            # Python's recursion limit is left to rm(1), which walks any depth (fts)
            # and follows no link.
            run(["rm", "-rf", "--one-file-system", "--", str(path)])
        if path.exists() and os.geteuid() != 0:
            # A normal user's trees (roots, layers, forks, builds) are owned by the
            # user's subordinate ids: only root of the user's namespace removes them.
            run(as_namespace_root(["rm", "-rf", "--one-file-system", "--", str(path)]))


def disk_usage_bytes(path: Path) -> int:
    """What the tree at *path* takes on disk, as ``du -s -x`` counts it (see
    :func:`tree_usage_bytes`); a file, a symlink or a missing path counts its own
    blocks or nothing.  Unreadable entries are skipped: a listing wants the total of
    what it could read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        try:
            return path.lstat().st_blocks * 512
        except OSError:
            return 0
    try:
        return tree_usage_bytes(fd, set())
    finally:
        os.close(fd)


def tree_usage_bytes(fd: int, seen: set[tuple[int, int]]) -> int:
    """Disk space the tree of directory *fd* takes: allocated blocks (st_blocks, in
    512-byte units, stat(2)) of every entry, the directory's own included, each
    hard-linked inode once, as ``du -s -x``.  By file descriptors only, never following
    a symlink nor leaving its file system, so that it can measure a tree a hostile
    command is writing (the sandbox's disk watch, after pivot_root, where a path would
    resolve in the sandbox's root).  Entries in *seen* (device, inode) are not counted
    again.  Depth first, one descriptor per level of the path being walked (not per
    directory waiting): entries that vanish meanwhile, or a level deeper than the
    descriptor limit, count as far as seen."""
    top = os.fstat(fd)
    total = top.st_blocks * 512
    stack: list[tuple[int, Iterator[os.DirEntry[str]]]] = []

    def descend(directory: int) -> None:
        try:
            stack.append((directory, os.scandir(directory)))
        except OSError:
            os.close(directory)

    descend(os.dup(fd))
    try:
        while stack:
            directory, entries = stack[-1]
            try:
                entry = next(entries, None)
            except OSError:
                entry = None
            if entry is None:
                stack.pop()
                entries.close()  # type: ignore[attr-defined]
                os.close(directory)
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if st.st_dev != top.st_dev:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if st.st_nlink > 1 and not is_dir:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if is_dir:
                    descend(os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                    | os.O_CLOEXEC, dir_fd=directory))
    finally:
        for directory, entries in stack:
            entries.close()  # type: ignore[attr-defined]
            os.close(directory)
    return total


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, blocking: bool = True) -> Iterator[bool]:
    """Hold a flock on *path* (created if missing).  Yields False if *blocking* is off
    and someone else holds it.  For guestpkg's own locks; dpkg's use fcntl (see
    :mod:`guestpkg.host.system`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)



@contextlib.contextmanager
def owner_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on *path* (created if missing, never through a link)
    that is still *path*'s inode once held.

    For a work directory whose owner holds it while it lives: a reaper that finds the
    lock free removes the directory and unlinks the lock file, and whoever opened the
    old inode just before would otherwise hold a lock nobody else can find."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino:
                    yield
                    return
        finally:
            os.close(fd)

# --- reading what an untrusted party could have written ------------------------------

_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOFOLLOW_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def open_untrusted(directory: Path | int, relative: str, *, shown: Path | str | None = None,
                   max_bytes: int | None = None) -> tuple[int, os.stat_result]:
    """Open the regular file *relative* below *directory* (a path, or an open
    directory's descriptor) for reading, when *directory* is writable by someone we
    don't trust (a build, a package's maintainer scripts).  Returns the descriptor
    and its fstat(2).

    Each component below *directory* is opened relative to the one before with
    ``O_NOFOLLOW`` (no symlink anywhere, no path race), the file also with
    ``O_NONBLOCK`` (a FIFO does not block the open), and fstat must say a regular
    file no larger than *max_bytes*.  Anything else raises
    :class:`~guestpkg.errors.InputError` with one line naming *shown*; a missing file
    raises FileNotFoundError."""
    from guestpkg.errors import InputError

    shown = shown if shown is not None else (
        relative if isinstance(directory, int) else directory / relative)
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InputError(f"{shown}: not a plain relative path")
    # *directory* itself is the caller's (a build directory, a layer): trusted, and
    # followed if it is a symlink; below it nothing is.
    top = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) \
        if not isinstance(directory, int) else os.dup(directory)
    fd = -1
    try:
        for part in parts[:-1]:
            try:
                parent = os.open(part, _NOFOLLOW_DIR, dir_fd=top)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise InputError(f"{shown}: {part} is not a directory (a symbolic "
                                     "link?); refusing to read through it") from None
                raise
            os.close(top)
            top = parent
        try:
            fd = os.open(parts[-1], _NOFOLLOW_READ, dir_fd=top)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InputError(f"{shown} is a symbolic link; refusing to read it") from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{shown} is {_kind(st.st_mode)}, not a regular file; "
                             "refusing to read it")
        if max_bytes is not None and st.st_size > max_bytes:
            raise InputError(f"{shown} is {st.st_size} bytes, more than the {max_bytes} "
                             "allowed; refusing to read it")
        os.set_blocking(fd, True)
        result = (fd, st)
        fd = -1
        return result
    finally:
        os.close(top)
        if fd >= 0:
            os.close(fd)


def link_climbs_out(link: str, target: str) -> bool:
    """Whether the symlink at *link* (a path relative to a tree's root: "usr/lib/x")
    with *target* climbs above that root at any step, read lexically.

    Pure: the callers check trees they are about to pack or install (a recipe's
    DESTDIR, a built .deb's data), whose root is not / while they are checked, so
    a target that climbs above the root and comes back ("../../../usr/lib/y" from
    usr/lib/x) climbs out all the same: the kernel would follow it out of the tree.
    An absolute target never climbs: it starts again at the root (where it then
    leads is the caller's question)."""
    if target.startswith("/"):
        return False
    depth = len([p for p in link.split("/") if p not in ("", ".")]) - 1   # its directory
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def read_untrusted(directory: Path | int, relative: str, max_bytes: int, *,
                   shown: Path | str | None = None) -> bytes:
    """The content of a regular file opened as :func:`open_untrusted` does, at most
    *max_bytes* (a file that grows while read is cut there, not read on)."""
    fd, _st = open_untrusted(directory, relative, shown=shown, max_bytes=max_bytes)
    with os.fdopen(fd, "rb") as f:
        return f.read(max_bytes + 1)[:max_bytes]
