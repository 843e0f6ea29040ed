# SPDX-License-Identifier: GPL-2.0-or-later
"""Version rules between a host and its guest, and the two edits made to the guest.

The rules (docs/design.md, "The lifecycle rules"):

- The host's version without its Debian revision is the guest's full version:
  ``foo-installer 1.2-3-1`` carries ``foo 1.2-3``.  A host-only change bumps the last
  part (``1.2-3-2``) and carries the same guest, so nothing is rebuilt.
- The guest is built as ``<guest version>~local``, from a new changelog entry that the
  builder adds as it does for ``--append-to-version``
  (:func:`guestpkg.build.versioning.local_build`).  ``~`` sorts before everything, even
  the end of the string (deb-version(7)), so ``1.2-3~local < 1.2-3 < 1.2-3+b1`` and an
  archive build of the same revision supersedes the local one, while
  ``1.2-4~local > 1.2-3`` still upgrades the guest when the host brings a new revision.
- The host is added, unversioned, to the Depends of every binary package of the guest:
  removing the host takes the guest with it, and upgrading the host alone does not force
  the guest out (a versioned Depends would).

Everything here is pure text manipulation, unit-tested without root.
"""

from __future__ import annotations

import re

from guestpkg.build.versioning import LOCAL_SUFFIX, VersionChange
from guestpkg.debian.version import without_epoch
from guestpkg.errors import InputError

# The first line of debian/changelog: "source (version) distributions; urgency=..."
# (deb-changelog(5)).
CHANGELOG_HEAD = re.compile(
    r"^(?P<source>[a-z0-9][a-z0-9+.-]+) \((?P<version>[^ ()]+)\)(?P<rest>.*)$")


def upstream_part(version: str) -> str:
    """The version without its epoch and its last ``-revision`` (deb-version(7))."""
    bare = without_epoch(version)
    return bare.rsplit("-", 1)[0] if "-" in bare else bare


def local_version(guest_version: str) -> str:
    """The version a local build of *guest_version* gets."""
    return VersionChange(append=LOCAL_SUFFIX).version(guest_version)


def carried_guest_version(host_version: str) -> str:
    """The guest version a host of *host_version* must carry (epochs aside)."""
    return upstream_part(host_version)


def check_host_version(host_version: str, guest_version: str) -> None:
    """Raise unless *host_version* carries exactly *guest_version*."""
    want = without_epoch(guest_version)
    got = carried_guest_version(host_version)
    if got != want:
        raise InputError(
            f"host version {host_version} does not carry guest version {guest_version}: "
            f"its upstream part is {got}, it must be {want}",
            hint=f"give the host the version {want}-1 (then {want}-2 for host-only changes)")


def changelog_head(text: str, path: str = "debian/changelog") -> tuple[str, str]:
    """(source, version) from the first line of a debian/changelog."""
    first = text.split("\n", 1)[0]
    m = CHANGELOG_HEAD.match(first)
    if m is None:
        raise InputError(f"{path}:1: not a changelog entry header: {first!r}")
    return m.group("source"), m.group("version")


def add_depends(control: str, package: str, path: str = "debian/control") -> str:
    """Add an unversioned *package* to the Depends of every binary stanza of a
    debian/control text, keeping everything else (comments, order, folding) as it is.

    Binary stanzas are the ones with a ``Package:`` field (deb-src-control(5)).
    """
    out: list[str] = []
    for block in _blocks(control):
        out.append(_add_to_block(block, package) if _is_binary(block) else block)
    result = "".join(out)
    if result == control:
        raise InputError(f"{path}: no binary package stanza found")
    return result


def _blocks(text: str) -> list[str]:
    """Split into stanzas, keeping each blank line with the stanza before it."""
    blocks: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line.strip():
            current.append(line)
            blocks.append("".join(current))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append("".join(current))
    return blocks


def _is_binary(block: str) -> bool:
    return re.search(r"^Package:", block, re.M | re.I) is not None


def _add_to_block(block: str, package: str) -> str:
    lines = block.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if re.match(r"^Depends:", line, re.I):
            end = i + 1
            while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
                end += 1
            body = lines[end - 1].rstrip()
            # "Depends: a," (trailing comma) and an empty "Depends:" are both legal.
            separator = " " if body.endswith((",", ":")) else ", "
            lines[end - 1] = f"{body}{separator}{package}\n"
            return "".join(lines)
    for i, line in enumerate(lines):
        if re.match(r"^Package:", line, re.I):
            lines.insert(i + 1, f"Depends: {package}\n")
            return "".join(lines)
    raise AssertionError("binary stanza without Package")
