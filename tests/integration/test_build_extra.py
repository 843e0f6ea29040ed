# SPDX-License-Identifier: GPL-2.0-or-later
"""sbuild's --extra-package and --extra-repository on real builds: a tiny source
package whose Build-Depends names a package that only the extra .deb (made here with
dpkg-deb) provides, from a local file and from a signed repository served on
127.0.0.1 (a key made here with gpg), over http and over https (a CA and server
certificates made here with openssl, the CA given with --extra-repository-ca: never
the machine's CA set); each different extra package makes a layer of its own; piuparts
of a built package that needs the repository's package at run time.  The bad inputs
give one line and exit status 2.

The dependency phase's apt runs in the host's network namespace (the sandbox's one
relaxation for that phase), so it reaches a server on the host's 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.build import layers
from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.build.extras import ExtraSources
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from guestpkg.errors import BuildFailed
from tests.support import debsrc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROVIDED = "guestpkg-test-extra"


def make_extra_deb(directory: Path, marker: str, version: str = "1.0") -> Path:
    """``guestpkg-test-extra`` (Architecture: all), made with dpkg-deb: a marker file
    that the test source's build copies into its own package."""
    tree = directory / f"tree-{marker}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {PROVIDED}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: guestpkg tests <root@localhost>\n"
        "Description: a package only the test's extra source has\n"
        " It carries a marker file.\n")
    (tree / "usr/share" / PROVIDED).mkdir(parents=True)
    (tree / "usr/share" / PROVIDED / "marker").write_text(marker + "\n")
    deb = directory / f"{PROVIDED}_{version}_all-{marker}.deb"
    # Reproducible (fixed times), so that a warm test cache has its layer.
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (1700000000, 1700000000))
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    return deb


RULES = f"""#!/usr/bin/make -f
build build-arch build-indep:
\ttest -f /usr/share/{PROVIDED}/marker
binary binary-arch binary-indep:
\tinstall -d debian/tmp/DEBIAN debian/tmp/usr/share/doc/needs-extra
\tcp /usr/share/{PROVIDED}/marker debian/tmp/usr/share/doc/needs-extra/marker
\tdpkg-gencontrol -pneeds-extra -Pdebian/tmp
\tdpkg-deb --root-owner-group --build debian/tmp ..
clean:
\trm -rf debian/tmp debian/files
"""


def make_source(directory: Path, depends: str = "") -> Path:
    """A native source package without debhelper whose only build dependency is
    the extra package (its layer holds that package alone: cheap to make); its
    binary package needs *depends* at run time."""
    return debsrc.native_source(
        directory / "needs-extra-1.0",
        "Source: needs-extra\nSection: misc\nPriority: optional\n"
        "Maintainer: guestpkg tests <root@localhost>\n"
        f"Build-Depends: {PROVIDED} (>= 1.0)\nRules-Requires-Root: no\n"
        "Standards-Version: 4.6.2\n\n"
        "Package: needs-extra\nArchitecture: all\n"
        + (f"Depends: {depends}\n" if depends else "") +
        "Description: built only with the extra package\n a test package\n",
        RULES)


def marker_of(deb: Path) -> str:
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                             capture_output=True).stdout
    out = subprocess.run(["tar", "-xO", "./usr/share/doc/needs-extra/marker"],
                         input=listing, check=True, capture_output=True)
    return out.stdout.decode().strip()


def run_cli(test_config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "GUESTPKG_CACHEDIR":
           str(test_config.cachedir), "GUESTPKG_LOGDIR": str(test_config.logdir),
           "PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "build", "--quiet-build",
                           *args], env=env, capture_output=True, text=True, timeout=900)


