# SPDX-License-Identifier: GPL-2.0-or-later
"""The committed guestpkg.conf(5) is exactly what the settings table generates."""

from __future__ import annotations

from pathlib import Path

from guestpkg import manpage
from guestpkg.config import SETTINGS

REPO = Path(__file__).resolve().parents[2]


def test_committed_conf_page_is_generated_from_the_table() -> None:
    committed = (REPO / "man" / "guestpkg.conf.5").read_text()
    assert committed == manpage.render(), (
        "man/guestpkg.conf.5 is stale: run python3 -m guestpkg.manpage > man/guestpkg.conf.5")


def test_every_setting_is_documented() -> None:
    page = manpage.render()
    for s in SETTINGS:
        assert s.env_var.replace("_", "_") in page.replace("\\-", "-")
