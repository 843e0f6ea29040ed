# SPDX-License-Identifier: GPL-2.0-or-later
"""How user ids inside the sandbox relate to user ids on the host: a seam.

Today guestpkg runs as real root and the sandbox uses the host's ids unchanged
(:class:`RealRoot`): uid 0 inside is root on the host, made harmless by the empty
capability sets, no_new_privs and the seccomp filter, and the build user is a plain
host uid.  Next comes running unprivileged through a user namespace, as sbuild's
unshare mode does (``CLONE_NEWUSER`` plus newuidmap(1)/newgidmap(1) with a range from
/etc/subuid): that is a second implementation of :class:`IdMapping`, selected by
``SandboxSpec.id_mapping``; nothing else in the sandbox needs to change.
"""

from __future__ import annotations

import os
from typing import Protocol

from guestpkg.errors import SystemStateError, UsageError


class IdMapping(Protocol):
    """A way to map ids; the sandbox calls these in this order."""

    name: str

    def check(self) -> None:
        """Raise :class:`~guestpkg.errors.GuestpkgError` if this mapping can't work here."""

    def unshare_flags(self) -> int:
        """Extra unshare(2) flags, e.g. ``CLONE_NEWUSER``."""

    def after_unshare(self, pid: int) -> None:
        """Write the maps of *pid*'s new user namespace (from its parent)."""


class RealRoot:
    """No user namespace: ids inside are the host's ids.  Needs real root."""

    name = "root"

    def check(self) -> None:
        if os.geteuid() != 0:
            raise SystemStateError(
                "the sandbox needs root (real uid 0) to create namespaces and mounts",
                hint="run guestpkg as root; unprivileged user namespaces are not "
                "supported yet")

    def unshare_flags(self) -> int:
        return 0

    def after_unshare(self, pid: int) -> None:
        return None


MAPPINGS: dict[str, type[RealRoot]] = {"root": RealRoot}


def get_mapping(name: str) -> IdMapping:
    try:
        return MAPPINGS[name]()
    except KeyError:
        raise UsageError(f"unknown id mapping {name!r}",
                         hint=f"known: {', '.join(sorted(MAPPINGS))}") from None
