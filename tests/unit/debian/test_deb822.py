# SPDX-License-Identifier: GPL-2.0-or-later
"""The one deb822 tokenizer and its dialects: guestpkg.debian.deb822."""

from __future__ import annotations

import pytest

from guestpkg.debian import deb822
from guestpkg.debian.deb822 import Duplicates, KeyFold, Syntax
from guestpkg.errors import ParseError

TEXT = """\
# a comment
Source: foo
Description: short
 long
  indented

Package: foo-bin
"""


def test_stanzas_lines_and_continuations() -> None:
    first, second = deb822.parse(TEXT, "f")
    assert first.fields == {"source": "foo", "description": "short\nlong\n indented"}
    assert first.first_line == 2 and first.line("Description") == 3
    assert first.get("SOURCE") == "foo" and first.names["source"] == "Source"
    assert second.first_line == 7 and second.line("Missing") == 7


@pytest.mark.parametrize(("text", "syntax", "message"), [
    ("A: 1\nA: 2\n", deb822.CONTROL, "f:2: duplicate field A"),
    ("A: 1\na: 2\n", deb822.CONTROL, "f:2: duplicate field a"),
    ("Uversion-Mangle: x\nuversionmangle: y\n", deb822.WATCH, "f:2: duplicate field"),
    (" x\n", deb822.CONTROL, "f:1: continuation line without a field"),
    ("A: 1\n b\n", Syntax(continuation=False), "f:2: continuation lines are not allowed"),
    ("A 1\n", deb822.CONTROL, "f:1: expected 'Field: value'"),
    ("A : 1\n", deb822.CONTROL, "f:1: expected 'Field: value'"),
    ("# c\nA: 1\n", deb822.DCFPKG, "f:1: expected 'Field: value'"),
    ("A: 1\nB: 2\n", Syntax(keys=frozenset({"a"})), "f:2: unknown field B"),
    ("A: 1\n\xe9: 2\n", deb822.CONTROL, "f:2: expected 'Field: value'"),
])
def test_errors_carry_path_and_line(text: str, syntax: Syntax, message: str) -> None:
    with pytest.raises(ParseError) as e:
        deb822.parse(text, "f", syntax)
    assert str(e.value).startswith(message), str(e.value)


def test_apt_sources_is_as_tolerant_as_apt() -> None:
    text = "Types: deb\nnot a field\n x\nTypes : deb-src\nURIs: u\n"
    (stanza,) = deb822.parse(text, "f", deb822.APT_SOURCES)
    assert stanza.fields == {"types": "deb-src", "uris": "u"}


def test_duplicates_last_wins() -> None:
    syntax = Syntax(duplicates=Duplicates.LAST)
    (stanza,) = deb822.parse("A: 1\nB: 2\nA: 3\n", "f", syntax)
    assert stanza.fields == {"b": "2", "a": "3"} and stanza.line("a") == 3


def test_key_folds() -> None:
    assert KeyFold.EXACT("Uversion-Mangle") == "Uversion-Mangle"
    assert KeyFold.CASE("Uversion-Mangle") == "uversion-mangle"
    assert KeyFold.WATCH("Uversion-Mangle") == KeyFold.WATCH("uversion_mangle")


def test_dcfpkg_is_exact_and_line_feed_only() -> None:
    (stanza,) = deb822.parse("Package: a\x0cb\nVersion: 1\r\n", "f", deb822.DCFPKG)
    assert stanza.fields == {"Package": "a\x0cb", "Version": "1"}
    assert stanza.get("package") is None


def test_first_line_offsets_errors() -> None:
    with pytest.raises(ParseError, match="f:4: duplicate"):
        deb822.parse("A: 1\nA: 2\n", "f", deb822.DCFPKG, first_line=3)


def test_format_stanza_round_trips() -> None:
    text = deb822.format_stanza([("A", "1"), ("B", "two\nlines")])
    assert text == "A: 1\nB: two\n lines\n"
    (stanza,) = deb822.parse(text, "f", deb822.DCFPKG)
    assert stanza.fields == {"A": "1", "B": "two\nlines"}
    with pytest.raises(ValueError):
        deb822.format_stanza([("Bad Name", "x")])


@pytest.mark.parametrize(("name", "ok"), [
    ("hello", True), ("g++", True), ("lib.x-1", True), ("x", False), ("-rf", False),
    ("Hello", False), ("a/b", False), ("foo\n", False), ("", False),
])
def test_package_names(name: str, ok: bool) -> None:
    assert deb822.is_package_name(name) is ok


@pytest.mark.parametrize(("version", "ok"), [
    ("2.10-3", True), ("1:2.10-3", True), ("2.10", True), ("1.0~rc1+dfsg-1.1", True),
    ("1.0-1-2", True), ("2.10:1-1", False), ("a1.0", False), ("1.0-", False),
    ("1.0\n", False), ("-1", False), ("1.0 -1", False),
])
def test_versions(version: str, ok: bool) -> None:
    assert deb822.is_version(version) is ok


def test_sha256() -> None:
    assert deb822.is_sha256("a" * 64)
    assert not deb822.is_sha256("A" * 64)
    assert not deb822.is_sha256("a" * 63)
    assert not deb822.is_sha256("a" * 64 + "\n")
