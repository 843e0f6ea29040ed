# SPDX-License-Identifier: GPL-2.0-or-later
"""sbuild's version options: ``--append-to-version SUFFIX`` and ``--binNMU N`` with
``--binNMU-changelog TEXT``, as a new entry on top of the staged tree's
``debian/changelog`` (deb-changelog(5)), the way sbuild makes it (sbuild(1)):

    hello (2.10-3+b1) bookworm; urgency=low, binary-only=yes

      * Binary-only non-maintainer upload for amd64; no source changes.
      * TEXT

     -- guestpkg <guestpkg@localhost>  Mon, 30 Nov 2026 23:30:00 +0000

``binary-only=yes`` is what dpkg-genchanges(1) turns into ``Binary-Only: yes`` and
what keeps the .debs' ``Source: hello (2.10-3)``.  The entry's date is the previous
entry's, so that ``SOURCE_DATE_EPOCH`` (and with it the build's output) does not
depend on when it was built: two builds of the same binNMU are the same.

The suffix and the text come from the command line, never from the source; both are
checked here (a version's characters, deb-version(7); one line of printable text).

The host lifecycle's ``<guest version>~local`` is the same mechanism
(:func:`local_build`): an ``append`` of ``~local`` whose entry says which host it was
built for, and which checks that the guest's changelog is at the version the host
carries.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from guestpkg.debian.changelog import ChangelogEntry, read_changelog
from guestpkg.errors import InputError, UsageError

#: What a Debian revision may hold (deb-version(7)), no epoch, no ``-``: a suffix.
_SUFFIX = re.compile(r"[A-Za-z0-9.+~]{1,64}")

MAINTAINER = "guestpkg <guestpkg@localhost>"

#: The host lifecycle's suffix: ``~`` sorts before everything, so an archive build
#: of the same revision supersedes the local one (guestpkg.host.versions).
LOCAL_SUFFIX = "~local"


@dataclass(frozen=True)
class VersionChange:
    """A new changelog entry to add before the build; empty: none."""

    append: str = ""
    binnmu: int | None = None
    binnmu_text: str = ""
    #: the entry's text instead of the default one (a host's local build)
    reason: str = ""
    #: if set, the top entry must be at this version (a host carries one guest version)
    expect_version: str = ""

    def __post_init__(self) -> None:
        if self.append and not _SUFFIX.fullmatch(self.append):
            raise UsageError(f"--append-to-version: {self.append!r} is not a version suffix "
                             "(letters, digits, and . + ~ only)")
        if self.binnmu is not None and not 0 < self.binnmu < 1000:
            raise UsageError(f"--binNMU wants a number from 1 to 999, not {self.binnmu}")
        if self.binnmu_text and self.binnmu is None:
            raise UsageError("--binNMU-changelog needs --binNMU N")
        if len(self.binnmu_text) > 1000 or not self.binnmu_text.isprintable():
            raise UsageError("--binNMU-changelog: one line of printable text, at most "
                             "1000 characters")
        if len(self.reason) > 1000 or not self.reason.isprintable():
            raise UsageError("a version change's reason: one line of printable text")

    def __bool__(self) -> bool:
        return bool(self.append) or self.binnmu is not None

    def version(self, current: str) -> str:
        version = current + self.append
        return version + (f"+b{self.binnmu}" if self.binnmu is not None else "")


def local_build(guest_version: str, host: str) -> VersionChange:
    """The host lifecycle's ``<guest version>~local`` (guestpkg.host.versions)."""
    return VersionChange(append=LOCAL_SUFFIX, expect_version=guest_version,
                         reason=f"Built locally by guestpkg for {host}.")


def changelog_entry(change: VersionChange, top: ChangelogEntry, arch: str) -> str:
    """The new entry (with the blank line that separates it from *top*)."""
    if change.expect_version and top.version != change.expect_version:
        raise InputError(f"debian/changelog is at version {top.version}, not "
                         f"{change.expect_version}",
                         hint="the host's manifest and the guest's changelog disagree")
    binary_only = change.binnmu is not None
    items = []
    if change.reason:
        items.append(change.reason)
    elif binary_only:
        items.append(f"Binary-only non-maintainer upload for {arch}; no source changes.")
        if change.binnmu_text:
            items.append(change.binnmu_text)
    if not items:
        items.append(f"Version suffix {change.append} added by guestpkg build "
                     "--append-to-version.")
    header = (f"{top.source} ({change.version(top.version)}) {top.distribution}; "
              f"urgency=low" + (", binary-only=yes" if binary_only else ""))
    body = "".join(f"  * {item}\n" for item in items)
    return f"{header}\n\n{body}\n -- {MAINTAINER}  {top.date}\n\n"


def add_changelog_entry(change: VersionChange, tree: Path, arch: str) -> str:
    """Put *change*'s entry on top of *tree*'s debian/changelog; returns the entry's
    first line.  The file is the staged tree's, checked before
    (guestpkg.build.source.refuse_symlinked_metadata: a regular file of bounded
    size); it is rewritten with O_NOFOLLOW all the same."""
    path = tree / "debian" / "changelog"
    entry = changelog_entry(change, read_changelog(path), arch)
    old = path.read_bytes()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as f:
        f.write(entry.encode() + old)
    return entry.splitlines()[0]