def test_extra_package_satisfies_a_build_dependency(test_config: Config, base_root: BaseRoot,
                                                    tmp_path: Path) -> None:
    tree = make_source(tmp_path)
    one = make_extra_deb(tmp_path, "one")
    # The front door: guestpkg build --extra-package FILE.deb
    done = run_cli(test_config, "--extra-package", str(one), str(tree), str(tmp_path / "out1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker_of(tmp_path / "out1" / "needs-extra_1.0_all.deb") == "one"
    # The same name and version with other content: another layer, the other file.
    other = tmp_path / "other"
    other.mkdir()
    make_extra_deb(other, "two")
    second = build_package(test_config, tree, tmp_path / "out2", BuildOptions(
        tee=False, extras=ExtraSources(packages=(other,))))
    assert marker_of(tmp_path / "out2" / "needs-extra_1.0_all.deb") == "two"
    # The first again: its layer, from the cache.
    again = build_package(test_config, tree, tmp_path / "out3", BuildOptions(
        tee=False, extras=ExtraSources(packages=(one,))))
    assert again.layer_cached and again.layer_key is not None
    assert "apt-get update" not in again.log_path.read_text()     # no apt at all
    assert again.layer_key in (tmp_path / "out1" / "needs-extra_1.0_amd64.build").read_text()
    assert second.layer_key not in (None, again.layer_key)
    # Without the extra package, apt cannot satisfy the build dependency.
    with pytest.raises(BuildFailed, match=f"unsatisfiable build dependencies: {PROVIDED}"):
        build_package(test_config, tree, tmp_path / "out4", BuildOptions(tee=False))


def test_bad_extra_options_say_what_is_wrong(test_config: Config, base_root: BaseRoot,
                                             tmp_path: Path) -> None:
    tree = make_source(tmp_path)
    not_a_deb = tmp_path / "notes.deb"
    not_a_deb.write_text("hello\n")
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    cases = [
        (["--extra-package", str(tmp_path / "missing.deb")], "no such file"),
        (["--extra-package", str(not_a_deb)], "not a Debian binary package"),
        (["--extra-repository", "deb http://127.0.0.1:1/"], "a URI and a suite"),
        (["--extra-repository", "deb http://127.0.0.1:1/ test"], "needs them"),
        (["--extra-repository", "deb [trusted=yes] http://127.0.0.1:1/ test main",
          "--extra-repository-key", str(key)], "options in [...] are not taken"),
        (["--extra-repository", "deb http://127.0.0.1:1/ test main"],
         "needs --extra-repository-key"),
        (["--extra-repository", "deb http://127.0.0.1:1/ test main",
          "--extra-repository-key", str(tmp_path / "nokey.asc")], "no such file"),
        (["--host-arch", "arm64;rm"], "not a Debian architecture"),
    ]
    for args, message in cases:
        done = run_cli(test_config, *args, str(tree), str(tmp_path / "out"))
        assert done.returncode == 2, (args, done.stderr)
        first = done.stderr.strip().splitlines()[0]
        assert message in first, (args, done.stderr)
        assert not (tmp_path / "out").exists()


# --- a signed repository on 127.0.0.1 ------------------------------------------------

def gpg(home: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet",
                           "--pinentry-mode", "loopback", "--passphrase", "", *args],
                          check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def make_key(home: Path, name: str) -> bytes:
    """A fresh signing key in *home*; its public key, armored."""
    home.mkdir(mode=0o700)
    gpg(home, "--quick-generate-key", f"{name} <{name}@localhost>", "ed25519", "sign",
        "never")
    return bytes(gpg(home, "--armor", "--export").stdout)


def make_repository(top: Path, deb: Path, home: Path) -> None:
    """``dists/test/main/binary-all/Packages`` (apt-ftparchive) and an InRelease
    signed with the key in *home*."""
    pool = top / "pool"
    pool.mkdir(parents=True)
    (pool / f"{PROVIDED}_1.0_all.deb").write_bytes(deb.read_bytes())
    binary = top / "dists" / "test" / "main" / "binary-all"
    binary.mkdir(parents=True)
    packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=top, check=True,
                              capture_output=True).stdout
    (binary / "Packages").write_bytes(packages)
    release = subprocess.run(
        ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=test",
         "-o", "APT::FTPArchive::Release::Codename=test",
         "-o", "APT::FTPArchive::Release::Architectures=amd64 all",
         "-o", "APT::FTPArchive::Release::Components=main", "release", "dists/test"],
        cwd=top, check=True, capture_output=True).stdout
    (top / "dists" / "test" / "Release").write_bytes(release)
    gpg(home, "--clearsign", "--output", str(top / "dists" / "test" / "InRelease"),
        str(top / "dists" / "test" / "Release"))


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A real web server on 127.0.0.1, in a process of its own (the build's forks
    need a single-threaded process)."""
    server = subprocess.Popen(
        ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
         "--directory", str(directory), "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()     # "Serving HTTP on 127.0.0.1 port N (...)"
        port = int(banner.split(" port ")[1].split()[0])
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_extra_repository_verified_with_its_key(test_config: Config, base_root: BaseRoot,
                                                tmp_path: Path) -> None:
    """... and piuparts of the built package, which needs the repository's package
    at run time too: resolved and downloaded over the repository as well."""
    tree = make_source(tmp_path, depends=PROVIDED)
    before = layers_with_extra(test_config)
    deb = make_extra_deb(tmp_path, f"repo-{os.getpid()}")
    signer, stranger = tmp_path / "signer", tmp_path / "stranger"
    (tmp_path / "signer.asc").write_bytes(make_key(signer, "signer"))
    (tmp_path / "stranger.asc").write_bytes(make_key(stranger, "stranger"))
    make_repository(tmp_path / "repo", deb, signer)
    with serve(tmp_path / "repo") as url:
        line = f"deb {url} test main"
        # Signed by another key than the one given: apt refuses the repository.
        with pytest.raises(BuildFailed, match="apt-get update of the extra sources failed"
                           ) as refused:
            build_package(test_config, tree, tmp_path / "bad", BuildOptions(
                tee=False, extras=ExtraSources(repositories=(line,),
                                               keys=(tmp_path / "stranger.asc",))))
        assert refused.value.log_path is not None
        assert "NO_PUBKEY" in refused.value.log_path.read_text()
        assert not (tmp_path / "bad").exists()
        # With a deb-src line as sbuild users paste it (the repository has no
        # Sources index: apt-get update of it would fail).
        result = build_package(test_config, tree, tmp_path / "out", BuildOptions(
            tee=False, checks=frozenset({"piuparts"}),
            extras=ExtraSources(repositories=(line, f"deb-src {url} test main"),
                                keys=(tmp_path / "signer.asc",))))
        # Again: both layers cached, so this build downloaded nothing; piuparts's
        # dependency from the repository is downloaded for it into the build's own
        # directory.
        again = build_package(test_config, tree, tmp_path / "again", BuildOptions(
            tee=False, checks=frozenset({"piuparts"}),
            extras=ExtraSources(repositories=(line,), keys=(tmp_path / "signer.asc",))))
    assert again.layer_cached
    again_log = again.log_path.read_text().split("\npiuparts\n--------\n")[1]
    assert "using cached build-dependency layer" in again_log
    assert "an extra repository: downloads go to " in again_log, again_log[-3000:]
    assert f"Setting up {PROVIDED} (1.0) " in again_log
    assert "\nPiuparts: pass\n" in again_log, again_log[-3000:]
    assert marker_of(tmp_path / "out" / "needs-extra_1.0_all.deb") == f"repo-{os.getpid()}"
    assert result.layer_key is not None
    # piuparts installed the built package with the repository's package (from its
    # local repository: piuparts's chroot has no network) and passed
    log = result.log_path.read_text()
    assert "a local repository of 2 .debs (1 of them dependencies)" in log, log[-3000:]
    assert f"Setting up {PROVIDED} (1.0) " in log
    assert "\nPiuparts: pass\n" in log.split("| Summary ")[1], log[-3000:]
    # The repository's package never entered the shared download cache.
    assert not list((test_config.cachedir / "debs").glob(f"{PROVIDED}_*"))
    # The layers are this run's alone (its marker): removed again, not left in the cache.
    made = [layer for layer in layers.list_layers(test_config)
            if layer.key in layers_with_extra(test_config) - before]
    assert result.layer_key in {layer.key for layer in made}
    for layer in made:
        assert layers.remove_layer(test_config, layer)


# --- the same repository over https ----------------------------------------------------

def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA: its certificate and key (P-256), valid for two days."""
    cert, key = directory / "ca.pem", directory / "ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
            "/CN=guestpkg test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path], name: str,
                     subject_alt_name: str) -> tuple[Path, Path]:
    """A server certificate for *subject_alt_name* signed by *ca*, and its key."""
    cert, key, csr = (directory / f"{name}.pem", directory / f"{name}.key",
                      directory / f"{name}.csr")
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={subject_alt_name}\n"
                          "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    return cert, key


