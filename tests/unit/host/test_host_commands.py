# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg status, forget and rebuild on a made-up host in temporary directories
(the commands read dpkg's database with dpkg-query, nothing more, before they fail or
finish)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from guestpkg.host import state as st
from guestpkg.host.manifest import Manifest, UpstreamFile, render_manifest

REPO = Path(__file__).resolve().parents[3]
HOST = "guestpkg-test-installer"


def env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8",
            "GUESTPKG_CONFDIR": str(tmp_path / "etc"), "GUESTPKG_VARDIR": str(tmp_path / "var"),
            "GUESTPKG_LOGDIR": str(tmp_path / "log"), "GUESTPKG_SRCDIR": str(tmp_path / "src"),
            "GUESTPKG_HOSTSDIR": str(tmp_path / "hosts")}


def guestpkg(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "guestpkg", *args], env=env(tmp_path),
                          capture_output=True, text=True)


def install_host(tmp_path: Path, consent: bool | None) -> None:
    share = tmp_path / "hosts" / HOST
    (share / "debian").mkdir(parents=True)
    (share / "debian" / "control").write_text(
        "Source: guestpkg-test-guest\n\nPackage: guestpkg-test-guest\nArchitecture: all\n")
    manifest = Manifest(HOST, "guestpkg-test-guest", "1.0-1",
                        (UpstreamFile("guestpkg-test-guest_1.0.orig.tar.gz", 1, "a" * 64),))
    (share / "manifest").write_text(render_manifest(manifest))
    state = st.HostState(HOST, consent=consent, bundled_version="1.0-1")
    state.record_failure("offline", 1.0, 3600.0, 86400.0)
    st.save(tmp_path / "var", state, pending=True)


def test_status_shows_consent_versions_and_the_last_error(tmp_path: Path) -> None:
    install_host(tmp_path, consent=True)
    result = guestpkg(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["host"], row["consent"], row["bundled_version"], row["guest_package"]) == \
        (HOST, True, "1.0-1", "guestpkg-test-guest")
    assert row["failures"] == 1 and row["last_error"] == "offline"
    text = guestpkg(tmp_path, "status").stdout
    assert f"{HOST}: pending retry" in text and "last error (1 failures): offline" in text


def test_rebuild_needs_consent(tmp_path: Path) -> None:
    install_host(tmp_path, consent=False)
    result = guestpkg(tmp_path, "rebuild", HOST)
    assert result.returncode == 2
    assert f"no consent to build the guest of {HOST}" in result.stderr
    assert f"hint: dpkg-reconfigure {HOST}" in result.stderr


def test_rebuild_of_an_unknown_host(tmp_path: Path) -> None:
    result = guestpkg(tmp_path, "rebuild", "nothing-installer")
    assert result.returncode == 2 and "is not an installed host package" in result.stderr


def test_forget_drops_the_state(tmp_path: Path) -> None:
    install_host(tmp_path, consent=True)
    (tmp_path / "src" / HOST).mkdir(parents=True)
    result = guestpkg(tmp_path, "forget", HOST)
    assert result.returncode == 0, result.stderr
    assert st.known_hosts(tmp_path / "var") == []
    assert st.pending_hosts(tmp_path / "var") == []
    assert (tmp_path / "src" / HOST).is_dir()
    assert guestpkg(tmp_path, "forget", "--debs", HOST).returncode == 0
    assert not (tmp_path / "src" / HOST).exists()
