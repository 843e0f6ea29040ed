# SPDX-License-Identifier: GPL-2.0-or-later
"""The build step of a host's guest refuses what it must refuse before anything is
built: a tarball whose SHA256 is not the pinned one (nothing of it is kept), and an
upstream that does not answer.  The successful build, with ~local, the host in Depends
and the dcfpkg beside the .debs, is checked on a whole system by
tests/integration/host/test_host_lifecycle.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from guestpkg.errors import ChecksumMismatch, NetworkError
from guestpkg.host.layout import host_paths
from tests.support import hosts
from tests.support.upstream import Behaviour, LocalUpstream

pytestmark = pytest.mark.integration

# build_package enters a private mount namespace, which needs a single-threaded process:
# the local upstream serves from a thread of this one, so the build runs in a child.
CHILD = """
import json, sys
from pathlib import Path
from guestpkg import config, errors
from guestpkg.host.build import build_guest
from guestpkg.host.layout import host_paths
from guestpkg.host.manifest import read_manifest
cfg = config.load()
paths = host_paths(cfg, "hello-installer")
try:
    files = build_guest(cfg, paths, read_manifest(paths.manifest), Path(sys.argv[1]))
except errors.GuestpkgError as e:
    print(json.dumps({"error": type(e).__name__, "message": e.message}))
else:
    print(json.dumps({"files": [str(f) for f in files]}))
"""


def build_in_child(config: Any, out: Path) -> dict[str, Any]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root",
           "PYTHONPATH": str(hosts.REPO)}
    for name in ("vardir", "cachedir", "logdir", "srcdir", "hostsdir"):
        env[f"GUESTPKG_{name.upper()}"] = str(getattr(config, name))
    env["GUESTPKG_CONFDIR"] = str(out.parent / "etc")
    result = subprocess.run(["/usr/bin/python3", "-c", CHILD, str(out)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def install_layout(hostsdir: Path, host_tree: Path, host: str = "hello-installer") -> None:
    share = hostsdir / host
    shutil.copytree(host_tree / "guest" / "debian", share / "debian")
    shutil.copy2(host_tree / "guest" / "manifest", share / "manifest")


@pytest.fixture
def setup(tmp_path: Path, hello_upstream: LocalUpstream, test_config: Any,
          base_root: Any) -> tuple[Any, Any]:
    watch = f"version=4\n{hello_upstream.url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
    guest = hosts.guest_tree(tmp_path / "src", watch=watch)
    tree = hosts.new_host(guest, tmp_path / "src" / "hello-installer")
    config = test_config.replace(hostsdir=tmp_path / "hosts", srcdir=tmp_path / "usr-src",
                                 cachedir=tmp_path / "cache")
    install_layout(config.hostsdir, tree)
    return config, host_paths(config, "hello-installer")


def test_checksum_mismatch_refuses_the_tarball(setup: tuple[Any, Any], tmp_path: Path,
                                               hello_upstream: LocalUpstream) -> None:
    config, _ = setup
    hello_upstream.behaviour = Behaviour.CORRUPT
    answer = build_in_child(config, tmp_path / "work" / "out")
    assert answer["error"] == ChecksumMismatch.__name__, answer
    assert not list((tmp_path / "work").glob("upstream/*.tar.*"))


def test_offline_upstream_is_a_network_error(setup: tuple[Any, Any], tmp_path: Path,
                                             hello_upstream: LocalUpstream) -> None:
    config, _ = setup
    hello_upstream.stop()
    answer = build_in_child(config, tmp_path / "work" / "out")
    assert answer["error"] == NetworkError.__name__, answer
