# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.debian.{version,changelog,control}: pure parsing and reduction."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.debian import changelog, control, version
from guestpkg.errors import InputError, ParseError

CHANGELOG = """\
hello (1:2.10-3) unstable; urgency=medium

  * Something.

 -- Santiago Vila <sanvila@debian.org>  Sun, 16 Jul 2023 20:12:01 +0200

hello (2.10-2) unstable; urgency=medium

  * Older.

 -- Santiago Vila <sanvila@debian.org>  Sat, 15 Jan 2022 10:00:00 +0000
"""

CONTROL = """\
Source: demo
Build-Depends: debhelper-compat (= 13),
 gcc-multilib [amd64 i386] <!nobiarch>,
 libfoo-dev [!amd64],
 python3-pytest <!nocheck>,
 aa | bb,
 tool:native (>= 1.0),
 cross-thing <stage1 cross>,
 lib-any [linux-any]
Build-Depends-Arch: arch-only-dep
Build-Depends-Indep: indep-only-dep
Build-Conflicts: bad-pkg, cc | dd
Rules-Requires-Root: no

Package: demo
Architecture: any

Package: demo-udeb
Architecture: any
Package-Type: udeb
"""


def test_version_helpers() -> None:
    assert version.upstream_version("1:2.10-3") == "2.10"
    assert version.upstream_version("2.10") == "2.10"
    assert version.upstream_version("1.0-2-3") == "1.0-2"
    assert version.without_epoch("1:2.10-3") == "2.10-3"
    assert version.without_epoch("2.10-3") == "2.10-3"
    assert version.with_suffix("1:2.10-3", "~local") == "1:2.10-3~local"
    # deb-version(7): ~ sorts before the end of the string
    assert version.compare("1.0-1~local", "1.0-1") == -1
    assert version.compare("1.0-2~local", "1.0-1") == 1
    assert version.compare("1:0.1", "2.0") == 1
    assert version.compare("2.0", "2.0") == 0
    for bad in ("", "a1.0", "1.0 2", "1:", "x:1.0"):
        with pytest.raises(InputError):
            version.parse(bad)


def test_changelog_newest_entry() -> None:
    entry = changelog.parse_changelog(CHANGELOG)
    assert entry.source == "hello"
    assert entry.version == "1:2.10-3"
    assert entry.upstream_version == "2.10"
    assert entry.version_without_epoch == "2.10-3"
    assert entry.distribution == "unstable"
    # 2023-07-16 18:12:01 UTC
    assert entry.timestamp == 1689531121


def test_changelog_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "changelog"
    bad.write_text("this is not a changelog\n")
    with pytest.raises(ParseError) as err:
        changelog.read_changelog(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(ParseError):
        changelog.read_changelog(tmp_path / "missing")
    with pytest.raises(ParseError):
        changelog.parse_date("not a date")


def test_control_fields_and_binaries() -> None:
    c = control.parse_control(CONTROL)
    assert c.source == "demo"
    assert c.rules_requires_root == "no" and not c.needs_root_command
    assert [b.package_type for b in c.binaries] == ["deb", "udeb"]
    default = control.parse_control("Source: x\n\nPackage: x\nArchitecture: all\n")
    assert default.rules_requires_root == "binary-targets" and default.needs_root_command
    with pytest.raises(ParseError):
        control.parse_control("Package: nosource\n")


def test_reduce_for_amd64_default_profiles() -> None:
    c = control.parse_control(CONTROL)
    rel = control.build_relations(c, control.BuildMode.BINARY, "amd64")
    assert rel.depends == (
        "debhelper-compat (= 13)", "gcc-multilib", "python3-pytest", "aa",
        "tool (>= 1.0)", "lib-any", "arch-only-dep", "indep-only-dep")
    assert rel.conflicts == ("bad-pkg", "cc", "dd")


def test_reduce_profiles_and_arch() -> None:
    c = control.parse_control(CONTROL)
    rel = control.build_relations(c, control.BuildMode.ARCH_ONLY, "arm64",
                                  profiles=["nocheck", "stage1", "cross"], extra=["fakeroot"])
    assert rel.depends == ("debhelper-compat (= 13)", "libfoo-dev", "aa", "tool (>= 1.0)",
                           "cross-thing", "lib-any", "arch-only-dep", "fakeroot")
    indep = control.build_relations(c, control.BuildMode.INDEP_ONLY, "amd64")
    assert "indep-only-dep" in indep.depends and "arch-only-dep" not in indep.depends
    source = control.build_relations(c, control.BuildMode.SOURCE, "amd64")
    assert "indep-only-dep" not in source.depends and "arch-only-dep" not in source.depends


def test_dummy_control_and_canonical() -> None:
    rel = control.BuildRelations(("aa (>= 1)", "bb"), ("cc",))
    text = rel.dummy_control("amd64")
    assert text.startswith("Package: guestpkg-build-deps\nVersion: 1\nArchitecture: amd64\n")
    assert "\nDepends: aa (>= 1), bb\nConflicts: cc\n" in text
    assert rel.canonical() == "Depends: aa (>= 1), bb\nConflicts: cc\n"
    assert "Depends" not in control.BuildRelations((), ()).dummy_control("amd64")


def test_alternatives_kept_on_request() -> None:
    assert control.reduce_relations("aa [i386] | bb | cc", "amd64", first_alternative=False) \
        == ["bb | cc"]
    assert control.reduce_relations("aa [i386] | bb | cc", "amd64") == ["bb"]
    assert control.reduce_relations("xx:any, yy:native", "amd64") == ["xx:any", "yy"]
    assert control.reduce_relations("", "amd64") == []


DSC = """\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Format: 3.0 (quilt)
Source: hello
Binary: hello
Architecture: any
Version: 2.10-3
Build-Depends: debhelper-compat (= 13), help2man, texinfo
Checksums-Sha256:
 31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b 725946 hello_2.10.orig.tar.gz
 c6b5c0c1ea43d1ce4fa4fc0a4b4d1f1b4f2cbbcd5d0e5ab9a0fb2f5bbfef6c39 12688 hello_2.10-3.debian.tar.xz
Files:
 6cd0ffea3884a4e79330338dcc2987d6 725946 hello_2.10.orig.tar.gz
 0b1bd5d2f1fe1e2b2fbc0eddd1b1a1d0 12688 hello_2.10-3.debian.tar.xz

-----BEGIN PGP SIGNATURE-----

iQ==
-----END PGP SIGNATURE-----
"""


def test_dsc() -> None:
    dsc = control.parse_dsc(DSC)
    assert dsc.control.source == "hello"
    assert dsc.version == "2.10-3"
    assert dsc.files == ("hello_2.10.orig.tar.gz", "hello_2.10-3.debian.tar.xz")
    assert dsc.control.build_depends == "debhelper-compat (= 13), help2man, texinfo"
    with pytest.raises(ParseError):
        control.parse_dsc(DSC.replace("hello_2.10.orig.tar.gz", "../../etc/x"))
    with pytest.raises(ParseError):
        control.parse_dsc("Foo: bar\n")
