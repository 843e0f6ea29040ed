# SPDX-License-Identifier: GPL-2.0-or-later
"""Discovery logic with pages given in memory (no network, no root): uscan's link
clean-up, <base href>, hrefdecode, pagemangle, plain search, version order, and the
version 5 templates resolved through plan()."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.debian.watch import parse_watch
from guestpkg.errors import InputError, NetworkError
from guestpkg.fetch import plan
from guestpkg.fetch.discover import (
    Search,
    canonicalize_dots,
    orig_name,
    partial_versions,
    quotemeta,
)
from guestpkg.fetch.transport import Page
from guestpkg.fetch.versort import compare, compare_upstream, newest_first


def pages_from(site: dict[str, str]):  # type: ignore[no-untyped-def]
    def pages(url: str, user_agent: str | None) -> Page:
        if url not in site:
            raise NetworkError(f"{url}: HTTP 404")
        return Page(url, (), url, site[url])
    return pages


def search(watch: str, site: dict[str, str], version: str = "1.0",
           want: str | None = None):  # type: ignore[no-untyped-def]
    (entry,) = parse_watch(watch, "debian/watch", "foo").entries
    return Search(entry, pages_from(site)).find(version, want)


def test_base_href_and_comments() -> None:
    found = search("version=4\nhttps://h/p/ foo-(\\d[\\d.]*)\\.tar\\.gz\n", {
        "https://h/p/": '<base href="https://cdn.h/files/"><a href="foo-1.1.tar.gz">'
                        '<!-- <a href="foo-9.tar.gz"> --><a href=foo-1.2.tar.gz>'})
    assert found.version == "1.2"
    assert found.url == "https://cdn.h/files/foo-1.2.tar.gz"


def test_hrefdecode_and_pagemangle() -> None:
    watch = ("version=4\nopts=\"hrefdecode=percent-encoding,pagemangle=s%<li>([^<]*)</li>"
             "%<a href=\"$1\">%g\" https://h/ foo-(\\d[\\d.]*)\\.tar\\.gz\n")
    found = search(watch, {"https://h/": "<li>foo%2D2.0.tar.gz</li><li>foo-1.5.tar.gz</li>"})
    assert (found.version, found.filename) == ("2.0", "foo-2.0.tar.gz")


def test_wanted_version_and_missing_version() -> None:
    site = {"https://h/": '<a href="foo-1.0.tar.gz"><a href="foo-2.0.tar.gz">'}
    watch = "version=4\nhttps://h/ foo-(\\d[\\d.]*)\\.tar\\.gz\n"
    assert search(watch, site, want="1.0").url == "https://h/foo-1.0.tar.gz"
    with pytest.raises(NetworkError, match=r"version 3\.0 not found"):
        search(watch, site, want="3.0")
    with pytest.raises(NetworkError, match="no file on"):
        search(watch, {"https://h/": "nothing here"})


def test_version2_takes_the_first_group_unmangled() -> None:
    watch = "version=2\nopts=uversionmangle=s/^/X/ https://h/ foo-(\\d+)\\.(\\d+)\\.tgz\n"
    found = search(watch, {"https://h/": '<a href="foo-3.4.tgz">'})
    assert found.version == "3"


def test_versionless_with_filenamemangle() -> None:
    watch = ("version=4\nopts=filenamemangle=s%.*/latest%foo-7.1.tar.gz% "
             "https://h/ https://h/dl/latest\n")
    found = search(watch, {"https://h/": '<a href="https://h/dl/latest">'})
    assert (found.version, found.filename) == ("7.1", "foo-7.1.tar.gz")


@pytest.mark.parametrize(("base", "href", "url"), [
    ("http://h/a/b/page.html", "../c/./f.tgz", "http://h/a/c/f.tgz"),
    ("http://h/a/b/", "/x/f.tgz", "http://h/x/f.tgz"),
    ("https://h/a/", "//cdn/f.tgz", "https://cdn/f.tgz"),
    ("http://h/a/", "https://o/f.tgz?x=1", "https://o/f.tgz?x=1"),
])
def test_canonicalize_dots(base: str, href: str, url: str) -> None:
    assert canonicalize_dots(base, href) == url


def test_helpers() -> None:
    assert quotemeta("a.b/c-d") == r"a\.b\/c\-d"
    assert partial_versions("1.2.3.4") == ["1", "1.2", "1.2.3"]
    assert orig_name("foo", "1.0", "foo-1.0.tgz", None) == "foo_1.0.orig.tar.gz"
    assert orig_name("foo", "1.0", "d.tar.zstd", "data") == "foo_1.0.orig-data.tar.zst"
    with pytest.raises(InputError, match="not a tar archive"):
        orig_name("foo", "1.0", "foo-1.0.zip", None)


@pytest.mark.parametrize(("version", "component"), [
    ("1/../../../etc/cron.d/x", None),      # what an upstream's link can make a version
    ("1.0\x1b]0;owned\x07", None),
    ("1.0\nfoo", None),
    ("", None),
    ("../1.0", None),
    ("1.0", "../data"),
    ("1.0", "data/x"),
])
def test_orig_name_refuses_what_is_no_file_name_part(version: str,
                                                     component: str | None) -> None:
    with pytest.raises(InputError):
        orig_name("foo", version, "foo.tar.gz", component)


@pytest.mark.parametrize(("a", "b", "sign"), [
    ("1.0", "1.0", 0), ("1.0~rc1", "1.0", -1), ("1.10", "1.9", 1), ("1.0a", "1.0", 1),
    ("1.0+b", "1.0a", 1), ("2:0.1", "1:9", 1), ("1.0-2", "1.0-10", -1), ("1_2", "1.2", 1),
    ("0.09", "0.9", 0), ("1.0.", "1.0", 1),
])
def test_version_order(a: str, b: str, sign: int) -> None:
    result = compare(a, b)
    assert (result > 0) - (result < 0) == sign


def test_version_order_matches_apt() -> None:
    apt_pkg = pytest.importorskip("apt_pkg")
    apt_pkg.init_system()
    versions = ["1.0", "1.0~rc1", "1.0+dfsg", "1.0a", "1:0.5", "1.0-1", "1.0-1~local",
                "1.0-1+b1", "2.0~~", "2.0~", "10", "9.99", "0.0.1", "1.0.0"]
    for a in versions:
        for b in versions:
            expected = apt_pkg.version_compare(a, b)
            assert (compare(a, b) > 0) - (compare(a, b) < 0) == (
                (expected > 0) - (expected < 0)), (a, b)


def test_newest_first_prefers_xz_for_equal_versions() -> None:
    items = [("1.0", 1), ("1.0", 4), ("0.9", 4), ("1.0", 2)]
    ordered = newest_first(items, lambda i: f"{i[0]}-{i[1]}")
    assert ordered[0] == ("1.0", 4)
    assert compare_upstream("1.0-rc1", "1.0") > 0


def _tree(tmp_path: Path, watch: str, version: str = "1.2.3-1") -> Path:
    (tmp_path / "debian").mkdir(parents=True)
    (tmp_path / "debian" / "changelog").write_text(textwrap.dedent(f"""\
        foo ({version}) unstable; urgency=medium

          * Test.

         -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000
        """))
    (tmp_path / "debian" / "watch").write_text(watch)
    return tmp_path


def test_github_template(tmp_path: Path) -> None:
    api = "https://api.github.com/repos/o/proj"
    tags = [{"name": f"v{v}", "tarball_url": f"{api}/tarball/refs/tags/v{v}"}
            for v in ("1.3.0", "1.2.3", "1.2.2")]
    tree = _tree(tmp_path, "Version: 5\n\nTemplate: Github\nOwner: o\nProject: proj\n")
    pages = pages_from({f"{api}/tags?per_page=100": json.dumps(tags, indent=1)})
    config = Config.defaults(cachedir=tmp_path / "cache")
    (newest,) = plan(config, tree, download=False, pages=pages).tarballs
    assert (newest.found.version, newest.found.url) == ("1.3.0", f"{api}/tarball/refs/tags/v1.3.0")
    (current,) = plan(config, tree, download=True, pages=pages).tarballs
    assert current.found.url == f"{api}/tarball/refs/tags/v1.2.3"
    assert current.name == "foo_1.2.3.orig.tar.gz"


def test_gitlab_template(tmp_path: Path) -> None:
    dist = "https://salsa.debian.org/debian/proj"
    api = "https://salsa.debian.org/api/v4/projects/debian%2Fproj/repository/tags"
    tags = [{"name": "v1.2.3", "commit": {}}, {"name": "v1.1", "commit": {}}]
    tree = _tree(tmp_path, f"Version: 5\n\nTemplate: Gitlab\nDist: {dist}\n")
    pages = pages_from({api: json.dumps(tags)})
    (current,) = plan(Config.defaults(), tree, download=True, pages=pages).tarballs
    assert current.found.url == f"{dist}/-/archive/v1.2.3/proj-v1.2.3.tar.gz"
    assert current.name == "foo_1.2.3.orig.tar.gz"


def test_npm_and_metacpan_templates(tmp_path: Path) -> None:
    npm = _tree(tmp_path / "npm", "Version: 5\n\nTemplate: Npmregistry\nDist: @s/h\n")
    body = json.dumps({"versions": {v: {"dist": {
        "tarball": f"https://registry.npmjs.org/@s/h/-/h-{v}.tgz"}} for v in ("1.2.3", "2.0.0")}})
    (found,) = plan(Config.defaults(), npm, download=False,
                    pages=pages_from({"https://registry.npmjs.org/@s/h": body})).tarballs
    assert found.found.version == "2.0.0"
    cpan = _tree(tmp_path / "cpan", "Version: 5\n\nTemplate: Metacpan\nDist: Foo::Bar\n")
    url = ("https://fastapi.metacpan.org/v1/release/_search?q=distribution:Foo-Bar"
           "&fields=download_url&size=500")
    hits = {"hits": {"hits": [{"fields": {"download_url":
            f"https://cpan.metacpan.org/authors/id/A/AB/ABC/Foo-Bar-{v}.tar.gz"}}
            for v in ("1.2.3", "1.2.4")]}}
    (found,) = plan(Config.defaults(), cpan, download=True,
                    pages=pages_from({url: json.dumps(hits)})).tarballs
    assert found.found.url.endswith("/Foo-Bar-1.2.3.tar.gz")


def test_unsupported_entries_are_refused(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "version=4\nopts=mode=git https://h/r.git refs/tags/v([\\d.]+)\n")
    with pytest.raises(InputError, match="not supported by guestpkg: mode=git"):
        plan(Config.defaults(), tree, download=True, pages=pages_from({}))


def test_group_versions_and_signature_lines(tmp_path: Path) -> None:
    watch = ("version=4\n"
             "https://h/a/ foo-@ANY_VERSION@@ARCHIVE_EXT@ group\n"
             "opts=\"component=b,pgpmode=auto\" https://h/b/ b-@ANY_VERSION@@ARCHIVE_EXT@ group\n"
             "https://h/a/ foo-@ANY_VERSION@@SIGNATURE_EXT@ previous\n")
    tree = _tree(tmp_path, watch, "1.0+~2.0-1")
    pages = pages_from({
        "https://h/a/": '<a href="foo-1.0.tar.gz"><a href="foo-1.1.tar.gz">'
                        '<a href="foo-1.0.tar.gz.asc">',
        "https://h/b/": '<a href="b-2.0.tar.xz"><a href="b-3.0.tar.xz">'})
    result = plan(Config.defaults(), tree, download=True, pages=pages)
    assert [(t.component, t.found.version, t.name) for t in result.tarballs] == [
        ("", "1.0", "foo_1.0+~2.0.orig.tar.gz"), ("b", "2.0", "foo_1.0+~2.0.orig-b.tar.xz")]
    assert any("previous" in note for note in result.notes)
    assert any("ignored" in note and "pgpmode" in note for note in result.notes)
    newest = plan(Config.defaults(), tree, download=False, pages=pages)
    assert [t.found.version for t in newest.tarballs] == ["1.1", "3.0"]


def test_literal_version_field(tmp_path: Path) -> None:
    tree = _tree(tmp_path, "version=4\nhttps://h/ foo-@ANY_VERSION@@ARCHIVE_EXT@ 0.9\n")
    pages = pages_from({"https://h/": '<a href="foo-0.9.tar.gz"><a href="foo-1.2.3.tar.gz">'})
    (tarball,) = plan(Config.defaults(), tree, download=True, pages=pages).tarballs
    assert tarball.found.version == "0.9"


def test_ctype_nodejs_reads_the_component_version(tmp_path: Path) -> None:
    watch = ("version=4\nhttps://h/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n"
             "opts=\"component=lib,ctype=nodejs\" https://h/lib/ lib-@ANY_VERSION@\\.tgz\n")
    tree = _tree(tmp_path, watch, "1.2.3-1")
    (tree / "lib").mkdir()
    (tree / "lib" / "package.json").write_text('{"name": "lib", "version": "4.5.6"}')
    pages = pages_from({"https://h/": '<a href="foo-1.2.3.tar.gz">',
                        "https://h/lib/": '<a href="lib-4.5.6.tgz"><a href="lib-5.0.0.tgz">'})
    _main, lib = plan(Config.defaults(), tree, download=True, pages=pages).tarballs
    assert lib.found.version == "4.5.6" and lib.name == "foo_1.2.3.orig-lib.tar.gz"


@pytest.mark.parametrize("watch", sorted((Path(__file__).resolve().parents[1] / "data" /
                                          "watch").glob("*.watch")), ids=lambda p: p.stem)
def test_corpus_discovery_fails_cleanly_on_empty_pages(tmp_path: Path, watch: Path) -> None:
    """Every real watch file runs through discovery; with upstream pages that list
    nothing, each ends in a GuestpkgError that names the watch line, never a crash."""
    from guestpkg.errors import GuestpkgError
    tree = _tree(tmp_path, watch.read_text(errors="replace"), "1.0-1")
    (tree / "debian" / "changelog").write_text((tree / "debian" / "changelog").read_text()
                                               .replace("foo (", f"{watch.stem} ("))

    def empty(url: str, user_agent: str | None) -> Page:
        return Page(url, (), url, "<html><body>nothing</body></html>")
    with pytest.raises(GuestpkgError) as caught:
        plan(Config.defaults(), tree, download=True, pages=empty)
    assert "debian/watch" in str(caught.value)