HTTPS_SERVER = """
import functools, http.server, ssl, sys
directory, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
server = http.server.HTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def serve_https(directory: Path, cert: tuple[Path, Path]) -> Iterator[str]:
    """Python's http.server wrapped in TLS with *cert*, on 127.0.0.1, in a process of
    its own (a client that refuses the handshake only ends that connection)."""
    server = subprocess.Popen(["/usr/bin/python3", "-c", HTTPS_SERVER, str(directory),
                               str(cert[0]), str(cert[1])],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        yield f"https://127.0.0.1:{int(server.stdout.readline())}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


def layers_with_extra(config: Config) -> set[str]:
    return {layer.key for layer in layers.list_layers(config)
            if any(p.startswith(f"{PROVIDED}:") for p in layer.packages)}


def test_extra_repository_over_https(test_config: Config, base_root: BaseRoot,
                                     tmp_path: Path) -> None:
    tree = make_source(tmp_path)
    marker = f"https-{os.getpid()}"
    signer = tmp_path / "signer"
    (tmp_path / "signer.asc").write_bytes(make_key(signer, "signer"))
    make_repository(tmp_path / "repo", make_extra_deb(tmp_path, marker), signer)
    ca = make_ca(tmp_path)
    good = make_server_cert(tmp_path, ca, "good", "IP:127.0.0.1")
    misnamed = make_server_cert(tmp_path, ca, "misnamed", "DNS:repo.invalid")
    key = str(tmp_path / "signer.asc")
    before = layers_with_extra(test_config)
    with serve_https(tmp_path / "repo", good) as url, \
            serve_https(tmp_path / "repo", misnamed) as misnamed_url:
        # This machine's CA set does not know the test's CA: refused, one line.
        done = run_cli(test_config, "--extra-repository", f"deb {url} test main",
                       "--extra-repository-key", key, str(tree), str(tmp_path / "untrusted"))
        assert done.returncode == 1, done.stderr[-3000:]
        [error] = [line for line in done.stderr.splitlines() if "error:" in line]
        assert error.startswith("guestpkg: error: the https server of an extra repository "
                                "was not trusted: Certificate verification failed: "), error
        assert "issuer is unknown" in error
        assert "--extra-repository-ca FILE.pem" in done.stderr
        # The test's CA, but a certificate for another name.
        with pytest.raises(BuildFailed, match=r"not trusted: .*name in the certificate"):
            build_package(test_config, tree, tmp_path / "misnamed", BuildOptions(
                tee=False, extras=ExtraSources(repositories=(f"deb {misnamed_url} test main",),
                                               keys=(tmp_path / "signer.asc",),
                                               ca_file=ca[0])))
        assert layers_with_extra(test_config) == before     # nothing was cached
        assert not (tmp_path / "untrusted").exists() and not (tmp_path / "misnamed").exists()
        # The front door with the CA given: apt-get update and the download over https.
        done = run_cli(test_config, "--extra-repository", f"deb {url} test main",
                       "--extra-repository", f"deb-src {url} test main",
                       "--extra-repository-key", key, "--extra-repository-ca", str(ca[0]),
                       str(tree), str(tmp_path / "out"))
        assert done.returncode == 0, done.stderr[-3000:]
    assert marker_of(tmp_path / "out" / "needs-extra_1.0_all.deb") == marker
    log = (tmp_path / "out" / "needs-extra_1.0_amd64.build").read_text()
    # apt-get update and the download, both over https (apt shows the URI without its /)
    assert f"{url.rstrip('/')} test InRelease" in log
    assert f"{url.rstrip('/')} test/main all {PROVIDED} all 1.0" in log
    assert "not used: deb-src" in log
    # The layer is this run's alone (its marker): removed again, not left in the cache.
    for layer in layers.list_layers(test_config):
        if layer.key in layers_with_extra(test_config) - before:
            layers.remove_layer(test_config, layer)
