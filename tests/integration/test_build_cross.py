# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --host-arch arm64 on hello 2.10-3 from its bookworm .dsc, as sbuild
cross-builds: the .debs, .changes and .buildinfo are for arm64, the binary is an
AArch64 ELF file, the cross and nocheck profiles were set, and the layer (Debian's
cross toolchain and arm64's libc through multiarch) is not the native one."""

from __future__ import annotations

import io
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

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


def test_cross_build_of_hello_for_arm64(test_config: Config, base_root: BaseRoot,
                                        tmp_path: Path) -> None:
    assert base_root.arch == "amd64"
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "GUESTPKG_CACHEDIR":
           str(test_config.cachedir), "GUESTPKG_LOGDIR": str(test_config.logdir),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    done = subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "build", "--quiet-build",
                           "--host-arch", "arm64", str(debsrc.dsc_path("hello")),
                           str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
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
