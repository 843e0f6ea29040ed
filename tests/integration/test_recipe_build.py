# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg recipe build``: a small recipe tree built from the bootstrap set, inputs
first, into dcfpkgs; the cache, rebuilds of exactly what changed, byte-identical
results, failures, and no network for binary recipes."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from guestpkg.build.recipe import RecipeBuild, collect_output
from guestpkg.config import Config
from guestpkg.dcfpkg.reader import read_manifest, read_metadata
from guestpkg.errors import BuildFailed
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.tree import load_tree
from tests.support.recipemirror import host_address
from tests.support.recipetree import write_recipe

GREET_C = b'#include "greet.h"\n#include <stdio.h>\nvoid greet(const char *who) ' \
          b'{ printf("hello, %s\\n", who); }\n'
GREET_H = b"void greet(const char *who);\n"
MAIN_C = b'#include <greet.h>\nint main(int argc, char **argv) ' \
         b'{ greet(argc > 1 ? argv[1] : "world"); return 0; }\n'


def sh(script: str) -> bytes:
    return b"#!/bin/sh\nset -eu\n" + script.encode()


def example_tree(root: Path) -> Path:
    """libgreet <- greeter <- greeting (3 deep), and a sed of our own used by
    greeting through `from` instead of the seed's."""
    write_recipe(root, "libgreet/1.0/1", meta="Description: a greeting library\n"
                 "Homepage: https://example.org/greet\nLicense: MIT\n",
                 filter="/usr/share/doc\n*.o\n",
                 extra={"src/greet.c": GREET_C, "src/greet.h": GREET_H},
                 build=sh("""cd src
cc $CFLAGS -c greet.c
ar rcs libgreet.a greet.o
install -D -m644 libgreet.a "$DESTDIR/usr/lib/libgreet.a"
install -D -m644 greet.o "$DESTDIR/usr/lib/greet.o"
install -D -m644 greet.h "$DESTDIR/usr/include/greet.h"
mkdir -p "$DESTDIR/usr/share/doc/libgreet" && echo docs > "$DESTDIR/usr/share/doc/libgreet/README"
"""))
    write_recipe(root, "greeter/1.0/1", builddeps="libgreet\n", rundeps="libgreet\n",
                 extra={"main.c": MAIN_C}, build=sh("""
cc $CFLAGS -o greeter main.c -lgreet
install -D -m755 greeter "$DESTDIR/usr/bin/greeter"
"""))
    write_recipe(root, "mysed/4.9/1", build=sh("""
mkdir -p "$DESTDIR/usr/local/bin"
printf '#!/bin/sh\\necho "mysed $*"\\n' > "$DESTDIR/usr/local/bin/sed"
chmod 755 "$DESTDIR/usr/local/bin/sed"
"""))
    write_recipe(root, "greeting/1/1", builddeps="greeter\nsed from mysed\n", build=sh("""
mkdir -p "$DESTDIR/usr/share/greeting"
greeter recipes > "$DESTDIR/usr/share/greeting/text"
sed --version > "$DESTDIR/usr/share/greeting/sed"
id -un > "$DESTDIR/usr/share/greeting/user"
echo "$SOURCE_DATE_EPOCH $TZ $LC_ALL $(umask) $(hostname) $(pwd)" \\
    > "$DESTDIR/usr/share/greeting/env"
"""))
    return root


def guestpkg(config: Config, tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
           "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
           "GUESTPKG_RECIPES": str(tree)}
    return subprocess.run([sys.executable, "-m", "guestpkg", "recipe", *args], env=env,
                          capture_output=True, text=True)


@pytest.fixture
def config(tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet) -> Config:
    """A fresh result cache and log dir; the bootstrap set and its layers shared."""
    cachedir = tmp_path / "cache"
    (cachedir / "dcfpkg").mkdir(parents=True)
    shutil.copytree(test_config.cachedir / "dcfpkg" / "bootstrap",
                    cachedir / "dcfpkg" / "bootstrap", copy_function=os.link)
    return test_config.replace(cachedir=cachedir, logdir=tmp_path / "log")


def digests(config: Config) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (config.cachedir / "dcfpkg").glob("*.dcfpkg")}


def contents(path: Path) -> dict[str, str]:
    return {e.path.decode(): e.sha256 or "" for e in read_manifest(path)[1]}


