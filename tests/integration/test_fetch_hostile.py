# SPDX-License-Identifier: GPL-2.0-or-later
"""A hostile upstream on 127.0.0.1 (issue 10, findings 2, 3 and 8): compression
bombs, servers that drip a byte at a time, and escape sequences in what a server
controls (a redirect's URL, a reason phrase) on their way to the user's terminal."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.errors import NetworkError
from guestpkg.fetch.transport import fetch_verified, get_page, sources_dir
from tests.support.upstream_server import Upstream, serve

REPO = Path(__file__).resolve().parents[2]
DRIPPED = b"x" * 40          # 10 s at one byte every 0.25 s
BOMB_ZEROS = 1 << 30         # what the bomb decodes to: 1 GiB


def gzip_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """``gzip(gzip(1 GiB of zeros))``: 1827 bytes on the wire."""
    zeros = bytes(1 << 20)
    inner = b"".join(gzip_stream(zeros for _ in range(BOMB_ZEROS >> 20)))
    return b"".join(gzip_stream(iter([inner])))


@pytest.fixture
def upstream(tmp_path: Path, bomb: bytes) -> Iterator[Upstream]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "dripped.tar.gz").write_bytes(DRIPPED)
    with serve(root, drip_s=0.25, encoded_body=bomb, encoding="gzip, gzip") as server:
        yield server


def config_for(tmp_path: Path, **settings: object) -> Config:
    values: dict[str, object] = {"cachedir": tmp_path / "cache", "logdir": tmp_path / "log",
                                 "download_timeout": 0.5, "download_retries": 0}
    values.update(settings)
    return Config.defaults(**values)


# -- finding 2: compression bombs -----------------------------------------------------

# Runs get_page in a child process, so that its peak RSS (VmHWM) says what the fetch
# cost, not what the test process did before.
RSS_PROBE = textwrap.dedent("""\
    import json, sys
    from pathlib import Path
    from guestpkg.config import Config
    from guestpkg.errors import GuestpkgError
    from guestpkg.fetch.transport import get_page

    def peak_bytes():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    work = Path(sys.argv[2])
    config = Config.defaults(cachedir=work / "cache", logdir=work / "log",
                             download_retries=0, max_download_size=int(sys.argv[3]))
    before = peak_bytes()
    try:
        page = get_page(config, sys.argv[1])
        error = None
        size = len(page.text)
    except GuestpkgError as e:
        error = [type(e).__name__, e.message]
        size = None
    print(json.dumps({"before": before, "after": peak_bytes(), "error": error,
                      "size": size}))
