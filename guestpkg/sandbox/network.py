# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox's network: a new network namespace with only ``lo``, brought up.

A new network namespace starts with a loopback device that is down and nothing else
(network_namespaces(7)), so a build can reach neither the host's 127.0.0.1 (that is a
different ``lo``) nor any other address, yet test suites that talk to themselves over
127.0.0.1 still work.  ``lo`` is brought up over rtnetlink with python3-pyroute2.
"""

from __future__ import annotations


def bring_up_loopback() -> None:
    """Set ``lo`` of the calling process's network namespace up."""
    # Imported here: pyroute2 costs ~0.2 s to import and only this call needs it.
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname="lo")[0]
        ipr.link("set", index=index, state="up")
