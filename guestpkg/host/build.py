# SPDX-License-Identifier: GPL-2.0-or-later
"""Building a host's guest: fetch and verify, make the source package, build it.

The steps, each a function:

0. what the build needs, before anything of the guest is downloaded:
   :func:`guestpkg.host.buildenv.check_build_needs` (what making the build environment
   needs), :func:`guestpkg.host.buildenv.ensure_buildroot` (the default buildroot, made
   the first time, updated when stale) and :func:`check_guest_build_dependencies`
   (apt can install the guest's build dependencies in it);
1. :func:`fetch_verified_upstream`: the guest's ``debian/watch`` finds the upstream
   tarballs of the manifest's guest version (uscan's ``--download-current-version``);
   each is accepted only with the SHA256 the manifest pins
   (:func:`guestpkg.fetch.fetch_watch` verifies while streaming and keeps nothing that
   does not match);
2. :func:`guestpkg.host.source.make_dsc`: the host's ``debian/`` plus those tarballs as
   a ``3.0 (quilt)`` source package, so the untrusted tarball is unpacked only inside
   the build sandbox;
3. :func:`guestpkg.build.deb.build_package` in its sandbox, with a new changelog
   entry at ``<version>~local`` (:func:`guestpkg.build.versioning.local_build`, the
   mechanism of ``--append-to-version``) and ``prepare_source`` adding the host to
   every binary package's Depends (:func:`prepare_guest_source`); when installing
   the build dependencies fails for a package the buildroot's lists and the mirror
   disagree on
   (:func:`lists_too_old`), the buildroot is updated and the build tried once more;
4. :func:`write_result_dcfpkg`: a dcfpkg of the build result (the .debs and the
   .buildinfo), kept beside them for inspection and signing out of band.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from guestpkg.build.deb import (
    BuildOptions,
    BuildResult,
    build_package,
    check_build_dependencies,
)
from guestpkg.build.inspect import check_identity
from guestpkg.build.layers import UnsatisfiableBuildDepends
from guestpkg.build.versioning import local_build
from guestpkg.config import Config
from guestpkg.dcfpkg import Metadata, write_dcfpkg
from guestpkg.debian.version import without_epoch
from guestpkg.errors import BuildFailed, InputError
from guestpkg.fetch import fetch_watch
from guestpkg.host import buildenv
from guestpkg.host.layout import HostPaths
from guestpkg.host.manifest import Manifest
from guestpkg.host.source import binary_packages, make_dsc
from guestpkg.host.versions import (
    add_depends,
    local_version,
    upstream_part,
)

log = logging.getLogger(__name__)


def fetch_verified_upstream(config: Config, paths: HostPaths, manifest: Manifest,
                            destdir: Path) -> list[Path]:
    """The manifest's upstream files in *destdir*, verified against their pins."""
    pins = {(f.component or ""): f.sha256 for f in manifest.files}
    destdir.mkdir(parents=True, exist_ok=True)
    placed = fetch_watch(config, paths.debian / "watch", manifest.guest_source,
                         manifest.guest_version, destdir, pins)
    wanted = {f.name: f for f in manifest.files}
    for path in placed:
        pinned = wanted.get(path.name)
        if pinned is None:
            raise InputError(f"debian/watch found {path.name}, which the manifest does not "
                             f"list ({', '.join(wanted)})",
                             hint="the host's manifest and the guest's watch file disagree")
        if path.stat().st_size != pinned.size:
            raise InputError(f"{path.name}: {path.stat().st_size} bytes, manifest says "
                             f"{pinned.size}")
    missing = set(wanted) - {p.name for p in placed}
    if missing:
        raise InputError(f"debian/watch did not find {', '.join(sorted(missing))}")
    return placed


def lists_too_old(error: BuildFailed) -> bool:
    """Whether a build failed in its build-dependency phase for a package or version
    that the buildroot's package lists and the mirror disagree on.  Only that phase is
    looked at: its log holds our notes and apt's output, not the guest's build."""
    if not (isinstance(error, UnsatisfiableBuildDepends)
            or error.message.startswith("installing the build dependencies failed")):
        return False
    if error.log_path is None:
        return isinstance(error, UnsatisfiableBuildDepends)
    try:
        text = error.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return buildenv.missing_package_failure(text[-256 * 1024:])


def check_guest_build_dependencies(config: Config, paths: HostPaths) -> None:
    """The guest's build dependencies, resolved in the buildroot before the upstream
    is fetched (ensure_buildroot has just updated a root older than the system's
    lists, so a package missing here is missing from the system's sources too)."""
    count = check_build_dependencies(config, paths.share)
    log.info("%s: the build dependencies can be installed (%d packages)", paths.host, count)


