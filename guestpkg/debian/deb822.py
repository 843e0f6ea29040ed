# SPDX-License-Identifier: GPL-2.0-or-later
"""deb822, the syntax of ``debian/control``, APT's ``.sources`` files, version 5
``debian/watch`` files, the host manifest and dcfpkg's metadata (deb822(5)).

A file is a list of *stanzas* (paragraphs) separated by empty lines.  A stanza is a
run of ``Field: value`` lines; a line starting with a space or a tab continues the
previous field::

    Format: 1
    Description: the first line
     a continuation line, joined to the value with a newline

    File: foo_1.2.orig.tar.gz

This is the only deb822 tokenizer in guestpkg (python-debian's ``Deb822`` reads
``debian/control`` and ``.dsc`` files, where its tolerance is what dpkg does).  The
files we read differ in how strict they must be, so strictness is a parameter, a
:class:`Syntax`, as python-debian's ``Deb822(strict=...)``:

- *comments*: lines starting with ``#`` in column 0 are skipped (deb822(5) allows them
  in most files; dcfpkg does not: a security format accepts nothing it does not need);
- *duplicates*: a field twice in a stanza is an error (dpkg) or the last one wins;
- *continuation*: whether continuation lines are allowed at all;
- *keys*: the field names allowed (anything else is an error), or any;
- *fold*: field names compared as written, case-insensitively (deb822(5)), or also
  ignoring ``-`` and ``_`` (debian-watch(5));
- *skip_bad_lines*: a line that is not a field is skipped instead of an error (how APT
  tolerates a host's hand-edited sources; never for a file that reaches root);
- *space_before_colon*: ``Name : value`` is accepted.

The grammar that all dialects share: lines end in ``\\n`` only (``str.splitlines``
would also split at form feeds and U+2028, which dpkg does not); a field name is
printable US-ASCII without space or colon (deb822(5)); the value is stripped of
surrounding whitespace; a continuation line loses its first character (the space or
tab that marks it) and its trailing whitespace; a line of only whitespace ends a
stanza.  Errors are :class:`~guestpkg.errors.ParseError` with ``path:line``.

The value validators that these files share (package names, versions, SHA256 digests)
live here too, so that every reader refuses the same strings.

Pure: no process, no I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from guestpkg.errors import ParseError

__all__ = ["APT_SOURCES", "CONTROL", "DCFPKG", "PACKAGE_NAME", "SHA256", "VERSION",
           "WATCH", "Duplicates", "KeyFold", "Stanza", "Syntax", "format_stanza",
           "is_package_name", "is_sha256", "is_version", "parse"]

#: deb822(5): "US-ASCII characters excluding control characters, space, and colon".
FIELD_NAME = re.compile(r"[!-9;-~]+")

# -- value validators ----------------------------------------------------------------------

#: Debian Policy 5.6.1: lower case letters, digits, ``+ - .``; at least two characters,
#: starting with an alphanumeric.  Nothing that could be a path or an option.
PACKAGE_NAME = re.compile(r"\A[a-z0-9][a-z0-9+.-]+\Z")
#: deb-version(7): ``[epoch:]upstream[-revision]``; the upstream version starts with a
#: digit, holds a hyphen only with a revision and a colon only with an epoch; the
#: revision is not empty (the last two are checked by :func:`is_version`).
VERSION = re.compile(
    r"\A(?:(?P<epoch>[0-9]+):)?"
    r"(?P<upstream>[0-9][A-Za-z0-9.+~:-]*?)"
    r"(?:-(?P<revision>[A-Za-z0-9.+~]+))?\Z"
)
#: A SHA256 digest as sha256sum(1) prints it: 64 lower case hex digits.
SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")


def is_package_name(text: str) -> bool:
    return PACKAGE_NAME.match(text) is not None


def is_version(text: str) -> bool:
    """Is *text* a version dpkg accepts (deb-version(7))?"""
    match = VERSION.match(text)
    return (match is not None and not text.endswith("-")
            and (":" not in match.group("upstream") or match.group("epoch") is not None))


def is_sha256(text: str) -> bool:
    return SHA256.match(text) is not None


# -- the tokenizer -------------------------------------------------------------------------

class Duplicates(enum.Enum):
    """What a field given twice in one stanza means."""

    ERROR = "error"     # dpkg's rule
    LAST = "last"       # APT's tolerance: the last one wins


class KeyFold(enum.Enum):
    """How field names are compared (and stored in :attr:`Stanza.fields`)."""

    EXACT = "exact"     # as written (dcfpkg)
    CASE = "case"       # case-insensitively, stored in lower case (deb822(5))
    WATCH = "watch"     # also ignoring '-' and '_' (debian-watch(5))

    def __call__(self, name: str) -> str:
        if self is KeyFold.EXACT:
            return name
        if self is KeyFold.CASE:
            return name.lower()
        return name.lower().replace("-", "").replace("_", "")


@dataclass(frozen=True)
class Syntax:
    """How strictly :func:`parse` reads a file; the defaults are dpkg's."""

    comments: bool = True
    duplicates: Duplicates = Duplicates.ERROR
    continuation: bool = True
    keys: frozenset[str] | None = None       # allowed names, folded; None: any
    fold: KeyFold = KeyFold.CASE
    skip_bad_lines: bool = False
    space_before_colon: bool = False


