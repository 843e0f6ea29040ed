# SPDX-License-Identifier: GPL-2.0-or-later
"""The last entry of ``debian/changelog``: source name, version, date.

deb-changelog(5): each entry starts with ``package (version) distribution(s);
urgency=...`` and ends with a trailer `` -- Name <email>  date`` whose date is in
RFC 5322 form (``Sun, 16 Jul 2023 20:12:01 +0200``).  Only the first (newest) entry
matters to a build: dpkg-buildpackage(1) takes the source name and version from it,
and sets ``SOURCE_DATE_EPOCH`` from its date when the variable is unset (see
https://reproducible-builds.org/specs/source-date-epoch/).  guestpkg sets it
explicitly, so that faketime and the logs agree with what dpkg computes.

Parsing is delegated to :class:`debian.changelog.Changelog` (strict mode: a
malformed first entry is an error with the file's path, never a guess).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from pathlib import Path

from debian.changelog import Changelog, ChangelogParseError

from guestpkg.debian.version import parse as parse_version
from guestpkg.debian.version import upstream_version as upstream_of
from guestpkg.debian.version import without_epoch
from guestpkg.errors import ParseError


@dataclass(frozen=True)
class ChangelogEntry:
    """The newest entry of a changelog."""

    source: str
    version: str
    distribution: str
    date: str                 # as written, RFC 5322
    timestamp: int            # seconds since the epoch: the SOURCE_DATE_EPOCH

    @property
    def upstream_version(self) -> str:
        return upstream_of(self.version)

    @property
    def version_without_epoch(self) -> str:
        return without_epoch(self.version)


def parse_date(text: str, path: Path | str = "debian/changelog") -> int:
    """The RFC 5322 trailer date as a Unix timestamp (deb-changelog(5))."""
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError) as e:
        raise ParseError(f"bad date in the changelog trailer: {text!r}", path) from e
    if parsed.tzinfo is None:
        raise ParseError(f"the changelog date has no time zone: {text!r}", path)
    return int(parsed.timestamp())


def parse_changelog(text: str, path: Path | str = "debian/changelog") -> ChangelogEntry:
    """The newest entry of the changelog *text*; *path* only names it in errors."""
    try:
        # max_blocks=1: only the newest entry is read, so an old malformed entry
        # far down the file does not stop a build (dpkg-parsechangelog does the same).
        changelog = Changelog(text, max_blocks=1, strict=True)
    except ChangelogParseError as e:
        raise ParseError(str(e), path) from e
    if len(changelog) == 0 or changelog.version is None or not changelog.package:
        raise ParseError("no changelog entry found", path, 1)
    if not changelog.date:
        raise ParseError("the newest entry has no trailer line with a date", path)
    version = str(changelog.version)
    parse_version(version)
    return ChangelogEntry(
        source=changelog.package,
        version=version,
        distribution=changelog.distributions or "",
        date=changelog.date,
        timestamp=parse_date(changelog.date, path),
    )


def read_changelog(path: Path) -> ChangelogEntry:
    """The newest entry of the changelog file at *path*."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"cannot read the changelog: {e.strerror}", path,
                         hint="is this a Debian source tree (with debian/changelog)?") from e
    return parse_changelog(text, path)
