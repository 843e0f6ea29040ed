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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guestpkg.debian.changelog import ChangelogEntry
from guestpkg.errors import UsageError

#: What a Debian revision may hold (deb-version(7)), no epoch, no ``-``: a suffix.
_SUFFIX = re.compile(r"[A-Za-z0-9.+~]{1,64}")

MAINTAINER = "guestpkg <guestpkg@localhost>"


@dataclass(frozen=True)
class VersionChange:
    """A new changelog entry to add before the build; empty: none."""

    append: str = ""
    binnmu: int | None = None
    binnmu_text: str = ""

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

    def __bool__(self) -> bool:
        return bool(self.append) or self.binnmu is not None

    def version(self, current: str) -> str:
        version = current + self.append
        return version + (f"+b{self.binnmu}" if self.binnmu is not None else "")


def changelog_entry(change: VersionChange, top: ChangelogEntry, arch: str) -> str:
    """The new entry (with the blank line that separates it from *top*)."""
    binary_only = change.binnmu is not None
    items = []
    if binary_only:
        items.append(f"Binary-only non-maintainer upload for {arch}; no source changes.")
        if change.binnmu_text:
            items.append(change.binnmu_text)
    else:
        items.append(f"Version suffix {change.append} added by guestpkg build "
                     "--append-to-version.")
    header = (f"{top.source} ({change.version(top.version)}) {top.distribution}; "
              f"urgency=low" + (", binary-only=yes" if binary_only else ""))
    body = "".join(f"  * {item}\n" for item in items)
    return f"{header}\n\n{body}\n -- {MAINTAINER}  {top.date}\n\n"