def test_build_cache_rebuild_and_identical_bytes(config: Config, tmp_path: Path) -> None:
    tree = example_tree(tmp_path / "recipes")
    first = guestpkg(config, tree, "build", "greeting", "--arch", "x86_64", "-j", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[-1] == "built 4, cached 0, failed 0, skipped 0"
    built = digests(config)
    assert sorted(built) == ["greeter_1.0-1_amd64.dcfpkg", "greeting_1-1_amd64.dcfpkg",
                             "libgreet_1.0-1_amd64.dcfpkg", "mysed_4.9-1_amd64.dcfpkg"]
    results = config.cachedir / "dcfpkg"
    greeting = results / "greeting_1-1_amd64.dcfpkg"

    # what the build saw: its inputs, `from` shadowing the seed, the fixed environment
    extract_dir = tmp_path / "x"
    subprocess.run([sys.executable, "-m", "guestpkg", "dcfpkg", "extract", str(greeting),
                    str(extract_dir)], check=True, capture_output=True)
    share = extract_dir / "usr/share/greeting"
    assert (share / "text").read_text() == "hello, recipes\n"
    assert (share / "sed").read_text() == "mysed --version\n"
    assert (share / "user").read_text() == "build\n"
    assert (share / "env").read_text() == "315532800 UTC C.UTF-8 0022 guestpkg /build/recipe\n"

    # metadata: the recipe, its key, its inputs with their digests, meta and rundeps
    with open(results / "greeter_1.0-1_amd64.dcfpkg", "rb") as f:
        meta = read_metadata(f, "greeter")
    assert meta.inputs == (f"libgreet/1.0/1 {built['libgreet_1.0-1_amd64.dcfpkg']}",)
    assert meta.depends == "libgreet" and meta.source == "recipes/greeter/1.0/1"
    assert len(meta.recipe_key) == 64 and len(meta.bootstrap_set) == 64
    with open(results / "libgreet_1.0-1_amd64.dcfpkg", "rb") as f:
        lib = read_metadata(f, "libgreet")
    assert (lib.homepage, lib.license, lib.description) == (
        "https://example.org/greet", "MIT", "a greeting library")
    assert sorted(contents(results / "libgreet_1.0-1_amd64.dcfpkg")) == [
        "usr", "usr/include", "usr/include/greet.h", "usr/lib", "usr/lib/libgreet.a",
        "usr/share"]
    log = (config.logdir / "recipes" / "greeter_1.0-1_amd64.log").read_text()
    for expected in (f"cache key: {meta.recipe_key}",
                     f"input libgreet/1.0/1 {built['libgreet_1.0-1_amd64.dcfpkg']}",
                     "SOURCE_DATE_EPOCH=315532800",
                     "CFLAGS='-O2 -ffile-prefix-map=/build/recipe=.'",
                     "\nmanifest:\n", "\n  f 0755 ", " /usr/bin/greeter\n",
                     "guestpkg: built greeter_"):
        assert expected in log, expected

    # everything cached: nothing builds
    again = guestpkg(config, tree, "build", "greeting", "--arch", "x86_64")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "built 0, cached 4, failed 0, skipped 0"

    # a changed recipe rebuilds it and its dependents only
    (tree / "greeter/1.0/1/main.c").write_bytes(MAIN_C.replace(b"world", b"everyone"))
    changed = guestpkg(config, tree, "build", "greeting", "--arch", "x86_64")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines()[-1] == "built 2, cached 2, failed 0, skipped 0"
    after = digests(config)
    assert [n for n in sorted(after) if after[n] != built[n]] == [
        "greeter_1.0-1_amd64.dcfpkg", "greeting_1-1_amd64.dcfpkg"]

    # built again from nothing: byte-identical
    (tree / "greeter/1.0/1/main.c").write_bytes(MAIN_C)
    for path in results.glob("*.dcfpkg"):
        path.unlink()
    fresh = guestpkg(config, tree, "build", "greeting", "--arch", "x86_64", "-j", "1")
    assert fresh.returncode == 0, fresh.stderr
    assert digests(config) == built


def test_a_failed_build_keeps_its_log_and_skips_its_dependents(config: Config,
                                                                tmp_path: Path) -> None:
    tree = example_tree(tmp_path / "recipes")
    (tree / "libgreet/1.0/1/src/greet.c").write_bytes(b"this is not C\n")
    result = guestpkg(config, tree, "build", "greeting", "mysed", "--arch", "x86_64",
                      "--keep-going")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "failed   libgreet/1.0/1 (x86_64): libgreet/1.0/1 (x86_64): build exited with " \
           "status 1 (the full log is" in result.stdout
    assert "skipped  greeter/1.0/1 (x86_64): needs libgreet/1.0/1, which failed" in lines
    assert "skipped  greeting/1/1 (x86_64): needs libgreet/1.0/1, which failed" in lines
    assert lines[-1] == "built 1, cached 0, failed 1, skipped 2"
    assert sorted(digests(config)) == ["mysed_4.9-1_amd64.dcfpkg"]
    assert not [p for p in (config.cachedir / "dcfpkg").iterdir() if p.name.startswith(".tmp")]
    log = (config.logdir / "recipes" / "libgreet_1.0-1_amd64.log").read_text()
    assert "error" in log and "guestpkg: FAILED: build exited with status 1" in log
    assert "guestpkg: error: 1 recipe(s) failed; first: libgreet/1.0/1" in result.stderr


@pytest.mark.parametrize(("script", "message"), [
    ("true\n", "the build installed nothing into /var/tmp/install"),
    ('mkdir -p "$DESTDIR/usr/lib"\n', "the build installed nothing into /var/tmp/install"),
    ('mkdir -p "$DESTDIR/usr/share/doc"; echo x > "$DESTDIR/usr/share/doc/x"\n',
     "the filter leaves nothing to package"),
    ('mkdir -p "$DESTDIR/usr"; ln -s ../../../etc/shadow "$DESTDIR/usr/shadow"\n',
     "/usr/shadow: a link out of the package ('../../../etc/shadow')"),
    ('mkdir -p "$DESTDIR"; mkfifo "$DESTDIR/pipe"\n', "/pipe: a device node, FIFO or socket"),
    ('mkdir -p "$DESTDIR"; echo x > "$DESTDIR/f"; chmod 4755 "$DESTDIR/f"\n',
     "build exited with status 1"),  # seccomp refuses the setuid chmod itself
])
def test_bad_output_is_refused_and_nothing_cached(config: Config, tmp_path: Path,
                                                  script: str, message: str) -> None:
    tree = tmp_path / "recipes"
    write_recipe(tree, "bad/1/1", filter="/usr/share\n", build=sh(script))
    result = guestpkg(config, tree, "build", "bad", "--arch", "x86_64")
    assert result.returncode == 1
    assert message in result.stdout, result.stdout
    assert digests(config) == {}
    log = (config.logdir / "recipes" / "bad_1-1_amd64.log").read_text()
    assert "guestpkg: FAILED:" in log


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.sendall(b"reached\n")
        conn.close()


def test_a_binary_recipe_has_no_network(config: Config, tmp_path: Path) -> None:
    """A server on the host's 127.0.0.1 and one on its outside address: neither
    reachable (both are reachable from the host: the probe itself is checked)."""
    servers = []
    for address in ("127.0.0.1", host_address()):
        sock = socket.socket()
        sock.bind((address, 0))
        sock.listen()
        threading.Thread(target=_serve, args=(sock,), daemon=True).start()
        servers.append(sock)
    targets = [sock.getsockname()[:2] for sock in servers]
    for ip, port in targets:
        with socket.create_connection((ip, port), timeout=3) as control:
            assert control.recv(16) == b"reached\n"
    probe = "".join(
        f"perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(PeerAddr => \"{ip}\", "
        f"PeerPort => {port}, Timeout => 3) ? \"connected\\n\" : \"refused\\n\"' "
        f'>> "$DESTDIR/net"\n' for ip, port in targets)
    tree = tmp_path / "recipes"
    write_recipe(tree, "netprobe/1/1", build=sh(
        'mkdir -p "$DESTDIR"\n' + probe + 'cat /proc/net/dev | tail -n +3 | '
        'cut -d: -f1 | tr -d " " > "$DESTDIR/interfaces"\n'))
    try:
        result = guestpkg(config, tree, "build", "netprobe", "--arch", "x86_64")
    finally:
        for sock in servers:
            sock.close()
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "guestpkg", "dcfpkg", "extract",
                    str(config.cachedir / "dcfpkg/netprobe_1-1_amd64.dcfpkg"), str(out)],
                   check=True, capture_output=True)
    assert (out / "net").read_text() == "refused\nrefused\n"
    assert (out / "interfaces").read_text() == "lo\n"


