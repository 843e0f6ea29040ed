# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.versioning: the changelog entries of --append-to-version and
--binNMU, and what they refuse (a suffix or text that would write more than one
entry, or a version dpkg would not take)."""

from __future__ import annotations

import pytest
from debian.changelog import Changelog

from guestpkg.build.versioning import VersionChange, changelog_entry
from guestpkg.debian.changelog import parse_changelog
from guestpkg.errors import UsageError

TOP = """hello (2.10-3) unstable; urgency=medium

  * Something.

 -- Santiago Vila <sanvila@debian.org>  Mon, 09 Jan 2023 12:00:00 +0100
"""


def test_binnmu_entry_is_what_dpkg_reads() -> None:
    top = parse_changelog(TOP)
    text = changelog_entry(VersionChange(binnmu=2, binnmu_text="Rebuild for libfoo2."),
                           top, "amd64") + TOP
    entry = parse_changelog(text)
    assert entry.version == "2.10-3+b2" and entry.timestamp == top.timestamp
    first = Changelog(text, strict=True)[0]
    assert first.other_pairs == {"binary-only": "yes"}
    assert "Rebuild for libfoo2." in "\n".join(first.changes())


def test_append_to_version_and_both() -> None:
    top = parse_changelog(TOP)
    assert parse_changelog(changelog_entry(VersionChange(append="~bpo1"), top, "amd64")
                           + TOP).version == "2.10-3~bpo1"
    both = VersionChange(append="+local1", binnmu=1)
    assert both.version("2.10-3") == "2.10-3+local1+b1"
    assert not VersionChange()


@pytest.mark.parametrize("change", [
    dict(append="1\n\nhello (9.9) unstable; urgency=low"),   # a second entry
    dict(append="-1"), dict(append="a/b"), dict(append=" x"), dict(append="x" * 65),
    dict(binnmu=0), dict(binnmu=1000),
    dict(binnmu=1, binnmu_text="line\n -- Evil <e@x>  Mon, 01 Jan 2024 00:00:00 +0000"),
    dict(binnmu=1, binnmu_text="\x1b]0;title\x07"),
    dict(binnmu_text="text without --binNMU"),
])
def test_refused(change: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        VersionChange(**change)  # type: ignore[arg-type]
