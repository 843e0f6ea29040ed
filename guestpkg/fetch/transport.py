# SPDX-License-Identifier: GPL-2.0-or-later
"""HTTP(S) for upstream discovery and verified, content-addressed downloads.

Everything guestpkg downloads goes through here, with python3-requests (and
:mod:`guestpkg.fetch.ftp` for the ``ftp://`` upstreams some watch files still name):

- certificates are checked (requests' default, with Debian's CA bundle), proxies come
  from the environment (``http_proxy``, ``https_proxy``, ``no_proxy``), every socket
  operation has ``download_timeout`` seconds, and failures that may be transient
  (connection errors, timeouts, truncated bodies, HTTP 429 and 5xx) are retried
  ``download_retries`` times with exponential backoff;
- a :class:`~guestpkg.fetch.guard.FetchGuard` watches the whole fetch: every
  connection goes to a checked address (no loopback, link-local or own address unless
  the watch file names one), the fetch has a deadline and a minimum rate, and a budget
  of bytes;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and only to http(s);
- a body larger than ``max_download_size`` is refused, from its Content-Length before
  reading and while streaming otherwise; pages are decoded here, by our own bounded
  decoder (gzip and deflate, stacked or not: a 2 kB gzip-in-gzip page that inflates to
  1 GiB stops at the cap, having cost at most the cap), tarballs never (the digest is
  of the bytes upstream published).

:func:`fetch_verified` is the osbuild-style source cache: the file is streamed into
``<cachedir>/sources/.unverified-<sha256>-*`` while its SHA256 is computed, and only a
matching file is renamed to ``<cachedir>/sources/sha256:<hex>``.  A mismatch raises
:class:`~guestpkg.errors.ChecksumMismatch` and leaves nothing behind; an interrupted
download leaves at most an ``.unverified-*`` file, which no lookup ever mistakes for a
result and which the next fetch of the same digest removes.  Concurrent fetches of the
same digest serialise on a flock of ``.lock-<hex>``.  Plain http and ftp are accepted
only because the digest is pinned, and the log says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters

from guestpkg import __version__
from guestpkg.config import Config
from guestpkg.debian.deb822 import is_sha256
from guestpkg.errors import (
    ChecksumMismatch,
    GuestpkgError,
    InputError,
    NetworkError,
    SystemStateError,
)
from guestpkg.fetch import ftp
from guestpkg.fetch.ftp import Transient
from guestpkg.fetch.guard import ConnectFailed, FetchGuard
from guestpkg.fsutil import fsync_dir, locked
from guestpkg.text import one_line

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
CHUNK_BYTES = 1 << 16
#: Listing pages are read into memory: cap them well below tarball sizes.
MAX_PAGE_BYTES = 64 << 20
DEFAULT_USER_AGENT = f"guestpkg/{__version__} (uscan compatible; +debian/watch)"

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A fetched page: the URL asked for, the redirects taken, the final URL, the text."""

    url: str
    redirects: tuple[str, ...]
    final_url: str
    text: str


def sources_dir(config: Config) -> Path:
    return config.cachedir / "sources"


def cache_path(config: Config, sha256: str) -> Path:
    return sources_dir(config) / f"sha256:{sha256}"


def session(guard: FetchGuard, user_agent: str | None = None) -> requests.Session:
    """A requests session whose every connection *guard* checks and watches."""
    s = requests.Session()
    s.headers["User-Agent"] = user_agent or DEFAULT_USER_AGENT
    s.max_redirects = MAX_REDIRECTS
    adapter = _GuardedAdapter(guard)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


