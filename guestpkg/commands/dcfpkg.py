# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg dcfpkg create|info|list|verify|extract``: make and read dcfpkg packages."""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path

from guestpkg.config import Config
from guestpkg.dcfpkg.format import DIRECTORY, HARDLINK, SYMLINK, Entry, Metadata
from guestpkg.dcfpkg.reader import (
    ReaderPolicy,
    extract,
    open_input,
    read_manifest,
    read_metadata,
    verify,
)
from guestpkg.dcfpkg.trust import Policy, TrustSettings, TrustStore
from guestpkg.dcfpkg.writer import write_dcfpkg
from guestpkg.errors import UsageError
from guestpkg.text import printable

HELP = "create, inspect, verify and extract dcfpkg packages"
DESCRIPTION = """\
Make and read dcfpkg packages (see dcfpkg(5) and docs/dcfpkg.md).

  create TREE -o OUT ...   pack TREE (the package root) deterministically
  info FILE                print the metadata stanza
  list FILE                print the manifest (checked), like ls -l
  verify FILE              read everything and check every digest; write nothing
  extract FILE DIR         unpack into DIR, which must not exist; all or nothing

The reader refuses absolute paths, '..', links leaving the package root, hard links
to anything but earlier regular files, devices and FIFOs, setuid/setgid files (unless
--dcfpkg-allow-setuid), and anything over the size and entry caps.  With
--repository, extract first checks the package's signatures (guestpkg trust verify).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="pack a tree")
    create.add_argument("tree", type=Path, help="the package root (a DESTDIR)")
    create.add_argument("-o", "--output", type=Path, required=True, help="the .dcfpkg to write")
    create.add_argument("--name", required=True, help="Package")
    create.add_argument("--version", dest="pkg_version", required=True, help="Version")
    create.add_argument("--release", default="1", help="Release (default: 1)")
    create.add_argument("--arch", required=True, help="Architecture (a Debian name, or all)")
    create.add_argument("--depends", default="", help="Depends (Debian relation syntax)")
    create.add_argument("--build-depends", default="", help="Build-Depends")
    create.add_argument("--source", default="", help="the recipe or source it came from")
    create.add_argument("--description", default="", help="one-line summary")
    create.add_argument("--build-date", type=int, default=None,
                        help="Build-Date and every mtime (default: $SOURCE_DATE_EPOCH)")
    create.add_argument("--prefix", default="", help="place TREE at this path in the package")
    create.add_argument("--keep-owners", action="store_true",
                        help="keep the tree's uids and gids instead of 0:0")
    for name, text in (("info", "print the metadata"), ("list", "print the manifest"),
                       ("verify", "check every digest")):
        sub.add_parser(name, help=text).add_argument("file", type=Path)
    ex = sub.add_parser("extract", help="unpack into a new directory")
    ex.add_argument("file", type=Path)
    ex.add_argument("directory", type=Path)
    ex.add_argument("--repository", help="first verify the signatures in this repository")


def policy(config: Config) -> ReaderPolicy:
    return ReaderPolicy(allow_setuid=config.dcfpkg_allow_setuid,
                        max_entries=config.dcfpkg_max_entries,
                        max_installed_bytes=config.dcfpkg_max_size)


def say(text: str) -> None:
    """Print a line that carries a package's text (paths, targets, fields: anything a
    package's author chose), control characters escaped (guestpkg.text)."""
    print(printable(text))


def store(config: Config) -> TrustStore:
    """The trust store as the settings configure it (``guestpkg trust``, and
    ``extract --repository``)."""
    return TrustStore(config.trustdir, TrustSettings(
        policy=Policy.parse(config.trust_policy), promotion_s=config.trust_promotion_time,
        max_archive_bytes=config.trust_max_archive_size,
        max_entries=config.trust_max_entries))


def run(config: Config, args: argparse.Namespace) -> int:
    if args.action == "create":
        return create(config, args)
    if args.action == "info":
        with open_input(args.file) as f:
            say(read_metadata(f, str(args.file)).to_bytes()
                .decode("utf-8", errors="backslashreplace").split("\n", 1)[1].rstrip("\n"))
    elif args.action == "list":
        _, entries = read_manifest(args.file, policy(config))
        for entry in entries:
            say(describe(entry))
    elif args.action == "verify":
        meta = verify(args.file, policy(config))
        say(f"{args.file}: OK: {meta.package} {meta.full_version} {meta.architecture}, "
            f"{meta.entries} entries, {meta.installed_size} bytes")
    else:
        verified = None
        if args.repository:
            verdict = store(config).verify_package(args.file, args.repository, int(time.time()))
            say(f"{args.file}: signatures accepted: "
                + ", ".join(f"{k} ({level})" for k, level in verdict.signers))
            verified = verdict.metadata
        meta = extract(args.file, args.directory, policy(config), expect=verified)
        say(f"extracted {meta.package} {meta.full_version} into {args.directory}")
    return 0


def create(config: Config, args: argparse.Namespace) -> int:
    build_date = args.build_date
    if build_date is None:
        if "SOURCE_DATE_EPOCH" not in os.environ:
            raise UsageError("no build date", hint="set SOURCE_DATE_EPOCH or pass --build-date"
                             ": the same tree must give the same bytes")
        build_date = int(os.environ["SOURCE_DATE_EPOCH"])
    meta = Metadata(package=args.name, version=args.pkg_version, release=args.release,
                    architecture=args.arch, build_date=build_date, depends=args.depends,
                    build_depends=args.build_depends, source=args.source,
                    description=args.description)
    try:
        meta.check_identity()
    except ValueError as e:
        raise UsageError(str(e)) from e
    if not args.tree.is_dir():
        raise UsageError(f"{args.tree}: not a directory")
    final = write_dcfpkg(args.tree, meta, args.output, level=config.dcfpkg_level,
                         keep_owners=args.keep_owners, prefix=args.prefix)
    print(f"{args.output}: {final.entries} entries, {final.installed_size} bytes, "
          f"{final.payload_size} compressed")
    return 0


def describe(entry: Entry) -> str:
    """``ls -l``-like: mode, owner, size, path and link target."""
    kind = {DIRECTORY: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}.get(entry.kind, stat.S_IFREG)
    mode = stat.filemode(kind | entry.mode)
    path = entry.path.decode("utf-8", errors="backslashreplace")
    target = entry.target.decode("utf-8", errors="backslashreplace") if entry.target else ""
    suffix = f" -> {target}" if entry.kind == SYMLINK else \
        f" link to {target}" if entry.kind == HARDLINK else ""
    return f"{mode} {entry.uid}/{entry.gid} {entry.size:>10} {path}{suffix}"
