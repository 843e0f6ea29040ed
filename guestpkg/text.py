# SPDX-License-Identifier: GPL-2.0-or-later
"""Text from outside, made safe to show: control characters escaped.

An upstream server chooses its URLs, file names and HTTP reason phrases; a build
chooses every byte of its output.  Printed raw, ``ESC ]0;...BEL`` retitles the
user's terminal, ``ESC [2J`` clears what apt printed before, a bare ``CR`` overwrites
a line with a fake one, and on some terminals ``ESC ]52`` writes the clipboard or
reports bring keystrokes back (CVE-2003-0063 and its many successors).  So everything
guestpkg prints to a terminal or writes into its state goes through :func:`printable`,
at the few places where text leaves: :func:`guestpkg.cli.report`, the console log
handler (:mod:`guestpkg.log`), the lifecycle's ``say``, ``guestpkg status``, the
failure recorded in the state, and the build output copied to the console.

C0 controls but ``\\n`` and ``\\t``, DEL, and C1 controls (U+0080..U+009F, which some
terminals take as ``ESC`` + a letter: U+009B is CSI) become ``\\xNN``; the bidi
controls that reorder what is shown (Trojan Source, CVE-2021-42574) become ``\\uNNNN``.
A lone backslash stays as it is: this is for reading, not a reversible encoding.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """*text* with every control character but newline and tab escaped."""
    return _UNSAFE.sub(_escape, text)


def one_line(text: str) -> str:
    """*text* on one line: newlines and tabs escaped too (an error message, a state
    field: a newline there could start a line that looks like guestpkg's own)."""
    return _UNSAFE_ONE_LINE.sub(_escape, text)


def printable_bytes(data: bytes) -> bytes:
    """Bytes of build output for a terminal: decoded as UTF-8 (invalid bytes as
    ``\\xNN``), escaped as :func:`printable`, encoded again."""
    return printable(data.decode("utf-8", errors="backslashreplace")).encode("utf-8")
