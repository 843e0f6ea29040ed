# SPDX-License-Identifier: GPL-2.0-or-later
"""What to do for a host: the lifecycle rules as one pure function.

:func:`observe` folds what dpkg says now into the state (a guest that vanished without
its host was removed by the user: dpkg forgets removed packages, docs/reference.md), and
:func:`decide` picks the next step and says why with a :class:`Reason`, which code tests
and :func:`describe` puts into words.  Neither runs anything, so every rule of docs/design.md
has a unit test without root; :mod:`guestpkg.host.lifecycle` carries the steps out.

The rules, in the order they are checked:

1. no consent (debconf ``<host>/build-guest``, default false): nothing;
2. the user removed the guest: nothing, until ``dpkg-reconfigure <host>`` or
   ``guestpkg rebuild <host>`` clears the flag;
3. the installed guest is already at least ``<bundled>~local`` (our build, or an
   archive build that supersedes it): nothing;
4. a permanent failure: nothing, until rebuild or dpkg-reconfigure;
5. a failure whose retry time has not come: wait;
6. the .debs of ``<bundled>~local`` are already built: install them;
7. otherwise build, then install.

So a host-only upgrade (same bundled version, guest installed) is rule 3 and does not
rebuild, and a host carrying a new guest revision falls through to rule 7.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from guestpkg.host.state import HostState
from guestpkg.host.versions import local_version

#: apt_pkg.version_compare, or any function with its contract (<0, 0, >0).
VersionCompare = Callable[[str, str], int]


class Step(enum.Enum):
    NOTHING = "nothing"
    WAIT = "wait"
    INSTALL = "install"
    BUILD = "build"


class Reason(enum.Enum):
    """Why a step was chosen.  Code decides on these; :func:`describe` words them."""

    NO_CONSENT = "no consent"
    USER_REMOVED = "removed by the user"
    MANIFEST_UNREAD = "manifest not read"
    INSTALLED = "installed"
    PERMANENT_FAILURE = "failed permanently"
    RETRY_LATER = "waiting to retry"
    BUILT = "built"
    NOT_BUILT = "not built"
    REBUILD_REQUESTED = "rebuild requested"
    # Set by the lifecycle, not by decide():
    HOST_NOT_INSTALLED = "host not installed"
    BUSY = "busy"
    ERROR = "error"


@dataclass(frozen=True)
class Decision:
    step: Step
    reason: Reason
    #: the version the reason names: the installed guest, or the one to build/install
    version: str | None = None

    @property
    def pending(self) -> bool:
        """Whether the hook has something to do for this host (now or later)."""
        return self.step in (Step.WAIT, Step.INSTALL, Step.BUILD)


def describe(decision: Decision, host: str) -> str:
    """The decision in words, with the command that changes it where there is one."""
    match decision.reason:
        case Reason.NO_CONSENT:
            return ("no consent to build the guest (default: no); "
                    f"dpkg-reconfigure {host} asks again")
        case Reason.USER_REMOVED:
            return (f"the guest was removed by the user; guestpkg rebuild {host} or "
                    f"dpkg-reconfigure {host} installs it again")
        case Reason.MANIFEST_UNREAD:
            return "the host's manifest has not been read yet"
        case Reason.INSTALLED:
            return f"guest {decision.version} is installed"
        case Reason.PERMANENT_FAILURE:
            return f"permanent failure after repeated errors; guestpkg rebuild {host} tries again"
        case Reason.RETRY_LATER:
            return "waiting to retry after a failure"
        case Reason.BUILT:
            return f"install the built guest {decision.version}"
        case Reason.NOT_BUILT:
            return f"build and install guest {decision.version}"
        case Reason.REBUILD_REQUESTED:
            return "rebuild requested"
        case Reason.HOST_NOT_INSTALLED:
            return f"{host} is not installed"
        case Reason.BUSY:
            return "another guestpkg run is at work"
        case Reason.ERROR:
            return "error"


def observe(state: HostState, installed: str | None) -> None:
    """Update *state* with the guest's *installed* version as dpkg reports it now."""
    if installed is None and state.installed_version is not None:
        # We installed it and nobody told us of a host removal (postrm clears
        # installed_version): the user removed the guest.
        state.installed_version = None
        state.user_removed = True


def decide(state: HostState, installed: str | None, built_available: bool, now: float,
           compare: VersionCompare) -> Decision:
    if not state.consent:
        return Decision(Step.NOTHING, Reason.NO_CONSENT)
    if state.user_removed:
        return Decision(Step.NOTHING, Reason.USER_REMOVED)
    if state.bundled_version is None:
        return Decision(Step.NOTHING, Reason.MANIFEST_UNREAD)
    target = local_version(state.bundled_version)
    if installed is not None and compare(installed, target) >= 0:
        return Decision(Step.NOTHING, Reason.INSTALLED, installed)
    if state.failure.permanent:
        return Decision(Step.NOTHING, Reason.PERMANENT_FAILURE)
    if state.failing and now < state.failure.next_retry_at:
        return Decision(Step.WAIT, Reason.RETRY_LATER)
    if built_available and state.built_version == target:
        return Decision(Step.INSTALL, Reason.BUILT, target)
    return Decision(Step.BUILD, Reason.NOT_BUILT, target)
