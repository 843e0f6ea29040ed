# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg's subordinate ids: parsing subuid(5), placing the range the package's
postinst adds, cutting it into slices and handing out a free one per sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.errors import SystemStateError
from guestpkg.sandbox import subids
from guestpkg.sandbox.subids import SLICE_SIZE, IdRange, Slice


def test_parse_skips_what_newuidmap_skips() -> None:
    text = "alice:100000:65536\n# comment\nbroken line\nbob:165536:65536\n\n1000:231072:65536\n"
    assert subids.parse_subids(text) == [IdRange("alice", 100000, 65536),
                                         IdRange("bob", 165536, 65536),
                                         IdRange("1000", 231072, 65536)]


def test_range_is_placed_above_the_others_and_aligned() -> None:
    assert subids.place_range([], 1 << 22) == subids.DEFAULT_START
    existing = [IdRange("a", 100000, 65536), IdRange("b", subids.DEFAULT_START - 10, 100)]
    start = subids.place_range(existing, 1 << 22)
    assert start >= subids.DEFAULT_START + 90 and start % SLICE_SIZE == 0
    assert all(r.end <= start or r.start >= start + (1 << 22) for r in existing)


def test_ensure_range_adds_one_line_once(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536")  # no final newline
    uids, gids = subids.ensure_range(subuid, subgid)
    assert uids == gids and uids.owner == "guestpkg" and uids.start == subids.DEFAULT_START
    assert subuid.read_text() == f"alice:100000:65536\nguestpkg:{uids.start}:{uids.count}\n"
    assert subgid.read_text() == f"guestpkg:{gids.start}:{gids.count}\n"
    before = subuid.read_text(), subgid.read_text()
    assert subids.ensure_range(subuid, subgid) == (uids, gids)
    assert (subuid.read_text(), subgid.read_text()) == before


def test_missing_range_says_how_to_make_it(tmp_path: Path) -> None:
    (tmp_path / "subuid").write_text("alice:100000:65536\nguestpkg:200000:100\n")
    with pytest.raises(SystemStateError, match="no range") as caught:
        subids.find_range(tmp_path / "subuid", ("guestpkg",))
    assert "python3 -m guestpkg.sandbox.subids" in (caught.value.hint or "")
    assert "--id-mapping=root" in (caught.value.hint or "")


def test_slices_and_shifting() -> None:
    cut = subids.slices(IdRange("guestpkg", 1 << 30, 3 * SLICE_SIZE + 5),
                        IdRange("guestpkg", 1 << 31, 2 * SLICE_SIZE))
    assert [(s.uid_base, s.gid_base) for s in cut] == [
        (1 << 30, 1 << 31), ((1 << 30) + SLICE_SIZE, (1 << 31) + SLICE_SIZE)]
    one = Slice(0, 1000000, 2000000)
    assert one.shift_uid(1000000 + 1234) == 1234
    assert one.shift_uid(0) == 0 and one.shift_uid(1000000 + SLICE_SIZE) == 1000000 + SLICE_SIZE
    assert one.shift_gid(2000000 + 5) == 5


def test_concurrent_holders_get_distinct_slices(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text(f"guestpkg:{1 << 30}:{2 * SLICE_SIZE}\n")
    subgid.write_text(f"guestpkg:{1 << 30}:{2 * SLICE_SIZE}\n")
    locks = tmp_path / "locks"
    with subids.allocated_slice(subuid, subgid, locks) as first, \
            subids.allocated_slice(subuid, subgid, locks) as second:
        assert first.index != second.index
        with pytest.raises(SystemStateError, match="in use"), \
                subids.allocated_slice(subuid, subgid, locks):
            pass
    with subids.allocated_slice(subuid, subgid, locks) as again:
        assert again.index == 0
