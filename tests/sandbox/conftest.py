# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the sandbox tests.

- ``probe``: ``probe.c`` compiled statically (``gcc -static``; libc6-dev has libc.a),
  so it runs in any root, bound read-only at ``/probe`` inside.
- ``tiny_root``: a minimal tree (``/tmp``, ``/etc``, a file, a setuid-root copy of the
  probe) used as the overlay's lower layer; tests check it never changes.
- ``sandbox``: runs probes as the build user (uid 4242, which no host process has) and
  returns their results as a dict ``{probe: result}`` plus the raw output.
- ``id_mapping``: each test that uses it (and every test using ``sandbox``) runs twice,
  in a user namespace (the default) and with real host ids (``id_mapping = root``):
  every guarantee must hold in both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed

HERE = Path(__file__).resolve().parent
BUILD_UID = 4242
PROBE_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the sandbox probe (apt install gcc libc6-dev)")
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Werror", "-o", str(out),
                    str(HERE / "probe.c")], check=True)
    return out


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> Path:
    root = tmp_path_factory.mktemp("tiny-root")
    for name, mode in (("tmp", 0o1777), ("etc", 0o755), ("data", 0o755), ("build", 0o755)):
        (root / name).mkdir()
        os.chmod(root / name, mode)
    os.chown(root / "build", BUILD_UID, BUILD_UID)
    (root / "etc" / "hostname").write_text("tiny\n")
    (root / "data" / "file").write_text("lower layer content\n")
    setuid_probe = root / "setuid-probe"
    shutil.copy(probe, setuid_probe)
    os.chown(setuid_probe, 0, 0)
    os.chmod(setuid_probe, 0o4755)
    return root


def snapshot(tree: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry of *tree*: mode, owner, size and content hash."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[str(path.relative_to(tree))] = (st.st_mode, st.st_uid, st.st_size, digest)
    return result


@dataclass
class ProbeRun:
    status: int
    output: str
    results: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def parse(output: str) -> tuple[dict[str, str], list[str]]:
    results, lines = {}, []
    for line in output.splitlines():
        lines.append(line)
        name, _, value = line.partition(" ")
        results.setdefault(name, value)
    return results, lines


ID_MAPPINGS = ("userns", "root")


@pytest.fixture(params=ID_MAPPINGS)
def id_mapping(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(tmp_path: Path, tiny_root: Path, probe: Path,
            id_mapping: str) -> Callable[..., ProbeRun]:
    counter = iter(range(1000))

    def run(*probes: str, **fields: Any) -> ProbeRun:
        fields.setdefault("id_mapping", id_mapping)
        fields.setdefault("lowerdirs", (tiny_root,))
        fields.setdefault("uid", BUILD_UID)
        fields.setdefault("gid", BUILD_UID)
        fields.setdefault("env", PROBE_ENV)
        fields["binds"] = (Bind(probe, "/probe"), *fields.get("binds", ()))
        argv = fields.pop("argv", ("/probe", *probes))
        spec = SandboxSpec(argv=tuple(argv), **fields)
        log = tmp_path / f"sandbox-{next(counter)}.log"
        status = run_sandboxed(spec, log_path=log, check=False)
        output = log.read_text()
        results, lines = parse(output)
        return ProbeRun(status, output, results, lines)

    return run
