# SPDX-License-Identifier: GPL-2.0-or-later
"""Which apt sources a new base root gets.

A base root should install what this system installs, so by default it takes the
host's own Debian sources for its suite: ``SUITE``, ``SUITE-updates`` and
``SUITE-security``.  Nothing else: a host's sources often also name third-party
repositories (a cloud SDK, nodesource) that a build must not depend on and that may not
even be reachable.

The host's sources come in two formats, both described in sources.list(5):

- one-line style, in ``/etc/apt/sources.list`` and ``sources.list.d/*.list``::

      deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] URI SUITE COMPONENT...

- deb822 style, in ``sources.list.d/*.sources``: stanzas of ``Types``, ``URIs``,
  ``Suites``, ``Components`` (each a space separated list) and ``Enabled: no`` to
  switch a stanza off.

apt reads only files ending in ``.list`` and ``.sources`` in ``sources.list.d``
(apt.conf(5), ``Dir::Etc::SourceParts``), and so do we.  Options such as
``signed-by`` are dropped on purpose: mmdebstrap verifies with the host's keyrings, and
inside the root apt trusts the keys that the root's own debian-archive-keyring installs.

This module is pure: it parses text and returns values; it runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg.debian import deb822
from guestpkg.errors import ConfigError

APT_ETC = Path("/etc/apt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

#: Suites that have neither -updates nor -security (the Debian archive has none).
ROLLING_SUITES = frozenset({"sid", "unstable", "experimental", "rc-buggy"})


@dataclass(frozen=True)
class AptSource:
    """One ``deb URI SUITE COMPONENT...`` entry."""

    uri: str
    suite: str
    components: tuple[str, ...]

    def line(self) -> str:
        """The one-line form, as mmdebstrap takes it on its command line."""
        return " ".join(("deb", self.uri, self.suite, *self.components))


def suite_family(suite: str) -> tuple[str, ...]:
    """The suites a root of *suite* gets: the suite, its updates and its security
    suite, except for rolling suites which have neither."""
    if suite in ROLLING_SUITES:
        return (suite,)
    return (suite, f"{suite}-updates", f"{suite}-security")


def parse_one_line(text: str) -> list[AptSource]:
    """The ``deb`` entries of a one-line style sources.list; ``deb-src`` is skipped."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        # [options] may contain spaces around '=' (sources.list(5)), so cut it out first.
        line = re.sub(r"\[[^\]]*\]", " ", line)
        fields = line.split()
        if len(fields) < 3 or fields[0] != "deb":
            continue
        uri, suite, components = fields[1], fields[2], tuple(fields[3:])
        entries.append(AptSource(uri.rstrip("/"), suite, components))
    return entries


def parse_deb822(text: str, path: Path | str = "<sources>") -> list[AptSource]:
    """The ``deb`` entries of a deb822 style ``.sources`` file."""
    entries = []
    # APT_SOURCES reads as tolerantly as APT: a host's hand-edited file must not stop
    # a root from being made because of a line that apt itself skips.
    for stanza in deb822.parse(text, path, deb822.APT_SOURCES):
        if (stanza.get("enabled") or "yes").lower() == "no":
            continue
        if "deb" not in (stanza.get("types") or "").split():
            continue
        components = tuple((stanza.get("components") or "").split())
        for uri in (stanza.get("uris") or "").split():
            for suite in (stanza.get("suites") or "").split():
                entries.append(AptSource(uri.rstrip("/"), suite, components))
    return entries


def read_host_sources(etc: Path = APT_ETC) -> list[AptSource]:
    """Every enabled ``deb`` entry of the host's apt configuration, in apt's order."""
    entries: list[AptSource] = []
    main = etc / "sources.list"
    if main.is_file():
        entries += parse_one_line(main.read_text(errors="replace"))
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.name.endswith(".list"):
                entries += parse_one_line(path.read_text(errors="replace"))
            elif path.name.endswith(".sources"):
                entries += parse_deb822(path.read_text(errors="replace"), path)
    return entries


def _dedupe(entries: Iterable[AptSource]) -> list[AptSource]:
    seen: dict[tuple[str, str], AptSource] = {}
    for e in entries:
        seen.setdefault((e.uri, e.suite), e)
    return list(seen.values())


def _host_mirror(host: Sequence[AptSource], security: bool) -> str | None:
    """The first host URI that serves a Debian release suite (or its security suite)."""
    for e in host:
        if not _looks_like_debian(e):
            continue
        is_security = e.suite.endswith("-security")
        if security and is_security:
            return e.uri
        if not security and not is_security and not e.suite.endswith(("-updates", "-backports")):
            return e.uri
    return None


def _looks_like_debian(entry: AptSource) -> bool:
    # A third-party repository uses its own suite names ("nodistro",
    # "cloud-sdk-bookworm"); a Debian mirror's URI path has a debian or
    # debian-security component on the official mirrors, snapshot.debian.org and
    # most private ones.
    return bool(re.search(r"/debian(-security)?(/|$)", entry.uri))


def select_sources(
    host: Sequence[AptSource], suite: str, mirror: str = ""
) -> list[AptSource]:
    """The sources of a new root of *suite*.

    Without *mirror*, the host's entries for the suite family are taken as they are
    when the host has the suite itself.  Otherwise (another suite, or an explicit
    *mirror*) they are made up: *mirror* or the host's Debian mirror for the suite and
    its updates, and the host's security mirror for the security suite.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", suite):
        raise ConfigError(f"not a suite name: {suite!r}", hint="e.g. --suite bookworm")
    family = suite_family(suite)
    if not mirror:
        chosen = _dedupe(e for e in host if e.suite in family)
        if any(e.suite == suite for e in chosen):
            return chosen
    base = (mirror or _host_mirror(host, security=False) or DEFAULT_MIRROR).rstrip("/")
    if not re.match(r"^(https?|file|ftp|copy|mirror\+\w+)://", base):
        raise ConfigError(f"not a mirror URL: {base!r}",
                          hint="e.g. --mirror http://deb.debian.org/debian")
    security = _host_mirror(host, security=True) or DEFAULT_SECURITY_MIRROR
    components = next((e.components for e in host if e.suite == suite and e.components),
                      ("main",))
    made = [AptSource(base, s, components) for s in family if not s.endswith("-security")]
    made += [AptSource(security, s, components) for s in family if s.endswith("-security")]
    return made
