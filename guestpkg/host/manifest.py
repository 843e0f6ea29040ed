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
host's maintainer gets the guest's upstream-release notifications, DESIGN.md), and the
pinned SHA256 decides whether what was found is accepted.  See guestpkg-host(7).

This module is pure: it parses and renders text, nothing else.  Errors carry
``path:line`` like python-debian's parsers do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from guestpkg.errors import ParseError

MANIFEST_FORMAT = "1"
MANIFEST_NAME = "manifest"

# Policy 5.6.1 (source package names) and 5.6.12 (versions); good enough to refuse
# anything that could smuggle a path or an option into a command line.
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~_-]*$")


@dataclass(frozen=True)
class Field:
    """A field's value and the line it started on (for error messages)."""

    value: str
    line: int


@dataclass
class Stanza:
    """One paragraph of a deb822 file, field names compared case-insensitively."""

    line: int
    fields: dict[str, Field] = field(default_factory=dict)

    def get(self, name: str) -> Field | None:
        return self.fields.get(name.lower())


def parse_deb822(text: str, path: Path | str) -> list[Stanza]:
    """Split deb822 *text* into stanzas, keeping line numbers.

    Comment lines (``#`` in column 0) are skipped, continuation lines start with a
    space or a tab and are joined with newlines (deb822(5)).  A duplicate field in a
    stanza is an error, as in dpkg.
    """
    stanzas: list[Stanza] = []
    current: Stanza | None = None
    last: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            current, last = None, None
            continue
        if raw[0] in " \t":
            if current is None or last is None:
                raise ParseError("continuation line outside a field", path, lineno)
            old = current.fields[last]
            current.fields[last] = Field(old.value + "\n" + raw.strip(), old.line)
            continue
        name, sep, value = raw.partition(":")
        if not sep or not name or " " in name:
            raise ParseError(f"expected 'Field: value', got {raw!r}", path, lineno)
        if current is None:
            current = Stanza(lineno)
            stanzas.append(current)
        key = name.lower()
        if key in current.fields:
            raise ParseError(f"duplicate field {name}", path, lineno)
        current.fields[key] = Field(value.strip(), lineno)
        last = key
    return stanzas


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

    @property
    def main_file(self) -> UpstreamFile:
        return next(f for f in self.files if f.component is None)


def _required(stanza: Stanza, name: str, pattern: re.Pattern[str], path: Path | str) -> str:
    found = stanza.get(name)
    if found is None:
        raise ParseError(f"missing field {name}", path, stanza.line)
    if not pattern.match(found.value):
        raise ParseError(f"bad {name}: {found.value!r}", path, found.line)
    return found.value


def _parse_file(stanza: Stanza, path: Path | str) -> UpstreamFile:
    name = _required(stanza, "File", FILE_NAME, path)
    size_text = _required(stanza, "Size", re.compile(r"^[0-9]+$"), path)
    sha256 = _required(stanza, "Sha256", SHA256, path)
    component = stanza.get("Component")
    if component is not None and not COMPONENT.match(component.value):
        raise ParseError(f"bad Component: {component.value!r}", path, component.line)
    return UpstreamFile(name, int(size_text), sha256, component.value if component else None)


def parse_manifest(text: str, path: Path | str = "<manifest>") -> Manifest:
    """Parse and check a manifest; any problem raises :class:`ParseError` with path:line."""
    stanzas = parse_deb822(text, path)
    if not stanzas:
        raise ParseError("empty manifest", path)
    head, rest = stanzas[0], stanzas[1:]
    fmt = head.get("Format")
    if fmt is None or fmt.value != MANIFEST_FORMAT:
        raise ParseError(f"unsupported manifest Format (this guestpkg reads {MANIFEST_FORMAT})",
                         path, fmt.line if fmt else head.line,
                         hint="a newer guestpkg may be needed for this host package")
    manifest = Manifest(
        host=_required(head, "Host", PACKAGE_NAME, path),
        guest_source=_required(head, "Guest-Source", PACKAGE_NAME, path),
        guest_version=_required(head, "Guest-Version", VERSION, path),
        files=tuple(_parse_file(s, path) for s in rest),
    )
    if "-" not in manifest.guest_version:
        raise ParseError("Guest-Version has no Debian revision: a native package has no "
                         "upstream tarball to fetch", path, head.line)
    _check_files(manifest, rest, path)
    return manifest


def _check_files(manifest: Manifest, stanzas: list[Stanza], path: Path | str) -> None:
    mains = [f for f in manifest.files if f.component is None]
    if len(mains) != 1:
        raise ParseError(f"expected exactly one File without Component, found {len(mains)}",
                         path, stanzas[0].line if stanzas else None)
    seen: set[str] = set()
    for f, stanza in zip(manifest.files, stanzas, strict=True):
        if f.name in seen:
            raise ParseError(f"file {f.name} listed twice", path, stanza.line)
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
    lines = [f"Format: {MANIFEST_FORMAT}", f"Host: {manifest.host}",
             f"Guest-Source: {manifest.guest_source}",
             f"Guest-Version: {manifest.guest_version}"]
    for f in manifest.files:
        lines += ["", f"File: {f.name}"]
        if f.component is not None:
            lines.append(f"Component: {f.component}")
        lines += [f"Size: {f.size}", f"Sha256: {f.sha256}"]
    return "\n".join(lines) + "\n"
