# SPDX-License-Identifier: GPL-2.0-or-later
"""What an upstream server can make a fetch do, bounded: where it connects, how long
it lasts, how many bytes it takes in.

guestpkg fetches as root, from the APT hook, on the word of a watch file and of
whatever servers that watch file leads to.  Every one of those servers is hostile
until the pinned SHA256 says otherwise, so one :class:`FetchGuard` watches a whole
fetch (discovery pages, directory listings, downloads, and their redirects):

- **Where.** Every connection, over http(s) or ftp, resolves its host name once, checks
  every address of the answer, and connects to a checked address (no second lookup a
  rebinding name could answer differently).  Loopback, link-local, unspecified and
  the machine's own addresses are refused (:func:`is_local_address`), unless the watch
  file itself names such a host (an IP literal, or ``localhost``): a redirect, a link
  on a page or a DNS answer can't send a root process to the machine's own services or
  to a cloud metadata endpoint (169.254.169.254).  Connections to a proxy from the
  environment are the administrator's choice and are not checked; the proxy resolves
  the target itself, so only literal addresses in URLs are checked then.
- **How long.** ``download_deadline`` for the whole fetch and a minimum rate of
  ``download_min_rate`` bytes/s over windows of twice ``download_timeout``.  Socket
  timeouts alone bound each read, not a server that sends a byte a second: a watchdog
  thread shuts down the sockets of a fetch that overstays (``shutdown(2)`` on a
  duplicate of each socket's fd, so the blocked read returns at once, in TLS and in
  http.client's header parsing alike).
- **How much.** ``max_download_size`` bytes in all, counted after decoding; each
  request has its own cap as well (:mod:`guestpkg.fetch.transport`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from guestpkg.config import Config
from guestpkg.errors import NetworkError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Never a fetch's business unless the watch file names them (RFC 6890): loopback,
#: "this host" (0.0.0.0/8, ::), link-local (169.254/16 holds cloud metadata services).
LOCAL_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16", "::1/128", "::/128", "fe80::/10"))


def own_addresses(proc: Path = Path("/proc")) -> frozenset[Address]:
    """The addresses of this machine's interfaces (its own network namespace), from
    the kernel's local routing table (``/proc/net/fib_trie``: ``/32 host LOCAL``
    leaves) and ``/proc/net/if_inet6``."""
    found: set[Address] = set()
    with contextlib.suppress(OSError):
        last = ""
        for line in (proc / "net" / "fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith(("|--", "+--")):
                last = text.split()[-1]
            elif text == "/32 host LOCAL" and last:
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.IPv4Address(last))
    with contextlib.suppress(OSError):
        for line in (proc / "net" / "if_inet6").read_text().splitlines():
            field = line.split()[0] if line.split() else ""
            with contextlib.suppress(ValueError):
                found.add(ipaddress.IPv6Address(int(field, 16)))
    return frozenset(found)


def is_local_address(address: Address, own: Iterable[Address] = ()) -> bool:
    """Whether connecting to *address* reaches this machine or its link's metadata
    services rather than an upstream server."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in LOCAL_NETWORKS) or address in set(own)


