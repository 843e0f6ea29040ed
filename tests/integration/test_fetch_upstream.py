# SPDX-License-Identifier: GPL-2.0-or-later
"""Discovery, fetch and placement through debian/watch against local upstreams on
127.0.0.1 (directory listings, HTML pages, JSON with searchmode=plain, directory
scanning, mangling, redirects, components), and the two commands."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg import cli
from guestpkg.config import Config
from guestpkg.errors import ChecksumMismatch, InputError, UsageError
from guestpkg.fetch import cache_path, fetch_upstream, fetch_verified, plan
from guestpkg.fetch.transport import sources_dir
from tests.support.upstream_server import Upstream, serve
from tests.support.upstreams import SCENARIOS, Scenario, sha256, tarball

# What `fetch` must place for each scenario: orig name -> file under the web root.
EXPECTED = {
    "directory-listing": {"foo_1.2.orig.tar.xz": "releases/foo-1.2.tar.xz"},
    "html-release-page": {"foo_3.1.orig.tar.gz": "dl/foo-3.1.tar.gz"},
    "plain-json": {"foo_0.9.1.orig.tar.gz": "dl/0.9.1"},
    "directory-scanning": {"foo_1.1.orig.tar.gz": "pub/1.1/foo-1.1.tar.gz"},
    "mangles-and-dversionmangle": {"foo_4.2.orig.tar.gz": "files/FOO_4_2.tgz"},
    "redirected-listing": {"foo_5.0.orig.tar.bz2": "moved/foo-5.0.tar.bz2"},
    "dirversionmangle-and-base-href": {"bar_7.1.orig.tar.gz": "cdn/bar-7-1.tar.gz"},
    "hrefdecode-and-oversionmangle": {"foo_0.5+really.orig.tar.gz": "enc/foo0.5.tar.gz"},
    "components": {"foo_2.0.orig.tar.gz": "main/foo-2.0.tar.gz",
                   "foo_2.0.orig-data.tar.gz": "data/foo-data-2.0.tar.gz"},
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log",
                           download_timeout=5.0, download_retries=0)


def pins(scenario: Scenario) -> list[str]:
    return [sha256(scenario.files[path]) for path in EXPECTED[scenario.name].values()]


def test_report_finds_newest(tmp_path: Path, config: Config, scenario: Scenario,
                             upstream: Upstream) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    records = plan(config, tree, download=False).report()
    assert records[0]["upstream-version"] == scenario.newest
    assert records[0]["status"] == scenario.status


def test_fetch_places_verified_orig(tmp_path: Path, config: Config, scenario: Scenario,
                                    upstream: Upstream) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    destdir = tmp_path / "out"
    placed = fetch_upstream(config, tree, destdir, pins(scenario))
    expected = EXPECTED[scenario.name]
    assert [p.name for p in placed] == list(expected)
    for path, source in zip(placed, expected.values(), strict=True):
        assert path.read_bytes() == scenario.files[source]
        assert cache_path(config, sha256(scenario.files[source])).is_file()
    # a second run finds everything in place and downloads nothing
    hits = sum(upstream.hits.values())
    assert fetch_upstream(config, tree, destdir, pins(scenario)) == placed
    assert sum(upstream.hits.values()) - hits <= len(SCENARIOS)  # listing pages only


def test_wrong_pin_places_nothing(tmp_path: Path, config: Config, upstream: Upstream,
                                  scenario: Scenario) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    wrong = ["f" * 64] * len(pins(scenario))
    with pytest.raises(ChecksumMismatch):
        fetch_upstream(config, tree, tmp_path / "out", wrong)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not [p for p in sources_dir(config).iterdir() if not p.name.startswith(".lock")]


def test_missing_pin_downloads_nothing(tmp_path: Path, config: Config, upstream: Upstream,
                                       scenario: Scenario) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    before = dict(upstream.hits)
    with pytest.raises(UsageError):
        fetch_upstream(config, tree, tmp_path / "out", {"nope": "0" * 64})
    downloads = {p: n for p, n in upstream.hits.items() if before.get(p) != n
                 and p.rsplit("/", 1)[-1] in {s.rsplit("/", 1)[-1] for s in scenario.files}}
    assert downloads == {}


def test_zip_is_refused_before_download(tmp_path: Path, config: Config) -> None:
    root = tmp_path / "www"
    (root / "rel").mkdir(parents=True)
    (root / "rel" / "foo-1.0.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    with serve(root) as server:
        scenario = Scenario("zip", "version=4\n{url}/rel/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n",
                            "1.0-1", {})
        tree = scenario.write_source(tmp_path, server.url)
        with pytest.raises(InputError, match="not a tar archive"):
            fetch_upstream(config, tree, tmp_path / "out", ["0" * 64])
        assert server.count("/rel/foo-1.0.zip") == 0


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """cli.main installs console handlers on the root logger; later tests must not
    write to the closed capture streams they point at."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _cli(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("GUESTPKG_CONFDIR", str(tmp_path / "etc"))
    monkeypatch.setenv("GUESTPKG_CACHEDIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GUESTPKG_LOGDIR", str(tmp_path / "log"))
    return cli.main(argv)