def test_check_builds_twice_more_and_compares(config: Config, tmp_path: Path) -> None:
    tree = example_tree(tmp_path / "recipes")
    write_recipe(tree, "clock/1/1", build=sh(
        'mkdir -p "$DESTDIR/usr/share"; echo "$(date +%s%N) $(pwd) $JOBS" '
        '> "$DESTDIR/usr/share/built"\n'))
    good = guestpkg(config, tree, "check", "greeter", "--arch", "x86_64")
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert lines[-1].startswith("reproducible greeter/1.0/1 (x86_64): sha256 ")
    assert any(line.startswith("check    greeter/1.0/1 (x86_64): build 2 at /build/check-")
               for line in lines)
    bad = guestpkg(config, tree, "check", "clock", "--arch", "x86_64")
    assert bad.returncode == 1
    assert "guestpkg: error: clock/1/1 (x86_64) is not reproducible: SHA256 " in bad.stderr
    assert not list((config.vardir / "recipes" / "check").glob(".tmp-*"))


def test_sign_then_install_checks_the_trust_policy(config: Config, tmp_path: Path) -> None:
    tree = example_tree(tmp_path / "recipes")
    trustdir = tmp_path / "trust.d"
    env = {**os.environ, "GUESTPKG_TRUSTDIR": str(trustdir)}

    def trust(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "guestpkg", "trust", *args], env=env,
                       check=True, capture_output=True)

    trust("keygen", str(tmp_path / "builder"))
    trust("add-key", str(tmp_path / "builder.pub"), "trusted")
    os.environ["GUESTPKG_TRUSTDIR"] = str(trustdir)
    try:
        signed = guestpkg(config, tree, "build", "greeter", "--arch", "x86_64", "--sign",
                          str(tmp_path / "builder.key"))
        assert signed.returncode == 0, signed.stdout + signed.stderr
        assert signed.stdout.splitlines()[-1] == \
            "signed 2 results into recipes, archive version 1 (2 signatures)"
        root = tmp_path / "root"
        installed = guestpkg(config, tree, "install", "greeter", "--root", str(root),
                             "--arch", "x86_64")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert installed.stdout.splitlines()[0].startswith(
            f"installed libgreet_1.0-1_amd64.dcfpkg into {root}: signed by ")
        assert (root / "usr/bin/greeter").is_file() and (root / "usr/lib/libgreet.a").is_file()

        unsigned = guestpkg(config, tree, "build", "mysed", "--arch", "x86_64")
        assert unsigned.returncode == 0, unsigned.stderr
        other = tmp_path / "other"
        refused = guestpkg(config, tree, "install", "mysed", "--root", str(other),
                           "--arch", "x86_64")
        assert refused.returncode == 6, refused.stdout + refused.stderr
        assert "mysed" in refused.stderr and not other.exists()
        # a second signing run re-signs what the key signed before, in a new version
        again = guestpkg(config, tree, "build", "mysed", "--arch", "x86_64", "--sign",
                         str(tmp_path / "builder.key"))
        assert again.stdout.splitlines()[-1] == \
            "signed 1 results into recipes, archive version 2 (3 signatures)"
        assert guestpkg(config, tree, "install", "mysed", "--root", str(other),
                        "--arch", "x86_64").returncode == 0
        assert guestpkg(config, tree, "install", "greeter", "--root", str(other),
                        "--arch", "x86_64").returncode == 0
    finally:
        del os.environ["GUESTPKG_TRUSTDIR"]


