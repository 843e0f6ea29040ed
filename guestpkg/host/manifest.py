# SPDX-License-Identifier: GPL-2.0-or-later
"""The host manifest: which guest a host package carries, and its pinned upstream files.

A host package ``foo-installer`` ships ``/usr/share/guestpkg/hosts/foo-installer/`` with
the guest's complete ``debian/`` directory and a file named ``manifest`` in deb822
format (the format of ``debian/control``, see deb822(5)): a first stanza about the
guest, then one stanza per upstream file::

    Format: 1
    Host: foo-installer
    Guest-Source: foo
    Guest-Version: 1.2-3

    File: foo_1.2.orig.tar.gz
    Size: 123456
    Sha256: 0123...cdef

    File: foo_1.2.orig-docs.tar.xz
    Component: docs
    Size: 2345
    Sha256: 4567...89ab

The upstream URL is not in the manifest: the guest's ``debian/watch`` finds it (so the
host's maintainer gets the guest's upstream-release notifications, docs/design.md), and the
pinned SHA256 decides whether what was found is accepted.  See guestpkg-host(7).

This module is pure: it parses and renders text, nothing else.  The syntax is
:mod:`guestpkg.debian.deb822`'s ``CONTROL`` dialect (comments allowed, a duplicate
field is an error); errors carry ``path:line`` like python-debian's parsers do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from guestpkg.debian import deb822
from guestpkg.debian.deb822 import PACKAGE_NAME, Stanza
from guestpkg.errors import ParseError

__all__ = ["MANIFEST_NAME", "PACKAGE_NAME", "Manifest", "UpstreamFile", "parse_manifest",
           "read_manifest", "render_manifest"]

MANIFEST_FORMAT = "1"
MANIFEST_NAME = "manifest"

COMPONENT = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9-]*\Z")
FILE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.+~_-]*\Z")
SIZE = re.compile(r"\A[0-9]+\Z")


@dataclass(frozen=True)
class UpstreamFile:
    """One pinned upstream file: the orig tarball or a component tarball."""

    name: str
    size: int
    sha256: str
    component: str | None = None


@dataclass(frozen=True)
class Manifest:
    host: str
    guest_source: str
    guest_version: str
    files: tuple[UpstreamFile, ...]
    #: absolute paths the guest's .debs may install setuid, setgid, owned by others
    #: than root or world-writable (guestpkg.build.inspect, guestpkg-host(7))
    setuid: tuple[str, ...] = ()

    @property
    def main_file(self) -> UpstreamFile:
        return next(f for f in self.files if f.component is None)


def _required(stanza: Stanza, name: str, valid: Callable[[str], object],
              path: Path | str) -> str:
    found = stanza.get(name)
    if found is None:
        raise ParseError(f"missing field {name}", path, stanza.first_line)
    if not valid(found):
        raise ParseError(f"bad {name}: {found!r}", path, stanza.line(name))
    return found


def _parse_file(stanza: Stanza, path: Path | str) -> UpstreamFile:
    name = _required(stanza, "File", FILE_NAME.match, path)
    size_text = _required(stanza, "Size", SIZE.match, path)
    sha256 = _required(stanza, "Sha256", deb822.is_sha256, path)
    component = stanza.get("Component")
    if component is not None and not COMPONENT.match(component):
        raise ParseError(f"bad Component: {component!r}", path, stanza.line("Component"))
    return UpstreamFile(name, int(size_text), sha256, component)


def parse_manifest(text: str, path: Path | str = "<manifest>") -> Manifest:
    """Parse and check a manifest; any problem raises :class:`ParseError` with path:line."""
    stanzas = deb822.parse(text, path, deb822.CONTROL)
    if not stanzas:
        raise ParseError("empty manifest", path)
    head, rest = stanzas[0], stanzas[1:]
    if head.get("Format") != MANIFEST_FORMAT:
        raise ParseError(f"unsupported manifest Format (this guestpkg reads {MANIFEST_FORMAT})",
                         path, head.line("Format"),
                         hint="a newer guestpkg may be needed for this host package")
    manifest = Manifest(
        host=_required(head, "Host", deb822.is_package_name, path),
        guest_source=_required(head, "Guest-Source", deb822.is_package_name, path),
        guest_version=_required(head, "Guest-Version", deb822.is_version, path),
        files=tuple(_parse_file(s, path) for s in rest),
        setuid=_parse_setuid(head, path),
    )
    if "-" not in manifest.guest_version:
        raise ParseError("Guest-Version has no Debian revision: a native package has no "
                         "upstream tarball to fetch", path, head.first_line)
    _check_files(manifest, rest, path)
    return manifest


#: An absolute, normalised path of printable characters without spaces.
SETUID_PATH = re.compile(r"\A(?:/[!-~]+)+\Z")


def _parse_setuid(head: Stanza, path: Path | str) -> tuple[str, ...]:
    """The ``Setuid:`` list: absolute paths, one per line (or separated by spaces)."""
    value = head.get("Setuid")
    if value is None:
        return ()
    paths = tuple(value.split())
    for entry in paths:
        parts = entry.split("/")[1:]
        if not SETUID_PATH.match(entry) or any(p in ("", ".", "..") for p in parts):
            raise ParseError(f"bad Setuid: entry {entry!r} (an absolute path without "
                             "'.', '..' or '//')", path, head.line("Setuid"))
    return paths


def _check_files(manifest: Manifest, stanzas: list[Stanza], path: Path | str) -> None:
    mains = [f for f in manifest.files if f.component is None]
    if len(mains) != 1:
        raise ParseError(f"expected exactly one File without Component, found {len(mains)}",
                         path, stanzas[0].first_line if stanzas else None)
    seen: set[str] = set()
    for f, stanza in zip(manifest.files, stanzas, strict=True):
        if f.name in seen:
            raise ParseError(f"file {f.name} listed twice", path, stanza.first_line)
        seen.add(f.name)


def read_manifest(path: Path) -> Manifest:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ParseError("no such manifest", path,
                         hint="is the host package installed completely?") from e
    except UnicodeDecodeError as e:
        raise ParseError(f"not UTF-8: {e}", path) from e
    return parse_manifest(text, path)


def render_manifest(manifest: Manifest) -> str:
    """The manifest as text; ``parse_manifest(render_manifest(m)) == m``."""
    stanzas = [deb822.format_stanza([
        ("Format", MANIFEST_FORMAT), ("Host", manifest.host),
        ("Guest-Source", manifest.guest_source), ("Guest-Version", manifest.guest_version),
        *([("Setuid", "\n".join(["", *manifest.setuid]))] if manifest.setuid else [])])]
    for f in manifest.files:
        component = [("Component", f.component)] if f.component is not None else []
        stanzas.append(deb822.format_stanza([("File", f.name), *component,
                                             ("Size", str(f.size)), ("Sha256", f.sha256)]))
    return "\n".join(stanzas)
