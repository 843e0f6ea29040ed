# SPDX-License-Identifier: GPL-2.0-or-later
"""The line formats of a recipe's files: ``type``, ``builddeps``, ``rundeps``, ``arch``,
``filter`` and ``sha256sums`` (docs/recipes.md has the grammar).

A recipe tree is hostile input: it may come from anywhere and it decides what runs in
a build.  So every file is read by these pure functions with a grammar stricter than
the peers' shell-sourced APKBUILDs and PKGBUILDs: printable ASCII only, one item a line,
blank lines and whole-line ``#`` comments allowed, everything else refused with
``path:line``.  Nothing parsed here is ever passed on as an option or a shell fragment:
names are checked against the same patterns as dcfpkg's identity fields, and globs are
only ever matched by :func:`fnmatch.fnmatchcase`.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass

from guestpkg.debian import deb822
from guestpkg.errors import ParseError

#: The most a line file may hold, and the longest line: a recipe file is a few lines.
MAX_LINE_FILE_BYTES = 64 << 10
MAX_LINE_CHARS = 1024

#: Recipe names are dcfpkg package names (Debian Policy 5.6.1, as
#: :data:`guestpkg.debian.deb822.PACKAGE_NAME`) of at most 63 characters; versions and
#: releases are the subset of dcfpkg's that can also be a directory and a file name
#: (no epoch colon, no hyphen).
NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}$")
VERSION = re.compile(r"^[0-9][A-Za-z0-9.+~]{0,63}$")
RELEASE = re.compile(r"^[A-Za-z0-9.+~]{1,32}$")

ARCHES = ("i586", "x86_64")
TYPES = ("source", "binary")

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$")
_GLOB = re.compile(r"^[A-Za-z0-9._+~@%,=:*?\[\]!/-]{1,512}$")
_PRINTABLE = re.compile(r"^[ -~\t]*$")


def shown(text: str, limit: int = 60) -> str:
    """*text* quoted for a message: control and other unprintable characters escaped
    by :func:`repr`, cut at *limit* characters."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def decode_lines(data: bytes, path: str) -> list[str]:
    """The lines of a line file, after refusing what no line file may contain."""
    if len(data) > MAX_LINE_FILE_BYTES:
        raise ParseError(f"file larger than {MAX_LINE_FILE_BYTES} bytes", path)
    lines = data.split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ParseError("only printable ASCII is allowed", path, lineno) from None
        if not _PRINTABLE.match(line):
            raise ParseError(f"control character in {shown(line)}", path, lineno)
        if len(line) > MAX_LINE_CHARS:
            raise ParseError(f"line longer than {MAX_LINE_CHARS} characters", path, lineno)
    return [raw.decode("ascii") for raw in lines]


def items(data: bytes, path: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, words)`` of each line that is not blank or a ``#`` comment."""
    for lineno, line in enumerate(decode_lines(data, path), 1):
        words = line.split()
        if words and not words[0].startswith("#"):
            yield lineno, words


def parse_type(data: bytes, path: str) -> str:
    """``type``: the one word ``source`` or ``binary``."""
    found = list(items(data, path))
    if not found:
        raise ParseError("empty: write 'source' or 'binary'", path)
    lineno, words = found[0]
    if len(found) > 1:
        raise ParseError("more than one line: write only 'source' or 'binary'", path,
                         found[1][0])
    if words not in (["source"], ["binary"]):
        raise ParseError(f"unknown type {shown(' '.join(words))}: expected 'source' or "
                         "'binary'", path, lineno)
    return words[0]


def parse_arch(data: bytes, path: str) -> tuple[str, ...]:
    """``arch``: ``i586`` and/or ``x86_64``, one a line, each once."""
    arches: list[str] = []
    for lineno, words in items(data, path):
        if len(words) != 1 or words[0] not in ARCHES:
            raise ParseError(f"unknown architecture {shown(' '.join(words))}: expected "
                             + " or ".join(ARCHES), path, lineno)
        if words[0] in arches:
            raise ParseError(f"{words[0]} listed twice", path, lineno)
        arches.append(words[0])
    if not arches:
        raise ParseError("no architecture: write " + " and/or ".join(ARCHES), path)
    return tuple(sorted(arches))


class DepKind(enum.Enum):
    """How a dependency line names what it needs."""

    PACKAGE = "package"   # ``zlib``: the output of recipe zlib
    FROM = "from"         # ``cc from gcc``: the command cc, as recipe gcc's output has it
    LATEST = "latest"     # ``latest curl``: whatever curl is newest; not in the cache key


@dataclass(frozen=True)
class Dependency:
    """One line of ``builddeps`` or ``rundeps``."""

    name: str        # what the line names: a package, or with ``from`` a command
    recipe: str      # the recipe whose output provides it
    kind: DepKind
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        if self.kind is DepKind.FROM:
            return f"{self.name} from {self.recipe}"
        if self.kind is DepKind.LATEST:
            return f"latest {self.name}"
        return self.name


