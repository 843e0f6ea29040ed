# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg fetch``: the upstream tarball(s) of a source tree, verified and placed.

The equivalent of ``uscan --download-current-version``, except that nothing is kept
unless its SHA256 matches a pinned one (see :mod:`guestpkg.fetch`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from guestpkg.config import Config
from guestpkg.errors import UsageError
from guestpkg.fetch import fetch_upstream

DESCRIPTION = """\
Find the upstream tarball(s) of the version in SOURCE_DIR/debian/changelog through
SOURCE_DIR/debian/watch (as uscan --download-current-version does), download them into
the content-addressed cache under CACHEDIR/sources, and keep them only if their SHA256
matches the pinned one.  Then place <source>_<version>.orig[-<component>].tar.<ext>
in DIR (default: the parent of SOURCE_DIR) and print the paths placed.

Give one --sha256 per tarball: HEX for the tarballs in watch-file order (main first),
or COMPONENT:HEX.  Without a pin nothing is downloaded.  Signature options (pgp*) and
repacking options of the watch file are ignored: the pinned SHA256 supersedes them.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source_dir", metavar="SOURCE_DIR", nargs="?", default=".",
                        type=Path, help="the source tree with debian/ (default: .)")
    parser.add_argument("--destdir", metavar="DIR", type=Path, default=None,
                        help="where to place the orig tarballs (default: SOURCE_DIR/..)")
    parser.add_argument("--sha256", metavar="[COMPONENT:]HEX", action="append", default=[],
                        help="the pinned SHA256 of a tarball; repeat for components")


def pins(values: list[str]) -> dict[str, str] | list[str]:
    """``HEX`` values in order, or ``COMPONENT:HEX`` (``:HEX`` is the main tarball)."""
    if not values:
        raise UsageError("no --sha256 given",
                         hint="guestpkg keeps only downloads whose SHA256 is pinned; "
                         "`guestpkg upstream-check` shows the URL to check by hand")
    if all(":" not in v for v in values):
        return values
    mapping: dict[str, str] = {}
    for value in values:
        component, sep, digest = value.rpartition(":")
        if not sep or not re.fullmatch(r"[0-9A-Fa-f]{64}", digest):
            raise UsageError(f"--sha256 {value}: expected HEX or COMPONENT:HEX")
        mapping[component] = digest
    return mapping


def run(config: Config, args: argparse.Namespace) -> int:
    source_dir = args.source_dir.resolve()
    destdir = (args.destdir or source_dir.parent).resolve()
    for path in fetch_upstream(config, source_dir, destdir, pins(args.sha256)):
        print(path)
    return 0
