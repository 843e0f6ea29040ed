# SPDX-License-Identifier: GPL-2.0-or-later
"""Host packages for tests: made from a real guest source with ``guestpkg new-host`` and
built with the checkout's dh_guestpkg (dh/ on PATH and PERL5LIB), on this machine in a
temporary directory (dpkg-buildpackage -b -d: nothing is installed or read from the
machine's dpkg database besides debhelper itself).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import debsrc
from tests.support.sysroot import SystemRoot, buildroot_binds, link_buildroots, new_workdir
from tests.support.upstream import LocalUpstream

REPO = Path(__file__).resolve().parents[2]
DH = REPO / "dh"
BUILD_ENV = {"PATH": f"{DH}:/usr/sbin:/usr/bin:/sbin:/bin", "PERL5LIB": str(DH),
             "LC_ALL": "C.UTF-8", "HOME": "/root", "PYTHONPATH": str(REPO),
             "DEBFULLNAME": "guestpkg tests", "DEBEMAIL": "tests@guestpkg.invalid"}


class HostBuildFailed(RuntimeError):
    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


def guest_tree(workdir: Path, package: str = "hello", watch: str | None = None) -> Path:
    """A fresh unpacked *package* source with its orig tarball(s) beside it; *watch*
    replaces its debian/watch (e.g. to point at a local upstream)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tree = debsrc.unpacked_source(package, workdir)
    for orig in debsrc.source_files(package).glob(f"{package}_*.orig*.tar.*"):
        if not orig.name.endswith(".asc"):
            shutil.copy2(orig, workdir / orig.name)
    if watch is not None:
        (tree / "debian" / "watch").write_text(watch)
    return tree


def bump_changelog(tree: Path, version: str, text: str = "Test bump.") -> None:
    """Add a changelog entry with *version* on top of *tree*'s debian/changelog."""
    changelog = tree / "debian" / "changelog"
    source = changelog.read_text().split(" ", 1)[0]
    date = "Tue, 14 Nov 2023 22:13:20 +0000"
    entry = (f"{source} ({version}) unstable; urgency=medium\n\n  * {text}\n\n"
             f" -- guestpkg tests <tests@guestpkg.invalid>  {date}\n\n")
    changelog.write_text(entry + changelog.read_text())


def new_host(guest: Path, output: Path, host: str | None = None) -> Path:
    argv = ["/usr/bin/python3", "-m", "guestpkg", "new-host", str(guest), "-o", str(output)]
    if host:
        argv += ["--host", host]
    subprocess.run(argv, check=True, env=BUILD_ENV, capture_output=True)
    return output


def build_host(tree: Path) -> Path:
    """dpkg-buildpackage -b the host source *tree*; returns the .deb."""
    result = subprocess.run(["dpkg-buildpackage", "-b", "-d", "-uc", "-us"], cwd=tree,
                            env=BUILD_ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise HostBuildFailed(result.stdout + result.stderr)
    source, version = _head(tree)
    bare = version.split(":", 1)[-1]
    return tree.parent / f"{source}_{bare}_all.deb"


def _head(tree: Path) -> tuple[str, str]:
    first = (tree / "debian" / "changelog").read_text().split("\n", 1)[0]
    source, rest = first.split(" ", 1)
    return source, rest[1:rest.index(")")]


def deb_control_files(deb: Path, target: Path) -> Path:
    subprocess.run(["dpkg-deb", "-e", str(deb), str(target)], check=True)
    return target


def deb_listing(deb: Path) -> list[str]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                         text=True).stdout
    return [line.split()[-1] for line in out.splitlines()]


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True,
                          capture_output=True, text=True).stdout.strip()


def tiny_deb(directory: Path, name: str, version: str = "1.0") -> Path:
    """An empty architecture-independent package: installing it makes apt run dpkg, and
    with it the DPkg::Post-Invoke hooks."""
    tree = directory / f"{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: guestpkg tests <tests@guestpkg.invalid>\n"
        f"Description: trigger package {name}\n")
    deb = directory / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


def example_host_debs(workdir: Path, upstream_url: str) -> dict[str, Path]:
    """The example host for hello with its watch file pointing at *upstream_url*, in
    three versions: 2.10-3-1, a host-only bump 2.10-3-2, and 2.10-4-1 carrying a bumped
    guest revision (same upstream tarball)."""
    watch = f"version=4\n{upstream_url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
    guest = guest_tree(workdir / "src", watch=watch)
    first = new_host(guest, workdir / "src" / "hello-installer-2.10-3")
    debs = {"2.10-3-1": build_host(first)}
    bump_changelog(first, "2.10-3-2", "Host-only change.")
    debs["2.10-3-2"] = build_host(first)
    bump_changelog(guest, "2.10-4", "Guest revision bump.")
    second = new_host(guest, workdir / "src" / "hello-installer-2.10-4")
    debs["2.10-4-1"] = build_host(second)
    return debs


def ensure_hook_installed(root: Any) -> None:
    """guestpkg's .deb, installed in *root* (a SystemRoot), ships the APT hook."""
    hooks = root.run(["apt-config", "dump", "DPkg::Post-Invoke"]).stdout
    assert "/usr/lib/guestpkg/apt-post-invoke" in hooks, hooks
    assert root.exists("/usr/lib/guestpkg/apt-post-invoke")


@contextlib.contextmanager
def hello_upstream(directory: Path) -> Iterator[LocalUpstream]:
    """A local upstream in *directory* serving ``hello-2.10.tar.gz`` (the bytes of
    hello_2.10.orig.tar.gz) at its root, as https://ftp.gnu.org/gnu/hello/ does."""
    with LocalUpstream(directory) as server:
        orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
        server.add_file(orig, "hello-2.10.tar.gz")
        yield server


@contextlib.contextmanager
def system_with_guestpkg(system_base: Path, base_root: Any,
                         debs: Sequence[Path]) -> Iterator[SystemRoot]:
    """A throwaway system (:class:`SystemRoot` over *system_base*) that shares the
    test buildroots of *base_root*, with *debs* (guestpkg's own among them) in its
    local archive and guestpkg installed, its APT hook checked; closed afterwards."""
    system = SystemRoot(system_base, new_workdir(),
                        buildroot_binds(Path(base_root.path).parent.parent))
    system.start()
    try:
        link_buildroots(system)
        system.add_debs(list(debs))
        system.apt_install("guestpkg")
        ensure_hook_installed(system)
        yield system
    finally:
        system.close()


def status_row(root: SystemRoot, host: str) -> dict[str, Any]:
    """*host*'s row of ``guestpkg status --json`` inside *root*."""
    row: dict[str, Any] = json.loads(root.run(["guestpkg", "status", "--json", host]).stdout)[0]
    return row
