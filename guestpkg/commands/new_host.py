# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg new-host GUEST_SOURCE_DIR``: scaffold a host source package.

See :mod:`guestpkg.host.scaffold` for what is written, and guestpkg-host(7).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from guestpkg.config import Config
from guestpkg.debian.version import without_epoch
from guestpkg.host.layout import check_host_name
from guestpkg.host.scaffold import read_guest, scaffold

DESCRIPTION = """\
Make a complete host source package for the guest whose unpacked source tree is
GUEST_SOURCE_DIR.  Its orig tarball(s) must lie next to it (apt-get source
--download-only, uscan --download-current-version, or --fetch, which runs uscan):
their sizes and SHA256 go into the manifest the host pins.  The host's version is the
guest's full version plus "-1"; build it with dpkg-buildpackage (Build-Depends:
dh-sequence-guestpkg).
See guestpkg-host(7).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("guest", type=Path, metavar="GUEST_SOURCE_DIR")
    parser.add_argument("--host", help="the host package's name (default: GUEST-installer)")
    parser.add_argument("--fetch", action="store_true",
                        help="download a missing orig tarball with uscan "
                        "--download-current-version first")
    parser.add_argument("-o", "--output", type=Path,
                        help="the directory to create (default: HOST-VERSION beside "
                        "the current directory's entries)")


def run(config: Config, args: argparse.Namespace) -> int:
    guest = read_guest(args.guest)
    host = check_host_name(args.host or f"{guest.source}-installer")
    output = args.output or Path(f"{host}-{without_epoch(guest.version)}")
    scaffold(args.guest, output, host, fetch=args.fetch)
    print(f"wrote {output}: build it with (cd {output} && dpkg-buildpackage -b)")
    return 0
