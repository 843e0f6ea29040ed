# SPDX-License-Identifier: GPL-2.0-or-later
"""Logging: a quiet console, and everything in ``<logdir>/guestpkg.log`` when writable."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from guestpkg.config import Config
from guestpkg.text import printable


class EscapingFormatter(logging.Formatter):
    """Log lines carry URLs, file names and messages from upstreams and builds: their
    control characters escaped (:mod:`guestpkg.text`), on the console and in the log."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def setup_logging(config: Config, verbose: int = 0, quiet: bool = False,
                  command: str | None = None) -> Path | None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        root.removeHandler(handler)

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR if quiet else
                     logging.DEBUG if verbose > 1 else
                     logging.INFO if verbose else logging.WARNING)
    console.setFormatter(EscapingFormatter("guestpkg: %(message)s"))
    root.addHandler(console)

    path = config.logdir / "guestpkg.log"
    try:
        config.logdir.mkdir(parents=True, exist_ok=True)
        if not os.access(config.logdir, os.W_OK):
            return None
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(EscapingFormatter(
        f"%(asctime)s [{os.getpid()}] {command or '-'} %(name)s %(levelname)s: %(message)s"))
    root.addHandler(handler)
    return path
