# SPDX-License-Identifier: GPL-2.0-or-later
"""Every real watch file of the corpus (tests/data/watch, collected from bookworm source
packages by tools/collect-watch-corpus) parses; the share and the options we do not act
on are printed (run pytest with -s to see them) and guarded against regressions."""

from __future__ import annotations

import collections
from pathlib import Path

from guestpkg.debian.watch import read_watch
from guestpkg.errors import ParseError

CORPUS = Path(__file__).resolve().parents[1] / "data" / "watch"
# Measured when the corpus was committed; a drop is a regression.
MIN_PARSED_SHARE = 1.0
MIN_FETCHABLE_SHARE = 0.97


def test_corpus_parses() -> None:
    files = sorted(CORPUS.glob("*.watch"))
    assert len(files) >= 100
    failures: list[str] = []
    fetchable = 0
    unsupported: collections.Counter[str] = collections.Counter()
    ignored: collections.Counter[str] = collections.Counter()
    for path in files:
        try:
            watch = read_watch(path, path.stem)
        except ParseError as e:
            failures.append(str(e))
            continue
        names = [n for e in watch.entries for n in e.unsupported]
        unsupported.update(set(names))
        ignored.update({n for e in watch.entries for n in e.ignored})
        fetchable += bool(watch.entries) and not names
    parsed = len(files) - len(failures)
    print(f"\nwatch corpus: {parsed}/{len(files)} parse ({parsed / len(files):.1%}), "
          f"{fetchable}/{len(files)} fetchable over http(s) or ftp ({fetchable / len(files):.1%})")
    print(f"files with unsupported options: {dict(unsupported)}")
    print(f"files with options ignored (moot with a pinned SHA256): {dict(ignored)}")
    for failure in failures:
        print("  " + failure)
    assert parsed / len(files) >= MIN_PARSED_SHARE, failures
    assert fetchable / len(files) >= MIN_FETCHABLE_SHARE
