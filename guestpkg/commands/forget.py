# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg forget HOST``: drop guestpkg's state for a host package.

For a host that is gone without its postrm having run, or a state file that can't be
read any more.  dpkg and debconf are not touched; the generated .debs are kept unless
``--debs`` is given.  If the host is still installed, its next configure (or
``dpkg-reconfigure HOST``) starts afresh.
"""

from __future__ import annotations

import argparse

from guestpkg.config import Config
from guestpkg.host.layout import check_host_name, host_paths
from guestpkg.host.lifecycle import forget

DESCRIPTION = """\
Forget what guestpkg knows about HOST: consent seen, versions, failures and the
user-removed flag (its state file and pending marker).  With --debs also delete the
generated .debs in /usr/src/HOST/.  dpkg and debconf are not touched.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("--debs", action="store_true", help="also delete the generated .debs")


def run(config: Config, args: argparse.Namespace) -> int:
    host = check_host_name(args.host)
    paths = host_paths(config, host)
    forget(config, host, debs=args.debs)
    print(f"forgot {host}" + (f" and deleted {paths.debs}" if args.debs else ""))
    return 0
