# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg build [OPTIONS] [SOURCE_DIR | FILE.dsc] [OUTPUT_DIR]``: build a Debian
source package in a throwaway sandboxed fork of a base buildroot."""

from __future__ import annotations

import argparse
from pathlib import Path

from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.build.extras import ExtraSources, check_arch, parse_repository
from guestpkg.build.versioning import VersionChange
from guestpkg.config import Config
from guestpkg.debian.control import BuildMode
from guestpkg.errors import UsageError

DESCRIPTION = """\
Build a Debian source package (an unpacked tree, default the current directory, or a
.dsc) the way pbuilder and deckdebuild do, faster and safer:

  1. fork the base buildroot (--buildroot; see guestpkg buildroot create);
  2. install the build dependencies with apt in a step that has network and the
     capabilities apt needs, from the buildroot's own apt sources, and keep them as
     a cached layer: a later build with the same resolved set runs no apt at all
     (guestpkg cache list|clean); a new layer is made on the cached one closest to
     it, from the .debs downloaded before; --extra-package and --extra-repository
     add a local repository of the given .debs and the given repositories (verified
     with their keys; an https server checked against this system's CA set and
     --extra-repository-ca), --host-arch the host architecture's packages (multiarch)
     and the cross toolchain: each makes a layer of its own (an --extra-package
     build's on the cached layer of the same build without it);
  3. copy the source to /build/<source>-<upstream version>, owned by the build user
     (with --append-to-version or --binNMU: a new changelog entry, as sbuild makes);
  4. run dpkg-buildpackage as that user, without network or capabilities, with
     SOURCE_DATE_EPOCH from debian/changelog, TZ=UTC, C.UTF-8 and a fixed path;
  5. log everything to <source>_<version>_<arch>.build while showing it, shaped like
     sbuild's: its header, its sections, ending with the Build environment and the
     Summary (Status:, Build-Time:, ...);
     with --run-lintian, --run-piuparts and --run-autopkgtest, lintian, piuparts and
     the autopkgtests run after the build, each in a fork of its own (Lintian: pass,
     Piuparts: pass, Autopkgtest: fail, ... in the Summary; setting post_build_fail
     decides whether a failure fails the build);
  6. copy the .debs, .udebs, .buildinfo, .changes and the .build log to OUTPUT_DIR
     (default: the directory above SOURCE_DIR, or the .dsc's directory), all or none.

With --shell-on-failure, a failed dpkg-buildpackage leaves you in a shell in its fork,
as the build user, under the same sandbox; the fork goes when you exit it.

Exit status 0 on success, 1 if the build or its dependencies failed (the log's last
lines and its path are shown), 2 on usage errors.
"""

MODES = {"binary": BuildMode.BINARY, "source": BuildMode.SOURCE, "full": BuildMode.FULL,
         "arch_only": BuildMode.ARCH_ONLY, "indep_only": BuildMode.INDEP_ONLY}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", type=Path, default=Path("."),
                        metavar="SOURCE_DIR|FILE.dsc",
                        help="the source tree or .dsc to build (default: .)")
    parser.add_argument("output_dir", nargs="?", type=Path, metavar="OUTPUT_DIR",
                        help="where the results go (default: ..)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("-b", "--binary", dest="mode", action="store_const", const="binary",
                       help="binary packages only (the default; dpkg-buildpackage -b)")
    modes.add_argument("-S", "--source", dest="mode", action="store_const", const="source",
                       help="the source package only (dpkg-buildpackage -S)")
    modes.add_argument("-F", "--full", dest="mode", action="store_const", const="full",
                       help="source and binary packages (dpkg-buildpackage -F)")
    modes.add_argument("-B", "--arch-only", dest="mode", action="store_const",
                       const="arch_only", help="architecture-dependent binaries only (-B)")
    modes.add_argument("-A", "--indep-only", dest="mode", action="store_const",
                       const="indep_only", help="Architecture: all binaries only (-A)")
    parser.add_argument("-P", "--build-profiles", default="", metavar="PROFILES",
                        help="comma-separated build profiles (DEB_BUILD_PROFILES)")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set a variable in the build environment (repeatable), "
                        "e.g. DEB_BUILD_OPTIONS='nocheck parallel=2'")
    parser.add_argument("--append-to-version", default="", metavar="SUFFIX",
                        help="build as VERSION+SUFFIX, from a new changelog entry (sbuild's "
                        "option of the same name)")
    parser.add_argument("--binNMU", type=int, dest="binnmu", metavar="N",
                        help="a binary-only non-maintainer upload: version +bN and a new "
                        "changelog entry with binary-only=yes (sbuild's option)")
    parser.add_argument("--binNMU-changelog", dest="binnmu_changelog", default="",
                        metavar="TEXT", help="the binNMU's changelog text (with --binNMU)")
    parser.add_argument("--ccache", action="store_true",
                        help="compile through ccache, its cache kept in VARDIR/ccache/"
                        "BUILDROOT/SOURCE (one per source package)")
    parser.add_argument("--extra-package", action="append", default=[], type=Path,
                        metavar="FILE.deb|DIR", help="make FILE.deb, or the .debs in DIR, "
                        "available to apt for the build dependencies, as a local "
                        "repository (repeatable; sbuild's option)")
    parser.add_argument("--extra-repository", action="append", default=[],
                        metavar="'deb URI SUITE COMPONENT...'",
                        help="an apt repository (http or https) for the build dependencies, "
                        "fetched with network and verified with --extra-repository-key "
                        "(repeatable; a 'deb-src ...' line is checked and not used)")
    parser.add_argument("--extra-repository-key", action="append", default=[], type=Path,
                        metavar="FILE", help="an OpenPGP public key (armored or binary) "
                        "that --extra-repository's Release files are signed with")
    parser.add_argument("--extra-repository-ca", type=Path, metavar="FILE.pem",
                        help="also trust the CA certificates in FILE.pem (PEM) for an https "
                        "--extra-repository's server, in this build only, besides this "
                        "system's /etc/ssl/certs/ca-certificates.crt")
    parser.add_argument("--host-arch", default="", metavar="ARCH",
                        help="cross-build for ARCH with Debian's cross toolchain "
                        "(crossbuild-essential-ARCH) and ARCH's libraries from multiarch; "
                        "profiles cross,nocheck unless -P is given")
    parser.add_argument("--run-lintian", action="store_true",
                        help="after the build, run lintian on the .changes in a fork of its "
                        "own (lintian comes in a cached layer); Lintian: pass|info|warn|fail "
                        "in the log's Summary")
    parser.add_argument("--run-piuparts", action="store_true",
                        help="after the build, run piuparts on the .changes in a fork of its "
                        "own: install, remove and purge in a copy of the buildroot, "
                        "dependencies from a local repository, no network; uid 0 of the "
                        "fork's user namespace may chroot and mount there (id_mapping "
                        "userns only)")
    parser.add_argument("--run-autopkgtest", action="store_true",
                        help="after the build, run the source's autopkgtests on the built "
                        ".debs in a fork of its own, autopkgtest's null testbed, no network")
    parser.add_argument("--shell-on-failure", action="store_true",
                        help="if dpkg-buildpackage fails, an interactive shell in the failed "
                        "build's fork, as the build user, in the same sandbox (no network, no "
                        "capabilities); the fork is removed when the shell exits")
    parser.add_argument("--quiet-build", action="store_true",
                        help="do not show the build log on the console (it is still written)")


def default_output_dir(source: Path) -> Path:
    """deckdebuild's default: where dpkg-buildpackage itself would put the results,
    the directory above a source tree, or the directory of a .dsc."""
    return source.resolve().parent


def parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--env wants NAME=VALUE, not {item!r}")
        env[name] = value
    return env


def run(config: Config, args: argparse.Namespace) -> int:
    source: Path = args.source
    output_dir: Path = args.output_dir or default_output_dir(source)
    options = BuildOptions(
        mode=MODES[args.mode or "binary"],
        environment=parse_env(args.env),
        profiles=tuple(p for p in args.build_profiles.split(",") if p),
        tee=not args.quiet_build,
        version_change=VersionChange(args.append_to_version, args.binnmu,
                                     args.binnmu_changelog),
        ccache=args.ccache,
        extras=ExtraSources(tuple(args.extra_package), tuple(args.extra_repository),
                            tuple(args.extra_repository_key), args.extra_repository_ca),
        host_arch=check_arch(args.host_arch) if args.host_arch else "",
        shell_on_failure=args.shell_on_failure,
        checks=frozenset(name for name, wanted in (("lintian", args.run_lintian),
                                                   ("piuparts", args.run_piuparts),
                                                   ("autopkgtest", args.run_autopkgtest))
                         if wanted),
    )
    for check in ("autopkgtest", "piuparts"):
        if getattr(args, f"run_{check}") and args.host_arch:
            raise UsageError(f"--run-{check} cannot test a cross build (--host-arch): its "
                             "packages do not run on this machine")
    for line in args.extra_repository:
        parse_repository(line)      # a malformed line is refused before anything starts
    result = build_package(config, source, output_dir, options)
    print(f"built {result.source} {result.version}: {len(result.artifacts)} files in "
          f"{output_dir}" + (" (cached build-dependency layer)" if result.layer_cached else ""))
    return 0
