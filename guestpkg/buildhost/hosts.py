# SPDX-License-Identifier: GPL-2.0-or-later
"""``/etc/guestpkg/buildhosts``: the machines recipe builds may run on.

One deb822 stanza per host (read by the project's one tokenizer,
:mod:`guestpkg.debian.deb822`, with dpkg's strictness: unknown or repeated fields are
errors with ``path:line``)::

    Name: builder1
    Architectures: x86_64 i586
    Slots: 2
    Public-Key: /etc/guestpkg/buildhosts.d/builder1.pub

*Name* is what ``guestpkg buildhost serve`` on that machine calls itself
(``buildhost-name``); *Architectures* the recipe architectures it builds (its worker
consumes exactly their queues, so a host never takes a job it can't build); *Slots*
how many builds it runs at once; *Public-Key* the key file (``guestpkg trust keygen``)
whose secret half signs its results: a result signed by any other key is refused,
whatever the trust store says of that key.  A relative *Public-Key* is relative to the
buildhosts file's directory.

The file is the coordinator's list of whom to believe, so it is read strictly and
bounded in size; the key files are read when a result is checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from guestpkg.debian import deb822
from guestpkg.errors import ConfigError, ParseError
from guestpkg.recipe.files import ARCHES

#: A host name as in RFC 1123 labels, dots allowed: never a path or an option.
HOST_NAME = re.compile(r"\A[a-z0-9][a-z0-9.-]{0,62}\Z")
#: The most slots a host may declare (a typo like 1000 would starve nothing but is
#: surely wrong).
MAX_SLOTS = 256
#: The file is small; anything bigger is not a buildhosts file.
MAX_SIZE = 1 << 20

FIELDS = frozenset({"name", "architectures", "slots", "public-key"})
SYNTAX = deb822.Syntax(keys=FIELDS)


@dataclass(frozen=True)
class Buildhost:
    name: str
    architectures: tuple[str, ...]
    slots: int
    public_key: Path
    line: int = 0           # where its stanza starts, for messages


def parse_buildhosts(text: str, path: Path) -> tuple[Buildhost, ...]:
    """The hosts of buildhosts *text*; :class:`ParseError` with ``path:line`` for
    anything unknown, missing or malformed, and for a name given twice."""
    hosts: list[Buildhost] = []
    seen: dict[str, int] = {}
    for stanza in deb822.parse(text, path, SYNTAX):
        for required in ("name", "architectures", "slots", "public-key"):
            if stanza.get(required) is None:
                raise ParseError(f"host stanza without {required.title()}", path,
                                 stanza.first_line)
        name = stanza.fields["name"]
        if not HOST_NAME.match(name):
            raise ParseError(f"bad host name {name[:40]!r} (lower case letters, digits, "
                             "'.' and '-')", path, stanza.line("name"))
        if name in seen:
            raise ParseError(f"host {name} is already named on line {seen[name]}", path,
                             stanza.line("name"))
        seen[name] = stanza.line("name")
        arches = tuple(stanza.fields["architectures"].split())
        bad = [a for a in arches if a not in ARCHES]
        if not arches or bad or len(set(arches)) != len(arches):
            raise ParseError(f"Architectures must list some of {', '.join(ARCHES)}, each "
                             f"once (got {stanza.fields['architectures'][:60]!r})", path,
                             stanza.line("architectures"))
        slots_text = stanza.fields["slots"]
        if not slots_text.isascii() or not slots_text.isdigit() \
                or not 1 <= int(slots_text) <= MAX_SLOTS:
            raise ParseError(f"Slots must be a number from 1 to {MAX_SLOTS} "
                             f"(got {slots_text[:20]!r})", path, stanza.line("slots"))
        key_text = stanza.fields["public-key"]
        if not key_text or "\n" in key_text:
            raise ParseError("Public-Key must be the path of a key file", path,
                             stanza.line("public-key"))
        hosts.append(Buildhost(name, arches, int(slots_text),
                               path.parent / key_text, stanza.first_line))
    return tuple(hosts)


def read_buildhosts(path: Path) -> tuple[Buildhost, ...]:
    """The buildhosts file at *path*, which must exist and list at least one host."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIZE + 1)
    except FileNotFoundError:
        raise ConfigError(f"no buildhosts file {path}",
                          hint="write one stanza per host (Name, Architectures, Slots, "
                          "Public-Key; see guestpkg.conf(5) and docs/buildhosts.md) or "
                          "set buildhosts") from None
    except OSError as e:
        raise ConfigError(f"{path}: can't read the buildhosts file: {e.strerror}") from None
    if len(data) > MAX_SIZE:
        raise ConfigError(f"{path}: bigger than {MAX_SIZE} bytes: not a buildhosts file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    hosts = parse_buildhosts(text, path)
    if not hosts:
        raise ConfigError(f"{path}: lists no buildhost",
                          hint="add a stanza per host: Name, Architectures, Slots, Public-Key")
    return hosts


def find_host(hosts: tuple[Buildhost, ...], name: str, path: Path) -> Buildhost:
    for host in hosts:
        if host.name == name:
            return host
    raise ConfigError(f"{path} has no host named {name!r}",
                      hint="add its stanza there, or give --buildhost-name NAME")
