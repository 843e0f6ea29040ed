# SPDX-License-Identifier: GPL-2.0-or-later
"""Debian version numbers: ``[epoch:]upstream_version[-debian_revision]``.

deb-version(7) defines the format and the order: the epoch compares as a number, then
the upstream version and the revision compare piecewise, letters before non-letters
and ``~`` before everything, even the end of the string.  So ``1.0-1~local`` sorts
before ``1.0-1``, which is what lets an archive build of a revision supersede the
local build of the same revision.

This module is a thin typed layer over :class:`debian.debian_support.Version`, which
implements that order exactly as dpkg does.  File names of built packages never carry
the epoch (dpkg-genchanges(1), dpkg-name(1)): :func:`without_epoch` gives that form.
"""

from __future__ import annotations

from debian.debian_support import Version

from guestpkg.debian.deb822 import is_version
from guestpkg.errors import InputError

__all__ = ["Version", "compare", "parse", "upstream_version", "with_suffix", "without_epoch"]


def parse(text: str) -> Version:
    """Parse *text* strictly: python-debian accepts some strings dpkg refuses."""
    text = text.strip()
    if not is_version(text):
        raise InputError(f"not a valid Debian version: {text!r}",
                         hint="see deb-version(7) for the format")
    return Version(text)


def upstream_version(version: str | Version) -> str:
    """``1:2.10-3`` -> ``2.10``: what dpkg-source -x names the directory after."""
    parsed = version if isinstance(version, Version) else parse(version)
    return str(parsed.upstream_version)


def without_epoch(version: str | Version) -> str:
    """``1:2.10-3`` -> ``2.10-3``: the version as it appears in file names."""
    text = str(version)
    epoch, sep, rest = text.partition(":")
    return rest if sep and epoch.isdigit() else text


def with_suffix(version: str | Version, suffix: str) -> str:
    """Append *suffix* (``~local``) to the version's last part, keeping the epoch."""
    result = f"{version}{suffix}"
    parse(result)
    return result


def compare(a: str | Version, b: str | Version) -> int:
    """-1, 0 or 1, in dpkg's order (deb-version(7))."""
    va = a if isinstance(a, Version) else parse(a)
    vb = b if isinstance(b, Version) else parse(b)
    return (va > vb) - (va < vb)
