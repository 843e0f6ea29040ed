# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg buildroot create|update|list|remove [NAME]``: manage base buildroots."""

from __future__ import annotations

import argparse
import os
import sys
import time

from guestpkg.buildroot import (
    create_base_root,
    list_base_roots,
    reap_buildroots,
    reap_forks,
    remove_base_root,
    update_base_root,
)
from guestpkg.config import Config
from guestpkg.fsutil import disk_usage_bytes

DESCRIPTION = """\
Manage the base buildroots that builds fork from.

  create [NAME]   make a buildroot with mmdebstrap --variant=buildd; by default of this
                  system's suite, architecture and Debian apt sources (--suite, --arch,
                  --mirror choose others)
  update [NAME]   make a new generation: a copy of the current one, apt-get update and
                  dist-upgrade inside the sandbox; builds running meanwhile keep theirs;
                  lists that can't be fetched are an error and change nothing
  list            name, suite, architecture, generation, size and age of each
  remove NAME     delete a buildroot; refused while a build uses it

NAME defaults to --buildroot (default: "default").  Roots live under VARDIR/buildroots.
Every run also removes what killed guestpkg runs left behind (forks, half-made roots).
"""

ACTIONS = ("create", "update", "list", "remove")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    parser.add_argument("name", nargs="?", help="the buildroot (default: --buildroot)")
    parser.add_argument("--include", action="append", default=[], metavar="PACKAGE",
                        help="create: also install PACKAGE (repeatable, or comma separated)")


def run(config: Config, args: argparse.Namespace) -> int:
    name = args.name or config.buildroot
    if os.geteuid() == 0 or os.access(config.vardir, os.W_OK):  # a normal user's own
        reap_forks(config)
        reap_buildroots(config)
    if args.action == "create":
        packages = tuple(p for item in args.include for p in item.split(",") if p)
        root = create_base_root(config, name, packages=packages)
        print(f"created buildroot {root.name} ({root.suite}, {root.arch}), "
              f"generation {root.generation}: {root.path}")
    elif args.action == "update":
        root = update_base_root(config, name)
        print(f"updated buildroot {root.name}, generation {root.generation}: {root.path}")
    elif args.action == "remove":
        if not args.name:
            raise_usage("remove needs the NAME of the buildroot")
        remove_base_root(config, name)
        print(f"removed buildroot {name}")
    else:
        print_list(config)
    return 0


def raise_usage(message: str) -> None:
    from guestpkg.errors import UsageError

    raise UsageError(message, hint="guestpkg buildroot remove NAME")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}T"


def human_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(seconds)}s"


def print_list(config: Config) -> None:
    roots = list_base_roots(config)
    if not roots:
        print(f"no buildroots in {config.vardir / 'buildroots'}; "
              "make one with: guestpkg buildroot create", file=sys.stderr)
        return
    rows = [("NAME", "SUITE", "ARCH", "GENERATION", "SIZE", "AGE")]
    now = time.time()
    for root in roots:
        rows.append((root.name, root.suite, root.arch, root.generation,
                     human_size(disk_usage_bytes(root.path)), human_age(now - root.updated)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                  strict=True)).rstrip())
