# SPDX-License-Identifier: GPL-2.0-or-later
"""Source recipes: they fetch over user-mode networking (slirp4netns), only what their
sha256sums pin is kept, and the host's 127.0.0.1 is out of their reach."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.dcfpkg.reader import read_manifest
from guestpkg.recipe.bootstrap import BootstrapSet
from tests.support.recipemirror import host_address
from tests.support.recipetree import write_recipe
from tests.support.upstream_server import Upstream, serve

TARBALL = "demo_1.0.orig.tar.gz"


def demo_tarball() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        body = b'int main(void) { return 42; }\n'
        info = tarfile.TarInfo("demo-1.0/demo.c")
        info.size, info.mtime = len(body), 0
        tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


FETCH = """#!/bin/sh
set -eu
{probes}
perl -MHTTP::Tiny -e '
  my $r = HTTP::Tiny->new(timeout => 10)->mirror($ARGV[0], $ARGV[1]);
  die "fetch $ARGV[0]: $r->{{status}} $r->{{reason}}\\n" unless $r->{{success}};
' "$MIRROR/pool/main/d/demo/{tarball}" "$DOWNLOADS/{tarball}"
"""

PROBE = ("perl -MIO::Socket::INET -e 'print \"probe {ip}:{port} \", IO::Socket::INET->new("
         "PeerAddr => \"{ip}\", PeerPort => {port}, Timeout => 3) ? \"connected\" : "
         "\"refused\", \"\\n\"'\n")


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Upstream, bytes]]:
    """A Debian-like pool on this machine's outside address (never 127.0.0.1: the
    sandbox must not reach that)."""
    tarball = demo_tarball()
    pool = tmp_path / "mirror" / "pool/main/d/demo"
    pool.mkdir(parents=True)
    (pool / TARBALL).write_bytes(tarball)
    with serve(tmp_path / "mirror", host=host_address()) as upstream:
        yield upstream, tarball


@pytest.fixture
def config(tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet) -> Config:
    cachedir = tmp_path / "cache"
    (cachedir / "dcfpkg").mkdir(parents=True)
    shutil.copytree(test_config.cachedir / "dcfpkg" / "bootstrap",
                    cachedir / "dcfpkg" / "bootstrap", copy_function=os.link)
    return test_config.replace(cachedir=cachedir, logdir=tmp_path / "log")


def guestpkg(config: Config, tree: Path, mirror_url: str,
             *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
           "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
           "GUESTPKG_RECIPES": str(tree), "GUESTPKG_RECIPE_MIRROR": mirror_url}
    return subprocess.run([sys.executable, "-m", "guestpkg", "recipe", *args, "--arch",
                           "x86_64"], env=env, capture_output=True, text=True)


def source_tree(root: Path, digest: str, probes: str = "") -> Path:
    write_recipe(root, "demo-src/1.0/1", type="source", sha256sums=f"{digest}  {TARBALL}\n",
                 build=FETCH.format(probes=probes, tarball=TARBALL).encode())
    write_recipe(root, "demo/1.0/1", builddeps="demo-src\n", build=b"""#!/bin/sh
set -eu
tar xzf /usr/src/demo-src/demo_1.0.orig.tar.gz
cc $CFLAGS -o demo demo-1.0/demo.c
install -D -m755 demo "$DESTDIR/usr/bin/demo"
""")
    return root


def test_a_source_recipe_fetches_its_pinned_files_and_a_binary_builds_them(
        config: Config, tmp_path: Path, mirror: tuple[Upstream, bytes]) -> None:
    upstream, tarball = mirror
    digest = hashlib.sha256(tarball).hexdigest()
    tree = source_tree(tmp_path / "recipes", digest)
    result = guestpkg(config, tree, upstream.url, "build", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "built 2, cached 0, failed 0, skipped 0"
    assert upstream.count(f"/pool/main/d/demo/{TARBALL}") == 1
    source = config.cachedir / "dcfpkg" / "demo-src_1.0-1_amd64.dcfpkg"
    entries = {e.path.decode(): e.sha256 for e in read_manifest(source)[1]}
    assert entries[f"usr/src/demo-src/{TARBALL}"] == digest
    log = (config.logdir / "recipes" / "demo-src_1.0-1_amd64.log").read_text()
    assert "user-mode network" in log and "every fetched file matched its pin (1)" in log
    # by design and in the log: no console warning (it would break the progress lines)
    assert "sandbox relaxation" not in result.stderr
    assert "demo/1.0/1" in read_manifest(
        config.cachedir / "dcfpkg" / "demo_1.0-1_amd64.dcfpkg")[0].source


def test_a_wrong_pin_is_refused_and_nothing_is_kept(config: Config, tmp_path: Path,
                                                   mirror: tuple[Upstream, bytes]) -> None:
    upstream, _ = mirror
    tree = source_tree(tmp_path / "recipes", "0" * 64)
    result = guestpkg(config, tree, upstream.url, "build", "demo")
    assert result.returncode == 1
    where = f"{tree}/demo-src/1.0/1/sha256sums:1"
    assert f"{where}: {TARBALL}: SHA256 mismatch: expected {'0' * 64}, got " in result.stdout
    assert "skipped  demo/1.0/1 (x86_64): needs demo-src/1.0/1, which failed" in result.stdout
    assert list((config.cachedir / "dcfpkg").glob("*.dcfpkg")) == []
    log = (config.logdir / "recipes" / "demo-src_1.0-1_amd64.log").read_text()
    assert "guestpkg: FAILED:" in log and "SHA256 mismatch" in log


def test_the_hosts_loopback_is_out_of_reach(config: Config, tmp_path: Path,
                                            mirror: tuple[Upstream, bytes]) -> None:
    """A server on the host's 127.0.0.1, tried as 127.0.0.1 and as slirp's 10.0.2.2,
    while the outside address works (the fetch succeeds)."""
    upstream, tarball = mirror
    with serve(tmp_path / "mirror") as local:
        port = local.port
        with socket_to(port):
            probes = PROBE.format(ip="127.0.0.1", port=port) + \
                PROBE.format(ip="10.0.2.2", port=port)
            tree = source_tree(tmp_path / "recipes", hashlib.sha256(tarball).hexdigest(),
                               probes)
            result = guestpkg(config, tree, upstream.url, "build", "demo-src")
        assert local.count(f"/pool/main/d/demo/{TARBALL}") == 0
    assert result.returncode == 0, result.stdout + result.stderr
    log = (config.logdir / "recipes" / "demo-src_1.0-1_amd64.log").read_text()
    assert f"probe 127.0.0.1:{port} refused\n" in log
    assert f"probe 10.0.2.2:{port} refused\n" in log


class socket_to:
    """The control: the host itself reaches the local server."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> None:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=3):
            pass

    def __exit__(self, *args: object) -> None:
        pass
