# SPDX-License-Identifier: GPL-2.0-or-later
"""Upstream tarballs from debian/watch, verified: the library API.

How it works is explained in :mod:`guestpkg.debian.watch` (the watch file, uscan(1),
debian-watch(5)), :mod:`guestpkg.fetch.discover` (finding versions like uscan),
:mod:`guestpkg.fetch.transport` (http(s), the verified cache) and
:mod:`guestpkg.fetch.upstream` (planning and placing).  Callers need only:

``fetch_upstream(config, source_dir, destdir, expected_sha256) -> list[Path]``
    Like ``uscan --download-current-version``: for the version in
    ``source_dir/debian/changelog``, find each tarball named by ``debian/watch``,
    download it through the verified cache, and place
    ``<source>_<upstream>.orig[-<component>].tar.<ext>`` in *destdir* atomically.
    *expected_sha256* maps component (``""`` for the main tarball) to hex SHA256, or
    lists the digests in watch-file order.  Raises ``ChecksumMismatch`` (nothing is
    placed or cached), ``NetworkError``, ``ParseError`` (``file:line``), ``InputError``
    or ``UsageError`` (a pin missing: nothing is downloaded).

``fetch_watch(config, watch_path, source, version, destdir, expected_sha256)``
    The same without a source tree: the tarballs that the watch file at *watch_path*
    gives for *source* at Debian *version* (how a host package's guest is fetched).

``fetch_verified(config, url, sha256) -> Path``
    The content-addressed cache file ``<cachedir>/sources/sha256:<hex>`` for *url*,
    downloaded only when missing, verified while streaming.

``plan(config, source_dir, download=False) -> Plan``
    Discovery only (``uscan --report``): ``Plan.report()`` gives one record per tarball
    with the Debian and upstream versions, the URL and the status.
"""

from __future__ import annotations

from guestpkg.fetch.transport import cache_path, fetch_verified
from guestpkg.fetch.upstream import Plan, Tarball, fetch_upstream, fetch_watch, plan

__all__ = ["Plan", "Tarball", "cache_path", "fetch_upstream", "fetch_verified", "fetch_watch",
           "plan"]