def build_guest(config: Config, paths: HostPaths, manifest: Manifest,
                output_dir: Path) -> list[Path]:
    """The complete build; returns the files to keep in ``<srcdir>/<host>/``."""
    work = output_dir.parent
    upstream = work / "upstream"
    # What the build needs is checked before the upstream is downloaded: what making
    # the build environment needs, then (in it, made the first time) whether apt can
    # install the guest's build dependencies.
    buildenv.check_build_needs(config)
    buildenv.ensure_buildroot(config)
    check_guest_build_dependencies(config, paths)
    fetch_verified_upstream(config, paths, manifest, upstream)
    dsc = make_dsc(manifest, paths.debian, upstream, upstream)
    output_dir.mkdir(parents=True, exist_ok=True)
    # A guest's .debs are installed as root: whatever they would install beyond what
    # the manifest declares is refused (guestpkg.build.inspect), whatever the config.
    options = BuildOptions(prepare_source=prepare_guest_source(paths.host),
                           version_change=local_build(manifest.guest_version, paths.host),
                           tee=False, refuse_findings=True,
                           declared=frozenset(manifest.setuid))
    try:
        result = build_package(config, dsc, output_dir, options)
    except BuildFailed as e:
        if not lists_too_old(e):
            raise
        # The buildroot's lists name versions the mirror no longer has (or lack a
        # package it has now): update it, as apt update would, and try once more.
        log.warning("%s: installing the build dependencies failed for a package the "
                    "buildroot's lists don't match; updating the buildroot and trying "
                    "again", paths.host)
        buildenv.update(config)
        result = build_package(config, dsc, output_dir, options)
    log.info("%s: build log %s", paths.host, result.log_path)
    check_guest_output(result, paths, manifest)
    keep = [p for p in result.artifacts if p.suffix in (".deb", ".buildinfo", ".changes")
            or p == result.log_path]
    keep.append(write_result_dcfpkg(paths, manifest, keep, output_dir))
    return keep


def check_guest_output(result: BuildResult, paths: HostPaths, manifest: Manifest) -> None:
    """The build made exactly the guest's binary packages, at ``<version>~local``,
    each depending on the host, and nothing else; refused in one line otherwise (the
    .debs are still in the work area: nothing reached ``<srcdir>/<host>/``)."""
    others = [p.name for p in result.artifacts if p.suffix not in (".deb", ".buildinfo")
              and p not in (result.changes, result.log_path)]
    problems = [f"the build made {name}, which is not a .deb of the guest"
                for name in others]
    problems += check_identity(result.reports, packages=binary_packages(paths.debian),
                               version=local_version(manifest.guest_version),
                               arch=result.arch, host=paths.host)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"the build of {manifest.guest_source} is not what its host "
                         f"describes: {problems[0]}{more}",
                         hint=f"nothing was installed; see {result.log_path}")


def write_result_dcfpkg(paths: HostPaths, manifest: Manifest, files: list[Path],
                        output_dir: Path) -> Path:
    """A dcfpkg whose payload is the build result, under ``usr/src/<host>/``."""
    bare = without_epoch(local_version(manifest.guest_version))
    version, release = upstream_part(bare), bare.rsplit("-", 1)[1]
    tree = output_dir / "dcfpkg-tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    for f in files:
        shutil.copy2(f, tree / f.name)
    arch = next((p.name.rsplit("_", 1)[1].removesuffix(".deb") for p in files
                 if p.suffix == ".deb"), "all")
    metadata = Metadata(package=manifest.guest_source, version=version, release=release,
                        architecture=arch, build_date=int(time.time()),
                        source=manifest.guest_source,
                        description=f"{manifest.guest_source} built locally for "
                        f"{paths.host}", extra=(("X-Host", paths.host),))
    out = output_dir / f"{manifest.guest_source}_{bare}_{arch}.dcfpkg"
    write_dcfpkg(tree, metadata, out, prefix=f"usr/src/{paths.host}")
    shutil.rmtree(tree)
    return out


def prepare_guest_source(host: str) -> Callable[[Path], None]:
    """The edit made to the unpacked guest tree before it is built: the host added to
    every binary package's Depends (the ``~local`` version is the builder's new
    changelog entry, :func:`guestpkg.build.versioning.local_build`)."""
    def prepare(tree: Path) -> None:
        control = tree / "debian" / "control"
        control.write_text(add_depends(control.read_text(encoding="utf-8"), host),
                           encoding="utf-8")
    return prepare
