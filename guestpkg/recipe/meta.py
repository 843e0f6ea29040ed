# SPDX-License-Identifier: GPL-2.0-or-later
"""A recipe's ``meta`` file: one deb822 stanza (deb822(5)) of package metadata.

The fields, all carried into the resulting dcfpkg's metadata (dcfpkg(5)):

- ``Description`` (required): a one-line summary, optionally continued by a longer
  text on indented lines, as in debian/control;
- ``Homepage``: an http or https URL;
- ``License``: the licence, preferably an SPDX expression (``GPL-3.0-or-later``);
- ``Maintainer``: who looks after the recipe, ``Name <address>``.

Any other field is refused with its ``path:line``: a typo must not silently drop
metadata, and the dcfpkg reader refuses unknown fields too.  The file is read by the
project's deb822 tokenizer with dpkg's rules (:data:`META`): ``#`` comment lines,
field names compared case-insensitively, a duplicate field is an error.
"""

from __future__ import annotations

import re

from guestpkg.debian import deb822
from guestpkg.errors import ParseError
from guestpkg.recipe.files import shown

MAX_META_BYTES = 64 << 10

#: The fields, in the order they are written into a package, and whether required.
FIELDS: tuple[tuple[str, bool], ...] = (
    ("Description", True), ("Homepage", False), ("License", False), ("Maintainer", False),
)

#: deb822 as dpkg reads it; the field names are checked here, for a better message.
META = deb822.CONTROL

_ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")
_URL = re.compile(r"^https?://[!-~]{1,500}$")
_TEXT_LINE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")


def parse_meta(data: bytes, path: str) -> tuple[tuple[str, str], ...]:
    """The fields of *data*, in :data:`FIELDS` order, checked."""
    if len(data) > MAX_META_BYTES:
        raise ParseError(f"file larger than {MAX_META_BYTES} bytes", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError("not UTF-8", path, data[:e.start].count(b"\n") + 1) from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not re.fullmatch(r"[^\x00-\x08\x0a-\x1f\x7f-\x9f]*", line):
            raise ParseError(f"control character in {shown(line)}", path, lineno)
    stanzas = deb822.parse(text, path, META)
    if len(stanzas) != 1:
        raise ParseError(f"expected one stanza, found {len(stanzas)}", path,
                         stanzas[1].first_line if len(stanzas) > 1 else None)
    stanza = stanzas[0]
    known = {name.lower(): (name, required) for name, required in FIELDS}
    for folded, lineno in stanza.lines.items():
        if folded not in known:
            raise ParseError(f"unknown field {shown(stanza.names[folded])} (known: "
                             + ", ".join(n for n, _ in FIELDS) + ")", path, lineno)
    for name, required in FIELDS:
        if required and stanza.get(name) is None:
            raise ParseError(f"no {name} field", path, stanza.first_line)
    for folded, value in stanza.fields.items():
        name, lineno = known[folded][0], stanza.lines[folded]
        first, *rest = value.split("\n")
        if not _ONE_LINE.match(first) or (rest and name != "Description"):
            raise ParseError(f"{name}: expected one line of at most 200 characters", path,
                             lineno)
        if name == "Homepage" and not _URL.match(first):
            raise ParseError(f"Homepage: {shown(first)} is not an http or https URL", path,
                             lineno)
        for offset, line in enumerate(rest, 1):
            if not _TEXT_LINE.match(line.strip() or "."):
                raise ParseError("Description: continuation line longer than 200 "
                                 "characters", path, lineno + offset)
    return tuple((name, stanza.fields[name.lower()]) for name, _ in FIELDS
                 if name.lower() in stanza.fields)
