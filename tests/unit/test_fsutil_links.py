# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.fsutil.link_climbs_out: the one lexical check of a symlink in a tree about
to be packed (a recipe's DESTDIR) or installed (a built .deb's data), on the targets a
hostile build would write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.build.recipe import collect_output
from guestpkg.errors import BuildFailed
from guestpkg.fsutil import link_climbs_out
from tests.unit.build.test_recipe_output import context

CLIMBS = [
    ("x", ".."),                                   # the root's parent, from the root
    ("usr/x", "../../etc"),
    ("usr/lib/x", "../../../etc/shadow"),
    ("usr/lib/x", "a/../../../../etc"),            # down, then further up
    ("usr/lib/x", "../../../usr/lib/y"),           # above the root and back in
    ("usr/lib/x", "../../..//./usr"),              # empty and "." parts change nothing
    ("./usr/x", "../../etc"),                      # a "./"-prefixed tar member
    ("usr/lib/x", "../../../"),
]
STAYS = [
    ("usr/lib/x", "../../bin/y"),                  # up to the root itself, no further
    ("usr/lib/x", "./y/../z"),
    ("usr/lib/x", "y"),
    ("x", "."),
    ("usr/lib/x", "/etc/shadow"),                  # absolute: starts again at the root
    ("usr/lib/x", "/../../etc"),                   # ... where ".." stays at the root
    ("usr/lib/x", ""),
]


@pytest.mark.parametrize(("link", "target"), CLIMBS)
def test_climbs_out(link: str, target: str) -> None:
    assert link_climbs_out(link, target)


@pytest.mark.parametrize(("link", "target"), STAYS)
def test_stays_in(link: str, target: str) -> None:
    assert not link_climbs_out(link, target)


def test_a_recipe_output_link_out_and_back_is_refused(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (ctx.install / "usr/lib").mkdir(parents=True)
    (ctx.install / "usr/lib/libz.a").write_text("x")
    os.symlink("../../../usr/lib/libz.a", ctx.install / "usr/lib/libz-link.a")
    with pytest.raises(BuildFailed, match="a link out of the package"):
        collect_output(ctx)
