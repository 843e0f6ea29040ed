# SPDX-License-Identifier: GPL-2.0-or-later
"""debian/watch parsing, versions 1 to 5 (no root, no network)."""

from __future__ import annotations

import re

import pytest

from guestpkg.debian.perlre import translate_regex
from guestpkg.debian.watch import ANY_VERSION, ARCHIVE_EXT, parse_watch
from guestpkg.errors import ParseError


def parse(text: str, strict: bool = True):  # type: ignore[no-untyped-def]
    return parse_watch(text, "debian/watch", "foo", strict=strict)


def test_version4_with_opts_and_continuation() -> None:
    watch = parse(
        "# comment\n"
        "version=4\n"
        "opts=\"uversionmangle=s/-rc/~rc/;s/_/./g,filenamemangle=s%.*/v?(.*)%foo-$1.tar.gz%,\\\n"
        "      pgpmode=none\" \\\n"
        "   https://example.org/rel/ @PACKAGE@@ANY_VERSION@@ARCHIVE_EXT@ debian uupdate\n")
    assert watch.version == 4
    (entry,) = watch.entries
    assert entry.line == 3
    assert entry.url == "https://example.org/rel/"
    assert entry.pattern == "foo" + ANY_VERSION + ARCHIVE_EXT
    assert entry.policy == "debian" and entry.action == "uupdate"
    assert [r.apply("1-rc_2") for r in entry.rules("uversionmangle")] == ["1~rc_2", "1-rc.2"]
    assert entry.rules("filenamemangle")[0].apply("x/v1.2") == "foo-1.2.tar.gz"
    assert entry.ignored == ("pgpmode",)


def test_three_field_form_and_unquoted_opts() -> None:
    (entry,) = parse("version=3\nopts=dversionmangle=s/\\+ds// "
                     "http://h/d/foo-(\\d[\\d.]*)\\.tar\\.gz same\n").entries
    assert entry.url == "http://h/d/"
    assert entry.pattern == r"foo-(\d[\d.]*)\.tar\.gz"
    assert entry.policy == "same"
    assert entry.rules("dversionmangle")[0].apply("1.0+ds") == "1.0"


@pytest.mark.parametrize(("field", "policy", "literal"), [
    ("", "debian", None), ("debian", "debian", None), ("same", "same", None),
    ("prev", "previous", None), ("ignore", "ignore", None), ("group", "group", None),
    ("checksum", "checksum", None), ("1.2.3", "literal", "1.2.3"),
])
def test_version_field(field: str, policy: str, literal: str | None) -> None:
    (entry,) = parse(f"version=4\nhttp://h/ foo-(\\d+)\\.tgz {field}\n").entries
    assert (entry.policy, entry.literal_version) == (policy, literal)


def test_dversionmangle_auto_and_versionmangle() -> None:
    (entry,) = parse("version=4\nopts=dversionmangle=auto http://h/ f-(\\d.*)\\.tgz\n").entries
    assert entry.rules("dversionmangle")[0].apply("1.0+dfsg.1") == "1.0"
    (entry,) = parse("version=4\nopts=versionmangle=s/a/b/ http://h/ f-(\\d.*)\\.tgz\n").entries
    assert entry.rules("uversionmangle")[0].apply("a") == "b"
    assert entry.rules("dversionmangle")[0].apply("a") == "b"


def test_user_agent_keeps_commas() -> None:
    (entry,) = parse('version=4\nopts="user-agent=Mozilla/5.0 (X11, Linux)" '
                     "http://h/ f-(\\d.*)\\.tgz\n").entries
    assert entry.user_agent == "Mozilla/5.0 (X11, Linux)"


def test_directory_scanning_url() -> None:
    text = "version=4\nhttps://h/pub/(\\d[\\d.]*)/ foo-@ANY_VERSION@\\.tar\\.xz\n"
    (entry,) = parse(text).entries
    assert entry.url == r"https://h/pub/(\d[\d.]*)/"


def test_components() -> None:
    watch = parse("version=4\nhttp://h/ foo-(\\d.*)\\.tgz group\n"
                  "opts=component=bar,ctype=nodejs http://h/ bar-(\\d.*)\\.tgz group\n")
    assert [e.component for e in watch.entries] == [None, "bar"]
    assert watch.entries[1].ctype == "nodejs"


