# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --host-arch arm64 on hello 2.10-3 from its bookworm .dsc, as sbuild
cross-builds: the .debs, .changes and .buildinfo are for arm64, the binary is an
AArch64 ELF file, the cross and nocheck profiles were set, and the layer (Debian's
cross toolchain and arm64's libc through multiarch) is not the native one.  Then a
cross build whose build dependency is an --extra-package (an amd64 Multi-Arch:
foreign tool) grows its layer on hello's cross layer."""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from guestpkg.build import layers
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from tests.support import debsrc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: elf(5): e_machine of AArch64.
EM_AARCH64 = 183


def elf_machine(data: bytes) -> int:
    """e_machine of an ELF file: 16 bits at offset 18, in the byte order of EI_DATA."""
    assert data[:4] == b"\x7fELF"
    order = "<" if data[5] == 1 else ">"
    machine: int = struct.unpack_from(f"{order}H", data, 18)[0]
    return machine


def member(deb: Path, name: str) -> bytes:
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        extracted = archive.extractfile(name)
        assert extracted is not None
        return extracted.read()


def run_cli(test_config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "GUESTPKG_CACHEDIR":
           str(test_config.cachedir), "GUESTPKG_LOGDIR": str(test_config.logdir),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "build", "--quiet-build",
                           *args], env=env, capture_output=True, text=True, timeout=3600)


@pytest.fixture(scope="module")
def hello_arm64(test_config: Config, base_root: BaseRoot,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output directory of ``guestpkg build --host-arch arm64`` of hello's .dsc
    (and so hello's cross layer in the cache, which the extra-package build below
    grows on)."""
    assert base_root.arch == "amd64"
    out = tmp_path_factory.mktemp("hello-arm64")
    done = run_cli(test_config, "--host-arch", "arm64", str(debsrc.dsc_path("hello")),
                   str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_cross_build_of_hello_for_arm64(hello_arm64: Path) -> None:
    tmp_path = hello_arm64
    deb = tmp_path / "hello_2.10-3_arm64.deb"
    assert subprocess.run(["dpkg-deb", "-f", str(deb), "Architecture"], check=True,
                          capture_output=True, text=True).stdout.strip() == "arm64"
    assert elf_machine(member(deb, "./usr/bin/hello")) == EM_AARCH64
    changes = (tmp_path / "hello_2.10-3_arm64.changes").read_text()
    assert "\nArchitecture: arm64\n" in changes
    buildinfo = (tmp_path / "hello_2.10-3_arm64.buildinfo").read_text()
    assert "\nArchitecture: arm64\n" in buildinfo and "\nBuild-Architecture: amd64\n" in buildinfo
    log = (tmp_path / "hello_2.10-3_arm64.build").read_text()
    assert "DEB_BUILD_PROFILES='cross nocheck'" in log
    assert "dh_auto_test\" was omitted" in log      # nocheck: arm64 tests cannot run here
    tail = log[log.index("| Summary "):]
    assert "\nHost Architecture: arm64\n" in tail and "\nBuild Architecture: amd64\n" in tail
    environment = log[log.index("| Build environment "):log.index("| Summary ")]
    assert "\ncrossbuild-essential-arm64_" in environment
    assert any(line.startswith("libc6-dev_") and "arm64" in line
               for line in environment.splitlines())


# --- a cross build whose build dependency is an extra package -------------------------

TOOL = "guestpkg-test-cross-tool"


def make_tool_deb(directory: Path, marker: str) -> Path:
    """An amd64 tool with Multi-Arch: foreign (it runs on the build machine and
    satisfies a dependency of any architecture), made with dpkg-deb: it prints
    *marker*."""
    tree = directory / "tool"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {TOOL}\nVersion: 1.0\nArchitecture: amd64\nMulti-Arch: foreign\n"
        "Maintainer: guestpkg tests <root@localhost>\n"
        "Description: a build tool only the test's extra package has\n a test tool\n")
    script = tree / "usr" / "bin" / TOOL
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/bin/sh\necho {marker}\n")
    script.chmod(0o755)
    deb = directory / f"{TOOL}_1.0_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, stdout=subprocess.DEVNULL)
    return deb


CROSS_RULES = """#!/usr/bin/make -f
include /usr/share/dpkg/architecture.mk
build build-arch:
\tprintf 'int main(void) { return 0; }\\n' > cross-extra.c
\t$(DEB_HOST_GNU_TYPE)-gcc -o cross-extra cross-extra.c
\tguestpkg-test-cross-tool > tool-output
build-indep:
binary binary-arch: build-arch
\tinstall -d debian/tmp/DEBIAN debian/tmp/usr/bin debian/tmp/usr/share/doc/cross-extra
\tinstall -m 755 cross-extra debian/tmp/usr/bin/cross-extra
\tcp tool-output debian/tmp/usr/share/doc/cross-extra/marker
\tdpkg-gencontrol -pcross-extra -Pdebian/tmp
\tdpkg-deb --root-owner-group --build debian/tmp ..
binary-indep:
clean:
\trm -rf debian/tmp debian/files cross-extra cross-extra.c tool-output
"""


def make_cross_source(directory: Path) -> Path:
    """A C source package with hello's build dependencies and the extra tool (so
    its cross layer is hello's and the tool: made on hello's)."""
    return debsrc.native_source(
        directory / "cross-extra-1.0",
        "Source: cross-extra\nSection: misc\nPriority: optional\n"
        "Maintainer: guestpkg tests <root@localhost>\n"
        f"Build-Depends: debhelper-compat (= 13), help2man, texinfo, {TOOL} (>= 1.0)\n"
        "Rules-Requires-Root: no\n"
        "Standards-Version: 4.6.2\n\n"
        "Package: cross-extra\nArchitecture: any\n"
        "Description: cross-built with an extra build tool\n a test package\n",
        CROSS_RULES)


def test_cross_build_with_an_extra_package(test_config: Config, hello_arm64: Path,
                                           tmp_path: Path) -> None:
    marker = f"cross-tool-{os.getpid()}"     # a new layer each run: made, then removed
    tool = make_tool_deb(tmp_path, marker)
    done = run_cli(test_config, "--host-arch", "arm64", "--extra-package", str(tool),
                   str(make_cross_source(tmp_path)), str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    deb = tmp_path / "out" / "cross-extra_1.0_arm64.deb"
    assert elf_machine(member(deb, "./usr/bin/cross-extra")) == EM_AARCH64
    assert member(deb, "./usr/share/doc/cross-extra/marker").decode().strip() == marker
    log = (tmp_path / "out" / "cross-extra_1.0_arm64.build").read_text()
    environment = log[log.index("| Build environment "):log.index("| Summary ")]
    assert f"\n{TOOL}_1.0_amd64" in environment
    # The layer is hello's cross layer and the tool: made on it, one package installed.
    [made] = re.findall(r"into new layer ([0-9a-f]{32}) on layer ([0-9a-f]{32})", log)
    parent = layers.read_layer(test_config, made[1])
    assert parent is not None and any(
        p.startswith("crossbuild-essential-arm64:") for p in parent.packages)
    new = layers.read_layer(test_config, made[0])
    assert new is not None
    assert set(new.packages) - set(parent.packages) == {f"{TOOL}:amd64=1.0"}
    layers.remove_layer(test_config, new)
