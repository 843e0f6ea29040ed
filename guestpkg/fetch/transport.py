# SPDX-License-Identifier: GPL-2.0-or-later
"""HTTP(S) for upstream discovery and verified, content-addressed downloads.

Everything guestpkg downloads goes through here, with python3-requests (and
:mod:`guestpkg.fetch.ftp` for the ``ftp://`` upstreams some watch files still name):

- certificates are checked (requests' default, with Debian's CA bundle), proxies come
  from the environment (``http_proxy``, ``https_proxy``, ``no_proxy``), every socket
  operation has ``download_timeout`` seconds, and failures that may be transient
  (connection errors, timeouts, truncated bodies, HTTP 429 and 5xx) are retried
  ``download_retries`` times with exponential backoff;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and only to http(s);
- a body larger than ``max_download_size`` is refused, from its Content-Length before
  reading and while streaming otherwise.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from guestpkg import __version__
from guestpkg.config import Config
from guestpkg.debian.deb822 import is_sha256
from guestpkg.errors import ChecksumMismatch, InputError, NetworkError, SystemStateError
from guestpkg.fetch import ftp
from guestpkg.fetch.ftp import Transient
from guestpkg.fsutil import fsync_dir, locked

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


def session(user_agent: str | None = None) -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = user_agent or DEFAULT_USER_AGENT
    s.max_redirects = MAX_REDIRECTS
    return s


def get_page(config: Config, url: str, *, user_agent: str | None = None) -> Page:
    """GET a listing page (HTML, JSON, plain text; an FTP directory's LIST) as text,
    with retries."""
    limit = min(config.max_download_size, MAX_PAGE_BYTES)
    if _is_ftp(url):
        return _retrying(config,
                         lambda: Page(url, (), url, ftp.list_directory(config, url, limit)))

    def attempt() -> Page:
        with session(user_agent) as s:
            response, redirects = _open(s, config, url, headers={"Accept": "*/*"})
            with response:
                body = b"".join(_stream(response, url, limit, decode=True))
                # requests assumes ISO-8859-1 for text/* without a charset; pages
                # today are UTF-8 unless they say otherwise
                declared = "charset=" in response.headers.get("Content-Type", "").lower()
                encoding = response.encoding if declared and response.encoding else "utf-8"
                try:
                    text = body.decode(encoding, errors="replace")
                except LookupError:  # a charset Python does not know
                    text = body.decode("utf-8", errors="replace")
                return Page(url, tuple(redirects), response.url, text)
    return _retrying(config, attempt)


def fetch_verified(config: Config, url: str, sha256: str, *, user_agent: str | None = None,
                   label: str | None = None) -> Path:
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
        _retrying(config,
                  lambda: _download(config, url, sha256, final, user_agent, label))
    return final


def _reap_unverified(directory: Path, sha256: str) -> None:
    """Leftovers of an interrupted fetch of this digest; we hold its lock, so no live
    download owns them."""
    for stale in directory.glob(f".unverified-{sha256}-*"):
        stale.unlink(missing_ok=True)


def _download(config: Config, url: str, sha256: str, final: Path, user_agent: str | None,
              label: str | None) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".unverified-{sha256}-", dir=final.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, _body(config, url, user_agent) as (total, chunks):
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
def _body(config: Config, url: str,
          user_agent: str | None) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    """(announced size, the bytes) of *url* over http(s) or ftp."""
    if _is_ftp(url):
        with ftp.open_file(config, url, config.max_download_size) as body:
            yield body
        return
    with session(user_agent) as s:
        # identity: the digest is of the bytes upstream published, not a decoding
        response, _ = _open(s, config, url, headers={"Accept-Encoding": "identity"})
        with response:
            yield (_content_length(response),
                   _stream(response, url, config.max_download_size, decode=False))


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


def _stream(response: requests.Response, url: str, limit: int,
            decode: bool) -> Iterator[bytes]:
    expected = _content_length(response)
    if expected is not None and expected > limit:
        raise NetworkError(f"{url}: {expected} bytes is more than the limit of {limit}",
                           hint="raise max_download_size if this is expected")
    received = 0
    try:
        for chunk in response.raw.stream(CHUNK_BYTES, decode_content=decode):
            received += len(chunk)
            if received > limit:
                raise NetworkError(f"{url}: more than the limit of {limit} bytes",
                                   hint="raise max_download_size if this is expected")
            yield chunk
    except (requests.RequestException, OSError) as e:
        raise Transient(f"{url}: the transfer broke off: {e}") from e
    except Exception as e:  # urllib3's ProtocolError and friends
        if type(e).__module__.startswith("urllib3"):
            raise Transient(f"{url}: the transfer broke off: {e}") from e
        raise
    if expected is not None and not decode and received != expected:
        raise Transient(f"{url}: truncated: {received} of {expected} bytes")


def _open(s: requests.Session, config: Config, url: str,
          headers: dict[str, str]) -> tuple[requests.Response, list[str]]:
    """GET *url*, following at most MAX_REDIRECTS redirects, only to http(s)."""
    redirects: list[str] = []
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        _check_scheme(current, url)
        try:
            response = s.get(current, headers=headers, stream=True, allow_redirects=False,
                             timeout=config.download_timeout or None)
        except requests.exceptions.SSLError as e:
            raise NetworkError(f"{current}: TLS certificate check failed: {e}",
                               hint="guestpkg never skips certificate checks") from e
        except requests.RequestException as e:
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


def _retrying(config: Config, attempt: Callable[[], T]) -> T:
    retries = max(0, config.download_retries)
    for number in range(retries + 1):
        try:
            return attempt()
        except Transient as e:
            if number == retries:
                raise NetworkError(str(e), hint=f"gave up after {retries + 1} attempts; "
                                   "is the network or the upstream server down?") from e
            delay_s = min(30.0, 0.5 * 2 ** number)
            log.warning("%s; retrying in %.1f s", e, delay_s)
            time.sleep(delay_s)
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
        sys.stderr.write(f"\rguestpkg: fetching {label}: {size} MiB\x1b[K")
        sys.stderr.flush()
    try:
        yield show
    finally:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
