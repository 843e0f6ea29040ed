# SPDX-License-Identifier: GPL-2.0-or-later
"""A guest whose dependencies are not installed: the APT hook builds it but does not
``dpkg -i`` it (that would leave it unpacked and the system broken); the detached job
installs it with apt-get once apt has exited, pulling the dependency in, in the same
user action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guestpkg.host.versions import add_depends
from tests.support import debsrc, hosts
from tests.support.sysroot import SystemRoot, buildroot_binds, link_buildroots, new_workdir
from tests.support.upstream import LocalUpstream

pytestmark = pytest.mark.integration

HOST = "hello-installer"
#: Not in the base system, in the mirror, and small.
EXTRA = "tree"


def test_unmet_dependencies_are_left_to_the_detached_job(
        tmp_path: Path, local_upstream: LocalUpstream, system_base: Path, base_root: Any,
        guestpkg_debs: list[Path]) -> None:
    orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
    local_upstream.add_file(orig, "hello-2.10.tar.gz")
    watch = f"version=4\n{local_upstream.url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
    guest = hosts.guest_tree(tmp_path / "src", watch=watch)
    control = guest / "debian" / "control"
    control.write_text(add_depends(control.read_text(), EXTRA))
    host_deb = hosts.build_host(hosts.new_host(guest, tmp_path / "src" / "host"))

    root = SystemRoot(system_base, new_workdir(),
                      buildroot_binds(Path(base_root.path).parent.parent))
    root.start()
    try:
        link_buildroots(root)
        root.add_debs([*guestpkg_debs, host_deb])
        root.apt_install("guestpkg")
        hosts.ensure_hook_installed(root)
        assert root.dpkg_status(EXTRA) is None
        result = root.apt_install(HOST, preseed=f"{HOST} {HOST}/build-guest boolean true")
        output = result.stdout + result.stderr
        assert f"the guest needs {EXTRA}; installing it with apt-get after this apt run" \
            in output
        assert root.dpkg_status("hello") is None  # not left unpacked by dpkg -i
        root.wait_idle()
        assert root.installed_version("hello") == "2.10-3~local"
        assert root.dpkg_status(EXTRA) == "install ok installed"
        assert root.run(["dpkg", "--audit"]).stdout == ""
        assert root.run(["hello"]).stdout == "Hello, world!\n"
    finally:
        root.close()
