# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.run: a logged command gets a pipe, never the log file, and its output is
bounded per line and in total (attack tests for a build rewriting guestpkg's log)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from guestpkg.run import LogSink, run

PERL_TRUNCATE = "print qq(from the command\\n); truncate(STDOUT, 0) or print qq(refused: $!\\n);"


def test_the_command_cannot_truncate_earlier_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.build"
    log.write_text("guestpkg: an earlier line of our own\n")
    run(["perl", "-e", PERL_TRUNCATE], log_path=log)
    text = log.read_text()
    assert text.startswith("guestpkg: an earlier line of our own\n")
    assert "from the command" in text
    assert "refused: Invalid argument" in text    # ftruncate(2) of a pipe: EINVAL


def test_the_command_cannot_reopen_the_log_through_proc(tmp_path: Path) -> None:
    log = tmp_path / "x.build"
    log.write_text("guestpkg: earlier\n")
    run(["sh", "-c", "echo next; : > /proc/self/fd/1; echo last"], log_path=log)
    assert log.read_text().startswith("guestpkg: earlier\n")


def test_a_200_mb_line_without_newline_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "x.build"
    code = "import sys; sys.stdout.write('y' * 200_000_000); sys.stdout.flush()"
    run([sys.executable, "-c", code], log_path=log)
    size = log.stat().st_size
    assert size < 100_000, size
    assert "199934464 more bytes of this line cut" in log.read_text()


def test_whole_log_keeps_head_and_tail_and_says_what_was_cut() -> None:
    out = io.BytesIO()
    sink = LogSink(out, None, max_line=100, head=1000, tail=500)
    for i in range(1000):
        sink.feed(f"line {i:04d}\n".encode())
    sink.close()
    text = out.getvalue().decode()
    assert text.startswith("line 0000\nline 0001\n")
    assert text.endswith("line 0998\nline 0999\n")
    assert "lines (" in text and "of output cut here" in text
    assert len(text) < 1000 + 500 + 200
    kept = [line for line in text.splitlines() if line.startswith("line ")]
    cut = int(text.split("[guestpkg: ")[1].split(" lines")[0])
    assert len(kept) + cut == 1000


def test_console_copy_is_bounded_too() -> None:
    log, console = io.BytesIO(), io.BytesIO()
    sink = LogSink(log, console, max_line=10)
    sink.feed(b"0123456789abcdef\nshort\n")
    sink.close()
    assert console.getvalue() == log.getvalue() == (
        b"0123456789 [guestpkg: 7 more bytes of this line cut]\nshort\n")
