# SPDX-License-Identifier: GPL-2.0-or-later
"""The recipe file grammars (guestpkg.recipe.files, guestpkg.recipe.meta): what they
accept, and a path:line error for everything else."""

from __future__ import annotations

import pytest

from guestpkg.errors import ParseError
from guestpkg.recipe import files as rf
from guestpkg.recipe.meta import parse_meta


def error(parser: object, data: bytes, *args: object, **kwargs: object) -> str:
    with pytest.raises(ParseError) as info:
        parser(data, "r/1/1/f", *args, **kwargs)  # type: ignore[operator]
    return info.value.message


def test_type() -> None:
    assert rf.parse_type(b"# what it is\nsource\n", "t") == "source"
    assert rf.parse_type(b"binary", "t") == "binary"
    assert error(rf.parse_type, b"script\n") == \
        "r/1/1/f:1: unknown type 'script': expected 'source' or 'binary'"
    assert error(rf.parse_type, b"binary\nsource\n").startswith("r/1/1/f:2: more than one")
    assert error(rf.parse_type, b"\n#\n") == "r/1/1/f: empty: write 'source' or 'binary'"


def test_arch() -> None:
    assert rf.parse_arch(b"x86_64\ni586\n", "a") == ("i586", "x86_64")
    assert error(rf.parse_arch, b"x86_64\namd64\n") == \
        "r/1/1/f:2: unknown architecture 'amd64': expected i586 or x86_64"
    assert error(rf.parse_arch, b"i586\ni586\n") == "r/1/1/f:2: i586 listed twice"
    assert error(rf.parse_arch, b"") .startswith("r/1/1/f: no architecture")


def test_builddeps_forms() -> None:
    deps = rf.parse_builddeps(b"zlib\n\n# the compiler\ncc from gcc\nlatest curl\n", "b")
    assert [(d.name, d.recipe, d.kind, d.line) for d in deps] == [
        ("zlib", "zlib", rf.DepKind.PACKAGE, 1),
        ("cc", "gcc", rf.DepKind.FROM, 4),
        ("curl", "curl", rf.DepKind.LATEST, 5),
    ]
    assert [str(d) for d in deps] == ["zlib", "cc from gcc", "latest curl"]
    assert deps[1].where == "b:4"


@pytest.mark.parametrize(("data", "message"), [
    (b"zlib >= 1.2\n", "r/1/1/f:1: expected '<pkg>', '<pkg> from <recipe>' or 'latest <pkg>',"
                       " got 'zlib >= 1.2'"),
    (b"cc from\n", "r/1/1/f:1: expected"),
    (b"Zlib\n", "r/1/1/f:1: 'Zlib' is not a package name"),
    (b"z\n", "r/1/1/f:1: 'z' is not a package name"),
    (b"--rm-rf\n", "r/1/1/f:1: '--rm-rf' is not a package name"),
    (b"ok\n$(reboot)\n", "r/1/1/f:2: '$(reboot)' is not a package name"),
    (b"cc from ../gcc\n", "r/1/1/f:1: '../gcc' is not a package name"),
    (b"zlib\nlatest zlib\n", "r/1/1/f:2: recipe zlib already named on line 1"),
    (b"zlib\x1b[2J\n", "r/1/1/f:1: control character in 'zlib\\x1b[2J'"),
    (b"zl\xc3\xafb\n", "r/1/1/f:1: only printable ASCII is allowed"),
    (b"a" * 2000, "r/1/1/f:1: line longer than 1024 characters"),
    (b"a\n" * 40000, "r/1/1/f: file larger than 65536 bytes"),
])
def test_builddeps_refused(data: bytes, message: str) -> None:
    assert error(rf.parse_builddeps, data).startswith(message)


def test_rundeps_take_plain_names_only() -> None:
    assert [d.name for d in rf.parse_builddeps(b"zlib\n", "r", runtime=True)] == ["zlib"]
    assert error(rf.parse_builddeps, b"latest zlib\n", runtime=True) == \
        "r/1/1/f:1: expected '<pkg>', got 'latest zlib'"
    assert error(rf.parse_builddeps, b"cc from gcc\n", runtime=True).startswith(
        "r/1/1/f:1: expected '<pkg>'")


