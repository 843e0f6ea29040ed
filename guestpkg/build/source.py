# SPDX-License-Identifier: GPL-2.0-or-later
"""Getting a source package into a build directory, and reading what it is.

A build starts from either a ``.dsc`` or an unpacked source tree:

- A ``.dsc`` and the files it lists are copied into the build directory and unpacked
  there with ``dpkg-source -x`` (dpkg-source(1)) **inside the sandbox, as the build
  user**: unpacking applies the package's patches, and untrusted input is only ever
  handled by unprivileged code.  dpkg-source checks the files' checksums; a signature
  it cannot verify is a warning, as with ``apt-get source``.
- A source tree is **copied** as it is, like deckdebuild does, rather than turned into
  a source package first (pdebuild's way).  Building the source package would run
  ``debian/rules clean`` unsandboxed on the host and would need the orig tarball,
  which a git checkout does not have.  The copy also leaves the caller's tree untouched
  by the build.  For ``--source`` and ``--full`` the orig tarballs found beside the
  tree (``<source>_<upstream>.orig*.tar.*``) are copied too, as dpkg-source -b needs.

Both end up at one fixed path, ``/build/<source>-<upstream version>`` (the name
dpkg-source -x gives), because the build path is recorded in debug information and
varies the output otherwise (https://reproducible-builds.org/docs/build-path/).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.build.artifacts import copy_regular_file
from guestpkg.debian.changelog import ChangelogEntry, parse_changelog
from guestpkg.debian.control import Dsc, SourceControl, parse_control, read_dsc
from guestpkg.errors import InputError, ParseError, UsageError
from guestpkg.run import as_namespace_root, run

#: Where the build directory appears inside the sandbox.
BUILD_MOUNT = "/build"

#: The name a source is staged under before its final name is known (a
#: prepare_source hook may still change the version).
STAGING_NAME = "source"


@dataclass(frozen=True)
class SourceInfo:
    """What a build needs to know about its source, read from the staged tree."""

    changelog: ChangelogEntry
    control: SourceControl

    @property
    def source(self) -> str:
        return self.changelog.source

    @property
    def version(self) -> str:
        return self.changelog.version

    @property
    def directory_name(self) -> str:
        return f"{self.source}-{self.changelog.upstream_version}"


def is_dsc(source: Path) -> bool:
    return source.is_file() and source.name.endswith(".dsc")


def check_input(source: Path) -> None:
    if is_dsc(source):
        return
    if source.is_dir():
        if not (source / "debian" / "changelog").is_file():
            raise UsageError(f"{source} is not a Debian source tree: no debian/changelog",
                             hint="give a source tree or a .dsc file")
        return
    raise UsageError(f"{source}: no such source tree or .dsc file")


def stage_dsc_files(dsc_path: Path, build_dir: Path) -> Dsc:
    """Copy the .dsc and the files it lists into *build_dir*; they are unpacked
    later in the sandbox (see :func:`dpkg_source_extract_argv`)."""
    dsc = read_dsc(dsc_path)
    for name in (*dsc.files, dsc_path.name):
        path = dsc_path.parent / name
        if not path.is_file():
            raise InputError(f"{path}: listed in {dsc_path.name} but missing",
                             hint="download the whole source package (apt-get source "
                             "--download-only, or dget)")
        copy_regular_file(path, build_dir / name)
    return dsc


def dpkg_source_extract_argv(dsc_name: str) -> list[str]:
    """Unpack ``/build/<dsc_name>`` into ``/build/source`` (dpkg-source(1) -x)."""
    return ["dpkg-source", "-x", f"{BUILD_MOUNT}/{dsc_name}", f"{BUILD_MOUNT}/{STAGING_NAME}"]


def stage_tree(tree: Path, build_dir: Path) -> Path:
    """Copy the source tree *tree* to ``build_dir/source``, symlinks as symlinks."""
    target = build_dir / STAGING_NAME
    shutil.copytree(tree, target, symlinks=True)
    return target


def copy_orig_tarballs(tree: Path, info: SourceInfo, build_dir: Path) -> list[str]:
    """Copy ``<source>_<upstream>.orig*.tar.*`` from beside *tree*, for builds that
    include the source package."""
    pattern = f"{info.source}_{info.changelog.upstream_version}.orig*.tar.*"
    copied = []
    for path in sorted(tree.parent.glob(pattern)):
        if path.is_file() and not (build_dir / path.name).exists():
            copy_regular_file(path, build_dir / path.name)
            copied.append(path.name)
    return copied


#: Bounds of the files read from an unpacked source: a changelog of decades is a few
#: MB, the largest debian/control files some hundred KB.
MAX_CHANGELOG_BYTES = 32 << 20
MAX_CONTROL_BYTES = 8 << 20


def _read_metadata(tree: Path, relative: str, max_bytes: int) -> str:
    """A file of the unpacked source's debian/: unpacked from an untrusted .dsc by
    the build user, so read without following symlinks or blocking on a FIFO."""
    try:
        data = fsutil.read_untrusted(tree, relative, max_bytes)
    except FileNotFoundError as e:
        raise ParseError("no such file", tree / relative,
                         hint="is this a Debian source tree?") from e
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", tree / relative) from e
    return data.decode("utf-8", "replace")


def read_source(tree: Path, shown: Path | None = None) -> SourceInfo:
    """Read debian/changelog and debian/control of an unpacked tree; errors name them
    under *shown* (the user's source tree, of which *tree* is a copy) if given."""
    shown = shown or tree
    changelog = parse_changelog(
        _read_metadata(tree, "debian/changelog", MAX_CHANGELOG_BYTES),
        shown / "debian" / "changelog")
    control = parse_control(_read_metadata(tree, "debian/control", MAX_CONTROL_BYTES),
                            shown / "debian" / "control")
    if control.source != changelog.source:
        raise InputError(f"debian/control says Source: {control.source} but "
                         f"debian/changelog says {changelog.source}",
                         hint="the two must name the same source package")
    return SourceInfo(changelog, control)


def refuse_symlinked_metadata(tree: Path) -> None:
    """The files guestpkg and a prepare_source hook read or write as root must be
    what they seem: an unpacked .dsc is untrusted, and a symlinked debian/changelog
    could point a root-run hook at a host file, a FIFO would block its read for ever
    and a file of gigabytes exhaust its memory.  Nothing runs in the tree meanwhile
    (the sandbox that unpacked it is gone), so lstat(2) tells the truth."""
    for relative, is_dir, limit in (("debian", True, 0),
                                    ("debian/changelog", False, MAX_CHANGELOG_BYTES),
                                    ("debian/control", False, MAX_CONTROL_BYTES)):
        path = tree / relative
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"{relative} is a symbolic link in the source; refusing it")
        if is_dir != stat.S_ISDIR(st.st_mode) or not (is_dir or stat.S_ISREG(st.st_mode)):
            raise InputError(f"{relative} is not a regular {'directory' if is_dir else 'file'}"
                             " in the source; refusing it")
        if not is_dir and st.st_size > limit:
            raise InputError(f"{relative} is {st.st_size} bytes, more than the {limit} "
                             "allowed; refusing it")


def settle(staged: Path, info: SourceInfo) -> Path:
    """Rename the staged tree to its fixed name ``<source>-<upstream>``."""
    final = staged.parent / info.directory_name
    if final != staged:
        os.rename(staged, final)
    return final


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give *path* and everything below it to the build user; symlinks themselves,
    never their targets (lchown).  A normal user's ids are those inside the user's
    namespace, where chown runs (guestpkg.sandbox.userrange)."""
    if os.geteuid() != 0:
        run(as_namespace_root(["chown", "-R", "-h", "--", f"{uid}:{gid}", str(path)]))
        return
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, gid)