def names_local_host(url: str, own: Iterable[Address] = ()) -> bool:
    """Whether *url* itself (as written in a watch file) names a local host: an IP
    literal that :func:`is_local_address` holds local, or ``localhost``.  A name that
    merely resolves to such an address does not count: that is the DNS's word, not
    the watch file's."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return is_local_address(ipaddress.ip_address(host), own)
    except ValueError:
        return False


def check_addresses(host: str, addresses: Iterable[Address], allow_local: bool,
                    own: Iterable[Address]) -> None:
    """Refuse *host* if any of its *addresses* is local and the fetch may not go
    there.  One local answer refuses the name: a name that answers with both an
    upstream and the loopback is no upstream."""
    if allow_local:
        return
    own = frozenset(own)
    for address in addresses:
        if is_local_address(address, own):
            raise NetworkError(
                f"refusing to connect to {host} ({address}): a local or link-local "
                "address that the watch file does not name",
                hint="a redirect, a link or a DNS answer may not lead a fetch to this "
                "machine; name the host in debian/watch if it really serves the files")


class FetchGuard:
    """The limits of one fetch, and the watchdog that enforces its time limits."""

    def __init__(self, config: Config, origins: Iterable[str]) -> None:
        self.own = own_addresses()
        self.allow_local = any(names_local_host(url, self.own) for url in origins)
        self.deadline_s = config.download_deadline
        self.min_rate = config.download_min_rate
        # twice the socket timeout: a read that stalls times out first, and says so
        self.window_s = 2 * (config.download_timeout or 60.0)
        self.bytes_left = config.max_download_size
        self.total_bytes = config.max_download_size
        self.started = time.monotonic()
        self.tripped: str | None = None
        #: what the fetch is requesting now, for the deadline's error
        self.current_url: str | None = None
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}  # a watched socket's fd -> our duplicate
        self._received = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    @contextlib.contextmanager
    def watching(cls, config: Config, origins: Iterable[str]) -> Iterator[FetchGuard]:
        """The guard of one fetch, its watchdog running while the block runs.  The
        deadline holds for the block's own work too: matching a watch file's regular
        expressions against a hostile page can take hours of CPU (Python's re
        backtracks: 40 kB of ``x/`` take 5 s with ``.*/foo-(\\d\\S+)``, and the time
        grows with the square of the size), so in the main thread an alarm
        (``setitimer(2)``) interrupts the block at the deadline (the re engine checks
        for signals), and leaves here as the deadline's error."""
        guard = cls(config, list(origins))
        guard._start()
        try:
            with _alarm(guard.remaining_s()):
                try:
                    yield guard
                finally:
                    guard.close()
        except _DeadlineAlarm:
            guard.tripped = "deadline"
            guard.check_time()

    # -- where ----------------------------------------------------------------------

    def resolve(self, host: str, port: int) -> list[tuple[Address, tuple[Any, ...]]]:
        """Resolve *host* once; every answer checked.  Returns (address, sockaddr)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise ConnectFailed(f"{host}: cannot resolve: {e}") from e
        answers: list[tuple[Address, tuple[Any, ...]]] = [
            (ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), info[4])
            for info in infos]
        check_addresses(host, (a for a, _ in answers), self.allow_local, self.own)
        return answers

    def connect(self, host: str, port: int, timeout_s: float | None = None,
                source_address: tuple[str, int] | None = None,
                options: Iterable[tuple[int, int, int]] = ()) -> socket.socket:
        """A socket connected to a checked address of *host*, watched by this guard."""
        self.check_time(host)
        last: OSError | None = None
        for address, sockaddr in self.resolve(host, port):
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout(timeout_s))
                for level, name, value in options:
                    sock.setsockopt(level, name, value)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                last = e
                continue
            self.watch(sock)
            return sock
        raise last or ConnectFailed(f"{host}: no address")

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host is a local IP literal or ``localhost`` before a
        request goes out (through a proxy, our own lookup never happens).  Every
        request passes here: the URL is the one a deadline error names."""
        self.current_url = url
        if not self.allow_local and names_local_host(url, self.own):
            host = urlsplit(url).hostname or ""
            raise NetworkError(
                f"refusing to fetch {url}: {host} is local, and the watch file does "
                "not name it",
                hint="a redirect or a link may not lead a fetch to this machine")

    # -- how long -------------------------------------------------------------------

    def timeout(self, timeout_s: float | None) -> float | None:
        """*timeout_s*, or less: what is left before the deadline."""
        remaining = self.remaining_s()
        if remaining is None:
            return timeout_s
        return max(0.001, min(timeout_s or remaining, remaining))

    def remaining_s(self) -> float | None:
        if not self.deadline_s:
            return None
        return self.deadline_s - (time.monotonic() - self.started)

    def check_time(self, url: str | None = None) -> None:
        """Raise the watchdog's verdict, or the deadline's if it has passed (naming
        *url*, what was being fetched)."""
        url = url or self.current_url
        remaining = self.remaining_s()
        if self.tripped is None and remaining is not None and remaining <= 0:
            self.tripped = "deadline"
        if self.tripped == "deadline":
            raise NetworkError(
                (f"{url}: " if url else "")
                + f"the fetch went past its deadline of {self.deadline_s:g} s",
                hint="raise download_deadline (guestpkg.conf(5)) for a large download "
                "on a slow link")
        if self.tripped == "rate":
            raise ConnectFailed(
                f"the server sent less than {self.min_rate} bytes in "
                f"{self.window_s:g} s (slower than {self.min_rate} bytes/s)")

    def watch(self, sock: socket.socket) -> None:
        """Let the watchdog cut *sock* off (through a duplicate fd of our own, so a
        reused fd number can never be hit).  :meth:`unwatch` before closing it: the
        duplicate keeps the connection open."""
        duplicate = os.dup(sock.fileno())
        with self._lock:
            self._fds[sock.fileno()] = duplicate
        self._start()
        if self.tripped:
            self._cut()

    def unwatch(self, fd: int) -> None:
        """Forget the socket whose fd is *fd* (before it is closed)."""
        with self._lock:
            duplicate = self._fds.pop(fd, None)
        if duplicate is not None:
            os.close(duplicate)

    def unwatch_all(self) -> None:
        """Forget every socket: at the end of each attempt, whose connections are all
        closed by then."""
        with self._lock:
            duplicates, self._fds = list(self._fds.values()), {}
            if self.tripped == "rate":  # the next attempt starts a new window
                self.tripped = None
        for duplicate in duplicates:
            with contextlib.suppress(OSError):
                os.close(duplicate)

    def received(self, size: int) -> None:
        """Count *size* bytes off the wire (for the minimum rate)."""
        with self._lock:
            self._received += size

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watchdog, daemon=True,
                                                name="guestpkg-fetch-watchdog")
                self._thread.start()

    def _watchdog(self) -> None:
        """Cut every watched socket at the deadline, or when the last window (while
        connections are open: not a retry's back-off) was slower than the minimum."""
        window_start, at_start = time.monotonic(), 0
        while not self._stop.is_set():
            now = time.monotonic()
            remaining = self.remaining_s()
            with self._lock:
                idle, received = not self._fds, self._received
            if remaining is not None and remaining <= 0:
                self.tripped = "deadline"
                self._cut()
                return
            if idle:
                window_start, at_start = now, received
            elif self.min_rate and now - window_start >= self.window_s:
                if received - at_start < self.min_rate * (now - window_start):
                    self.tripped = "rate"
                    self._cut()
                window_start, at_start = now, received
            wait = min(0.2, self.window_s)
            if remaining is not None:
                wait = min(wait, max(remaining, 0.001))
            self._stop.wait(wait)

    def _cut(self) -> None:
        with self._lock:
            for duplicate in self._fds.values():
                cut = socket.socket(fileno=duplicate)
                with contextlib.suppress(OSError):
                    cut.shutdown(socket.SHUT_RDWR)
                cut.detach()  # the duplicate stays ours, closed by unwatch

    # -- how much -------------------------------------------------------------------

    def take(self, url: str, size: int) -> None:
        """Count *size* decoded bytes against the whole fetch's budget."""
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise NetworkError(f"{url}: the fetch took in more than the limit of "
                               f"{self.total_bytes} bytes",
                               hint="raise max_download_size if this is expected")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.unwatch_all()


class _DeadlineAlarm(BaseException):
    """Raised by the alarm's handler wherever the main thread is; a BaseException so
    that no ``except Exception`` on the way swallows it."""


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_DeadlineAlarm` in the main thread after *seconds*.  Nothing in a
    thread (signals go to the main thread), nothing without a deadline, and nothing
    if an alarm is already set (an outer fetch's, whose deadline comes first)."""
    usable = (seconds is not None and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable or seconds is None:
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise _DeadlineAlarm

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ConnectFailed(OSError):
    """A connection could not be made or was cut for being too slow: worth a retry
    (:mod:`guestpkg.fetch.transport` turns it into a transient failure)."""
