# SPDX-License-Identifier: GPL-2.0-or-later
"""Version order as uscan sorts candidates: dpkg's algorithm, lenient about syntax.

uscan sorts with ``Dpkg::Version->new($string, check => 0)``, which accepts strings
that deb-version(7) forbids (underscores, a leading letter) and still orders them the
way dpkg does: the epoch numerically, then upstream version and revision piece by
piece, non-digits by a character order where letters sort before other characters and
``~`` before everything, even the end.  python-debian's parser refuses such strings,
so this is the ``verrevcmp`` of dpkg's lib/dpkg/version.c, in Python.  Pure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha() and char.isascii():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep or not epoch.isdigit():
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch), upstream, revision


def compare(a: str, b: str) -> int:
    """<0, 0, >0 as *a* sorts before, with, after *b* (Dpkg::Version, check => 0)."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def compare_upstream(a: str, b: str) -> int:
    """Compare two upstream versions as uscan does: as ``1:<version>-0``."""
    return compare(f"1:{a}-0", f"1:{b}-0")


def newest_first(items: Sequence[T], key: Callable[[T], str],
                 upstream: bool = False) -> list[T]:
    """*items* sorted newest first by the version *key* gives; stable, like Perl's sort."""
    cmp = compare_upstream if upstream else compare

    def newer_first(x: T, y: T) -> int:
        return cmp(key(y), key(x))
    return sorted(items, key=functools.cmp_to_key(newer_first))
