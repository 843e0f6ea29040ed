# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg upstream-check``: the newest upstream version against the packaged one.

The equivalent of ``uscan --report`` (``--json``: one record per tarball, with uscan
--dehs's field names).  Nothing is downloaded but the listing pages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from guestpkg.config import Config
from guestpkg.fetch import plan
from guestpkg.text import printable

DESCRIPTION = """\
Read SOURCE_DIR/debian/watch, find the newest upstream release of every tarball it
names, and report it against the upstream version in SOURCE_DIR/debian/changelog (as
uscan --report does).  Exit status 0 either way; --json prints machine-readable records.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source_dir", metavar="SOURCE_DIR", nargs="?", default=".",
                        type=Path, help="the source tree with debian/ (default: .)")
    parser.add_argument("--json", action="store_true", help="print JSON records")


def run(config: Config, args: argparse.Namespace) -> int:
    result = plan(config, args.source_dir.resolve(), download=False)
    records = result.report()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    # the versions and URLs are what the upstream's pages say: escaped
    for record in records:
        name = record["package"] + (f" ({record['component']})" if record["component"] else "")
        print(printable(f"{name}: packaged {record['debian-mangled-uversion']}, upstream "
                        f"{record['upstream-version']}: {record['status']}"))
        print(printable(f"  {record['upstream-url']}"))
    for note in result.notes:
        print(printable(f"note: {note}"))
    return 0
