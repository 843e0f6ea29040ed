# SPDX-License-Identifier: GPL-2.0-or-later
"""Failures that record their cause, and the check that the cause is gone.

A failed build backs off (:mod:`guestpkg.host.state`), but waiting out an hour is
wrong when what made it fail has been fixed meanwhile.  So a failure records what it
depended on, and the next apt run (the hook), the detached job and ``guestpkg status``
ask :func:`cause_gone` before they wait:

- the default buildroot's generation when it failed ("none" if there was none): a
  different generation now means a buildroot was made or updated since (by the job,
  or by the user with ``guestpkg buildroot create`` or ``update``);
- the server that could not be reached (``scheme://host:port``): a TCP connection to
  it that succeeds now means the network, or the server, is back.  The probe is one
  connect(2) with a short timeout, made only for a host that is waiting on such a
  failure, so the hook's no-work path is not slowed down.
"""

from __future__ import annotations

import logging
import re
import socket
import urllib.parse

from guestpkg.config import Config
from guestpkg.errors import GuestpkgError, NetworkError
from guestpkg.host.buildenv import generation_token
from guestpkg.host.state import Failure

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
_URL = re.compile(r"\b(?:https?|ftp)://[A-Za-z0-9.-]+(?::\d{1,5})?")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def unreachable_server(error: GuestpkgError) -> str:
    """The ``scheme://host[:port]`` a network error could not reach, or ""."""
    if not isinstance(error, NetworkError):
        return ""
    found = _URL.search(error.message)
    return found.group(0) if found else ""


def record_cause(config: Config, error: GuestpkgError) -> dict[str, str]:
    """What a failure of *error* depended on (keywords of ``record_failure``): the
    server for a network error, else the buildroot generation (a new buildroot may fix
    any failure of the build or of making the buildroot)."""

    server = unreachable_server(error)
    if server:
        return {"unreachable": server}
    return {"buildroot": generation_token(config)}


def server_reachable(server: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        parts = urllib.parse.urlsplit(server)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme) or 80
    except ValueError:
        return False
    if not parts.hostname:
        return False
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def cause_gone(config: Config, failure: Failure) -> str:
    """Why the recorded failure may be over now ("" if nothing changed)."""

    if failure.buildroot and generation_token(config) != failure.buildroot:
        return "the buildroot was made or updated since"
    if failure.unreachable and server_reachable(failure.unreachable):
        return f"{failure.unreachable} is reachable again"
    return ""
