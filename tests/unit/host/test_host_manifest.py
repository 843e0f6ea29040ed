# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import pytest

from guestpkg.errors import ParseError
from guestpkg.host.manifest import Manifest, UpstreamFile, parse_manifest, render_manifest

SHA = "a" * 64
GOOD = f"""\
# a comment
Format: 1
Host: hello-installer
Guest-Source: hello
Guest-Version: 2.10-3

File: hello_2.10.orig.tar.gz
Size: 725946
Sha256: {SHA}

File: hello_2.10.orig-doc.tar.xz
Component: doc
Size: 12
Sha256: {"b" * 64}
"""


def test_parses_a_manifest() -> None:
    m = parse_manifest(GOOD, "m")
    assert m.host == "hello-installer"
    assert m.guest_source == "hello"
    assert m.guest_version == "2.10-3"
    assert m.main_file == UpstreamFile("hello_2.10.orig.tar.gz", 725946, SHA)
    assert m.files[1].component == "doc"


def test_render_round_trips() -> None:
    m = parse_manifest(GOOD)
    assert parse_manifest(render_manifest(m)) == m


@pytest.mark.parametrize(("text", "where", "what"), [
    (GOOD.replace("Sha256: " + SHA, "Sha256: abc"), "m:9:", "bad Sha256"),
    (GOOD.replace("Format: 1", "Format: 2"), "m:2:", "unsupported manifest Format"),
    (GOOD.replace("Guest-Version: 2.10-3", "Guest-Version: 2.10"), "m:2:", "native"),
    (GOOD.replace("Host: hello-installer\n", ""), "m:2:", "missing field Host"),
    (GOOD.replace("Size: 12", "Size: 12\nSize: 13"), "m:14:", "duplicate field Size"),
    (GOOD.replace("Size: 725946", "Size 725946"), "m:8:", "expected 'Field: value'"),
    (GOOD.replace("File: hello_2.10.orig-doc.tar.xz", "File: ../evil"), "m:11:", "bad File"),
    (GOOD.replace("Component: doc\n", ""), "m:", "exactly one File without Component"),
    (GOOD.replace("Guest-Source: hello", "Guest-Source: -rf"), "m:4:", "bad Guest-Source"),
    ("", "m:", "empty manifest"),
    (" continued\n", "m:1:", "continuation line"),
])
def test_errors_name_path_and_line(text: str, where: str, what: str) -> None:
    with pytest.raises(ParseError) as e:
        parse_manifest(text, "m")
    assert str(e.value).startswith(where), str(e.value)
    assert what in str(e.value)


def test_duplicate_file_names_are_refused() -> None:
    m = Manifest("hh", "gg", "1-1", (UpstreamFile("g_1.orig.tar.gz", 1, SHA),
                                     UpstreamFile("g_1.orig.tar.gz", 1, SHA, "x")))
    with pytest.raises(ParseError, match="listed twice"):
        parse_manifest(render_manifest(m), "m")
