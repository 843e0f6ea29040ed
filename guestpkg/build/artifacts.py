# SPDX-License-Identifier: GPL-2.0-or-later
"""What a build leaves behind, by name, and how it reaches OUTPUT_DIR.

dpkg-buildpackage(1) writes its results beside the source tree: the .deb and .udeb
files, a ``.buildinfo`` (deb-buildinfo(5)) and a ``.changes`` (deb-changes(5)) whose
``Files`` field lists every one of them.  The ``.changes`` is therefore the manifest:
:func:`changes_files` reads it, and nothing that it does not name is taken, so a build
cannot smuggle extra files into OUTPUT_DIR.  File names never carry the epoch.

:func:`collect` copies the manifest's files, the ``.changes`` and the build log into
OUTPUT_DIR the way osbuild fills its store: everything into a ``.tmp-`` directory
beside the targets first (so a failure or Ctrl-C while copying leaves no file at a
final name), then one rename(2) per file, the ``.changes`` last, with SIGINT and
SIGTERM held back while the renames run.  Only SIGKILL in that short window can leave
a subset; the ``.changes`` is then absent, which is how tools such as dput and
debsign tell an incomplete upload.  A ``.tmp-`` directory left by a killed run is
reaped by the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from debian.deb822 import Changes

from guestpkg import fsutil
from guestpkg.debian.version import without_epoch
from guestpkg.errors import BuildFailed, InputError, ParseError

STAGING_PREFIX = fsutil.TMP_PREFIX + "guestpkg-output."

#: Bounds of what is read from the build directory: a .changes is a page of text; a
#: .deb of a large data package can be gigabytes, but not a disk's worth.
MAX_CHANGES_BYTES = 1 << 20
MAX_ARTIFACT_BYTES = 16 << 30


def build_log_name(source: str, version: str, arch: str) -> str:
    """``<source>_<version>_<arch>.build``, the name sbuild and deckdebuild use."""
    return f"{source}_{without_epoch(version)}_{arch}.build"


def changes_name(source: str, version: str, suffix: str) -> str:
    """dpkg-genchanges(1): ``<source>_<version>_<suffix>.changes``, where *suffix* is
    the architecture, ``source``, ``all`` or several joined by ``+``... in practice
    one of those; we find the file by glob and use this for messages."""
    return f"{source}_{without_epoch(version)}_{suffix}.changes"


def changes_files(path: Path) -> list[str]:
    """The file names a ``.changes`` lists, in order (deb-changes(5) ``Files``).

    The build wrote it: it is read as :func:`guestpkg.fsutil.read_untrusted` reads
    (no symlink to a host file or to /dev/zero, no FIFO, at most
    :data:`MAX_CHANGES_BYTES`)."""
    try:
        data = fsutil.read_untrusted(path.parent, path.name, MAX_CHANGES_BYTES, shown=path)
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", path) from e
    changes = Changes(data.decode("utf-8", "replace").splitlines())
    names = []
    for entry in changes.get("Files", []):
        name = entry.get("name", "")
        if not name or "/" in name or name.startswith("."):
            raise ParseError(f"the .changes lists a file name it must not: {name!r}", path)
        names.append(name)
    if not names:
        raise ParseError("the .changes lists no files", path)
    return names


def find_changes(directory: Path, source: str, version: str) -> Path:
    """The single ``.changes`` dpkg-genchanges wrote for *source* at *version*."""
    found = sorted(directory.glob(f"{source}_{without_epoch(version)}_*.changes"))
    if len(found) != 1:
        raise BuildFailed(
            f"expected one .changes for {source} {version} in {directory}, found "
            f"{len(found)}", None)
    return found[0]


def copy_regular_file(source: Path, target: Path,
                      max_bytes: int = MAX_ARTIFACT_BYTES) -> None:
    """Copy *source* only if it is a regular file of at most *max_bytes*: the build
    directory is written by the sandboxed build, which could plant a symlink to a
    host file or to /dev/zero, a FIFO that blocks a reader for ever, or a sparse file
    of a terabyte (:func:`guestpkg.fsutil.open_untrusted`)."""
    fd, st = fsutil.open_untrusted(source.parent, source.name, shown=source,
                                   max_bytes=max_bytes)
    with os.fdopen(fd, "rb") as src, open(target, "xb") as dst:
        remaining = st.st_size
        while remaining > 0:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)
        dst.flush()
        os.fchmod(dst.fileno(), 0o644)
        os.fsync(dst.fileno())


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def reap_staging(output_dir: Path) -> None:
    """Remove staging directories that killed runs left in *output_dir*."""
    with contextlib.suppress(OSError):
        for entry in output_dir.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
                with fsutil.locked(entry / ".lock", blocking=False) as free:
                    if free:
                        fsutil.remove_tree(entry)


def collect(files: list[Path], output_dir: Path) -> list[Path]:
    """Copy *files* into *output_dir* as one set; the last one is renamed last.

    Returns the final paths, in the order of *files*."""
    output_dir.mkdir(parents=True, exist_ok=True)
    reap_staging(output_dir)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise InputError(f"two artifacts share a name: {names}")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    try:
        with fsutil.locked(staging / ".lock"):
            for path in files:
                copy_regular_file(path, staging / path.name)
            fsutil.fsync_dir(staging)
            done: list[Path] = []
            with _signals_held():
                try:
                    for name in names:
                        os.replace(staging / name, output_dir / name)
                        done.append(output_dir / name)
                    fsutil.fsync_dir(output_dir)
                except BaseException:
                    for path in done:
                        path.unlink(missing_ok=True)
                    raise
            return done
    finally:
        fsutil.remove_tree(staging)
