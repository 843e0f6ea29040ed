# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox's network: a new network namespace with only ``lo``, brought up.

A new network namespace starts with a loopback device that is down and nothing else
(network_namespaces(7)), so a build can reach neither the host's 127.0.0.1 (that is a
different ``lo``) nor any other address, yet test suites that talk to themselves over
127.0.0.1 still work.

``lo`` is brought up with the SIOCGIFFLAGS/SIOCSIFFLAGS ioctls (netdevice(7)), what
``ifconfig lo up`` does, from the standard library.  Not with python3-pyroute2, as the
design first said: importing pyroute2 takes 0.15 s on an idle machine and up to 0.8 s
on a busy one, which was three quarters of the sandbox's whole start-up time
(bench/sandbox.py), for one flag on one device.
"""

from __future__ import annotations

import fcntl
import socket
import struct

# include/uapi/linux/sockios.h and include/uapi/linux/if.h
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16

#: struct ifreq: the interface name, then (a union whose first member is) short flags.
_IFREQ = struct.Struct(f"{IFNAMSIZ}sh22x")


def bring_up_loopback() -> None:
    """Set ``lo`` of the calling process's network namespace up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = _IFREQ.pack(b"lo", 0)
        _, flags = _IFREQ.unpack(fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, request))
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))
