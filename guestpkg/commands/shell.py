# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg shell [--buildroot NAME] [--network] [-- CMD...]``: a shell or a command
in a throwaway fork of a buildroot, under the same sandbox builds get."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from guestpkg.config import Config
from guestpkg.errors import UsageError
from guestpkg.sandbox import Bind, run_sandboxed

log = logging.getLogger(__name__)

DESCRIPTION = """\
Run a shell, or the command after "--", in a fresh copy-on-write fork of a base
buildroot, inside the sandbox that builds run in: no network (unless --network), the
build user (unless --as-root), no capabilities, no_new_privs, the seccomp filter.
Everything written inside is thrown away at the end.

Examples:
  guestpkg shell
  guestpkg shell --buildroot sid -- dpkg -l
  guestpkg shell --bind ~/src/hello:/build/hello -- ls /build/hello

The exit status is the command's (128+N if a signal N killed it, 124 at the --timeout
wall-clock limit, 125 if the sandbox could not be set up).
"""

DEFAULT_SHELL = ("/bin/bash", "-l")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-root", action="store_true",
                        help="run as root inside (still without capabilities)")
    parser.add_argument("--bind", action="append", default=[], metavar="SOURCE[:TARGET]",
                        help="show host path SOURCE read-only at TARGET (default: the "
                        "same path) inside; repeatable")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help='the command and its arguments, after "--" (default: a login '
                        "shell)")


def parse_bind(text: str) -> Bind:
    source, _, target = text.partition(":")
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"--bind {text}: {path} does not exist")
    return Bind(path, target or str(path))


def passwd_entry(root: Path, user: str) -> tuple[int, int, str] | None:
    """uid, gid and home of *user* in the root's /etc/passwd (passwd(5))."""
    try:
        lines = (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 6 and fields[0] == user:
            return int(fields[2]), int(fields[3]), fields[5]
    return None


def command_of(args: argparse.Namespace) -> tuple[str, ...]:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    return tuple(command) or DEFAULT_SHELL


def environment(user: str, home: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": home, "USER": user, "LOGNAME": user, "LC_ALL": "C.UTF-8",
           "SHELL": "/bin/bash"}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    return env


def run(config: Config, args: argparse.Namespace) -> int:
    from guestpkg.buildroot import fork, open_base_root

    base = open_base_root(config, config.buildroot)
    argv = command_of(args)
    binds = tuple(parse_bind(b) for b in args.bind)
    if args.as_root:
        uid, gid, home, user = 0, 0, "/root", "root"
    else:
        user = config.user
        uid, gid, home = passwd_entry(base.path, user) or (
            base.build_uid, base.build_uid, f"/home/{user}")
    with fork(config, base) as f:
        spec = f.spec(argv, env=environment(user, home), cwd=home, uid=uid, gid=gid,
                      network=config.network, binds=binds, interactive=True,
                      timeout_s=config.timeout_s if args.command else None)
        log.info("shell in a fork of buildroot %s (generation %s)", base.name,
                 base.generation)
        return run_sandboxed(spec, check=False)
