# SPDX-License-Identifier: GPL-2.0-or-later
"""Verified downloads against a real HTTP server on 127.0.0.1: redirects, slow,
truncated, oversized and flaky responses, wrong hashes, concurrency, leftovers."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.errors import ChecksumMismatch, NetworkError, SystemStateError
from guestpkg.fetch.transport import (
    CHUNK_BYTES,
    cache_path,
    fetch_verified,
    get_page,
    sources_dir,
)
from tests.support.upstream_server import Upstream, serve

DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
WRONG = "0" * 64


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "foo-1.0.tar.gz").write_bytes(DATA)
    with serve(root, slow_s=2.0) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log",
                           download_timeout=0.5, download_retries=0)


def leftovers(config: Config) -> list[str]:
    directory = sources_dir(config)
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(".lock-"))


def test_download_is_cached_under_its_digest(upstream: Upstream, config: Config) -> None:
    path = fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA)
    assert path == cache_path(config, SHA) == sources_dir(config) / f"sha256:{SHA}"
    assert path.read_bytes() == DATA
    again = fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA.upper())
    assert again == path
    assert upstream.count("/foo-1.0.tar.gz") == 1  # the second call was a cache hit


def test_wrong_hash_leaves_nothing(upstream: Upstream, config: Config) -> None:
    with pytest.raises(ChecksumMismatch) as caught:
        fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", WRONG)
    error = caught.value
    assert error.expected == WRONG and error.actual == SHA
    assert f"{upstream.url}/foo-1.0.tar.gz" in error.message
    assert "re-rolled" in (error.hint or "")
    assert error.exit_code != 0
    assert leftovers(config) == []


def test_redirects_are_followed_up_to_ten(upstream: Upstream, config: Config) -> None:
    path = fetch_verified(config, f"{upstream.url}/redirect/10/foo-1.0.tar.gz", SHA)
    assert path.read_bytes() == DATA


def test_too_many_redirects(upstream: Upstream, config: Config) -> None:
    with pytest.raises(NetworkError, match="more than 10 redirects"):
        fetch_verified(config, f"{upstream.url}/redirect/11/foo-1.0.tar.gz", SHA)
    assert leftovers(config) == []


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/foo-1.0.tar.gz", "file:///etc/passwd"])
def test_redirect_only_to_http(upstream: Upstream, config: Config, target: str) -> None:
    with pytest.raises(NetworkError, match="refusing to follow a redirect"):
        fetch_verified(config, f"{upstream.url}/redirect-to?{target}", SHA)


def test_truncated_is_retried_then_fails(upstream: Upstream, config: Config) -> None:
    config = config.replace(download_retries=1)
    with pytest.raises(NetworkError, match=r"truncated|broke off") as caught:
        fetch_verified(config, f"{upstream.url}/truncated/foo-1.0.tar.gz", SHA)
    assert "2 attempts" in (caught.value.hint or "")
    assert upstream.count("/truncated/foo-1.0.tar.gz") == 2
    assert leftovers(config) == []


def test_oversized_by_content_length(upstream: Upstream, config: Config) -> None:
    with pytest.raises(NetworkError, match="more than the limit"):
        fetch_verified(config, f"{upstream.url}/oversized/foo-1.0.tar.gz", SHA)
    assert leftovers(config) == []


def test_oversized_while_streaming(upstream: Upstream, config: Config) -> None:
    config = config.replace(max_download_size=100_000)
    with pytest.raises(NetworkError, match="more than the limit"):
        fetch_verified(config, f"{upstream.url}/chunked/foo-1.0.tar.gz", SHA)
    assert leftovers(config) == []


def test_chunked_without_length(upstream: Upstream, config: Config) -> None:
    assert fetch_verified(config, f"{upstream.url}/chunked/foo-1.0.tar.gz", SHA).is_file()


def test_slow_server_times_out(upstream: Upstream, config: Config) -> None:
    with pytest.raises(NetworkError, match=r"timed out|timeout") as caught:
        fetch_verified(config, f"{upstream.url}/slow/foo-1.0.tar.gz", SHA)
    assert "attempts" in (caught.value.hint or "")
    assert leftovers(config) == []


def test_server_error_is_retried(upstream: Upstream, config: Config) -> None:
    config = config.replace(download_retries=2)
    assert fetch_verified(config, f"{upstream.url}/flaky/foo-1.0.tar.gz", SHA).is_file()
    assert upstream.count("/flaky/foo-1.0.tar.gz") == 2


def test_not_found_is_not_retried(upstream: Upstream, config: Config) -> None:
    config = config.replace(download_retries=3)
    with pytest.raises(NetworkError, match="HTTP 404"):
        fetch_verified(config, f"{upstream.url}/nope.tar.gz", SHA)
    assert upstream.count("/nope.tar.gz") == 1


def test_concurrent_fetches_download_once(upstream: Upstream, config: Config) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            results.append(fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA))
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [cache_path(config, SHA)] * 4
    assert upstream.count("/foo-1.0.tar.gz") == 1
    assert leftovers(config) == [f"sha256:{SHA}"]


def test_interrupted_download_is_not_a_result(upstream: Upstream, config: Config) -> None:
    directory = sources_dir(config)
    directory.mkdir(parents=True)
    stale = directory / f".unverified-{SHA}-abc123"
    stale.write_bytes(DATA[:1000])  # what a killed download leaves
    path = fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA)
    assert path.read_bytes() == DATA
    assert upstream.count("/foo-1.0.tar.gz") == 1
    assert not stale.exists()


def test_plain_http_is_logged(upstream: Upstream, config: Config,
                              caplog: pytest.LogCaptureFixture) -> None:
    fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA)
    assert "plain http" in caplog.text and "pinned" in caplog.text


def test_get_page_records_redirects(upstream: Upstream, config: Config) -> None:
    page = get_page(config, f"{upstream.url}/redirect/2/")
    assert page.redirects == (f"{upstream.url}/redirect/1/", f"{upstream.url}/")
    assert page.final_url == f"{upstream.url}/"
    assert "foo-1.0.tar.gz" in page.text


def test_https_certificate_is_checked(config: Config) -> None:
    """A TLS server with a self-signed certificate is refused, never skipped."""
    import ssl
    import subprocess
    import tempfile
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    with tempfile.TemporaryDirectory() as directory:
        key, cert = Path(directory) / "key.pem", Path(directory) / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "1",
                        "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
        server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"https://127.0.0.1:{server.server_address[1]}/x.tar.gz"
            with pytest.raises(NetworkError, match="certificate"):
                fetch_verified(config, url, SHA)
        finally:
            server.shutdown()
            server.server_close()


def test_killed_download_leaves_no_result(tmp_path: Path, upstream: Upstream,
                                          config: Config) -> None:
    """SIGKILL a fetch in the middle of the body: only an .unverified-* file remains,
    the digest's path stays absent, and the next fetch replaces the leftover."""
    url = f"{upstream.url}/stall/foo-1.0.tar.gz"
    upstream.slow_s = 20.0  # the stall outlasts the test: the child dies inside it
    code = ("import sys; from pathlib import Path; from guestpkg.config import Config; "
            "from guestpkg.fetch import fetch_verified; "
            f"fetch_verified(Config.defaults(cachedir=Path({str(config.cachedir)!r}), "
            f"download_timeout=30.0), {url!r}, {SHA!r})")
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(["/usr/bin/python3", "-c", code], cwd=repo)
    directory = sources_dir(config)
    try:
        for _ in range(600):  # until part of the body is on disk
            partial = list(directory.glob(f".unverified-{SHA}-*")) if directory.exists() else []
            if partial and partial[0].stat().st_size >= CHUNK_BYTES:
                break
            assert child.poll() is None, "the child exited before the stall"
            time.sleep(0.05)
        else:
            pytest.fail("the child never wrote the first part of the body")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not cache_path(config, SHA).exists()
    assert [p.name.startswith(".unverified-") for p in directory.iterdir()
            if not p.name.startswith(".lock-")] == [True]
    assert fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA).read_bytes() == DATA
    assert leftovers(config) == [f"sha256:{SHA}"]


def test_unwritable_cache_is_a_clear_error(tmp_path: Path, upstream: Upstream) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = Config.defaults(cachedir=blocker / "cache")
    with pytest.raises(SystemStateError, match="cannot write the download cache") as caught:
        fetch_verified(config, f"{upstream.url}/foo-1.0.tar.gz", SHA)
    assert "--cachedir" in (caught.value.hint or "")