#: dcfpkg's metadata, key files and signature archives: nothing beyond fields.
DCFPKG = Syntax(comments=False, fold=KeyFold.EXACT)
#: Files of our own format shipped by packages (the host manifest): dpkg's rules.
CONTROL = Syntax()
#: APT's ``.sources`` files, hand-edited on the host: read as tolerantly as APT does.
APT_SOURCES = Syntax(duplicates=Duplicates.LAST, skip_bad_lines=True,
                     space_before_colon=True)
#: Version 5 ``debian/watch`` files (debian-watch(5)).
WATCH = Syntax(fold=KeyFold.WATCH, space_before_colon=True)


@dataclass(frozen=True)
class Stanza:
    """The fields of one stanza in file order (names folded by the syntax's *fold*),
    the line each started on and the line of the stanza's first field."""

    fields: dict[str, str]
    lines: dict[str, int]
    first_line: int
    fold: KeyFold = KeyFold.EXACT
    names: dict[str, str] = field(default_factory=dict)   # folded -> as written

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(self.fold(name), default)

    def line(self, name: str) -> int:
        """The line *name* is on, or the stanza's first line if it is absent."""
        return self.lines.get(self.fold(name), self.first_line)


class _Builder:
    """The stanza being read."""

    def __init__(self, syntax: Syntax, path: Path | str) -> None:
        self.syntax, self.path = syntax, path
        self.stanzas: list[Stanza] = []
        self._reset()

    def _reset(self) -> None:
        self.fields: dict[str, str] = {}
        self.lines: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.first = 0
        self.last: str | None = None

    def end(self) -> None:
        if self.fields:
            self.stanzas.append(Stanza(self.fields, self.lines, self.first, self.syntax.fold,
                                       self.names))
        self._reset()

    def bad(self, message: str, lineno: int) -> None:
        if not self.syntax.skip_bad_lines:
            raise ParseError(message, self.path, lineno)

    def continuation(self, line: str, lineno: int) -> None:
        if not self.syntax.continuation:
            self.bad("continuation lines are not allowed here", lineno)
        elif self.last is None:
            self.bad("continuation line without a field", lineno)
        else:
            self.fields[self.last] += "\n" + line[1:].rstrip()

    def field(self, line: str, lineno: int) -> None:
        name, sep, value = line.partition(":")
        if self.syntax.space_before_colon:
            name = name.rstrip(" \t")
        if not sep or not FIELD_NAME.fullmatch(name):
            self.bad(f"expected 'Field: value', got {line[:60]!r}", lineno)
            return
        key = self.syntax.fold(name)
        if self.syntax.keys is not None and key not in self.syntax.keys:
            self.bad(f"unknown field {name}", lineno)
            return
        if key in self.fields and self.syntax.duplicates is Duplicates.ERROR:
            raise ParseError(f"duplicate field {name}", self.path, lineno)
        if not self.fields:
            self.first = lineno
        self.fields.pop(key, None)   # a repeated field (Duplicates.LAST) moves to the end
        self.fields[key], self.lines[key], self.names[key] = value.strip(), lineno, name
        self.last = key


def parse(text: str, path: Path | str = "<input>", syntax: Syntax = CONTROL,
          first_line: int = 1) -> list[Stanza]:
    """The stanzas of deb822 *text*; *path* and *first_line* name it in errors."""
    builder = _Builder(syntax, path)
    for lineno, line in enumerate(text.split("\n"), first_line):
        if syntax.comments and line.startswith("#"):
            continue
        if not line.strip():
            builder.end()
        elif line[0] in " \t":
            builder.continuation(line, lineno)
        else:
            builder.field(line, lineno)
    builder.end()
    return builder.stanzas


def format_stanza(fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """One stanza, fields in the given order, ending in a newline (no blank line)."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    out = []
    for name, value in items:
        if not FIELD_NAME.fullmatch(name):
            raise ValueError(f"bad field name {name!r}")
        first, *rest = str(value).split("\n")
        out.append(f"{name}: {first}".rstrip() + "\n")
        # An empty continuation line is written " ." in deb822(5); we never need one.
        for line in rest:
            if not line.strip():
                raise ValueError(f"{name}: empty continuation line")
            out.append(f" {line}\n")
    return "".join(out)