class _GuardedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with urllib3 pools whose connections come from
    :meth:`FetchGuard.connect` (resolve once, check, connect to what was checked)."""

    def __init__(self, guard: FetchGuard) -> None:
        self._pools = _guarded_pools(guard)  # init_poolmanager, from __init__, needs it
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)  # type: ignore[no-untyped-call]
        manager.pool_classes_by_scheme = self._pools
        return manager


def _guarded_pools(guard: FetchGuard) -> dict[str, type]:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import NewConnectionError

    class Guarded:
        """Overrides urllib3's ``_new_conn`` (1.26 and 2.x), which both the http and
        the https connection call before any TLS."""

        def _new_conn(self: Any) -> Any:
            if getattr(self, "proxy", None) is not None:  # the administrator's proxy
                sock = super()._new_conn()  # type: ignore[misc]
                guard.watch(sock)
                return sock
            try:
                return guard.connect(self._dns_host, self.port, self.timeout,
                                     self.source_address, self.socket_options or ())
            except OSError as e:
                raise NewConnectionError(self, f"Failed to establish a new connection: "
                                         f"{e}") from e

        def close(self: Any) -> None:
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    guard.unwatch(self.sock.fileno())
            super().close()  # type: ignore[misc]

    http = type("GuardedHTTPConnection", (Guarded, HTTPConnection), {})
    https = type("GuardedHTTPSConnection", (Guarded, HTTPSConnection), {})
    return {"http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,),
                         {"ConnectionCls": http}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": https})}


@contextlib.contextmanager
def guarded(config: Config, url: str, guard: FetchGuard | None) -> Iterator[FetchGuard]:
    """*guard*, or one for a fetch of *url* alone (whose own host is then the one the
    caller named)."""
    if guard is not None:
        yield guard
        return
    with FetchGuard.watching(config, [url]) as own:
        yield own


def get_page(config: Config, url: str, *, user_agent: str | None = None,
             guard: FetchGuard | None = None) -> Page:
    """GET a listing page (HTML, JSON, plain text; an FTP directory's LIST) as text,
    with retries."""
    with guarded(config, url, guard) as g:
        return _get_page(config, url, user_agent, g)


def _get_page(config: Config, url: str, user_agent: str | None, guard: FetchGuard) -> Page:
    limit = min(config.max_download_size, MAX_PAGE_BYTES)
    if _is_ftp(url):
        return _retrying(config, guard, lambda: Page(
            url, (), url, ftp.list_directory(config, url, limit, guard)))

    def attempt() -> Page:
        # identity, as uscan's LWP asks (it sends no Accept-Encoding); what a server
        # encodes all the same is decoded below, within the cap
        with session(guard, user_agent) as s:
            response, redirects = _open(s, config, url, guard,
                                        headers={"Accept": "*/*",
                                                 "Accept-Encoding": "identity"})
            with response:
                body = b"".join(_stream(response, url, limit, guard, decode=True))
                # requests assumes ISO-8859-1 for text/* without a charset; pages
                # today are UTF-8 unless they say otherwise
                declared = "charset=" in response.headers.get("Content-Type", "").lower()
                encoding = response.encoding if declared and response.encoding else "utf-8"
                try:
                    text = body.decode(encoding, errors="replace")
                except LookupError:  # a charset Python does not know
                    text = body.decode("utf-8", errors="replace")
                return Page(url, tuple(redirects), response.url, text)
    return _retrying(config, guard, attempt)


def fetch_verified(config: Config, url: str, sha256: str, *, user_agent: str | None = None,
                   label: str | None = None, guard: FetchGuard | None = None) -> Path:
    """The cache path of the file at *url* whose SHA256 must be *sha256*.

    Downloads only if the cache does not hold that digest yet."""
    sha256 = sha256.lower()
    if not is_sha256(sha256):
        raise InputError(f"not a SHA256 in hex: {sha256!r}", hint="64 hex digits expected")
    final = cache_path(config, sha256)
    if final.is_file():
        log.info("cached: %s (sha256:%s)", url, sha256)
        return final
    if urlsplit(url).scheme in ("http", "ftp"):
        log.warning("fetching %s over plain %s: accepted only because its SHA256 is "
                    "pinned", url, urlsplit(url).scheme)
    directory = sources_dir(config)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.close(os.open(directory / f".lock-{sha256}", os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as e:
        raise SystemStateError(f"cannot write the download cache {directory}: {e.strerror}",
                               hint="run as root, or give --cachedir a writable "
                               "directory") from e
    with locked(directory / f".lock-{sha256}"):
        if final.is_file():  # another process fetched it while we waited
            return final
        _reap_unverified(directory, sha256)
        with guarded(config, url, guard) as g:
            _retrying(config, g,
                      lambda: _download(config, url, sha256, final, user_agent, label, g))
    return final


def _reap_unverified(directory: Path, sha256: str) -> None:
    """Leftovers of an interrupted fetch of this digest; we hold its lock, so no live
    download owns them."""
    for stale in directory.glob(f".unverified-{sha256}-*"):
        stale.unlink(missing_ok=True)


def _download(config: Config, url: str, sha256: str, final: Path, user_agent: str | None,
              label: str | None, guard: FetchGuard) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".unverified-{sha256}-", dir=final.parent)
    temp = Path(temp_name)
    try:
        with (os.fdopen(fd, "wb") as out,
              _body(config, url, user_agent, guard) as (total, chunks)):
            digest = _copy(chunks, total, out, label or url.rsplit("/", 1)[-1])
            out.flush()
            os.fsync(out.fileno())
        if digest != sha256:
            raise ChecksumMismatch(url, sha256, digest)
        os.chmod(temp, 0o644)
        os.rename(temp, final)
        fsync_dir(final.parent)
        log.info("verified %s: sha256:%s", url, sha256)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def _body(config: Config, url: str, user_agent: str | None,
          guard: FetchGuard) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """(announced size, the bytes) of *url* over http(s) or ftp."""
    if _is_ftp(url):
        with ftp.open_file(config, url, config.max_download_size, guard) as body:
            yield body
        return
    with session(guard, user_agent) as s:
        # identity: the digest is of the bytes upstream published, not a decoding
        response, _ = _open(s, config, url, guard, headers={"Accept-Encoding": "identity"})
        with response:
            yield (_content_length(response),
                   _stream(response, url, config.max_download_size, guard, decode=False))


def _is_ftp(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "ftp"


def _copy(chunks: Iterator[bytes], total: int | None, out: IO[bytes], label: str) -> str:
    """Stream *chunks* into *out*, hashing as they come; returns the hex digest."""
    digest = hashlib.sha256()
    done = 0
    with _progress(label, total) as show:
        for chunk in chunks:
            digest.update(chunk)
            out.write(chunk)
            done += len(chunk)
            show(done)
    return digest.hexdigest()


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _stream(response: requests.Response, url: str, limit: int, guard: FetchGuard,
            decode: bool) -> Iterator[bytes]:
    """The body of *response*, at most *limit* bytes after decoding (*decode*: the
    Content-Encoding, with :func:`_decoded`; else the bytes as sent)."""
    expected = _content_length(response)
    if expected is not None and expected > limit:
        raise NetworkError(f"{url}: {expected} bytes is more than the limit of {limit}",
                           hint="raise max_download_size if this is expected")
    encodings = _content_encodings(response, url) if decode else []
    raw = _raw_chunks(response, url, guard)
    chunks = _decoded(raw, encodings) if encodings else raw
    what = f" after decoding Content-Encoding {', '.join(encodings)}" if encodings else ""
    received = 0
    try:
        for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise NetworkError(f"{url}: more than the limit of {limit} bytes{what}",
                                   hint="raise max_download_size if this is expected")
            guard.take(url, len(chunk))
            yield chunk
    except zlib.error as e:
        raise NetworkError(f"{url}: the body is not valid {', '.join(encodings)}: {e}") from e
    if expected is not None and not encodings and received != expected:
        raise Transient(f"{url}: truncated: {received} of {expected} bytes")


def _raw_chunks(response: requests.Response, url: str, guard: FetchGuard) -> Iterator[bytes]:
    """The bytes off the wire; a broken transfer is transient, unless the guard cut
    it (then its verdict: the deadline, or too slow)."""
    try:
        for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
            guard.received(len(chunk))
            guard.check_time(url)
            yield chunk
        guard.check_time(url)  # a connection the watchdog cut reads as the body's end
    except ConnectFailed as e:
        raise Transient(f"{url}: {e}") from e
    except (requests.RequestException, OSError) as e:
        _translate(url, guard, e)
        raise Transient(f"{url}: the transfer broke off: {e}") from e
    except Exception as e:  # urllib3's ProtocolError and friends
        if type(e).__module__.startswith("urllib3"):
            _translate(url, guard, e)
            raise Transient(f"{url}: the transfer broke off: {e}") from e
        raise


def _translate(url: str, guard: FetchGuard, error: Exception) -> None:
    """The guard's verdict instead of the socket error it caused, if it did."""
    try:
        guard.check_time(url)
    except ConnectFailed as e:
        raise Transient(f"{url}: {e}") from error


def _content_encodings(response: requests.Response, url: str) -> list[str]:
    header = response.headers.get("Content-Encoding", "")
    encodings = [c.strip().lower() for c in header.split(",") if c.strip()]
    encodings = [c for c in encodings if c != "identity"]
    unknown = [c for c in encodings if c not in DECODERS]
    if unknown:
        raise NetworkError(f"{url}: Content-Encoding {header} is not supported "
                           "(guestpkg asked for identity)",
                           hint="the server must send the page uncompressed, gzip or "
                           "deflate")
    return encodings


#: zlib's wbits per Content-Encoding (RFC 9110, 8.4.1): gzip, and deflate as the zlib
#: format (a raw deflate stream, which some servers send, is tried when that fails)
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
            "deflate": zlib.MAX_WBITS}


