# SPDX-License-Identifier: GPL-2.0-or-later
"""Relation fields (``Build-Depends`` and friends) parsed strictly, by Policy's grammar.

Debian Policy 7.1 and deb-src-control(5) define a relation field as entries separated
by ``,``, each a list of alternatives separated by ``|``; one alternative is::

    name[:archqual] [(op version)] [[arch ...]] [<profile ...>]...

- *name*: a package name (Policy 5.6.7): ``[a-z0-9][a-z0-9+.-]+``;
- *archqual*: ``any``, ``native`` or an architecture name;
- *op*: ``<<``, ``<=``, ``=``, ``>=``, ``>>`` (``<`` and ``>`` are obsolete: refused);
- *version*: ``[epoch:]upstream[-revision]`` (Policy 5.6.12);
- an architecture list, all positive or all ``!``-negated (deb-src-control(5));
- build-profile formulas, ``<a !b>`` groups (https://wiki.debian.org/BuildProfileSpec).

Why our own parser rather than python-debian's ``PkgRelation``: that one is made for
reading archives leniently, and returns an entry it cannot parse *raw*, as a package
name.  Here the text comes from an untrusted ``debian/control`` and ends up in front
of apt running as root with the network (the dependency phase): an entry such as
``-oDPkg::Pre-Invoke::=...`` must be an error at ``path:line``, not a "name".  What
this module accepts can be neither an option (no entry starts with ``-``) nor carry a
newline, a comma or any character apt or a deb822 file would read specially.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg.errors import ParseError

#: The fields this module reads, in the order dpkg-checkbuilddeps(1) documents.
RELATION_FIELDS = ("Build-Depends", "Build-Depends-Arch", "Build-Depends-Indep",
                   "Build-Conflicts", "Build-Conflicts-Arch", "Build-Conflicts-Indep")

PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ARCH_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*")
# Policy 5.6.12: digits for the epoch; upstream of alphanumerics and . + ~ - ; a
# revision of alphanumerics and . + ~ .  A hyphen can't end the version.
_VERSION = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*(?<!-)")
_OPERATORS = ("<<", "<=", "=", ">=", ">>")

# One alternative, split into its parts; each part is checked on its own below so
# that the error names what is wrong.
_ALTERNATIVE = re.compile(r"""
    (?P<name>[^\s:(\[<]+)
    (?::(?P<archqual>[^\s(\[<]*))?
    (?:\s*\(\s*(?P<op>[<>=]+)\s*(?P<version>[^\s()]*)\s*\))?
    (?:\s*\[(?P<arches>[^\]]*)\])?
    (?P<profiles>(?:\s*<[^<>]*>)*)
    \s*\Z""", re.VERBOSE)


@dataclass(frozen=True)
class ArchRestriction:
    """One term of ``[...]``: *arch* (a name or a wildcard), negated unless *enabled*."""

    enabled: bool
    arch: str


@dataclass(frozen=True)
class ProfileTerm:
    """One term of ``<...>``: *profile* must be active if *enabled*, inactive if not."""

    enabled: bool
    profile: str


@dataclass(frozen=True)
class Relation:
    """One alternative of a relation entry, checked against Policy's grammar."""

    name: str
    archqual: str | None = None
    version: tuple[str, str] | None = None          # (operator, version)
    arch: tuple[ArchRestriction, ...] = ()
    restrictions: tuple[tuple[ProfileTerm, ...], ...] = ()

    def text(self, *, native: bool = True, build_arch: str = "") -> str:
        """The relation without its architecture list and profile formula, as apt
        reads it; ``:native`` is dropped in a native build (sbuild does the same: the
        resolver runs on the build architecture, where it means the package itself),
        and becomes ``:BUILD_ARCH`` in a cross build (*build_arch*), as sbuild's
        dummy package has it: a binary package's relations know no ``:native``."""
        name = self.name
        if self.archqual == "native" and build_arch:
            name = f"{name}:{build_arch}"
        elif self.archqual and not (native and self.archqual == "native"):
            name = f"{name}:{self.archqual}"
        return f"{name} ({self.version[0]} {self.version[1]})" if self.version else name


#: A parsed field: AND-ed entries, each a list of OR-ed alternatives.
Relations = list[list[Relation]]


def _error(message: str, path: Path | str | None, line: int | None) -> ParseError:
    return ParseError(message, path, line,
                      hint="relation fields follow Debian Policy 7.1 and "
                      "deb-src-control(5); fix the entry in debian/control")


def _parse_alternative(text: str, field: str, path: Path | str | None,
                       line: int | None) -> Relation:
    shown = text if len(text) <= 80 else text[:77] + "..."
    m = _ALTERNATIVE.match(text)
    if m is None:
        raise _error(f"{field}: cannot parse {shown!r}", path, line)
    name = m.group("name")
    if not PACKAGE_NAME.fullmatch(name):
        raise _error(f"{field}: {shown!r} does not start with a package name (Policy "
                     "5.6.7: lower case letters, digits, + - . ; two characters or more, "
                     "the first a letter or digit)", path, line)
    archqual = m.group("archqual")
    if archqual is not None and not _ARCH_NAME.fullmatch(archqual):
        raise _error(f"{field}: {name}: bad architecture qualifier {archqual!r}", path, line)
    version = None
    if m.group("op") is not None:
        op, value = m.group("op"), m.group("version")
        if op not in _OPERATORS:
            raise _error(f"{field}: {name}: bad version relation {op!r} (one of "
                         f"{' '.join(_OPERATORS)})", path, line)
        if not _VERSION.fullmatch(value):
            raise _error(f"{field}: {name}: bad version {value!r} (Policy 5.6.12)", path,
                         line)
        version = (op, value)

    def fail(message: str) -> ParseError:
        return _error(f"{field}: {name}: {message}", path, line)

    arches: tuple[ArchRestriction, ...] = ()
    if m.group("arches") is not None:
        arches = tuple(ArchRestriction(enabled, arch) for enabled, arch in _parse_terms(
            m.group("arches"), _ARCH_NAME, "architecture", "architecture list", fail))
        if len({a.enabled for a in arches}) > 1:
            raise fail("an architecture list is all negated or none (deb-src-control(5))")
    restrictions = tuple(
        tuple(ProfileTerm(enabled, profile) for enabled, profile in _parse_terms(
            group, _PROFILE_NAME, "build profile", "build-profile formula <>", fail))
        for group in re.findall(r"<([^<>]*)>", m.group("profiles")))
    return Relation(name, archqual, version, arches, restrictions)


def _parse_terms(text: str, grammar: re.Pattern[str], what: str, empty: str,
                 fail: Callable[[str], ParseError]) -> list[tuple[bool, str]]:
    """The ``!``-negatable words of an architecture list or of one build-profile
    formula, as (enabled, word); *what* names a word in an error, *empty* the list."""
    terms = []
    for word in text.split():
        value = word.removeprefix("!")
        if not grammar.fullmatch(value):
            raise fail(f"bad {what} {word!r}")
        terms.append((not word.startswith("!"), value))
    if not terms:
        raise fail(f"empty {empty}")
    return terms


def parse_relations(value: str, field: str = "Build-Depends",
                    path: Path | str | None = None,
                    lines: Sequence[int] = ()) -> Relations:
    """Parse a relation field's *value*, which may span lines (continuation lines keep
    their newlines); an error names *path* and the line of the bad entry: line *i* of
    *value* is line ``lines[i]`` of the file.

    Empty entries (a trailing comma, as dpkg tolerates) are skipped; an empty
    alternative (``a | | b``) is an error."""
    entries: Relations = []
    offset = 0
    for entry in value.split(","):
        start = offset
        offset += len(entry) + 1
        if not entry.strip():
            continue
        stripped = entry.strip()
        start += entry.index(stripped[0])
        index = value[:start].count("\n")
        entry_line = lines[min(index, len(lines) - 1)] if lines else None
        alternatives = []
        for alternative in stripped.split("|"):
            if not alternative.strip():
                raise _error(f"{field}: empty alternative in {' '.join(stripped.split())!r}",
                             path, entry_line)
            alternatives.append(_parse_alternative(" ".join(alternative.split()), field,
                                                   path, entry_line))
        entries.append(alternatives)
    return entries


def render_relations(entries: list[str]) -> str:
    """Entries (each already a checked ``a (>= 1) | b``) as one field value."""
    return ", ".join(entries)