def test_filter_globs_match_paths_and_names() -> None:
    globs = rf.parse_filter(b"/usr/share/doc/\n*.la\n/etc/skel\n/usr/lib/*/pkgconfig\n", "f")
    assert [g.pattern for g in globs] == ["/usr/share/doc", "*.la", "/etc/skel",
                                          "/usr/lib/*/pkgconfig"]
    assert rf.filtered("/usr/share/doc/zlib/README", globs)
    assert rf.filtered("/usr/share/doc", globs)
    assert rf.filtered("/usr/lib/libz.la", globs)
    assert rf.filtered("/usr/lib/x86_64/pkgconfig/zlib.pc", globs)
    assert not rf.filtered("/usr/share/docs", globs)
    assert not rf.filtered("/usr/lib/libz.so", globs)
    assert not rf.filtered("/etc/skeleton", globs)


@pytest.mark.parametrize(("line", "message"), [
    (b"usr/share/doc", "a path glob starts with '/'"),
    (b"/usr/../etc", "a path glob starts with '/'"),
    (b"/usr//doc", "a path glob starts with '/'"),
    (b"/usr/./doc", "a path glob starts with '/'"),
    (b"/usr/share doc", "one glob a line"),
    (b"/usr/$(id)", "only letters, digits"),
    (b"/usr/`id`", "only letters, digits"),
])
def test_filter_refused(line: bytes, message: str) -> None:
    assert message in error(rf.parse_filter, line + b"\n")
    assert error(rf.parse_filter, line + b"\n").startswith("r/1/1/f:1: ")


def test_sha256sums() -> None:
    digest = "a" * 64
    pins = rf.parse_sha256sums(f"{digest}  zlib-1.3.tar.gz\n{'b' * 64} *x.patch\n".encode(),
                               "s")
    assert [(p.name, p.sha256, p.line) for p in pins] == [
        ("zlib-1.3.tar.gz", digest, 1), ("x.patch", "b" * 64, 2)]
    assert "is not a SHA256" in error(rf.parse_sha256sums, b"abc  x\n")
    assert "is not a SHA256" in error(rf.parse_sha256sums, ("A" * 64 + "  x\n").encode())
    assert "'../x' is not a plain file name" in error(rf.parse_sha256sums,
                                                      f"{digest}  ../x\n".encode())
    assert "'-x' is not a plain file name" in error(rf.parse_sha256sums,
                                                    f"{digest}  -x\n".encode())
    assert error(rf.parse_sha256sums, f"{digest}  x\n{digest}  x\n".encode()) == \
        "r/1/1/f:2: x pinned twice"
    assert error(rf.parse_sha256sums, b"#\n").startswith("r/1/1/f: no file pinned")


def test_meta() -> None:
    meta = parse_meta("# a comment\nlicense: Zlib\nDescription: compression library\n "
                      "A longer text, ünïcode fine.\nHomepage: https://zlib.net/\n".encode(),
                      "m")
    assert meta == (("Description", "compression library\nA longer text, ünïcode fine."),
                    ("Homepage", "https://zlib.net/"), ("License", "Zlib"))


@pytest.mark.parametrize(("data", "message"), [
    (b"Description: x\nDepends: libc\n", "r/1/1/f:2: unknown field 'Depends'"),
    (b"Homepage: https://x/\n", "r/1/1/f:1: no Description field"),
    (b"Description: x\nHomepage: javascript:alert(1)\n", "r/1/1/f:2: Homepage: 'javascript"),
    (b"Description: x\n\nDescription: y\n", "r/1/1/f:3: expected one stanza, found 2"),
    (b"Description: x\nLicense: a\n b\n", "r/1/1/f:2: License: expected one line"),
    (b"Description: a\x1b]0;pwned\x07\n", "r/1/1/f:1: control character"),
    (b"Description: \xff\n", "r/1/1/f:1: not UTF-8"),
    (b"Description: x\nDescription: y\n", "r/1/1/f:2: duplicate field Description"),
])
def test_meta_refused(data: bytes, message: str) -> None:
    assert error(parse_meta, data).startswith(message)