def _decoded(raw: Iterator[bytes], encodings: list[str]) -> Iterator[bytes]:
    """*raw* with each Content-Encoding undone, last applied first; each layer yields
    at most CHUNK_BYTES at a time, so the caller's count stops a bomb before it is
    decoded (urllib3 inflates a whole read at once, and a second layer multiplies)."""
    stream = raw
    for encoding in reversed(encodings):
        stream = _inflate(stream, DECODERS[encoding])
    return stream


def _inflate(chunks: Iterator[bytes], wbits: int) -> Iterator[bytes]:
    decoder = zlib.decompressobj(wbits)
    started = False
    for data in chunks:
        while True:
            try:
                out = decoder.decompress(data, CHUNK_BYTES)
            except zlib.error:
                if started or wbits != zlib.MAX_WBITS:
                    raise
                wbits = -zlib.MAX_WBITS  # a raw deflate stream
                decoder = zlib.decompressobj(wbits)
                out = decoder.decompress(data, CHUNK_BYTES)
            started = True
            data = decoder.unconsumed_tail
            if decoder.eof and decoder.unused_data:  # the next gzip member
                data = decoder.unused_data
                decoder = zlib.decompressobj(wbits)
            if out:
                yield out
            if not data and len(out) < CHUNK_BYTES:
                break


