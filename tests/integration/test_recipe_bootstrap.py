# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg recipe bootstrap``: the seed set from Debian's packages, as dcfpkgs with
their provenance, and a toolchain that works in the sandbox from those packages only."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from guestpkg.config import Config
from guestpkg.dcfpkg.reader import read_metadata, verify
from guestpkg.recipe.bootstrap import BASE_PACKAGE, BUILD_UID, SEEDS, BootstrapSet, set_id
from guestpkg.recipe.layers import set_layer
from guestpkg.sandbox import SandboxSpec, run_sandboxed

HELLO_C = 'int puts(const char *); int main(void) { puts("hello from the seeds"); return 0; }'
HELLO_CXX = '#include <iostream>\nint main() { std::cout << "c++ " << sizeof(void*) << "\\n"; }'
BUILD_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/build", "LC_ALL": "C.UTF-8"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_set(found: BootstrapSet, debian_arch: str) -> None:
    files = sorted(p.name for p in found.directory.glob("*.dcfpkg"))
    assert files == sorted(m.file for m in found.members)
    assert set_id(found.arch, list(found.members)) == found.id
    names = set()
    for member in found.members:
        path = found.directory / member.file
        assert sha256(path) == member.sha256
        meta = verify(path)
        names.add(meta.package)
        assert meta.architecture == debian_arch
        if meta.package == BASE_PACKAGE:
            assert meta.provenance == ""
            continue
        package, version, deb_sha256 = meta.provenance.split(" ")
        assert package == meta.package and len(deb_sha256) == 64
        assert version.endswith(meta.version + ("-" + meta.release
                                                if meta.release != "0" else ""))
    assert {*SEEDS, "coreutils", "sed", "grep", "tar", "gzip", "diffutils", "findutils",
            "dash", "bash", "libc6", "libstdc++6", BASE_PACKAGE} <= names


def in_seeds(config: Config, found: BootstrapSet, tmp_path: Path, script: str) -> str:
    log = tmp_path / "run.log"
    spec = SandboxSpec(argv=("/bin/sh", "-euc", script), lowerdirs=(set_layer(config, found),),
                       uid=BUILD_UID, gid=BUILD_UID, env=BUILD_ENV, cwd="/tmp")
    status = run_sandboxed(spec, log_path=log, check=False)
    output = log.read_text()
    assert status == 0, output
    return output


def test_the_x86_64_set_is_debian_packages_with_provenance(
        bootstrap_x86_64: BootstrapSet) -> None:
    check_set(bootstrap_x86_64, "amd64")
    with open(bootstrap_x86_64.directory / next(
            m.file for m in bootstrap_x86_64.members if m.file.startswith("make_")), "rb") as f:
        assert read_metadata(f, "make").source.startswith("debian/")


def test_the_seeds_alone_compile_and_run_c_and_cxx(test_config: Config,
                                                    bootstrap_x86_64: BootstrapSet,
                                                    tmp_path: Path) -> None:
    output = in_seeds(test_config, bootstrap_x86_64, tmp_path, f"""
        id -un
        printf '%s' '{HELLO_C}' > hello.c && cc -O2 -o hello hello.c && ./hello
        printf '%s\\n' '{HELLO_CXX}' > hello.cc && c++ -o hellocc hello.cc && ./hellocc
        make --version | head -1; awk 'BEGIN {{ print "awk ok" }}'
        echo sed | sed s/sed/sed-ok/; perl -e 'print "perl ok\\n"'
        echo x | xz | xz -d; echo y | bzip2 | bzip2 -d; patch --version | head -1
        """)
    assert "build\nhello from the seeds\nc++ 8\nGNU Make 4.3\nawk ok\nsed-ok\nperl ok\n" \
        "x\ny\nGNU patch" in output


def test_the_i586_set_builds_i586_code(test_config: Config, bootstrap_i586: BootstrapSet,
                                       tmp_path: Path) -> None:
    check_set(bootstrap_i586, "i386")
    output = in_seeds(test_config, bootstrap_i586, tmp_path, f"""
        printf '%s' '{HELLO_C}' > hello.c && cc -march=i586 -o hello hello.c && ./hello
        printf '%s\\n' '{HELLO_CXX}' > hello.cc && c++ -march=i586 -o hellocc hello.cc
        ./hellocc; od -An -tx1 -j4 -N1 hello
        """)
    assert "hello from the seeds\nc++ 4\n 01\n" in output  # ELFCLASS32


def test_bootstrap_again_reuses_the_set(test_config: Config,
                                        bootstrap_x86_64: BootstrapSet) -> None:
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(test_config.cachedir),
           "GUESTPKG_VARDIR": str(test_config.vardir), "GUESTPKG_LOGDIR": str(test_config.logdir)}
    result = subprocess.run([sys.executable, "-m", "guestpkg", "recipe", "bootstrap",
                             "--arch", "x86_64"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"bootstrap set {bootstrap_x86_64.id} for x86_64: "
                                    f"{len(bootstrap_x86_64.members)} packages")
    assert "made earlier" in result.stdout
