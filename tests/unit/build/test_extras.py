# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.extras without root: the extra .debs are hostile input (names and
fields that would point apt elsewhere or break out of the index, symlinks, bombs),
the repository lines and keys are checked, and the layer key changes with them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.build import extras
from guestpkg.build.extras import ExtraSources, parse_repository, prepare
from guestpkg.build.layers import layer_key
from guestpkg.debian import deb822
from guestpkg.debian.control import reduce_relations
from guestpkg.debian.debfile import write_deb
from guestpkg.errors import UsageError

CONTROL = ("Package: extra-tool\nVersion: 1:2.0-1\nArchitecture: amd64\n"
           "Maintainer: x <x@localhost>\nDescription: a tool\n more text\n .\n end\n")


def deb(directory: Path, control: str = CONTROL, name: str = "tool.deb") -> Path:
    path = directory / name
    write_deb(path, control)
    return path


def packages_of(work: Path) -> list[deb822.Stanza]:
    return deb822.parse((work / "extra" / "debs" / "Packages").read_text())


def test_index_names_the_copy_and_its_hash(tmp_path: Path) -> None:
    made = prepare(ExtraSources(packages=(deb(tmp_path),)), "amd64", "amd64", tmp_path)
    [stanza] = packages_of(tmp_path)
    assert stanza.get("Filename") == "./extra-tool_1%3a2.0-1_amd64.deb"
    copy = tmp_path / "extra" / "debs" / "extra-tool_1%3a2.0-1_amd64.deb"
    assert copy.read_bytes() == (tmp_path / "tool.deb").read_bytes()
    assert stanza.get("Size") == str(copy.stat().st_size)
    import hashlib
    assert stanza.get("SHA256") == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert stanza.get("Description") == "a tool\nmore text\n.\nend"
    assert (tmp_path / "extra" / "sources.list").read_text() == \
        f"deb [trusted=yes] file:{extras.EXTRA_MOUNT}/debs ./\n"
    assert made.debs[0].package == "extra-tool"


@pytest.mark.parametrize("control, message", [
    # Fields the index writes itself would point apt at another file.
    (CONTROL + "Filename: ../../../etc/shadow\nSHA256: " + "0" * 64 + "\n", None),
    ("Package: ../evil\nVersion: 1\nArchitecture: all\n", "bad package name"),
    ("Package: -o\nVersion: 1\nArchitecture: all\n", "bad package name"),
    ("Package: ok-name\nVersion: 1/../../x\nArchitecture: all\n", "bad version"),
    ("Package: ok-name\nVersion: 1\nArchitecture: amd64 i386\n", "bad architecture"),
    ("Package: ok-name\nVersion: 1\n", "no Architecture field"),
    ("Package: ok-name\nVersion: 1\nArchitecture: all\n\nPackage: second\n", "stanzas"),
    ("Package: ok-name\nPackage: again\nVersion: 1\nArchitecture: all\n", "not a usable"),
])
def test_hostile_control_fields(tmp_path: Path, control: str, message: str | None) -> None:
    path = deb(tmp_path, control)
    if message is None:
        prepare(ExtraSources(packages=(path,)), "amd64", "amd64", tmp_path)
        [stanza] = packages_of(tmp_path)
        assert stanza.get("Filename") == "./extra-tool_1%3a2.0-1_amd64.deb"
        assert stanza.get("SHA256") != "0" * 64
        assert list(stanza.fields).count("filename") == 1
        return
    with pytest.raises(UsageError, match=message):
        prepare(ExtraSources(packages=(path,)), "amd64", "amd64", tmp_path)
    assert not [p for p in (tmp_path / "extra" / "debs").iterdir() if p.suffix == ".deb"]