def test_version1_old_style() -> None:
    (entry,) = parse("ftp.example.org /pub/foo foo-*.tar.gz debian uupdate\n").entries
    assert entry.url == "ftp://ftp.example.org/pub/foo/"
    assert re.fullmatch(translate_regex(entry.pattern), "foo-1.2.tar.gz")
    assert entry.mode == "ftp"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("version=4\nhttp://h/ foo.tar.gz\n", 2, "no (group)"),
    ("version=4\n\nopts=bogus=1 http://h/ f-(.*)\n", 3, "unknown watch option"),
    ("version=4\nopts=uversionmangle=s/x/y/e http://h/ f-(.*)\n", 2, "runs code"),
    ("version=4\nopts=\"filenamemangle=s/(?{`id`})// http://h/ f-(.*)\n", 2, "malformed"),
    ("version=4\nopts=filenamemangle=s/(?{1})// http://h/ f-(.*)\n", 2, "refusing"),
    ("version=9\n", 1, "unknown watch file version"),
    ("version=4\nhttp://h/ f-(.*) \\\n", 2, "continuation"),
    ("version=4\nopts=searchmode=xml http://h/ f-(.*)\n", 2, "searchmode"),
    ("version=4\nhttp://h/ f-(.*)(\n", 2, "unmatched"),
])
def test_errors_carry_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"debian/watch:{line}: ")
    assert message in str(caught.value)


def test_unknown_option_not_strict() -> None:
    (entry,) = parse("version=4\nopts=bogus=1,mode=git http://h/ f-(.*)\n", strict=False).entries
    assert entry.unsupported == ("bogus", "mode=git")


def test_version5_defaults_and_fields() -> None:
    watch = parse(
        "Version: 5\n"
        "Uversion-Mangle: s/-/./g\n"
        "\n"
        "# the main tarball\n"
        "Source: https://h/rel/\n"
        "Matching-Pattern: @PACKAGE@@ANY_VERSION@@ARCHIVE_EXT@\n"
        "Search-Mode: plain\n"
        "\n"
        "Source: https://h/data/\n"
        "Component: data\n"
        "Matching-Pattern: @COMPONENT@-@ANY_VERSION@\\.tgz\n"
        "Version-Schema: same\n"
        "PGP-Mode: auto\n")
    main, data = watch.entries
    assert watch.version == 5
    assert main.line == 5 and main.searchmode == "plain"
    assert main.rules("uversionmangle")[0].apply("1-2") == "1.2"
    assert data.component == "data" and data.policy == "same"
    assert data.pattern.startswith("data-") and data.ignored == ("pgpmode",)


def test_version5_default_pattern() -> None:
    (entry,) = parse("Version: 5\n\nSource: https://h/\n").entries
    match = re.fullmatch(translate_regex(entry.pattern), "foo-1.2.tar.gz")
    assert match and match.group(1) == "1.2"


@pytest.mark.parametrize(("template", "href", "version"), [
    ("Template: Github\nOwner: o\nProject: p\n",
     "https://api.github.com/repos/o/p/tarball/refs/tags/v1.2.3", "1.2.3"),
    ("Template: GitHub\nDist: https://github.com/o/p\nRelease-Only: yes\n",
     "https://api.github.com/repos/o/p/tarball/p-1.2", "1.2"),
    ("Template: Npmregistry\nDist: @scope/handler\n",
     "https://registry.npmjs.org/@scope/handler/-/handler-2.0.1.tgz", "2.0.1"),
    ("Template: Metacpan\nDist: Foo::Bar\n",
     "https://cpan.metacpan.org/authors/id/A/AB/ABC/Foo-Bar-0.42.tar.gz", "0.42"),
    ("Template: Gitlab\nDist: https://salsa.debian.org/debian/devscripts\n",
     '"name":"v2.23.4"', "2.23.4"),
])
def test_version5_templates(template: str, href: str, version: str) -> None:
    (entry,) = parse("Version: 5\n\n" + template).entries
    assert entry.searchmode == "plain"
    match = re.search(translate_regex(entry.pattern), href)
    assert match and match.group(0) == href and match.group(1) == version


def test_version5_errors() -> None:
    with pytest.raises(ParseError, match="debian/watch:3: a watch paragraph without Source"):
        parse("Version: 5\n\nMatching-Pattern: x(.*)\n")
    with pytest.raises(ParseError, match="unknown template"):
        parse("Version: 5\n\nTemplate: Sourceforge\n")