@pytest.mark.parametrize("scenario", [SCENARIOS[0]], ids=[SCENARIOS[0].name], indirect=True)
def test_fetch_command(tmp_path: Path, upstream: Upstream, scenario: Scenario,
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    out = tmp_path / "out"
    code = _cli(["fetch", "--destdir", str(out), "--sha256", "0" * 64, str(tree)],
                tmp_path, monkeypatch)
    captured = capsys.readouterr()
    assert code == 3
    assert "SHA256 mismatch" in captured.err and "hint:" in captured.err
    assert not out.exists() or not any(out.iterdir())

    code = _cli(["fetch", "--sha256", pins(scenario)[0], str(tree)], tmp_path, monkeypatch)
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == str(tmp_path / "foo_1.2.orig.tar.xz")
    assert (tmp_path / "foo_1.2.orig.tar.xz").read_bytes() == scenario.files[
        "releases/foo-1.2.tar.xz"]

    assert _cli(["fetch", str(tree)], tmp_path, monkeypatch) == 2
    assert "no --sha256" in capsys.readouterr().err


@pytest.mark.parametrize("scenario", [SCENARIOS[-1]], ids=[SCENARIOS[-1].name], indirect=True)
def test_upstream_check_command(tmp_path: Path, upstream: Upstream, scenario: Scenario,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    tree = scenario.write_source(tmp_path, upstream.url)
    assert _cli(["upstream-check", "--json", str(tree)], tmp_path, monkeypatch) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["component"], r["upstream-version"], r["status"]) for r in records] == [
        ("", "2.0", "up to date"), ("data", "2.0", "up to date")]
    assert records[1]["upstream-url"] == f"{upstream.url}/data/foo-data-2.0.tar.gz"
    assert _cli(["upstream-check", str(tree)], tmp_path, monkeypatch) == 0
    assert "foo: packaged 2.0, upstream 2.0: up to date" in capsys.readouterr().out


def test_component_pins_by_name(tmp_path: Path, config: Config) -> None:
    scenario = SCENARIOS[-1]
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as server:
        scenario.write_web(root, server.url)
        tree = scenario.write_source(tmp_path, server.url)
        main, data = pins(scenario)
        placed = fetch_upstream(config, tree, tmp_path / "out", {"data": data, "": main})
        assert [p.name for p in placed] == ["foo_2.0.orig.tar.gz", "foo_2.0.orig-data.tar.gz"]


def test_version5_watch_file(tmp_path: Path, config: Config) -> None:
    files = {f"rel/{n}": tarball(n) for n in ("foo-1.0.tar.gz", "foo-1.1.tar.gz")}
    files.update({f"data/{n}": tarball(n) for n in ("foo-data-1.1.tar.gz",
                                                     "foo-data-1.2.tar.gz")})
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as server:
        scenario = Scenario(
            "v5",
            "Version: 5\nUversion-Mangle: s/rc/~rc/\n\n"
            "# the main tarball\nSource: {url}/rel/\n\n"
            "Source: {url}/data/\nComponent: data\n"
            "Matching-Pattern: @PACKAGE@-@COMPONENT@@ANY_VERSION@@ARCHIVE_EXT@\n"
            "Version-Schema: ignore\nPgp-Mode: auto\n",
            "1.0-1", files)
        scenario.write_web(root, server.url)
        tree = scenario.write_source(tmp_path, server.url)
        report = plan(config, tree, download=False).report()
        assert [(r["component"], r["upstream-version"]) for r in report] == [
            ("", "1.1"), ("data", "1.2")]
        placed = fetch_upstream(config, tree, tmp_path / "out", {
            "": sha256(files["rel/foo-1.0.tar.gz"]),
            "data": sha256(files["data/foo-data-1.2.tar.gz"])})
        assert [p.name for p in placed] == ["foo_1.0.orig.tar.gz", "foo_1.0.orig-data.tar.gz"]
        assert placed[1].read_bytes() == files["data/foo-data-1.2.tar.gz"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(tmp_path: Path, config: Config,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data = tarball("foo-1.0.tar.gz")
    root = tmp_path / "www"
    root.mkdir()
    (root / "foo-1.0.tar.gz").write_bytes(data)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with serve(root) as server:
        fetch_verified(config, f"{server.url}/foo-1.0.tar.gz", sha256(data))
    assert "\rguestpkg: fetching foo-1.0.tar.gz: " in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K")  # the line is cleared at the end


def test_user_agent_option_is_sent(tmp_path: Path, config: Config) -> None:
    data = tarball("foo-1.0.tar.gz")
    root = tmp_path / "www"
    (root / "rel").mkdir(parents=True)
    (root / "rel" / "foo-1.0.tar.gz").write_bytes(data)
    with serve(root) as server:
        scenario = Scenario("ua", 'version=4\nopts="user-agent=Mozilla/5.0 (X11, Test)" '
                            "{url}/rel/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n", "1.0-1", {})
        tree = scenario.write_source(tmp_path, server.url)
        fetch_upstream(config, tree, tmp_path / "out", [sha256(data)])
        assert server.user_agents["/rel/"] == "Mozilla/5.0 (X11, Test)"
        assert server.user_agents["/rel/foo-1.0.tar.gz"] == "Mozilla/5.0 (X11, Test)"


def test_proxy_from_the_environment(tmp_path: Path, config: Config,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """http_proxy is honoured: the request for a host that does not exist reaches the
    proxy (a local server), never the network."""
    data = tarball("foo-1.0.tar.gz")
    root = tmp_path / "www"
    root.mkdir()
    (root / "foo-1.0.tar.gz").write_bytes(data)
    with serve(root) as proxy:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        path = fetch_verified(config, "http://upstream.invalid/foo-1.0.tar.gz", sha256(data))
        assert path.read_bytes() == data
        assert proxy.count("proxied /foo-1.0.tar.gz") == 1
