# SPDX-License-Identifier: GPL-2.0-or-later
"""What to do for a host: the lifecycle rules as one pure function.

:func:`observe` folds what dpkg says now into the state (a guest that vanished without
its host was removed by the user: dpkg forgets removed packages, docs/reference.md), and
:func:`decide` picks the next step.  Neither runs anything, so every rule of docs/design.md
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


@dataclass(frozen=True)
class Decision:
    step: Step
    reason: str

    @property
    def pending(self) -> bool:
        """Whether the hook has something to do for this host (now or later)."""
        return self.step in (Step.WAIT, Step.INSTALL, Step.BUILD)


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
        return Decision(Step.NOTHING, "no consent to build the guest (default: no); "
                        f"dpkg-reconfigure {state.host} asks again")
    if state.user_removed:
        return Decision(Step.NOTHING, "the guest was removed by the user; "
                        f"guestpkg rebuild {state.host} or dpkg-reconfigure {state.host} "
                        "installs it again")
    if state.bundled_version is None:
        return Decision(Step.NOTHING, "the host's manifest has not been read yet")
    target = local_version(state.bundled_version)
    if installed is not None and compare(installed, target) >= 0:
        return Decision(Step.NOTHING, f"guest {installed} is installed")
    if state.failure.permanent:
        return Decision(Step.NOTHING, "permanent failure after repeated errors; "
                        f"guestpkg rebuild {state.host} tries again")
    if state.failing and now < state.failure.next_retry_at:
        return Decision(Step.WAIT, "waiting to retry after a failure")
    if built_available and state.built_version == target:
        return Decision(Step.INSTALL, f"install the built guest {target}")
    return Decision(Step.BUILD, f"build and install guest {target}")
