# SPDX-License-Identifier: GPL-2.0-or-later
"""Attack tests: relation fields of an untrusted debian/control or .dsc never reach
apt as anything but checked entries of a control file (guestpkg.debian.relations)."""

from __future__ import annotations

import pytest

from guestpkg.debian import control
from guestpkg.debian.relations import RELATION_FIELDS, parse_relations
from guestpkg.errors import ParseError

#: Spellings of an apt option (or of something that is not a relation at all).
HOSTILE = (
    "-oDPkg::Pre-Invoke::=touch /tmp/pwned",
    "-o DPkg::Pre-Invoke::=touch",
    "--option=APT::Get::AllowUnauthenticated=1",
    "-c/build/evil.conf",
    "--allow-unauthenticated",
    "-qq",
    "hello (>= 1.0) -oDPkg::Pre-Invoke::=x",
    "hello [amd64] -o x",
    "hello <!nocheck> --option=x",
    "hello | -oAPT::x=1",
    "hello:-o",
    "hello (>= -1)",
    "hello (>= 1.0) [-amd64]",
    "hello <-x>",
    "hello\x1b[31m",
    "Hello",
    "hello (< 1.0)",
    "${misc:Depends}",
)


@pytest.mark.parametrize("field", RELATION_FIELDS)
@pytest.mark.parametrize("entry", HOSTILE)
def test_hostile_entry_is_refused_at_file_and_line(field: str, entry: str) -> None:
    # The hostile entry sits on the third line, after a continuation line.
    text = (f"Source: demo\nMaintainer: x <x@example.org>\n{field}: debhelper-compat (= 13),"
            f"\n {entry},\n texinfo\n\nPackage: demo\nArchitecture: any\n")
    with pytest.raises(ParseError) as error:
        control.parse_control(text, "debian/control")
    assert str(error.value).startswith("debian/control:")
    line = int(str(error.value).split(":")[1])
    assert line == 4
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("entry", HOSTILE[:6])
def test_hostile_entry_in_a_dsc_is_refused(entry: str) -> None:
    dsc = ("Format: 3.0 (quilt)\nSource: demo\nVersion: 1.0-1\n"
           f"Build-Depends-Indep: {entry}\nFiles:\n 00 1 demo_1.0.orig.tar.gz\n")
    with pytest.raises(ParseError) as error:
        control.parse_dsc(dsc, "demo_1.0-1.dsc")
    assert str(error.value).startswith("demo_1.0-1.dsc:4: Build-Depends-Indep")


def test_the_line_is_the_bad_entry_s_line() -> None:
    text = ("Source: demo\nBuild-Depends: aa,\n# a comment\n bb (>= 1),\n"
            " cc [amd64] <!nocheck>,\n -oDPkg::Pre-Invoke::=x,\n dd\n")
    with pytest.raises(ParseError) as error:
        control.parse_control(text, "debian/control")
    assert str(error.value).startswith(
        "debian/control:6: Build-Depends: '-oDPkg::Pre-Invoke::=x' does not start")


def test_policy_grammar_accepted() -> None:
    good = ("debhelper-compat (= 13), gcc-multilib [amd64 i386] <!nobiarch>, "
            "libfoo-dev [!amd64 !linux-any], python3-pytest <!nocheck> <pkg.foo.bar>, "
            "aa | bb:any (>> 1:2.0~rc1+dfsg-1.1), tool:native (<= 1.0), libc6.1-dev,"
            "g++-12 (>= 12), ")
    relations = parse_relations(good)
    assert [r[0].name for r in relations] == [
        "debhelper-compat", "gcc-multilib", "libfoo-dev", "python3-pytest", "aa", "tool",
        "libc6.1-dev", "g++-12"]
    assert relations[4][1].text() == "bb:any (>> 1:2.0~rc1+dfsg-1.1)"


def test_reduced_entries_cannot_be_options() -> None:
    """Whatever passes the grammar renders to text that starts with a package name."""
    c = control.parse_control(
        "Source: demo\nBuild-Depends: aa (>= 1) [amd64] <!nocheck>, bb:native\n"
        "Build-Conflicts: cc | dd (<< 2)\n")
    relations = control.build_relations(c, control.BuildMode.BINARY, "amd64")
    dummy = relations.dummy_control("amd64")
    assert "\nDepends: aa (>= 1), bb\n" in dummy
    assert "\nConflicts: cc, dd (<< 2)\n" in dummy
    for entry in (*relations.depends, *relations.conflicts):
        assert entry[0].isalnum()


def test_a_relation_field_twice_is_refused() -> None:
    """python-debian keeps one of the two; which one is checked must not matter."""
    with pytest.raises(ParseError, match=r"^debian/control:3: duplicate field Build-Depends"):
        control.parse_control("Source: demo\nBuild-Depends: hello\n"
                              "Build-Depends: -oDPkg::Pre-Invoke::=x\n", "debian/control")


@pytest.mark.parametrize(("entry", "message"), [
    ("aa [amd64 !i386]", "Build-Depends: aa: an architecture list is all negated or none "
                         "(deb-src-control(5))"),
    ("aa [am;d64]", "Build-Depends: aa: bad architecture 'am;d64'"),
    ("aa [!-x]", "Build-Depends: aa: bad architecture '!-x'"),
    ("aa []", "Build-Depends: aa: empty architecture list"),
    ("aa <!noch$eck>", "Build-Depends: aa: bad build profile '!noch$eck'"),
    ("aa <nocheck> < >", "Build-Depends: aa: empty build-profile formula <>"),
])
def test_bad_arch_lists_and_profile_formulas(entry: str, message: str) -> None:
    with pytest.raises(ParseError) as error:
        parse_relations(entry, path="debian/control", lines=(7,))
    assert str(error.value) == f"debian/control:7: {message}"


def test_arch_lists_and_profile_formulas_read() -> None:
    [[relation]] = parse_relations("aa [!amd64 !i386] <!nocheck cross> <pkg.aa.x>")
    assert [(a.enabled, a.arch) for a in relation.arch] == [(False, "amd64"), (False, "i386")]
    assert [[(p.enabled, p.profile) for p in group] for group in relation.restrictions] == [
        [(False, "nocheck"), (True, "cross")], [(True, "pkg.aa.x")]]
