# SPDX-License-Identifier: GPL-2.0-or-later
"""FTP for the watch files that still name ``ftp://`` upstreams (uscan(1) "ftp" mode).

uscan reads an FTP directory as the server's ``LIST`` output (``ls -l`` lines) and
downloads with ``RETR``; so does this module, with :mod:`ftplib`: anonymous login,
passive mode, ``download_timeout`` on every socket operation, the size cap applied
to listings and files.  FTP has neither TLS nor redirects; like plain http it is
accepted only because the SHA256 of what it delivers is pinned.  Retries are the
caller's (:mod:`guestpkg.fetch.transport`): transient failures raise
:class:`Transient`.
"""

from __future__ import annotations

import contextlib
import ftplib
import socket
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from guestpkg.config import Config
from guestpkg.errors import NetworkError

CHUNK_BYTES = 1 << 16


class Transient(Exception):
    """A download failure worth retrying, over FTP (4xx reply, connection lost,
    truncated file) or http (network hiccup, 5xx, truncated body): the one class
    :mod:`guestpkg.fetch.transport`'s retry loop catches."""


@contextlib.contextmanager
def _session(config: Config, url: str) -> Iterator[tuple[ftplib.FTP, str]]:
    parts = urlsplit(url)
    # Insecure as a channel, like plain http: what it delivers is checked by its
    # pinned SHA256 before use.
    client = (ftplib.FTP(timeout=config.download_timeout)  # noqa: S321
              if config.download_timeout else ftplib.FTP())  # noqa: S321
    try:
        client.connect(parts.hostname or "", parts.port or 21)
        client.login(unquote(parts.username or "anonymous"),
                     unquote(parts.password or "anonymous@"))
        yield client, unquote(parts.path) or "/"
    except ftplib.error_perm as e:
        raise NetworkError(f"{url}: FTP: {e}",
                           hint="the watch file may point at a moved or removed file") from e
    except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, OSError,
            EOFError) as e:
        raise Transient(f"{url}: FTP: {e}") from e
    finally:
        with contextlib.suppress(Exception):
            client.quit()
        client.close()


def list_directory(config: Config, url: str, limit: int) -> str:
    """The ``LIST`` output of the directory *url*, as uscan reads it."""
    lines: list[str] = []
    size = 0

    def collect(line: str) -> None:
        nonlocal size
        size += len(line) + 1
        if size > limit:
            raise NetworkError(f"{url}: the listing is larger than {limit} bytes")
        lines.append(line)
    with _session(config, url) as (client, path):
        client.encoding = "utf-8"
        client.cwd(path)
        client.retrlines("LIST", collect)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def open_file(config: Config, url: str,
              limit: int) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """(announced size or None, the file's bytes) for ``RETR``; the size cap holds."""
    with _session(config, url) as (client, path):
        client.voidcmd("TYPE I")
        try:
            total: int | None = client.size(path)
        except ftplib.error_perm:  # SIZE is optional (RFC 3659)
            total = None
        if total is not None and total > limit:
            raise NetworkError(f"{url}: {total} bytes is more than the limit of {limit}",
                               hint="raise max_download_size if this is expected")
        connection = client.transfercmd(f"RETR {path}")
        try:
            yield total, _chunks(connection, url, total, limit)
        finally:
            connection.close()
        client.voidresp()


def _chunks(connection: socket.socket, url: str, total: int | None, limit: int) -> Iterator[bytes]:
    received = 0
    while True:
        try:
            chunk = connection.recv(CHUNK_BYTES)
        except OSError as e:
            raise Transient(f"{url}: the transfer broke off: {e}") from e
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise NetworkError(f"{url}: more than the limit of {limit} bytes",
                               hint="raise max_download_size if this is expected")
        yield chunk
    if total is not None and received != total:
        raise Transient(f"{url}: truncated: {received} of {total} bytes")
