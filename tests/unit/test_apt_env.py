# SPDX-License-Identifier: GPL-2.0-or-later
"""One environment for every apt and dpkg run: guestpkg.run.apt_env."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.host import system
from guestpkg.run import apt_env

PACKAGE = Path(__file__).resolve().parents[2] / "guestpkg"


def test_apt_runs_get_the_proxies_and_no_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("GUESTPKG_VARDIR", "/elsewhere")
    monkeypatch.delenv("DEBCONF_NONINTERACTIVE_SEEN", raising=False)
    root, host = apt_env(throwaway_root=True), system.install_env()
    for env in (root, host):
        assert env["http_proxy"] == "http://proxy.example:3128"
        assert env["DEBIAN_FRONTEND"] == "noninteractive"
        assert "GUESTPKG_VARDIR" not in env
    # Questions are marked seen only in a root that is thrown away.
    assert root["DEBCONF_NONINTERACTIVE_SEEN"] == "true"
    assert "DEBCONF_NONINTERACTIVE_SEEN" not in host
    assert host[system.HOOK_GUARD] == "1"


def test_one_apt_environment() -> None:
    setting = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if '"DEBIAN_FRONTEND"' in p.read_text(encoding="utf-8"))
    assert setting == ["run.py"]