""")


def test_stacked_gzip_bomb_is_bounded_in_decoded_bytes(tmp_path: Path, upstream: Upstream,
                                                        bomb: bytes) -> None:
    cap = 8 << 20
    assert len(bomb) < 2000  # the attack: under 2 kB on the wire, 1 GiB decoded
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", RSS_PROBE, f"{upstream.url}/encoded", str(tmp_path),
         str(cap)], cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(probe.stdout)
    assert result["error"] is not None, result
    kind, message = result["error"]
    assert kind == "NetworkError"
    assert f"more than the limit of {cap} bytes" in message
    # what the fetch cost: the cap (the page is kept up to it) plus slack, never the
    # decoded size (1 GiB; the unbounded decoder peaked at 800+ MiB)
    grown = result["after"] - result["before"]
    assert grown < cap + (32 << 20), f"peak RSS grew by {grown >> 20} MiB"
    assert "gzip, gzip" in message  # says what it was decoding


def test_unknown_content_encoding_is_refused(tmp_path: Path, upstream: Upstream) -> None:
    upstream.encoding = "br"
    with pytest.raises(NetworkError, match="Content-Encoding br"):
        get_page(config_for(tmp_path), f"{upstream.url}/encoded")


def test_gzip_page_is_still_decoded(tmp_path: Path, upstream: Upstream) -> None:
    text = "<a href='foo-1.0.tar.gz'>foo</a>\n" * 1000
    upstream.encoded_body = b"".join(gzip_stream(iter([text.encode()])))
    upstream.encoding = "gzip"
    assert get_page(config_for(tmp_path), f"{upstream.url}/encoded").text == text
    upstream.encoded_body = zlib.compress(text.encode())
    upstream.encoding = "deflate"
    assert get_page(config_for(tmp_path), f"{upstream.url}/encoded").text == text


def test_tarballs_are_never_decoded(tmp_path: Path, upstream: Upstream, bomb: bytes) -> None:
    """The digest is of the bytes upstream published: a tarball served with
    Content-Encoding is kept as sent, so a bomb is 1827 bytes in the cache."""
    import hashlib
    path = fetch_verified(config_for(tmp_path), f"{upstream.url}/encoded",
                          hashlib.sha256(bomb).hexdigest())
    assert path.read_bytes() == bomb


# -- finding 3: an overall deadline and a minimum rate --------------------------------

def test_dripping_download_is_cut_off_by_the_deadline(tmp_path: Path,
                                                       upstream: Upstream) -> None:
    config = config_for(tmp_path, download_deadline=2.0, download_min_rate=0)
    with pytest.raises(NetworkError, match="deadline of 2 s") as caught:
        fetch_verified(config, f"{upstream.url}/drip/dripped.tar.gz", "0" * 64)
    assert "download_deadline" in (caught.value.hint or "")
    assert [p.name for p in sources_dir(config).iterdir()
            if not p.name.startswith(".lock-")] == []


def test_dripping_page_is_cut_off_by_the_deadline(tmp_path: Path, upstream: Upstream) -> None:
    with pytest.raises(NetworkError, match="deadline of 2 s"):
        get_page(config_for(tmp_path, download_deadline=2.0, download_min_rate=0),
                 f"{upstream.url}/drip/dripped.tar.gz")


def test_dripping_headers_are_cut_off_by_the_deadline(tmp_path: Path,
                                                      upstream: Upstream) -> None:
    with pytest.raises(NetworkError, match="deadline of 2 s"):
        get_page(config_for(tmp_path, download_deadline=2.0, download_min_rate=0),
                 f"{upstream.url}/drip-headers")


def test_dripping_server_is_cut_off_by_the_minimum_rate(tmp_path: Path,
                                                        upstream: Upstream) -> None:
    # no deadline: only the rate (4 bytes/s, under 1000 bytes/s over 1 s) stops it
    config = config_for(tmp_path, download_deadline=0.0, download_min_rate=1000)
    with pytest.raises(NetworkError, match="slower than 1000 bytes/s"):
        fetch_verified(config, f"{upstream.url}/drip/dripped.tar.gz", "0" * 64)


def test_a_fetch_within_deadline_and_rate_succeeds(tmp_path: Path,
                                                  upstream: Upstream) -> None:
    import hashlib
    config = config_for(tmp_path, download_deadline=30.0, download_min_rate=1000)
    path = fetch_verified(config, f"{upstream.url}/dripped.tar.gz",
                          hashlib.sha256(DRIPPED).hexdigest())
    assert path.read_bytes() == DRIPPED


# -- finding 8: escape sequences from a server never reach the terminal raw -----------

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m"


def _fetch_command(tmp_path: Path, watch_url: str,
                   *options: str) -> subprocess.CompletedProcess[bytes]:
    tree = tmp_path / "foo-1.0"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "foo (1.0-1) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000\n")
    (tree / "debian" / "watch").write_text(f"version=4\n{watch_url} foo-(\\d\\S+)\\.tar\\.gz\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO),
           "GUESTPKG_CONFDIR": str(tmp_path / "etc"),
           "GUESTPKG_CACHEDIR": str(tmp_path / "cache"),
           "GUESTPKG_LOGDIR": str(tmp_path / "log"), "GUESTPKG_DOWNLOAD_RETRIES": "0"}
    return subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "-v", "fetch",
                           "--sha256", "0" * 64, *options, str(tree)],
                          env=env, capture_output=True, timeout=120, check=False)


def test_escapes_in_a_reason_phrase_are_shown_escaped(tmp_path: Path,
                                                      upstream: Upstream) -> None:
    upstream.reason = f"Not Found{ESCAPES}"
    done = _fetch_command(tmp_path, f"{upstream.url}/reason")
    assert done.returncode == 4
    assert b"\x1b" not in done.stderr and b"\x07" not in done.stderr
    assert "\xc2\x9b".encode("latin-1") not in done.stderr  # C1 CSI, UTF-8 encoded
    assert rb"Not Found\x1b]0;owned\x07\x1b[2J\x9b31m" in done.stderr
    assert len(done.stderr.decode().strip().splitlines()) <= 4


def test_escapes_in_a_redirect_url_are_shown_escaped(tmp_path: Path,
                                                     upstream: Upstream) -> None:
    # sent as the UTF-8 bytes of ESC ] 0 ; ... BEL and of U+009B (CSI)
    upstream.location = f"{upstream.url}/gone\x1b]0;owned\x07\xc2\x9b31m/"
    done = _fetch_command(tmp_path, f"{upstream.url}/location")
    assert done.returncode == 4
    assert b"\x1b" not in done.stderr and b"\x07" not in done.stderr
    assert b"\xc2\x9b" not in done.stderr
    assert b"gone\\x1b]0;owned\\x07" in done.stderr  # shown, escaped
    assert os.fsdecode(done.stderr).count("guestpkg: error:") == 1


def test_a_redirect_that_is_not_utf8_is_one_clear_line(tmp_path: Path,
                                                       upstream: Upstream) -> None:
    """requests decodes a Location as UTF-8 even when redirects are not followed; a
    byte 0x9b there was a UnicodeDecodeError, reported as a bug (exit 70)."""
    upstream.location = f"{upstream.url}/gone\x9b31m/"
    done = _fetch_command(tmp_path, f"{upstream.url}/location")
    assert done.returncode == 4
    assert b"a redirect to a URL that is not UTF-8" in done.stderr
    assert b"Traceback" not in done.stderr


# -- the deadline holds for discovery's own work --------------------------------------

def test_a_page_that_makes_matching_quadratic_is_cut_off_by_the_deadline(
        tmp_path: Path, upstream: Upstream) -> None:
    """600 kB of ``x/`` against uscan's usual ``.*/foo-(\\d\\S+)`` pattern in
    searchmode=plain: Python's re backtracks from every ``/``, for about 20 minutes
    of CPU (40 kB: 5 s, growing with the square).  The fetch's deadline stops it."""
    from guestpkg.fetch import plan
    (upstream.root / "hog.txt").write_text("x/" * 300_000)
    tree = tmp_path / "foo-1.0"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "foo (1.0-1) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000\n")
    (tree / "debian" / "watch").write_text(
        f"version=4\nopts=searchmode=plain {upstream.url}/hog.txt .*/foo-(\\d\\S+)\\.tar\\.gz\n")
    config = config_for(tmp_path, download_deadline=3.0)
    with pytest.raises(NetworkError, match="deadline of 3 s"):
        plan(config, tree, download=False)
    import signal
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0  # no alarm left behind


