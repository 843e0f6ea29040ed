# SPDX-License-Identifier: GPL-2.0-or-later
"""A guest whose .deb would install a setuid root file, on a throwaway bookworm system
with guestpkg installed: the build user can't chmod a setuid bit, but under fakeroot
the mode is faked and dpkg-deb writes it into the data archive, which dpkg would make
real as root.  guestpkg refuses to install it unless the host's manifest declares the
file (``Setuid:``); the refusal is one line in apt's output and guestpkg status, apt
exits 0, and nothing reaches /usr/src/<host>/."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guestpkg.build.deb import (
    BuildContext,
    BuildLog,
    extra_build_packages,
    install_build_deps,
)
from guestpkg.build.source import read_source
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from guestpkg.debian.control import BuildMode, build_relations
from tests.support import hosts
from tests.support.sysroot import SystemRoot
from tests.support.upstream import LocalUpstream

pytestmark = pytest.mark.integration

HOST = "hello-installer"
SRC = f"/usr/src/{HOST}"
CONSENT = f"{HOST} {HOST}/build-guest boolean true"


def make_layer(config: Config, base_root: BaseRoot, guest: Path, work: Path) -> None:
    """The guest's build-dependency layer (hello's plus fakeroot, for its
    Rules-Requires-Root) in the test vardir, whose layers the system root shares:
    inside it, a layer can't be made (its vardir is on overlayfs)."""
    info = read_source(guest)
    relations = build_relations(info.control, BuildMode.BINARY, base_root.arch, (),
                                extra_build_packages(info, config))
    work.mkdir(parents=True, exist_ok=True)
    # A fork with a tmpfs upper enters a private mount namespace, which needs a
    # single-threaded process; this one runs the upstream's server thread (and whatever
    # earlier tests left running), so the layer is made in a forked child, which has
    # only the forking thread.
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            ctx = BuildContext(config, base_root, work,
                               BuildLog(work / "layer.build", tee=False))
            with install_build_deps(ctx, relations) as (layer, _cached):
                status = 0 if layer is not None else 1
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, (work / "layer.build").read_text(
        errors="replace")[-4000:] if (work / "layer.build").exists() else "no log"


@pytest.fixture(scope="module")
def host_debs(tmp_path_factory: pytest.TempPathFactory, upstream: LocalUpstream,
              test_config: Config, base_root: BaseRoot) -> dict[str, Path]:
    """hello-installer 2.10-3-1 (undeclared) and 2.10-3-2 (``Setuid: /usr/bin/hello``),
    whose guest makes /usr/bin/hello setuid root under fakeroot."""
    work = tmp_path_factory.mktemp("hosts")
    watch = f"version=4\n{upstream.url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
    guest = hosts.guest_tree(work / "src", watch=watch)
    control = guest / "debian" / "control"
    control.write_text(control.read_text().replace("Rules-Requires-Root: no",
                                                   "Rules-Requires-Root: binary-targets"))
    rules = guest / "debian" / "rules"
    rules.write_text(rules.read_text() + "\noverride_dh_fixperms:\n\tdh_fixperms\n"
                     "\tchmod 4755 debian/hello/usr/bin/hello\n")
    make_layer(test_config, base_root, guest, work / "layer")
    tree = hosts.new_host(guest, work / "src" / "hello-installer-2.10-3")
    debs = {"undeclared": hosts.build_host(tree)}
    manifest = tree / "guest" / "manifest"
    head, rest = manifest.read_text().split("\n\n", 1)
    manifest.write_text(f"{head}\nSetuid:\n /usr/bin/hello\n\n{rest}")
    hosts.bump_changelog(tree, "2.10-3-2", "Declare the setuid hello.")
    debs["declared"] = hosts.build_host(tree)
    return debs


@pytest.fixture(scope="module")
def root(system_base: Path, base_root: BaseRoot, guestpkg_debs: list[Path],
         host_debs: dict[str, Path]) -> Iterator[SystemRoot]:
    with hosts.system_with_guestpkg(system_base, base_root,
                                    [*guestpkg_debs, host_debs["undeclared"]]) as system:
        yield system


def status(root: SystemRoot) -> dict[str, Any]:
    return hosts.status_row(root, HOST)


def test_an_undeclared_setuid_file_is_refused_and_apt_succeeds(root: SystemRoot) -> None:
    result = root.apt_install(HOST, preseed=CONSENT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    root.wait_idle()
    assert root.dpkg_status(HOST) == "install ok installed"
    assert root.dpkg_status("hello") is None
    row = status(root)
    assert "/usr/bin/hello: setuid (mode 4755, uid 0)" in row["last_error"], row
    assert "\n" not in row["last_error"]
    assert not root.exists(SRC)


def test_a_declared_setuid_file_is_installed(root: SystemRoot,
                                             host_debs: dict[str, Path]) -> None:
    root.add_debs([host_debs["declared"]])
    root.apt_install(HOST, preseed=CONSENT)
    root.run(["guestpkg", "rebuild", HOST])
    root.wait_idle()
    assert root.installed_version("hello") == "2.10-3~local"
    mode = root.run(["stat", "-c", "%a %U", "/usr/bin/hello"]).stdout.split()
    assert mode == ["4755", "root"]