def test_symlinked_deb_is_refused(tmp_path: Path) -> None:
    target = deb(tmp_path)
    (tmp_path / "dir").mkdir()
    os.symlink(target, tmp_path / "dir" / "link.deb")
    with pytest.raises(UsageError, match="symbolic link"):
        prepare(ExtraSources(packages=(tmp_path / "dir" / "link.deb",)), "amd64", "amd64",
                tmp_path)
    with pytest.raises(UsageError, match="symbolic link"):
        prepare(ExtraSources(packages=(tmp_path / "dir",)), "amd64", "amd64", tmp_path)


def test_fifo_and_non_deb_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.deb")
    with pytest.raises(UsageError, match="not a regular file"):
        prepare(ExtraSources(packages=(tmp_path / "pipe.deb",)), "amd64", "amd64", tmp_path)
    (tmp_path / "text.deb").write_text("not ar\n")
    with pytest.raises(UsageError, match="not a Debian binary package"):
        prepare(ExtraSources(packages=(tmp_path / "text.deb",)), "amd64", "amd64", tmp_path)
    (tmp_path / "cut.deb").write_bytes((tmp_path / "text.deb").read_bytes()[:0] +
                                       b"!<arch>\ndebian-binary   ")
    with pytest.raises(UsageError, match=r"not a usable \.deb"):
        prepare(ExtraSources(packages=(tmp_path / "cut.deb",)), "amd64", "amd64", tmp_path)


