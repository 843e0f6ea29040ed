# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import apt_pkg
import pytest

from guestpkg.build.versioning import changelog_entry, local_build
from guestpkg.debian.changelog import parse_changelog
from guestpkg.errors import InputError
from guestpkg.host import versions as v

apt_pkg.init_system()


def test_local_version_sorts_below_the_archive_build_and_above_older_revisions() -> None:
    local = v.local_version("1.0-1")
    assert local == "1.0-1~local"
    assert apt_pkg.version_compare(local, "1.0-1") < 0
    assert apt_pkg.version_compare("1.0-1+b1", local) > 0
    assert apt_pkg.version_compare(v.local_version("1.0-2"), "1.0-1") > 0


@pytest.mark.parametrize(("host", "guest"), [
    ("2.10-3-1", "2.10-3"), ("2.10-3-7", "2.10-3"), ("1:2.10-3-1", "2.10-3"),
    ("2.10-3-1", "1:2.10-3"), ("1.0-1+deb12u1-1", "1.0-1+deb12u1"),
])
def test_host_carries_guest(host: str, guest: str) -> None:
    v.check_host_version(host, guest)


@pytest.mark.parametrize(("host", "guest"), [
    ("2.10-1", "2.10-3"), ("2.10-4-1", "2.10-3"), ("2.10", "2.10-3"), ("2.11-3-1", "2.10-3"),
])
def test_host_not_carrying_guest_is_refused(host: str, guest: str) -> None:
    with pytest.raises(InputError, match="does not carry"):
        v.check_host_version(host, guest)


CHANGELOG = """\
hello (2.10-3) unstable; urgency=medium

  * Something.

 -- Someone <s@example.org>  Sun, 16 Oct 2022 10:00:00 +0200

hello (2.10-2) unstable; urgency=medium
"""


def test_local_build_is_a_new_entry_at_the_carried_version() -> None:
    """``~local`` is the builder's --append-to-version mechanism: a new entry whose
    date is the guest's (SOURCE_DATE_EPOCH unchanged) at exactly local_version."""
    top = parse_changelog(CHANGELOG)
    text = changelog_entry(local_build("2.10-3", "hello-installer"), top, "amd64") \
        + CHANGELOG
    entry = parse_changelog(text)
    assert entry.version == v.local_version("2.10-3") == "2.10-3~local"
    assert entry.timestamp == top.timestamp and entry.distribution == top.distribution
    assert "Built locally by guestpkg for hello-installer." in text.split(" -- ")[0]
    assert text.endswith(CHANGELOG)


def test_local_build_refuses_a_changelog_at_another_version() -> None:
    with pytest.raises(InputError, match=r"at version 2\.10-3, not 2\.10-4"):
        changelog_entry(local_build("2.10-4", "hello-installer"), parse_changelog(CHANGELOG),
                        "amd64")


CONTROL = """\
Source: hello
Build-Depends: debhelper-compat (= 13)
# a comment stays

Package: hello
Architecture: any
Depends: ${shlibs:Depends},
         ${misc:Depends}
Description: x
 long

Package: hello-doc
Architecture: all
Description: y
 long

Package: hello-x
Depends: a,
Description: z
"""


def test_host_is_added_to_every_binary_package() -> None:
    out = v.add_depends(CONTROL, "hello-installer")
    assert "         ${misc:Depends}, hello-installer\n" in out
    assert "Package: hello-doc\nDepends: hello-installer\n" in out
    assert "Depends: a, hello-installer\n" in out
    assert "# a comment stays\n" in out
    assert out.count("hello-installer") == 3
    assert out.split("\n\n")[0] == CONTROL.split("\n\n")[0]


def test_control_without_binary_packages_is_refused() -> None:
    with pytest.raises(InputError, match="no binary package"):
        v.add_depends("Source: x\n", "h")
