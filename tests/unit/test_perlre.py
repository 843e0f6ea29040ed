# SPDX-License-Identifier: GPL-2.0-or-later
"""Perl regexes and mangling rules as uscan applies them (no root, no network)."""

from __future__ import annotations

import re

import pytest

from guestpkg.debian.perlre import PerlSyntaxError, parse_rule, translate_regex

ANY_VERSION = r"(?:[-_]?v?(\d[\-+\.:\~\da-zA-Z]*))"
ARCHIVE_EXT = r"(?i)(?:\.(?:tar\.xz|tar\.bz2|tar\.gz|tar\.zstd?|zip|tgz|tbz|txz))"


@pytest.mark.parametrize(("rule", "before", "after"), [
    (r"s/\+dfsg\d*$//", "1.2+dfsg3", "1.2"),
    (r"s/(\d)[_\.\-\+]?((RC|rc|pre|dev|beta|alpha)\d*)$/$1~$2/", "1.0rc1", "1.0~rc1"),
    (r"s/_/./g", "1_2_3", "1.2.3"),
    (r"s/_/./", "1_2_3", "1.2_3"),
    (r"s/A/b/i", "xa", "xb"),
    (r"s/ 1 \d /x/x", "a12", "ax"),
    (r"tr/A-Z/a-z/", "ABC-d", "abc-d"),
    (r"y/_/./", "1_2_3", "1.2.3"),
    (r"tr/a-z//cd", "a1b2", "ab"),
    (r"tr/a-z//d", "a1b2", "12"),
    (r"tr/a//s", "baaad", "bad"),
    (r"s%.*/v?(\d\S+)\.tar\.gz%foo-$1.tar.gz%", "https://x/v1.2.tar.gz", "foo-1.2.tar.gz"),
    (r"s{a}{\U$&}g", "banana", "bAnAnA"),
    (r"s/^(\w)/\u$1/", "abc", "Abc"),
    (r"s/(\w+)/\L$1\E!/", "ABC", "abc!"),
    (r"s/(?<num>\d+)/<$+{num}>/", "x12", "x<12>"),
    (r"s/(\d+)/\1\1/", "x12", "x1212"),
    (r"s/(\d+)/${1}0/", "x12", "x120"),
    (r"s/x(y)?/[$1]/", "x", "[]"),
    (r"s/\./\\/g", "a.b", "a\\b"),
    (r"s/\//-/g", "a/b", "a-b"),
    (r"s<v(\d)> <$1>", "v1", "1"),
    (r"s(\.)(_)g", "1.2.3", "1_2_3"),
    (r"s/$/.asc/", "f.tar.gz", "f.tar.gz.asc"),
    (r"s/\Q1.2\E/x/", "1x2 1.2", "1x2 x"),
    (r"s/a\z/b/", "aa", "ab"),
    (r"s/[[:digit:]]+/N/", "v12", "vN"),
    (r"s/[[:alpha:]]+/W/g", "ab12cd", "W12W"),
    (r"s/.*?(\d[\d.]*)$/$1/", "release-1.2.3", "1.2.3"),
    (r"s/x*/-/g", "abc", "-a-b-c-"),
    (" s/a/b/ ", "a", "b"),
])
def test_rules(rule: str, before: str, after: str) -> None:
    assert parse_rule(rule).apply(before) == after


@pytest.mark.parametrize("rule", [
    r"s/x/y/e",
    r"s/x/y/ee",
    r"s/(?{ system('id') })//",
    r"s/(??{ 'x' })//",
    r"s/x/@{[ `id` ]}/",
    r"s/x/${\ `id`}/",
    r"s/x/@{ [ `id` ] }/",
    r"s/x/$h{`id`}/",
    r"s/x/$a[`id`]/",
    r"s/x/@$r/",
    r"s/@{[`id`]}//",
    r"s/x/y/m",
    r"tr/a/b/r",
    r"s/\Gx//",
    r"s/x/y",
    r"m/x/",
    r"s{x}y",
    r"s/(x/y/",
    r"s/\p{L}//",
])
def test_refused(rule: str) -> None:
    with pytest.raises(PerlSyntaxError):
        parse_rule(rule)


def test_uscan_macros_translate() -> None:
    pattern = re.compile(translate_regex(r".*/foo" + ANY_VERSION + ARCHIVE_EXT))
    match = pattern.fullmatch("https://x/foo-1.2.3.TAR.GZ")
    assert match and match.group(1) == "1.2.3"
    # (?i) in the middle is scoped to the rest of its group, as in Perl
    scoped = re.compile(translate_regex(r"(a(?i)b)c"))
    assert scoped.fullmatch("aBc") and not scoped.fullmatch("abC")


def test_named_groups_and_classes() -> None:
    assert re.fullmatch(translate_regex(r"(?<v>\d+)-\k<v>"), "12-12")
    assert re.fullmatch(translate_regex(r"[]a]+"), "]a]")
    assert re.fullmatch(translate_regex(r"x\h+y"), "x \ty")
    assert re.fullmatch(translate_regex(r"[a&&b]+"), "a&&b")