def test_oversized_deb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = deb(tmp_path)
    monkeypatch.setattr(extras, "MAX_EXTRA_DEB_BYTES", path.stat().st_size - 1)
    with pytest.raises(UsageError, match="more than the"):
        prepare(ExtraSources(packages=(path,)), "amd64", "amd64", tmp_path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        prepare(ExtraSources(packages=(tmp_path / "nope.deb",)), "amd64", "amd64", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no \.deb files"):
        prepare(ExtraSources(packages=(tmp_path / "empty",)), "amd64", "amd64", tmp_path)


def test_two_different_debs_of_one_name_and_version(tmp_path: Path) -> None:
    one = deb(tmp_path, CONTROL, "one.deb")
    two = deb(tmp_path, CONTROL.replace("a tool", "another tool"), "two.deb")
    with pytest.raises(UsageError, match=r"two different \.debs"):
        prepare(ExtraSources(packages=(one, two)), "amd64", "amd64", tmp_path)


@pytest.mark.parametrize("line, message", [
    ("", "not a 'deb URI"),
    ("deb-sources http://h/debian bookworm main", "not a 'deb URI"),
    ("deb-src [arch=amd64] http://h/debian bookworm main", "options in"),
    ("deb-src http://h/debian bookworm", "needs them"),
    ("deb-src file:/srv bookworm main", "not an http"),
    ("deb http://h/debian", "a URI and a suite"),
    ("deb [trusted=yes] http://h/debian bookworm main", "options in"),
    ("deb file:/srv/repo bookworm main", "not an http"),
    ("deb http://h/debian#x bookworm main", "not an http"),
    ("deb http://h/debian ../../x main", "bad suite"),
    ("deb http://h/debian bookworm", "needs them"),
    ("deb http://h/debian ./ main", "takes no components"),
    ("deb http://h/debian bookworm ma\x1bin", "control characters"),
    ("deb http://h/debian bookworm main\ndeb http://evil/ x main", "control characters"),
    ("deb http://h/debian bookworm $(id)", "bad component"),
])
def test_malformed_repository_lines(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse_repository(line)


def test_repository_line_and_keys(tmp_path: Path) -> None:
    assert parse_repository("deb https://h.example/debian ./").line(["/k/1.asc"]) == \
        "deb [signed-by=/k/1.asc] https://h.example/debian ./"
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    binary = tmp_path / "key.gpg"
    binary.write_bytes(b"\x99\x01\x0d" + b"\x00" * 20)
    line = "deb http://127.0.0.1:8/ test main"
    with pytest.raises(UsageError, match="needs --extra-repository-key"):
        prepare(ExtraSources(repositories=(line,)), "amd64", "amd64", tmp_path)
    with pytest.raises(UsageError, match="without --extra-repository"):
        prepare(ExtraSources(keys=(key,)), "amd64", "amd64", tmp_path)
    made = prepare(ExtraSources(repositories=(line,), keys=(key, binary)), "amd64", "amd64",
                   tmp_path)
    assert (tmp_path / "extra" / "sources.list").read_text() == (
        f"deb [signed-by={extras.EXTRA_MOUNT}/keys/1.asc,{extras.EXTRA_MOUNT}/keys/2.gpg] "
        "http://127.0.0.1:8/ test main\n")
    assert made.repositories and not made.debs
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(UsageError, match="not an OpenPGP public key"):
        prepare(ExtraSources(repositories=(line,), keys=(tmp_path / "junk",)), "amd64",
                "amd64", tmp_path / "extra")


def test_deb_src_lines_are_checked_and_left_out(tmp_path: Path) -> None:
    """sbuild users paste deb-src lines: checked with the same grammar, then left out
    of what apt sees (a build from a source tree reads no Sources index; fetching one
    could only fail the build), so they need no key and change no layer."""
    source = parse_repository("deb-src http://h/debian bookworm main")
    assert (source.kind, source.uri, source.suite) == ("deb-src", "http://h/debian", "bookworm")
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    line = "deb http://127.0.0.1:8/ test main"
    src = "deb-src http://127.0.0.1:8/ test main"
    for name in "abcd":
        (tmp_path / name).mkdir()
    made = prepare(ExtraSources(repositories=(src,)), "amd64", "amd64", tmp_path / "a")
    assert not made.repositories and made.unused_sources == (parse_repository(src),)
    assert not made.needs_update
    assert (tmp_path / "a" / "extra" / "sources.list").read_text() == ""
    assert extras.with_identity(made, "amd64").identity == ""
    both = prepare(ExtraSources(repositories=(line, src), keys=(key,)), "amd64", "amd64",
                   tmp_path / "b")
    only = prepare(ExtraSources(repositories=(line,), keys=(key,)), "amd64", "amd64",
                   tmp_path / "c")
    assert (tmp_path / "b" / "extra" / "sources.list").read_text() == \
        (tmp_path / "c" / "extra" / "sources.list").read_text()
    assert [r.kind for r in both.repositories] == ["deb"]
    assert extras.with_identity(both, "amd64").identity == \
        extras.with_identity(only, "amd64").identity
    # A deb line still needs its key; a deb-src line does not.
    with pytest.raises(UsageError, match="needs --extra-repository-key"):
        prepare(ExtraSources(repositories=(src, line)), "amd64", "amd64", tmp_path / "d")


def test_identity_changes_with_what_apt_sees(tmp_path: Path) -> None:
    identities = set()
    for n, (control, arch) in enumerate([(CONTROL, "amd64"), (CONTROL + "X-A: b\n", "amd64"),
                                         (CONTROL, "arm64")]):
        work = tmp_path / str(n)
        work.mkdir()
        made = prepare(ExtraSources(packages=(deb(work, control),)), arch, "amd64", work)
        identities.add(extras.with_identity(made, arch).identity)
    assert len(identities) == 3
    plain = prepare(ExtraSources(), "amd64", "amd64", tmp_path / "0")
    assert extras.with_identity(plain, "amd64").identity == ""
    actions = ["extra-tool:amd64=1:2.0-1"]
    assert layer_key("g", actions) != layer_key("g", actions, "ab") != layer_key("g", actions, "cd")
    assert layer_key("g", actions, "") == layer_key("g", actions)


def test_base_identity_is_the_same_build_without_extra_packages(tmp_path: Path) -> None:
    """The variant whose layers an --extra-package build may grow on: the plain
    build's ("" natively, the --host-arch identity for a cross build); none with a
    repository, whose lists could offer any package."""
    def made(name: str, request: ExtraSources, host_arch: str = "arm64") -> extras.Extras:
        work = tmp_path / name
        (work / "extra" / "lists").mkdir(parents=True)
        if host_arch != "amd64":    # the foreign lists, as prepare_extras copies them
            (work / "extra" / "lists" / "m_dists_bookworm_main_binary-arm64_Packages"
             ).write_text("Package: libc6\n")
        return extras.with_identity(prepare(request, host_arch, "amd64", work), host_arch)

    cross = made("cross", ExtraSources())
    with_deb = made("deb", ExtraSources(packages=(deb(tmp_path),)))
    assert with_deb.identity not in ("", cross.identity)
    assert with_deb.base_identity == cross.identity == cross.base_identity
    assert made("native", ExtraSources(packages=(deb(tmp_path),)), "amd64").base_identity == ""
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    repository = made("repo", ExtraSources(repositories=("deb http://h/d ./",), keys=(key,)))
    assert repository.base_identity is None


def test_host_arch_and_cross_relations() -> None:
    assert extras.check_arch("arm64") == "arm64"
    for bad in ("", "arm64 ", "-a", "ARM64", "a/b", "x;y"):
        with pytest.raises(UsageError):
            extras.check_arch(bad)
    # :native is the build architecture in a cross build (sbuild's dummy package)
    assert reduce_relations("tool:native, lib [arm64], other [amd64]", "arm64",
                            build_arch="amd64") == ["tool:amd64", "lib"]
    assert reduce_relations("tool:native", "amd64") == ["tool"]
    assert extras.cross_sources(["deb http://m/debian bookworm main contrib"], "arm64") == \
        "deb [arch=arm64] http://m/debian bookworm main contrib\n"


def test_cross_packages_and_environment() -> None:
    assert extras.cross_build_packages(["fakeroot"], "arm64") == [
        "fakeroot:native", "crossbuild-essential-arm64:native", "libc-dev:arm64",
        "libstdc++-dev:arm64"]
    env = extras.cross_environment({"A": "b"}, "arm64", 3)
    assert env == {"A": "b", "CONFIG_SITE": "/etc/dpkg-cross/cross-config.arm64",
                   "DEB_BUILD_OPTIONS": "nocheck parallel=3"}
    assert extras.cross_environment({"DEB_BUILD_OPTIONS": "x"}, "arm64", 3)[
        "DEB_BUILD_OPTIONS"] == "x"
    assert extras.cross_environment({"A": "b"}, "", 3) == {"A": "b"}


# --- https repositories: the CA set apt checks their servers against ------------------

def make_ca(directory: Path, name: str = "ca") -> Path:
    """A self-signed CA certificate (PEM), made with openssl in *directory*."""
    import subprocess
    path = directory / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(directory / f"{name}.key"),
                    "-out", str(path), "-days", "2", "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    return path


@pytest.fixture
def system_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for this system's CA set (never the real /etc/ssl)."""
    (tmp_path / "system").mkdir()
    path = make_ca(tmp_path / "system", "system")
    monkeypatch.setattr(extras, "SYSTEM_CA_FILE", path)
    return path


def https_request(tmp_path: Path, ca_file: Path | None = None,
                  line: str = "deb https://repo.example:8443/debian test main") -> ExtraSources:
    key = tmp_path / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n")
    return ExtraSources(repositories=(line,), keys=(key,), ca_file=ca_file)


def test_https_repository_gets_the_system_ca_set(tmp_path: Path, system_ca: Path) -> None:
    (tmp_path / "w").mkdir()
    made = prepare(https_request(tmp_path), "amd64", "amd64", tmp_path / "w")
    bundle = tmp_path / "w" / "extra" / extras.CA_BUNDLE
    assert bundle.read_bytes() == system_ca.read_bytes()
    assert extras.https_options(made) == [
        "-o", f"Acquire::https::CaInfo={extras.EXTRA_MOUNT}/{extras.CA_BUNDLE}"]
    # Plain http: no CA set, no option.
    (tmp_path / "h").mkdir()
    plain = prepare(https_request(tmp_path, line="deb http://h/debian test main"),
                    "amd64", "amd64", tmp_path / "h")
    assert extras.https_options(plain) == []
    assert not (tmp_path / "h" / "extra" / extras.CA_BUNDLE).exists()


def test_extra_repository_ca_adds_to_the_system_set(tmp_path: Path, system_ca: Path) -> None:
    private = make_ca(tmp_path, "private")
    (tmp_path / "w").mkdir()
    made = prepare(https_request(tmp_path, private), "amd64", "amd64", tmp_path / "w")
    bundle = (tmp_path / "w" / "extra" / extras.CA_BUNDLE).read_bytes()
    assert system_ca.read_bytes() in bundle and private.read_bytes() in bundle
    # The CA set decides which server apt talks to, not what it installs (the lists
    # and the Release signature do): not part of the layer's identity.
    (tmp_path / "v").mkdir()
    without = prepare(https_request(tmp_path), "amd64", "amd64", tmp_path / "v")
    assert extras.with_identity(made, "amd64").identity == \
        extras.with_identity(without, "amd64").identity


def test_extra_repository_ca_is_checked(tmp_path: Path, system_ca: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "w").mkdir()
    work = tmp_path / "w"
    private = make_ca(tmp_path, "private")
    with pytest.raises(UsageError, match="without an https --extra-repository"):
        prepare(https_request(tmp_path, private, "deb http://h/debian test main"),
                "amd64", "amd64", work)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="not a PEM certificate"):
        prepare(https_request(tmp_path, junk), "amd64", "amd64", work)
    (tmp_path / "empty.pem").write_text("hello\n")
    with pytest.raises(UsageError, match="not a PEM certificate"):
        prepare(https_request(tmp_path, tmp_path / "empty.pem"), "amd64", "amd64", work)
    os.symlink(private, tmp_path / "link.pem")
    with pytest.raises(UsageError, match="symbolic link"):
        prepare(https_request(tmp_path, tmp_path / "link.pem"), "amd64", "amd64", work)
    with pytest.raises(UsageError, match="no such file"):
        prepare(https_request(tmp_path, tmp_path / "nope.pem"), "amd64", "amd64", work)
    monkeypatch.setattr(extras, "MAX_CA_BYTES", private.stat().st_size - 1)
    with pytest.raises(UsageError, match="more than"):
        prepare(https_request(tmp_path, private), "amd64", "amd64", work)
    # No CA set on this system and none given: refused before anything runs.
    monkeypatch.setattr(extras, "SYSTEM_CA_FILE", tmp_path / "missing.crt")
    with pytest.raises(UsageError, match="no CA certificates") as refused:
        prepare(https_request(tmp_path), "amd64", "amd64", work)
    assert "apt-get install ca-certificates" in str(refused.value.hint)


def test_certificate_failure_is_found_in_apt_output() -> None:
    text = (
        "Err:1 https://127.0.0.1:4443 test InRelease\n"
        "  Certificate verification failed: The certificate is NOT trusted. The "
        "certificate issuer is unknown.  Could not handshake: Error in the certificate "
        "verification. [IP: 127.0.0.1 4443]\n"
        "Reading package lists...\n"
        "E: Failed to fetch https://127.0.0.1:4443/dists/test/InRelease  Certificate "
        "verification failed: The certificate is NOT trusted. The certificate issuer is "
        "unknown.  Could not handshake: Error in the certificate verification. "
        "[IP: 127.0.0.1 4443]\x1b[31m\n")
    reason = extras.certificate_failure(text)
    assert reason is not None and reason.startswith("Certificate verification failed: ")
    assert "issuer is unknown" in reason and "\x1b" not in reason and "\n" not in reason
    assert extras.certificate_failure("E: Failed to fetch http://h/x  404  Not Found\n") is None
    assert len(extras.certificate_failure("Could not handshake: " + "x" * 5000) or "") <= 300
