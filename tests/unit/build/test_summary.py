# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.summary: sbuild's section boxes and Summary lines."""

from __future__ import annotations

from guestpkg.build import summary


def test_section_box_is_sbuilds() -> None:
    text = summary.section("Summary")
    rule = "+" + "-" * 78 + "+"
    assert text == f"\n{rule}\n| Summary{' ' * 69} |\n{rule}\n\n"
    assert all(len(line) == 80 for line in text.splitlines() if line)


def test_summary_and_environment() -> None:
    text = summary.summary({"Status": "successful", "Build-Time": "12"})
    assert text.endswith("\nBuild-Time: 12\nStatus: successful\n")
    env = summary.build_environment(["texinfo:amd64=6.8-6+b1", "-foo", "automake:all=1:1.16.5-1.3"])
    assert "\nremoved: foo\nautomake_1:1.16.5-1.3_all\ntexinfo_6.8-6+b1_amd64\n" in env