def _upstream_check(tmp_path: Path, watch: str) -> subprocess.CompletedProcess[bytes]:
    tree = tmp_path / "foo-1.0"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "foo (1.0-1) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000\n")
    (tree / "debian" / "watch").write_text(watch)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO),
           "GUESTPKG_CONFDIR": str(tmp_path / "etc"),
           "GUESTPKG_CACHEDIR": str(tmp_path / "cache"),
           "GUESTPKG_LOGDIR": str(tmp_path / "log")}
    return subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "upstream-check", str(tree)],
                          env=env, capture_output=True, timeout=120, check=False)


def test_upstream_check_shows_an_upstreams_version_escaped(tmp_path: Path,
                                                          upstream: Upstream) -> None:
    """The version and URL upstream-check prints are what the upstream's links say."""
    (upstream.root / "rel").mkdir()
    (upstream.root / "rel" / "index.html").write_text(
        '<a href="foo-1.1\x1b]0;owned\x07.tar.gz">new</a>\n')
    done = _upstream_check(tmp_path, f"version=4\n{upstream.url}/rel/ foo-(\\S+)\\.tar\\.gz\n")
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout
    assert b"upstream 1.1\\x1b]0;owned\\x07: newer package available" in done.stdout


def test_the_progress_line_shows_the_file_name_escaped(
        tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fetch_verified(config_for(tmp_path), f"{upstream.url}/dripped.tar.gz",
                   hashlib.sha256(DRIPPED).hexdigest(), label="foo\x1b]0;owned\x07.tar.gz")
    shown = terminal.getvalue()
    assert "fetching foo\\x1b]0;owned\\x07.tar.gz: " in shown
    assert "\x07" not in shown and "\x1b]0" not in shown


@pytest.fixture
def dripping_ftp() -> Iterator[str]:
    """An "FTP server" on 127.0.0.1 that drips its greeting a byte every 0.25 s."""
    import socket
    import threading
    import time
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                for byte in b"220 " + b"x" * 200:
                    if stop.is_set():
                        break
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.25)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ftp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_dripping_ftp_server_is_cut_off_by_the_deadline(tmp_path: Path,
                                                         dripping_ftp: str) -> None:
    config = config_for(tmp_path, download_deadline=2.0, download_min_rate=0)
    with pytest.raises(NetworkError, match="deadline of 2 s"):
        fetch_verified(config, f"{dripping_ftp}/pub/foo-1.0.tar.gz", "0" * 64)
    with pytest.raises(NetworkError, match="deadline of 2 s"):
        get_page(config_for(tmp_path, download_deadline=2.0, download_min_rate=0),
                 f"{dripping_ftp}/pub/")


