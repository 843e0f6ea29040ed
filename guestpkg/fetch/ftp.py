# SPDX-License-Identifier: GPL-2.0-or-later
"""FTP for the watch files that still name ``ftp://`` upstreams (uscan(1) "ftp" mode).

uscan reads an FTP directory as the server's ``LIST`` output (``ls -l`` lines) and
downloads with ``RETR``; so does this module, with :mod:`ftplib`: anonymous login,
passive mode, ``download_timeout`` on every socket operation, the size cap applied
to listings and files.  The control connection goes to an address the fetch's
:class:`~guestpkg.fetch.guard.FetchGuard` checked; the data connection to the same
peer (ftplib ignores the address in a PASV reply); the guard's watchdog holds both
to the deadline and the minimum rate.  FTP has neither TLS nor redirects; like plain http it is
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
from guestpkg.fetch.guard import ConnectFailed, FetchGuard

CHUNK_BYTES = 1 << 16


class Transient(Exception):
    """A download failure worth retrying, over FTP (4xx reply, connection lost,
    truncated file) or http (network hiccup, 5xx, truncated body): the one class
    :mod:`guestpkg.fetch.transport`'s retry loop catches."""


class _GuardedFTP(ftplib.FTP):
    """ftplib's client, connecting as :meth:`FetchGuard.connect` does.  Insecure as a
    channel, like plain http: what it delivers is checked by its pinned SHA256."""

    def __init__(self, guard: FetchGuard, timeout_s: float | None) -> None:
        if timeout_s:
            super().__init__(timeout=timeout_s)
        else:  # no timeout but the guard's
            super().__init__()
        self.guard = guard

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                source_address: tuple[str, int] | None = None) -> str:
        # ftplib.FTP.connect, with the guard's checked address (Python 3.11)
        self.host, self.port = host, port
        timeout_s = self.timeout if isinstance(self.timeout, (int, float)) else None
        self.sock = self.guard.connect(host, port, timeout_s)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.guard.unwatch(self.sock.fileno())
        super().close()


@contextlib.contextmanager
def _session(config: Config, url: str,
             guard: FetchGuard) -> Iterator[tuple[ftplib.FTP, str]]:
    guard.check_url(url)
    parts = urlsplit(url)
    client = _GuardedFTP(guard, config.download_timeout or None)
    try:
        client.connect(parts.hostname or "", parts.port or 21)
        client.login(unquote(parts.username or "anonymous"),
                     unquote(parts.password or "anonymous@"))
        yield client, unquote(parts.path) or "/"
    except ftplib.error_perm as e:
        raise NetworkError(f"{url}: FTP: {e}",
                           hint="the watch file may point at a moved or removed file") from e
    except ConnectFailed as e:  # no address, or too slow
        raise Transient(f"{url}: FTP: {e}") from e
    except (ftplib.error_temp, ftplib.error_reply, ftplib.error_proto, OSError,
            EOFError) as e:
        try:
            guard.check_time(url)  # the watchdog's verdict, if it cut the connection
        except ConnectFailed as slow:
            raise Transient(f"{url}: FTP: {slow}") from e
        raise Transient(f"{url}: FTP: {e}") from e
    finally:
        with contextlib.suppress(Exception):
            client.quit()
        client.close()


def list_directory(config: Config, url: str, limit: int, guard: FetchGuard) -> str:
    """The ``LIST`` output of the directory *url*, as uscan reads it."""
    lines: list[str] = []
    size = 0

    def collect(line: str) -> None:
        nonlocal size
        size += len(line) + 1
        if size > limit:
            raise NetworkError(f"{url}: the listing is larger than {limit} bytes")
        guard.received(len(line) + 1)
        guard.take(url, len(line) + 1)
        lines.append(line)
    with _session(config, url, guard) as (client, path):
        client.encoding = "utf-8"
        client.cwd(path)
        client.retrlines("LIST", collect)
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def open_file(config: Config, url: str, limit: int,
              guard: FetchGuard) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """(announced size or None, the file's bytes) for ``RETR``; the size cap holds."""
    with _session(config, url, guard) as (client, path):
        client.voidcmd("TYPE I")
        try:
            total: int | None = client.size(path)
        except ftplib.error_perm:  # SIZE is optional (RFC 3659)
            total = None
        if total is not None and total > limit:
            raise NetworkError(f"{url}: {total} bytes is more than the limit of {limit}",
                               hint="raise max_download_size if this is expected")
        connection = client.transfercmd(f"RETR {path}")
        guard.watch(connection)
        try:
            yield total, _chunks(connection, url, total, limit, guard)
        finally:
            guard.unwatch(connection.fileno())
            connection.close()
        client.voidresp()


def _chunks(connection: socket.socket, url: str, total: int | None, limit: int,
            guard: FetchGuard) -> Iterator[bytes]:
    received = 0
    while True:
        try:
            chunk = connection.recv(CHUNK_BYTES)
        except OSError as e:
            guard.check_time(url)
            raise Transient(f"{url}: the transfer broke off: {e}") from e
        guard.received(len(chunk))
        guard.check_time(url)  # a cut connection reads as the end of the file
        if not chunk:
            break
        guard.take(url, len(chunk))
        received += len(chunk)
        if received > limit:
            raise NetworkError(f"{url}: more than the limit of {limit} bytes",
                               hint="raise max_download_size if this is expected")
        yield chunk
    if total is not None and received != total:
        raise Transient(f"{url}: truncated: {received} of {total} bytes")
