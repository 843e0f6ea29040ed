# SPDX-License-Identifier: GPL-2.0-or-later
"""Which apt sources a new base root gets: guestpkg.buildroot.sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.buildroot.sources import (
    AptSource,
    parse_deb822,
    parse_one_line,
    read_host_sources,
    select_sources,
    suite_family,
)
from guestpkg.errors import ConfigError

# This machine's sources, as they were when the project started: Debian in deb822,
# two third-party repositories that are unreachable.
DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
NODESOURCE = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/nodesource.gpg
"""
CLOUD_SDK = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(DEBIAN_SOURCES)
    (parts / "nodesource.sources").write_text(NODESOURCE)
    (parts / "google-cloud-sdk.list").write_text(CLOUD_SDK)
    (parts / "ignored.list.disabled").write_text("deb http://example.org/x bookworm main\n")
    return tmp_path


def test_host_debian_sources_only(etc: Path) -> None:
    chosen = select_sources(read_host_sources(etc), "bookworm")
    assert [s.line() for s in chosen] == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]


def test_files_apt_ignores_are_ignored(etc: Path) -> None:
    uris = {s.uri for s in read_host_sources(etc)}
    assert "http://example.org/x" not in uris
    assert "https://deb.nodesource.com/node_20.x" in uris  # read, then not selected


def test_other_suite_is_made_from_the_host_mirrors(etc: Path) -> None:
    chosen = select_sources(read_host_sources(etc), "trixie")
    assert [s.line() for s in chosen] == [
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    ]


def test_rolling_suite_has_no_updates_or_security(etc: Path) -> None:
    assert suite_family("unstable") == ("unstable",)
    chosen = select_sources(read_host_sources(etc), "sid")
    assert [s.line() for s in chosen] == ["deb http://deb.debian.org/debian sid main"]


def test_mirror_overrides(etc: Path) -> None:
    chosen = select_sources(read_host_sources(etc), "bookworm", "http://mirror.example/debian/")
    assert [s.uri for s in chosen] == ["http://mirror.example/debian"] * 2 + [
        "http://deb.debian.org/debian-security"]


def test_no_host_sources_falls_back_to_deb_debian_org(tmp_path: Path) -> None:
    chosen = select_sources(read_host_sources(tmp_path), "bookworm")
    assert chosen[0] == AptSource("http://deb.debian.org/debian", "bookworm", ("main",))


def test_one_line_format_with_options_and_comments() -> None:
    text = ("# comment\n"
            "deb [ signed-by=/k.gpg arch=amd64 ] http://ftp.de.debian.org/debian/ bookworm "
            "main contrib # trailing\n"
            "deb-src http://ftp.de.debian.org/debian bookworm main\n"
            "deb http://security.debian.org/debian-security bookworm-security main\n")
    assert parse_one_line(text) == [
        AptSource("http://ftp.de.debian.org/debian", "bookworm", ("main", "contrib")),
        AptSource("http://security.debian.org/debian-security", "bookworm-security",
                  ("main",)),
    ]
    chosen = select_sources(parse_one_line(text), "bookworm")
    assert [s.suite for s in chosen] == ["bookworm", "bookworm-security"]


def test_deb822_disabled_and_multi_value_stanzas() -> None:
    text = ("Types: deb deb-src\nURIs: http://a/debian http://b/debian\nSuites: bookworm\n"
            "Components: main\n non-free-firmware\n\n"
            "Enabled: no\nTypes: deb\nURIs: http://c/debian\nSuites: bookworm\n"
            "Components: main\n")
    assert parse_deb822(text) == [
        AptSource("http://a/debian", "bookworm", ("main", "non-free-firmware")),
        AptSource("http://b/debian", "bookworm", ("main", "non-free-firmware")),
    ]


@pytest.mark.parametrize("suite", ["", "../x", "book worm", "-rf"])
def test_bad_suite_names(suite: str) -> None:
    with pytest.raises(ConfigError):
        select_sources([], suite)


def test_bad_mirror() -> None:
    with pytest.raises(ConfigError):
        select_sources([], "bookworm", "deb.debian.org/debian")