def _name(word: str, path: str, lineno: int) -> str:
    if not NAME.match(word):
        raise ParseError(f"{shown(word)} is not a package name (lower-case letters, "
                         "digits, '+', '-', '.'; at least two, starting with a letter or digit)",
                         path, lineno)
    return word


def parse_builddeps(data: bytes, path: str, *, runtime: bool = False) -> tuple[Dependency, ...]:
    """``builddeps`` (or, with *runtime*, ``rundeps``): one dependency a line.

    ``<pkg>``, ``<pkg> from <recipe>``, or ``latest <pkg>``; ``rundeps`` take only the
    first form.  A recipe named twice is refused: two lines could only disagree.
    """
    deps: list[Dependency] = []
    seen: dict[str, int] = {}
    for lineno, words in items(data, path):
        if len(words) == 1:
            dep = Dependency(_name(words[0], path, lineno), words[0], DepKind.PACKAGE,
                             path, lineno)
        elif len(words) == 3 and words[1] == "from" and not runtime:
            dep = Dependency(_name(words[0], path, lineno), _name(words[2], path, lineno),
                             DepKind.FROM, path, lineno)
        elif len(words) == 2 and words[0] == "latest" and not runtime:
            dep = Dependency(_name(words[1], path, lineno), words[1], DepKind.LATEST,
                             path, lineno)
        else:
            expected = ("'<pkg>'" if runtime else
                        "'<pkg>', '<pkg> from <recipe>' or 'latest <pkg>'")
            raise ParseError(f"expected {expected}, got {shown(' '.join(words))}",
                             path, lineno)
        if dep.recipe in seen:
            raise ParseError(f"recipe {dep.recipe} already named on line {seen[dep.recipe]}",
                             path, lineno)
        seen[dep.recipe] = lineno
        deps.append(dep)
    return tuple(deps)


@dataclass(frozen=True)
class Glob:
    """One ``filter`` line: a path glob (``/usr/share/doc``) or, without a slash, a
    name glob matched against every path's last component (``*.la``)."""

    pattern: str
    line: int

    def matches(self, path: str) -> bool:
        """Does the glob match *path* (``/``-rooted, as inside the package)?"""
        if "/" in self.pattern:
            return fnmatch.fnmatchcase(path, self.pattern)
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], self.pattern)


def parse_filter(data: bytes, path: str) -> tuple[Glob, ...]:
    """``filter``: one glob a line, of paths left out of the package.

    A path glob starts with ``/`` (the package root, i.e. ``/var/tmp/install``); ``*``
    and ``?`` also match ``/`` (fnmatch(3) without FNM_PATHNAME), and a directory that
    matches is left out with everything under it.  ``..`` and empty components are
    refused, so a glob can only ever name paths inside the package.
    """
    globs: list[Glob] = []
    for lineno, words in items(data, path):
        if len(words) != 1:
            raise ParseError(f"one glob a line, got {shown(' '.join(words))}", path, lineno)
        pattern = words[0].rstrip("/") if words[0] != "/" else words[0]
        if not _GLOB.match(pattern):
            raise ParseError(f"{shown(words[0])}: only letters, digits and ._+~@%,=:-/ "
                             "with the glob characters *?[]! are allowed", path, lineno)
        parts = pattern.split("/")
        if "/" in pattern and (parts[0] != "" or any(p in ("", ".", "..") for p in parts[1:])):
            raise ParseError(f"{shown(words[0])}: a path glob starts with '/' and has no "
                             "empty, '.' or '..' component", path, lineno)
        globs.append(Glob(pattern, lineno))
    return tuple(globs)


def filtered(path: str, globs: tuple[Glob, ...]) -> bool:
    """Is *path* or one of the directories above it matched by a glob?"""
    parts = path.strip("/").split("/")
    return any(g.matches("/" + "/".join(parts[:n])) for n in range(1, len(parts) + 1)
               for g in globs)


@dataclass(frozen=True)
class Pin:
    """One ``sha256sums`` line: a file a source recipe fetches, and its digest."""

    name: str
    sha256: str
    line: int


def parse_sha256sums(data: bytes, path: str) -> tuple[Pin, ...]:
    """``sha256sums``: ``sha256sum(1)`` output, ``<hex>  <file name>`` a line.

    The names are plain file names (no directories) that the build must leave in its
    download directory; each is checked before the output is accepted.
    """
    pins: list[Pin] = []
    for lineno, words in items(data, path):
        if len(words) == 2 and words[1].startswith("*"):  # sha256sum's binary marker
            words = [words[0], words[1][1:]]
        if len(words) != 2:
            raise ParseError("expected '<sha256>  <file name>'", path, lineno)
        digest, name = words
        if not deb822.is_sha256(digest):
            raise ParseError(f"{shown(digest)} is not a SHA256 (64 lower-case hex digits)",
                             path, lineno)
        if not _FILE_NAME.match(name):
            raise ParseError(f"{shown(name)} is not a plain file name", path, lineno)
        if any(p.name == name for p in pins):
            raise ParseError(f"{name} pinned twice", path, lineno)
        pins.append(Pin(name, digest, lineno))
    if not pins:
        raise ParseError("no file pinned: a source recipe pins every file it fetches", path)
    return tuple(pins)
