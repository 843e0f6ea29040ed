# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg rebuild HOST``: build and install a host's guest now, in the foreground.

This is the documented way out of every "stopped" state: a permanent failure, a
guest the user removed, or a wish to build again (e.g. after fixing the network).  It
clears the failure record and the user-removed flag, builds (unless ``--install-only``
and the .debs of the bundled version are there), and installs with ``apt-get``, which
resolves the guest's dependencies.  Consent still comes from debconf: without it,
``dpkg-reconfigure HOST`` is the way to give it.
"""

from __future__ import annotations

import argparse

from guestpkg.config import Config
from guestpkg.errors import SystemStateError, UsageError
from guestpkg.host.layout import check_host_name, host_paths
from guestpkg.host.lifecycle import Mode, process_host, request_rebuild, say

DESCRIPTION = """\
Build the guest of the host package HOST and install it, now and in the foreground.
Clears a failure record (also a permanent failure) and the flag that keeps a guest the
user removed from coming back.  Needs the user's consent (dpkg-reconfigure HOST).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("--install-only", action="store_true",
                        help="install the already built .debs if they are the bundled version")


def run(config: Config, args: argparse.Namespace) -> int:
    host = check_host_name(args.host)
    paths = host_paths(config, host)
    if not paths.manifest.is_file():
        raise UsageError(f"{host} is not an installed host package ({paths.manifest} is "
                         "missing)", hint="guestpkg status lists the host packages")
    request_rebuild(config, host)
    outcome = process_host(config, host, Mode.COMMAND, force_build=not args.install_only)
    say(outcome.message)
    if not outcome.ok:
        raise SystemStateError(outcome.message)
    return 0
