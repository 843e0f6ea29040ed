# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``guestpkg`` command: argument parsing from tables, and the one place where
errors become messages and exit codes.

Each subcommand lives in ``guestpkg/commands/<module>.py`` and provides
``DESCRIPTION`` (the --help text), ``add_arguments(parser)`` and
``run(config, args) -> int``; its one-line help is in :data:`COMMANDS`.  Modules are
imported only when their command runs, so ``guestpkg`` starts fast (the APT hook
depends on that).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from guestpkg import __version__, config
from guestpkg.errors import GuestpkgError, Interrupted
from guestpkg.log import setup_logging
from guestpkg.text import printable

log = logging.getLogger("guestpkg")


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


#: The subcommands, in the order --help lists them.
COMMANDS: tuple[Command, ...] = (
    Command("build", "build", "build a Debian source package in a throwaway sandboxed fork"),
    Command("shell", "shell", "run a shell or command in a throwaway sandboxed fork"),
    Command("buildroot", "buildroot", "create, update, list and remove base buildroots"),
    Command("cache", "cache", "list and prune cached build-dependency layers"),
    Command("fetch", "fetch", "download and verify the upstream tarballs of a source tree"),
    Command("upstream-check", "upstream_check", "report the newest upstream version"),
    Command("dcfpkg", "dcfpkg", "create, inspect, verify and extract dcfpkg packages"),
    Command("recipe", "recipe", "check, list and draw a tree of recipes"),
    Command("buildhost", "buildhost", "list, serve as and watch the buildhosts of recipe builds"),
    Command("trust", "trust", "manage signing keys, signatures and the trust store"),
    Command("status", "status", "show each host package's consent, versions and state"),
    Command("rebuild", "rebuild", "build and install the guest of a host package now"),
    Command("forget", "forget", "drop guestpkg's state for a host package"),
    Command("new-host", "new_host", "scaffold a host package from a guest source tree"),
    Command("hook", "hook", "entry points for APT and maintainer scripts (internal)"),
)


def _load(command: Command) -> ModuleType:
    return importlib.import_module(f"guestpkg.commands.{command.module}")


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guestpkg",
        description="Build Debian packages in a safe sandbox, and build and install the "
        "guest packages that host (installer) packages carry. See guestpkg(1).",
    )
    parser.add_argument("--version", action="version", version=f"guestpkg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show more of what happens (twice: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="show only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported; the others just list their help.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for command in COMMANDS:
        if command.name != chosen:
            sub.add_parser(command.name, help=command.help)
            continue
        module = _load(command)
        p = sub.add_parser(command.name, help=command.help,
                           description=getattr(module, "DESCRIPTION", command.help),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        config.add_options(p, command.name)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        cfg = config.load(config.cli_values(args))
        setup_logging(cfg, args.verbose, args.quiet, args.command)
        return int(args._module.run(cfg, args) or 0)
    except GuestpkgError as e:
        return report(e)
    except KeyboardInterrupt:
        return report(Interrupted("interrupted"))
    except BrokenPipeError:
        return 141
    except Exception:  # the one place where anything else is caught: it is a bug
        log.debug("unexpected error", exc_info=True)
        print("guestpkg: this is a bug in guestpkg; please report it with this traceback:",
              file=sys.stderr)
        print(printable(traceback.format_exc()), end="", file=sys.stderr)
        return 70


def report(error: GuestpkgError) -> int:
    """The error for the user.  Messages carry what servers, files and builds chose
    (a URL, a reason phrase, a file name, output): escaped, never raw on a terminal."""
    log.debug("error: %s", error, exc_info=True)
    print(f"guestpkg: error: {printable(error.message)}", file=sys.stderr)
    if error.output_tail:
        print("guestpkg: last lines of output:", file=sys.stderr)
        print(printable(error.output_tail), file=sys.stderr)
    if error.hint:
        print(f"guestpkg: hint: {printable(error.hint)}", file=sys.stderr)
    return error.exit_code