def _open(s: requests.Session, config: Config, url: str, guard: FetchGuard,
          headers: dict[str, str]) -> tuple[requests.Response, list[str]]:
    """GET *url*, following at most MAX_REDIRECTS redirects, only to http(s), only
    where *guard* lets a fetch go."""
    redirects: list[str] = []
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(current, url)
        guard.check_url(current)
        guard.check_time(current)
        try:
            response = s.get(current, headers=headers, stream=True, allow_redirects=False,
                             timeout=guard.timeout(config.download_timeout or None))
        except requests.exceptions.SSLError as e:
            _translate(current, guard, e)
            raise NetworkError(f"{current}: TLS certificate check failed: {e}",
                               hint="guestpkg never skips certificate checks") from e
        except requests.RequestException as e:
            _translate(current, guard, e)
            raise Transient(f"{current}: {e}") from e
        except UnicodeError as e:  # requests decodes a Location as UTF-8, even unasked
            raise NetworkError(f"{current}: a redirect to a URL that is not UTF-8",
                               hint="the upstream server is broken or hostile") from e
        try:  # http.client takes headers the watchdog cut short for all of them
            guard.check_time(current)
        except GuestpkgError:
            response.close()
            raise
        except ConnectFailed as e:
            response.close()
            raise Transient(f"{current}: {e}") from e
        if response.is_redirect:
            target = urljoin(current, response.headers["Location"])
            response.close()
            log.info("redirect: %s -> %s", current, target)
            redirects.append(target)
            current = target
            continue
        if response.status_code == 429 or response.status_code >= 500:
            response.close()
            raise Transient(f"{current}: HTTP {response.status_code} {response.reason}")
        if response.status_code >= 400:
            response.close()
            raise NetworkError(f"{current}: HTTP {response.status_code} {response.reason}",
                               hint="the watch file may point at a moved or removed file")
        return response, redirects
    raise NetworkError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _check_scheme(current: str, original: str) -> None:
    scheme = urlsplit(current).scheme.lower()
    if scheme not in ("http", "https"):
        raise NetworkError(f"{original}: refusing to follow a redirect to {current}"
                           if current != original else f"{current}: only http(s) is supported",
                           hint="guestpkg downloads over http and https only")


def _retrying(config: Config, guard: FetchGuard, attempt: Callable[[], T]) -> T:
    retries = max(0, config.download_retries)
    for number in range(retries + 1):
        try:
            return attempt()
        except Transient as e:
            delay_s = min(30.0, 0.5 * 2 ** number)
            remaining_s = guard.remaining_s()
            if number == retries or (remaining_s is not None and remaining_s <= delay_s):
                raise NetworkError(str(e), hint=f"gave up after {number + 1} attempts; "
                                   "is the network or the upstream server down?") from e
            log.warning("%s; retrying in %.1f s", e, delay_s)
            time.sleep(delay_s)
        finally:
            guard.unwatch_all()  # this attempt's connections are closed
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A one-line progress display on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    last = [0.0]

    def show(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and done != total:
            return
        last[0] = now
        size = f"{done / 2**20:.1f}" + (f"/{total / 2**20:.1f}" if total else "")
        # the label is the file name the upstream's link gave: escaped
        sys.stderr.write(f"\rguestpkg: fetching {one_line(label)}: {size} MiB\x1b[K")
        sys.stderr.flush()
    try:
        yield show
    finally:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
