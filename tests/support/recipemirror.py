# SPDX-License-Identifier: GPL-2.0-or-later
"""A Debian-like pool of the example recipes' orig tarballs, served for source recipes.

The example recipes in ``recipes/`` fetch Debian's orig tarballs from
``$MIRROR/pool/main/...``.  Tests and benchmarks serve the tarballs that
:mod:`tests.support.debsrc` keeps in the test cache (``apt-get source
--download-only``), on this machine's outside address: a source recipe can't reach
127.0.0.1 (that is the point of its user-mode network).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.debsrc import source_files
from tests.support.upstream_server import Upstream, serve

#: Debian source package -> its pool directory.
EXAMPLE_SOURCES = {"zlib": "z/zlib", "bzip2": "b/bzip2", "xz-utils": "x/xz-utils",
                   "m4": "m/m4", "sed": "s/sed", "hello": "h/hello", "bison": "b/bison",
                   "libpng1.6": "libp/libpng1.6", "autoconf": "a/autoconf",
                   "automake-1.16": "a/automake-1.16", "make-dfsg": "m/make-dfsg"}


def host_address() -> str:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(("192.0.2.1", 9))
        return str(udp.getsockname()[0])


@contextmanager
def example_mirror(directory: Path, host: str | None = None) -> Iterator[Upstream]:
    """The pool under *directory*, served on *host* (default: :func:`host_address`)."""
    for source, pool in EXAMPLE_SOURCES.items():
        target = directory / "pool" / "main" / pool
        target.mkdir(parents=True, exist_ok=True)
        for tarball in source_files(source).glob("*.orig.tar.*"):
            if not tarball.name.endswith(".asc"):
                os.link(tarball, target / tarball.name)
    with serve(directory, host=host or host_address()) as upstream:
        yield upstream
