# SPDX-License-Identifier: GPL-2.0-or-later
"""Where a host's files are, in one place (guestpkg-host(7)).

========================================  ===========================================
``<hostsdir>/<host>/manifest``            the guest and its pinned upstream files
``<hostsdir>/<host>/debian/``             the guest's packaging, shipped by the host
``<srcdir>/<host>/``                      the guest's generated .debs (and a dcfpkg)
``<vardir>/hosts/<host>.json``            guestpkg's state (:mod:`.state`)
``<vardir>/pending/<host>``               "work to do" hint for the APT hook
``<vardir>/work/<host>/``                 a build's scratch space, reaped when stale
``<logdir>/hosts/<host>.log``             every build and install of the host's guest
========================================  ===========================================

``hostsdir`` is ``/usr/share/guestpkg/hosts`` and ``srcdir`` is ``/usr/src``, as the
design says (guestpkg.conf(5) moves them, for tests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from guestpkg.config import Config
from guestpkg.debian.deb822 import is_package_name
from guestpkg.errors import UsageError
from guestpkg.host.manifest import MANIFEST_NAME


@dataclass(frozen=True)
class HostPaths:
    host: str
    share: Path
    debs: Path
    work: Path
    log: Path

    @property
    def manifest(self) -> Path:
        return self.share / MANIFEST_NAME

    @property
    def debian(self) -> Path:
        return self.share / "debian"


def check_host_name(host: str) -> str:
    """A host name from the command line or a maintainer script, as a safe path part."""
    if not is_package_name(host) or re.search(r"\.\.", host):
        raise UsageError(f"not a package name: {host!r}")
    return host


def host_paths(config: Config, host: str) -> HostPaths:
    check_host_name(host)
    return HostPaths(
        host=host,
        share=config.hostsdir / host,
        debs=config.srcdir / host,
        work=config.vardir / "work" / host,
        log=config.logdir / "hosts" / f"{host}.log",
    )


def installed_hosts(config: Config) -> list[str]:
    """Hosts whose package has installed a manifest."""
    if not config.hostsdir.is_dir():
        return []
    return sorted(p.name for p in config.hostsdir.iterdir()
                  if (p / MANIFEST_NAME).is_file() and is_package_name(p.name))
