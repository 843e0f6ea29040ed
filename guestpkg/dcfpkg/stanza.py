# SPDX-License-Identifier: GPL-2.0-or-later
"""deb822 stanzas, the syntax of ``debian/control`` and APT indexes (deb822(5)).

A stanza is a run of ``Field: value`` lines; a line starting with a space or a tab
continues the previous field; an empty line ends the stanza.  dcfpkg metadata, key
files and signature archives all use it, so one small strict parser serves them all:
it keeps field order, refuses duplicate fields and reports ``path:line`` like
python-debian does.  It does not implement comments or PGP armour: none of our files
have them, and a security format should not accept what it does not need.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from guestpkg.errors import ParseError

_FIELD = re.compile(r"^([!-9;-~][!-9;-~]*):(.*)$")


@dataclass(frozen=True)
class Stanza:
    """The fields of one stanza, in file order, and the line each started on."""

    fields: dict[str, str]
    lines: dict[str, int]
    first_line: int

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(name, default)


def parse_stanzas(text: str, path: str = "<input>", first_line: int = 1) -> list[Stanza]:
    """Split *text* into stanzas; empty lines separate them."""
    stanzas: list[Stanza] = []
    fields: dict[str, str] = {}
    lines: dict[str, int] = {}
    current: str | None = None
    start = first_line
    for lineno, line in enumerate(text.split("\n"), first_line):
        if line.strip() == "":
            if fields:
                stanzas.append(Stanza(fields, lines, start))
            fields, lines, current = {}, {}, None
            continue
        if not fields:
            start = lineno
        if line[0] in " \t":
            if current is None:
                raise ParseError("continuation line without a field", path, lineno)
            fields[current] += "\n" + line[1:].rstrip()
            continue
        match = _FIELD.match(line)
        if match is None:
            raise ParseError(f"expected 'Field: value', got {line[:60]!r}", path, lineno)
        name, value = match.group(1), match.group(2).strip()
        if name in fields:
            raise ParseError(f"duplicate field {name}", path, lineno)
        fields[name], lines[name], current = value, lineno, name
    if fields:
        stanzas.append(Stanza(fields, lines, start))
    return stanzas


def format_stanza(fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """One stanza, fields in the given order, ending in a newline (no blank line)."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    out = []
    for name, value in items:
        if not _FIELD.match(name + ":"):
            raise ValueError(f"bad field name {name!r}")
        first, *rest = str(value).split("\n")
        out.append(f"{name}: {first}".rstrip() + "\n")
        # An empty continuation line is written " ." in deb822(5); we never need one.
        for line in rest:
            if not line.strip():
                raise ValueError(f"{name}: empty continuation line")
            out.append(f" {line}\n")
    return "".join(out)
