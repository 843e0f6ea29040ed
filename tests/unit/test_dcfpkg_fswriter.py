# SPDX-License-Identifier: GPL-2.0-or-later
"""The extraction's writer thread: order, errors and cleanup."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from guestpkg.dcfpkg.fswriter import QUEUE_DEPTH, OrderedWriter


def test_operations_run_in_order(tmp_path: Path) -> None:
    writer = OrderedWriter()
    target = os.fsencode(tmp_path / "d" / "f")
    writer.submit(os.mkdir, os.fsencode(tmp_path / "d"), 0o700)
    writer.open(1, target)
    for i in range(QUEUE_DEPTH * 3):   # more than the queue holds
        writer.write(1, b"%d\n" % i)
    writer.finish_file(1, None, 0o640, 1700000000, lambda digest: None)
    writer.close()
    assert (tmp_path / "d/f").read_bytes() == b"".join(b"%d\n" % i for i in range(192))
    st = (tmp_path / "d/f").stat()
    assert st.st_mode & 0o7777 == 0o640 and st.st_mtime == 1700000000


def test_an_error_skips_the_rest_and_is_raised(tmp_path: Path) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    writer = OrderedWriter()
    writer.open(1, os.fsencode(tmp_path / "open-file"))
    writer.submit(os.mkdir, os.fsencode(tmp_path / "missing" / "x"), 0o700)
    with pytest.raises(FileNotFoundError):
        for _ in range(QUEUE_DEPTH * 4):  # never blocks, raises once the error is seen
            writer.submit(os.mkdir, os.fsencode(tmp_path / "later"), 0o700)
    with pytest.raises(FileNotFoundError):
        writer.close()
    assert sorted(os.listdir(tmp_path)) == ["open-file"]   # "later" was skipped
    assert len(os.listdir("/proc/self/fd")) == fds           # and the fd was closed


def test_close_without_raising_when_the_caller_has_its_own_error(tmp_path: Path) -> None:
    writer = OrderedWriter()
    writer.submit(os.mkdir, os.fsencode(tmp_path / "missing" / "x"), 0o700)
    writer.close(raise_error=False)


def test_whole_small_file_in_one_operation(tmp_path: Path) -> None:
    writer = OrderedWriter()
    seen: list[str] = []
    writer.write_file(os.fsencode(tmp_path / "small"), b"data", None, 0o600, 1700000000,
                      seen.append)
    writer.close()
    assert (tmp_path / "small").read_bytes() == b"data"
    assert (tmp_path / "small").stat().st_mode & 0o7777 == 0o600
    assert seen == [hashlib.sha256(b"data").hexdigest()]
