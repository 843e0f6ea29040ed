# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg trust keygen|add-key|promote|demote|sign|import|verify|list``."""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from guestpkg.commands.dcfpkg import policy, say, store
from guestpkg.config import Config
from guestpkg.dcfpkg.keys import (
    ANY,
    LEVELS,
    Level,
    LevelLog,
    find_key,
    generate,
    load_keys,
    read_public_key,
    read_secret_key,
    store_key,
    write_keypair,
)
from guestpkg.dcfpkg.reader import open_input, verify
from guestpkg.dcfpkg.sigdb import Archive, parse_archive, parse_time, sign, valid_name
from guestpkg.dcfpkg.trust import effective_level, was_added
from guestpkg.errors import InputError, UsageError
from guestpkg.fsutil import atomic_write

HELP = "manage signing keys, signatures and the trust store"
DESCRIPTION = """\
Out-of-band Ed25519 signatures of dcfpkg packages and the keys that make them count
(see dcfpkg(5) and docs/dcfpkg.md section 7).  The store is TRUSTDIR:
keys/{trusted,senior,junior,untrusted}/, pkgs/<repository>.sigs, levels.log.

  keygen NAME                    write NAME.key (secret, mode 0600) and NAME.pub
  add-key FILE.pub LEVEL         add a public key at a level (--repository/--package
                                 limit what it may sign; shell patterns)
  promote KEY-ID LEVEL           raise a key, globally or for one --repository/--package
  demote KEY-ID LEVEL            lower it; a key demoted to untrusted stays untrusted
  sign FILE --key K ...          sign a dcfpkg; appends to --archive or prints the entry
  import ARCHIVE                 check a signature archive and make it the stored one
  verify FILE --repository R     accept a dcfpkg only if its signatures meet the policy
  list                           keys, their levels and the stored archives

Every level change is recorded in TRUSTDIR/levels.log (hash-chained, append-only).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("keygen", help="make a key pair")
    p.add_argument("name", type=Path, help="writes NAME.key and NAME.pub")
    p.add_argument("--comment", default="", help="who the key belongs to")
    p = sub.add_parser("add-key", help="add a public key at a level")
    p.add_argument("file", type=Path)
    # Plain names: argparse shows choices with repr() in its errors.
    p.add_argument("level", choices=[level.value for level in LEVELS])
    p.add_argument("--repository", action="append", default=[], help="may sign here only")
    p.add_argument("--package", action="append", default=[], help="may sign these only")
    for name in ("promote", "demote"):
        p = sub.add_parser(name, help=f"{name} a key")
        p.add_argument("key_id")
        p.add_argument("level", choices=[level.value for level in LEVELS])
        p.add_argument("--repository", default=ANY, help="only in this repository")
        p.add_argument("--package", default=ANY, help="only for this package")
    p = sub.add_parser("sign", help="sign a dcfpkg")
    p.add_argument("file", type=Path)
    p.add_argument("--key", type=Path, required=True, help="the .key file")
    p.add_argument("--repository", required=True)
    p.add_argument("--archive-version", type=int, required=True,
                   help="the version of the archive this signature is for")
    p.add_argument("--expires", required=True, help="UTC date or time, e.g. 2027-06-30")
    p.add_argument("--archive", type=Path, help="append to this archive file")
    p = sub.add_parser("import", help="import a signature archive")
    p.add_argument("archive", type=Path)
    p = sub.add_parser("verify", help="check a dcfpkg's signatures")
    p.add_argument("file", type=Path)
    p.add_argument("--repository", required=True)
    sub.add_parser("list", help="list keys and archives")


def run(config: Config, args: argparse.Namespace) -> int:
    now = int(time.time())
    handlers = {"keygen": keygen, "add-key": add_key, "promote": change_level,
                "demote": change_level, "sign": sign_file, "import": import_archive,
                "verify": verify_file, "list": list_store}
    handlers[args.action](config, args, now)
    return 0


def keygen(config: Config, args: argparse.Namespace, now: int) -> None:
    secret_path, public_path = write_keypair(generate(args.comment), args.name)
    print(f"wrote {secret_path} (keep it secret) and {public_path}")


def add_key(config: Config, args: argparse.Namespace, now: int) -> None:
    key = read_public_key(args.file)
    for name in args.repository + args.package:
        if not name or " " in name:
            raise UsageError(f"bad pattern {name!r}")
    if args.repository or args.package:
        from dataclasses import replace

        key = replace(key, repositories=tuple(args.repository) or (ANY,),
                      packages=tuple(args.package) or (ANY,))
    if key.public_key in load_keys(config.trustdir):
        raise UsageError(f"key {key.key_id} is already in the store",
                         hint="use guestpkg trust promote or demote to change its level")
    level = Level(args.level)
    path = store_key(config.trustdir, key, level)
    LevelLog(config.trustdir).append(now, ("add", key.key_id, level, ANY, ANY, "-"))
    say(f"added {key.key_id} as {level}: {path}")


def change_level(config: Config, args: argparse.Namespace, now: int) -> None:
    key = find_key(config.trustdir, args.key_id)
    log = LevelLog(config.trustdir)
    for name in (args.repository, args.package):
        if name != ANY and not valid_name(name):
            raise UsageError(f"bad repository or package name {name!r}")
    current = effective_level(key, log.read(), args.repository, args.package, now,
                              config.trust_promotion_time)
    level = Level(args.level)
    raising = level.rank > current.rank
    if raising != (args.action == "promote") or level == current:
        raise UsageError(f"{key.key_id} is {current} there: can't {args.action} it to "
                         f"{level}")
    if current == Level.UNTRUSTED:
        raise UsageError(f"{key.key_id} is untrusted: a demoted key stays untrusted",
                         hint="make a new key")
    if args.repository == ANY and args.package == ANY:
        store_key(config.trustdir, key, level)
    log.append(now, (args.action, key.key_id, level, args.repository, args.package,
                     "manual"))
    say(f"{args.action}d {key.key_id} to {level} "
        f"(repository {args.repository}, package {args.package})")


def sign_file(config: Config, args: argparse.Namespace, now: int) -> None:
    if not valid_name(args.repository):
        raise UsageError(f"bad repository name {args.repository!r}")
    try:
        expires = parse_time(args.expires)
    except ValueError as e:
        raise UsageError(str(e)) from e
    if expires <= now:
        raise UsageError(f"--expires {args.expires} is in the past")
    meta = verify(args.file, policy(config))  # sign only what a reader accepts
    with open_input(args.file) as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = f.tell()
    signature = sign(read_secret_key(args.key), meta, size, digest, args.repository,
                     args.archive_version, expires)
    if args.archive is None:
        print(Archive(args.repository, args.archive_version, (signature,)).to_bytes()
              .decode().split("\n\n", 1)[1], end="")
        return
    archive = Archive(args.repository, args.archive_version)
    if args.archive.exists():
        archive = parse_archive(args.archive.read_bytes(), str(args.archive),
                                config.trust_max_entries)
        if (archive.repository, archive.archive_version) != (args.repository,
                                                             args.archive_version):
            raise InputError(f"{args.archive} is for {archive.repository} version "
                             f"{archive.archive_version}, not {args.repository} version "
                             f"{args.archive_version}")
    archive = Archive(archive.repository, archive.archive_version,
                      (*archive.signatures, signature))
    atomic_write(args.archive, archive.to_bytes())
    say(f"signed {meta.package} {meta.full_version} into {args.archive}")


def import_archive(config: Config, args: argparse.Namespace, now: int) -> None:
    archive = store(config).import_archive(args.archive, now)
    say(f"imported {archive.repository} version {archive.archive_version}: "
        f"{len(archive.signatures)} signatures")


def verify_file(config: Config, args: argparse.Namespace, now: int) -> None:
    verdict = store(config).verify_package(args.file, args.repository, now)
    say(f"{args.file}: {verdict.package} {verdict.version} accepted in {verdict.repository}"
        f" by " + ", ".join(f"{key} ({level})" for key, level in verdict.signers))


def list_store(config: Config, args: argparse.Namespace, now: int) -> None:
    events = LevelLog(config.trustdir).read()
    for key in sorted(load_keys(config.trustdir).values(), key=lambda k: (k.level, k.key_id)):
        say(f"{key.level:9} {key.key_id} repositories={','.join(key.repositories)} "
            f"packages={','.join(key.packages)} {key.comment}")
        if not was_added(key, events):
            say(f"{'':9}   no \"add\" in levels.log: counts as untrusted")
        for e in events:
            if e.key_id == key.key_id and not e.is_global:
                say(f"{'':9}   {e.action} {e.level} in {e.repository}/{e.package} "
                    f"at {time.strftime('%Y-%m-%d', time.gmtime(e.time))} ({e.note})")
    trust = store(config)
    for path in sorted((config.trustdir / "pkgs").glob("*.sigs")):
        archive = trust.stored_archive(path.stem)
        if archive is not None:
            say(f"archive {archive.repository} version {archive.archive_version}: "
                f"{len(archive.signatures)} signatures")