def _setuid(path: Path) -> None:
    path.write_text("x")
    path.chmod(0o4755)


def _setgid(path: Path) -> None:
    path.write_text("x")
    path.chmod(0o2755)


def _device(path: Path) -> None:
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers


@pytest.mark.parametrize(("make", "message"), [
    (_setuid, "/usr/f: a setuid or setgid file"),
    (_setgid, "/usr/f: a setuid or setgid file"),
    (_device, "/usr/f: a device node, FIFO or socket"),
])
def test_the_output_check_refuses_what_no_build_can_make_today(
        tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet,
        make: Callable[[Path], None], message: str) -> None:
    # In the sandbox, seccomp refuses chmod(2) to setuid or setgid, open(2) creating a
    # file with mode 04755 made it 0755 (tried with perl's sysopen on the test
    # machine), and no build has CAP_MKNOD: the check of the output after the build
    # is the line that holds if a kernel or sandbox change let one through.  So it is
    # checked here, on an output tree made outside the sandbox.
    tree = tmp_path / "recipes"
    write_recipe(tree, "bad/1/1")
    ctx = RecipeBuild(test_config.replace(logdir=tmp_path / "log"), load_tree(tree).recipes[0],
                      "x86_64", bootstrap_x86_64, (), "0" * 64, "")
    ctx.work = tmp_path / "work"
    (ctx.install / "usr").mkdir(parents=True)
    ctx.log.parent.mkdir(parents=True)
    make(ctx.install / "usr" / "f")
    with pytest.raises(BuildFailed) as failed:
        collect_output(ctx)
    assert failed.value.message == f"bad/1/1 (x86_64): {message}"
    assert ctx.log.read_text() == f"guestpkg: FAILED: {message}\n"
