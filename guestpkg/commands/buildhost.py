# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg buildhost list``: the buildhosts recipe builds may be spread over."""

from __future__ import annotations

import argparse

from guestpkg.config import Config

DESCRIPTION = """\
Buildhosts are the machines a recipe build is spread over (guestpkg recipe build
--buildhosts).  They are listed in the buildhosts file (setting buildhosts, default
/etc/guestpkg/buildhosts), one deb822 stanza per host:

    Name: builder1
    Architectures: x86_64 i586
    Slots: 2
    Public-Key: /etc/guestpkg/buildhosts.d/builder1.pub

  list                     each host: its architectures, slots and key id
                           (see docs/buildhosts.md)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the buildhosts file")


def run(config: Config, args: argparse.Namespace) -> int:
    from guestpkg.buildhost.hosts import read_buildhosts
    from guestpkg.dcfpkg.keys import read_public_key

    for host in read_buildhosts(config.buildhosts):
        key = read_public_key(host.public_key)
        print(f"{host.name:20} {' '.join(host.architectures):14} slots {host.slots:<3} "
              f"key {key.key_id} ({host.public_key})")
    return 0
