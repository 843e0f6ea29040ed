# SPDX-License-Identifier: GPL-2.0-or-later
"""ftp:// upstreams against a real FTP server on 127.0.0.1: LIST parsing, directory
scanning, verified RETR, and the same choice and bytes as uscan."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.errors import ChecksumMismatch, NetworkError
from guestpkg.fetch import fetch_upstream, fetch_verified, plan
from guestpkg.fetch.transport import get_page
from tests.support.ftp_server import serve_ftp
from tests.support.upstreams import Scenario, sha256, tarball

FILES = {name: tarball(name.rsplit("/", 1)[-1], "xz" if name.endswith("xz") else "gz")
         for name in ("pub/foo/foo-1.0.tar.gz", "pub/foo/foo-1.2.tar.gz",
                      "pub/foo/foo-1.2.tar.xz", "pub/foo/foo-1.10.tar.gz",
                      "pub/foo/README", "tree/v1.0/foo-1.0.1.tar.gz",
                      "tree/v1.1/foo-1.1.2.tar.gz", "tree/v1.1/foo-1.1.3.tar.gz")}
SCENARIOS = [
    Scenario("ftp-listing", "version=4\n{url}/pub/foo/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n",
             "1.2-1", {}, newest="1.10"),
    Scenario("ftp-directories",
             "version=4\nopts=dirversionmangle=s/^v// {url}/tree/v([\\d.]+)/ "
             "foo-@ANY_VERSION@@ARCHIVE_EXT@\n", "1.1.2-1", {}, newest="1.1.3"),
]
# bookworm's uscan cannot run version 1 files at all (it looks for a missing
# Devscripts::Uscan::LWP module), so this one is checked without a differential.
VERSION1 = Scenario("ftp-version1", "127.0.0.1:{port} pub/foo foo-*.tar.gz debian uupdate\n",
                    "1.2-1", {}, newest="1.10")
EXPECTED = {"ftp-listing": ("foo_1.2.orig.tar.xz", "pub/foo/foo-1.2.tar.xz"),
            "ftp-directories": ("foo_1.1.2.orig.tar.gz", "tree/v1.1/foo-1.1.2.tar.gz"),
            "ftp-version1": ("foo_1.2.orig.tar.gz", "pub/foo/foo-1.2.tar.gz")}


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "ftproot"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    with serve_ftp(root) as url:
        yield url


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log",
                           download_timeout=5.0, download_retries=0)


def source(scenario: Scenario, directory: Path, url: str) -> Path:
    tree = scenario.write_source(directory, url)
    watch = tree / "debian" / "watch"
    watch.write_text(watch.read_text().replace("{port}", url.rsplit(":", 1)[1]))
    return tree


def test_listing_and_verified_download(ftp: str, config: Config) -> None:
    page = get_page(config, f"{ftp}/pub/foo/")
    assert re.search(r"\sfoo-1\.10\.tar\.gz$", page.text, re.M)
    data = FILES["pub/foo/foo-1.10.tar.gz"]
    path = fetch_verified(config, f"{ftp}/pub/foo/foo-1.10.tar.gz", sha256(data))
    assert path.read_bytes() == data
    with pytest.raises(ChecksumMismatch):
        fetch_verified(config, f"{ftp}/pub/foo/foo-1.2.tar.gz", "0" * 64)
    with pytest.raises(NetworkError, match="FTP"):
        fetch_verified(config, f"{ftp}/pub/foo/nope.tar.gz", "1" * 64)
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".lock")) \
        == [path.name]


def test_size_cap(ftp: str, config: Config) -> None:
    with pytest.raises(NetworkError, match="more than the limit"):
        fetch_verified(config.replace(max_download_size=100),
                       f"{ftp}/pub/foo/foo-1.10.tar.gz", "0" * 64)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_as_uscan(tmp_path: Path, ftp: str, config: Config, scenario: Scenario) -> None:
    uscan = shutil.which("uscan")
    if uscan is None:
        pytest.fail("uscan is not installed: install devscripts (tools/test-depends)")
    ours = plan(config, source(scenario, tmp_path / "ours", ftp), download=False).report()
    assert ours[0]["upstream-version"] == scenario.newest

    tree = source(scenario, tmp_path / "uscan", ftp)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C.UTF-8",
           "no_proxy": "*", "FTP_PASSIVE": "1"}
    report = subprocess.run([uscan, "--no-conf", "--dehs", "--report"], cwd=tree, env=env,
                            capture_output=True, text=True, timeout=120)
    assert re.findall(r"<upstream-version>(.*?)<", report.stdout) == [scenario.newest], \
        report.stdout + report.stderr
    assert re.findall(r"<upstream-url>(.*?)<", report.stdout) == [ours[0]["upstream-url"]]

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    subprocess.run([uscan, "--no-conf", "--dehs", "--download-current-version",
                    "--destdir", str(theirs)], cwd=tree, env=env, capture_output=True,
                   text=True, timeout=120)
    name, origin = EXPECTED[scenario.name]
    data = (theirs / name).read_bytes()
    assert data == FILES[origin]
    placed = fetch_upstream(config, source(scenario, tmp_path / "ours2", ftp),
                            tmp_path / "out", [hashlib.sha256(data).hexdigest()])
    assert [p.name for p in placed] == [name]
    assert placed[0].read_bytes() == data


def test_version1_old_style_ftp(tmp_path: Path, ftp: str, config: Config) -> None:
    report = plan(config, source(VERSION1, tmp_path / "a", ftp), download=False).report()
    assert report[0]["upstream-version"] == "1.10"
    assert report[0]["upstream-url"] == f"{ftp}/pub/foo/foo-1.10.tar.gz"
    name, origin = EXPECTED[VERSION1.name]
    placed = fetch_upstream(config, source(VERSION1, tmp_path / "b", ftp), tmp_path / "out",
                            [sha256(FILES[origin])])
    assert [p.name for p in placed] == [name]
