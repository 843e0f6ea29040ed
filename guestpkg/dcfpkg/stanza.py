# SPDX-License-Identifier: GPL-2.0-or-later
"""dcfpkg's deb822 stanzas: :mod:`guestpkg.debian.deb822` with its strictest syntax.

dcfpkg metadata, key files and signature archives are deb822 stanzas (deb822(5)) read
with :data:`~guestpkg.debian.deb822.DCFPKG`: field names as written, no comments, a
duplicate field is an error, ``path:line`` in errors.  No comments and no PGP armour:
none of our files have them, and a security format should not accept what it does not
need.
"""

from __future__ import annotations

from pathlib import Path

from guestpkg.debian.deb822 import DCFPKG, Stanza, format_stanza, parse

__all__ = ["Stanza", "format_stanza", "parse_stanzas"]


def parse_stanzas(text: str, path: Path | str = "<input>", first_line: int = 1) -> list[Stanza]:
    """Split *text* into stanzas; empty lines separate them."""
    return parse(text, path, DCFPKG, first_line)
