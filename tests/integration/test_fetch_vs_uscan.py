# SPDX-License-Identifier: GPL-2.0-or-later
"""Differential tests against uscan (devscripts) on the same local upstreams: the same
upstream version and URL are reported, and the same orig tarballs, byte for byte, are
downloaded.  uscan runs with --no-conf in a scratch source tree, only against
127.0.0.1."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.fetch import fetch_upstream, plan
from tests.support.upstream_server import Upstream
from tests.support.upstreams import Scenario


@pytest.fixture(scope="module")
def uscan() -> str:
    path = shutil.which("uscan")
    if path is None:
        pytest.fail("uscan is not installed: install devscripts (tools/test-depends)")
    return path


def run_uscan(uscan: str, tree: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tree.parent), "LC_ALL": "C.UTF-8",
           "no_proxy": "*"}  # never a proxy for 127.0.0.1
    result = subprocess.run([uscan, "--no-conf", "--dehs", *args], cwd=tree, env=env,
                            capture_output=True, text=True, timeout=120)
    # uscan exits 1 when nothing newer exists; a real failure shows in <errors>
    assert result.returncode in (0, 1), result.stderr
    assert "<errors>" not in result.stdout, result.stdout
    return result.stdout


def dehs(xml: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", xml, re.S)


def test_same_newest_version_and_url(tmp_path: Path, uscan: str, scenario: Scenario,
                                     upstream: Upstream) -> None:
    tree = scenario.write_source(tmp_path / "uscan", upstream.url)
    xml = run_uscan(uscan, tree, "--report")
    config = Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log")
    records = plan(config, scenario.write_source(tmp_path / "ours", upstream.url),
                   download=False).report()
    main, components = records[0], records[1:]
    assert main["upstream-version"] == dehs(xml, "upstream-version")[0]
    assert main["upstream-url"] == dehs(xml, "upstream-url")[0]
    assert main["status"] == dehs(xml, "status")[0]
    assert main["debian-mangled-uversion"] == dehs(xml, "debian-mangled-uversion")[0]
    assert [c["upstream-version"] for c in components] == dehs(
        xml, "component-upstream-version")
    assert [c["upstream-url"] for c in components] == dehs(xml, "component-upstream-url")


def test_same_bytes_downloaded(tmp_path: Path, uscan: str, scenario: Scenario,
                               upstream: Upstream) -> None:
    tree = scenario.write_source(tmp_path / "uscan", upstream.url)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    if any("component=" in line for line in scenario.watch.splitlines()):
        # bookworm's uscan resolves 'same' to an empty version under
        # --download-current-version (its parse() checks that option first);
        # --download-version is the same request spelled so that uscan honours it.
        version = scenario.version.split("-")[0]
        run_uscan(uscan, tree, "--download-version", version, "--destdir", str(theirs))
    else:
        run_uscan(uscan, tree, "--download-current-version", "--destdir", str(theirs))
    targets = sorted(p for p in theirs.iterdir() if ".orig" in p.name)
    assert targets, "uscan placed no orig tarball"
    pins = {_component(p.name): hashlib.sha256(p.read_bytes()).hexdigest() for p in targets}

    config = Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log")
    ours = fetch_upstream(config, scenario.write_source(tmp_path / "ours", upstream.url),
                          tmp_path / "out", pins)
    assert sorted(p.name for p in ours) == [p.name for p in targets]
    for path in ours:
        assert path.read_bytes() == (theirs / path.name).read_bytes()


def _component(name: str) -> str:
    match = re.search(r"\.orig-([^.]+)\.tar\.", name)
    return match.group(1) if match else ""