def test_the_fetch_command_stops_at_its_deadline_with_one_line(tmp_path: Path,
                                                               upstream: Upstream) -> None:
    """The page drips (a byte every 0.25 s, 20 s in all): `guestpkg fetch` ends at
    its deadline with one error line, exit 4, nothing placed or cached."""
    (upstream.root / "rel").mkdir()
    (upstream.root / "rel" / "index.html").write_text(
        '<a href="foo-1.0.tar.gz">foo-1.0.tar.gz</a>\n' * 2)
    done = _fetch_command(tmp_path, f"{upstream.url}/drip/rel/index.html",
                          "--download-deadline", "2", "--download-min-rate", "0",
                          "--destdir", str(tmp_path / "out"))
    assert done.returncode == 4, done.stderr
    errors = [line for line in done.stderr.decode().splitlines() if "error:" in line]
    assert errors == [f"guestpkg: error: {upstream.url}/drip/rel/index.html: the fetch "
                      "went past its deadline of 2 s"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    cached = tmp_path / "cache" / "sources"
    assert not cached.exists() or [p.name for p in cached.iterdir()
                                   if not p.name.startswith(".lock-")] == []


# -- TLS through the guard's own connections -------------------------------------------

def test_tls_still_checks_the_name_through_checked_addresses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard connects to the address it checked; TLS must still verify the
    certificate against the URL's name (SNI and hostname), not against that address."""
    import hashlib
    import ssl
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    www = tmp_path / "www"
    www.mkdir()
    (www / "foo-1.0.tar.gz").write_bytes(DRIPPED)
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(SimpleHTTPRequestHandler, directory=str(www)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust this one certificate
    port = server.server_address[1]
    try:
        path = fetch_verified(config_for(tmp_path), f"https://localhost:{port}/foo-1.0.tar.gz",
                              hashlib.sha256(DRIPPED).hexdigest())
        assert path.read_bytes() == DRIPPED
        with pytest.raises(NetworkError, match="certificate"):
            get_page(config_for(tmp_path / "ip"), f"https://127.0.0.1:{port}/")
    finally:
        server.shutdown()
        server.server_close()
