# SPDX-License-Identifier: GPL-2.0-or-later
"""The bootstrap set's pure parts: its id, dpkg file lists on a merged-/usr root, the
merge of unpacked members into one layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.buildroot.sources import AptSource
from guestpkg.errors import UnsafeArchive
from guestpkg.recipe.bootstrap import Member, _physical_paths, bootstrap_sources, set_id
from guestpkg.recipe.layers import merge_into


def test_the_set_id_is_its_members_whatever_their_order() -> None:
    a, b = Member("a_1-1_amd64.dcfpkg", "1" * 64), Member("b_1-1_amd64.dcfpkg", "2" * 64)
    assert set_id("x86_64", [a, b]) == set_id("x86_64", [b, a])
    assert set_id("x86_64", [a, b]) != set_id("i586", [a, b])
    assert set_id("x86_64", [a, b]) != set_id("x86_64", [a, Member(b.file, "3" * 64)])
    assert set_id("x86_64", [a]) != set_id("x86_64", [a, b])


def test_listed_paths_are_where_they_really_are(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/bin/cat").write_text("")
    (root / "etc").mkdir()
    listing = tmp_path / "coreutils.list"
    listing.write_text("/.\n/bin\n/bin/cat\n/usr\n/usr/bin\n/bin/gone\n/../../etc/passwd\n")
    assert _physical_paths(root, listing) == ["bin", "usr/bin/cat", "usr", "usr/bin"]


def test_merge_moves_files_and_merges_directories(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "usr/bin").mkdir(parents=True)
    (first / "usr/bin/a").write_text("a")
    (first / "usr/bin/c").write_text("old")
    (second / "usr/bin").mkdir(parents=True)
    (second / "usr/bin/b").write_text("b")
    (second / "usr/bin/c").write_text("new")
    (second / "bin").symlink_to("usr/bin")
    merge_into(second, first)
    assert sorted(os.listdir(first / "usr/bin")) == ["a", "b", "c"]
    assert (first / "usr/bin/c").read_text() == "new"
    assert os.readlink(first / "bin") == "usr/bin"
    third = tmp_path / "third"
    (third / "usr/bin/a").mkdir(parents=True)
    with pytest.raises(UnsafeArchive, match="a directory in one package"):
        merge_into(third, first)


def test_bootstrap_security_no_leaves_out_only_the_security_suite() -> None:
    sources = [AptSource("http://deb.debian.org/debian", "bookworm", ("main",)),
               AptSource("http://deb.debian.org/debian", "bookworm-updates", ("main",)),
               AptSource("http://deb.debian.org/debian-security", "bookworm-security",
                         ("main",))]
    assert bootstrap_sources(sources, security=True) == sources
    assert [s.suite for s in bootstrap_sources(sources, security=False)] == [
        "bookworm", "bookworm-updates"]
