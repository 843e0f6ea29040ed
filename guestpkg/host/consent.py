# SPDX-License-Identifier: GPL-2.0-or-later
"""The user's consent: the debconf question ``<host>/build-guest``.

The host's maintainer scripts stay in shell and source
``/usr/share/debconf/confmodule`` (debconf-devel(7)); the confmodule then has its
standard input reading the frontend's replies and sends commands through fd 3 (it runs
``exec 3>&1`` before pointing stdout at stderr).  A Python helper started from such a
script talks to the same frontend with ``debconf.Debconf(read=sys.stdin,
write=os.fdopen(3, "w"))`` (docs/reference.md): a Python maintainer script of its own would
not get its templates loaded.

Under ``DEBIAN_FRONTEND=noninteractive`` a question never seen keeps its default,
false: consent defaults to no.  ``dpkg-reconfigure <host>`` shows it again and sets
``DEBCONF_RECONFIGURE=1``, which the lifecycle takes as "ask me again": the user-removed
flag and any failure are cleared.
"""

from __future__ import annotations

import os
import sys

from guestpkg.errors import SystemStateError


def question(host: str) -> str:
    return f"{host}/build-guest"


def under_frontend() -> bool:
    """Whether we were started by a maintainer script that sourced the confmodule."""
    return bool(os.environ.get("DEBIAN_HAS_FRONTEND")) and _fd_open(3)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def read_consent(host: str) -> bool:
    """Ask the running debconf frontend for the host's answer."""
    import debconf

    if not under_frontend():
        raise SystemStateError("no debconf frontend to ask (fd 3 is not open)",
                               hint="this runs from the host's postinst, after "
                               ". /usr/share/debconf/confmodule")
    # closefd=False: fd 3 belongs to the maintainer script; we only borrow it.
    channel = os.fdopen(3, "w", encoding="utf-8", closefd=False)
    try:
        db = debconf.Debconf(read=sys.stdin, write=channel)
        return bool(db.getBoolean(question(host)))
    except debconf.DebconfError as e:
        raise SystemStateError(f"debconf: {question(host)}: {e}",
                               hint=f"is the template of {host} installed?") from e
    finally:
        channel.flush()


def is_reconfigure() -> bool:
    """dpkg-reconfigure sets DEBCONF_RECONFIGURE=1 (debconf-devel(7))."""
    return os.environ.get("DEBCONF_RECONFIGURE") == "1"
