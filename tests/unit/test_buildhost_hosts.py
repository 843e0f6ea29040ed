# SPDX-License-Identifier: GPL-2.0-or-later
"""/etc/guestpkg/buildhosts: one deb822 stanza per host, read strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.buildhost.hosts import find_host, parse_buildhosts, read_buildhosts
from guestpkg.errors import ConfigError, ParseError

GOOD = """\
# two builders
Name: builder1
Architectures: x86_64 i586
Slots: 2
Public-Key: keys/builder1.pub

Name: old.example.org
Architectures: i586
Slots: 1
Public-Key: /etc/guestpkg/old.pub
"""


def test_hosts_with_their_arches_slots_and_keys() -> None:
    path = Path("/etc/guestpkg/buildhosts")
    one, two = parse_buildhosts(GOOD, path)
    assert (one.name, one.architectures, one.slots) == ("builder1", ("x86_64", "i586"), 2)
    assert one.public_key == Path("/etc/guestpkg/keys/builder1.pub")
    assert (two.name, two.architectures, two.slots) == ("old.example.org", ("i586",), 1)
    assert two.public_key == Path("/etc/guestpkg/old.pub")
    assert find_host((one, two), "old.example.org", path) is two
    with pytest.raises(ConfigError, match="no host named 'nope'"):
        find_host((one, two), "nope", path)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("Name: a1\nArchitectures: x86_64\nSlots: 1\nPublic-Key: k\nColour: red\n", 5,
     "unknown field Colour"),
    ("Name: a1\nArchitectures: x86_64\nSlots: 1\n", 1, "without Public-Key"),
    ("Name: -rf\nArchitectures: x86_64\nSlots: 1\nPublic-Key: k\n", 1, "bad host name"),
    ("Name: a1\nArchitectures: arm64\nSlots: 1\nPublic-Key: k\n", 2, "Architectures"),
    ("Name: a1\nArchitectures: x86_64 x86_64\nSlots: 1\nPublic-Key: k\n", 2,
     "each once"),
    ("Name: a1\nArchitectures:\nSlots: 1\nPublic-Key: k\n", 2, "Architectures"),
    ("Name: a1\nArchitectures: i586\nSlots: 0\nPublic-Key: k\n", 3, "Slots"),
    ("Name: a1\nArchitectures: i586\nSlots: 1000\nPublic-Key: k\n", 3, "Slots"),
    ("Name: a1\nArchitectures: i586\nSlots: ٣\nPublic-Key: k\n", 3, "Slots"),
    ("Name: a1\nArchitectures: i586\nSlots: 1\nPublic-Key: k\n\n"
     "Name: a1\nArchitectures: i586\nSlots: 1\nPublic-Key: k\n", 6, "already named on line 1"),
    ("Name: a1\nName: a2\n", 2, "duplicate field"),
    ("Name: a1\nArchitectures: i586\nSlots: 1\nPublic-Key: k\n more\n", 4, "Public-Key"),
])
def test_malformed_stanzas_are_refused_with_path_and_line(text: str, line: int,
                                                          message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        parse_buildhosts(text, Path("/x/buildhosts"))
    assert caught.value.line == line
    assert str(caught.value).startswith(f"/x/buildhosts:{line}: ")


def test_a_missing_empty_or_oversized_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no buildhosts file") as caught:
        read_buildhosts(tmp_path / "buildhosts")
    assert caught.value.hint is not None and "Name, Architectures" in caught.value.hint
    (tmp_path / "buildhosts").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="lists no buildhost"):
        read_buildhosts(tmp_path / "buildhosts")
    (tmp_path / "buildhosts").write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="bigger than"):
        read_buildhosts(tmp_path / "buildhosts")
    (tmp_path / "buildhosts").write_text(GOOD)
    assert [h.name for h in read_buildhosts(tmp_path / "buildhosts")] == [
        "builder1", "old.example.org"]
