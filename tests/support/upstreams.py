# SPDX-License-Identifier: GPL-2.0-or-later
"""Local upstreams for watch-file tests: each scenario is a web tree, a watch file and
a changelog version, served by :mod:`tests.support.upstream_server` on 127.0.0.1.

The same scenarios feed guestpkg's own tests and the differential tests against uscan,
so both tools see byte-identical upstreams.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path


def tarball(name: str, compression: str = "gz") -> bytes:
    """A small, deterministic tarball whose bytes depend on *name*."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        data = f"contents of {name}\n".encode() * 50
        info = tarfile.TarInfo(f"{name.split('.tar')[0]}/README")
        info.size, info.mtime = len(data), 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    if compression == "gz":  # tarfile writes the gzip mtime from the clock
        raw = bytearray(buffer.getvalue())
        raw[4:8] = b"\0\0\0\0"
        return bytes(raw)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Scenario:
    name: str
    watch: str                       # {url} is replaced by the server's URL
    version: str                     # debian/changelog version
    files: dict[str, bytes]          # path under the web root -> content
    pages: dict[str, str] = field(default_factory=dict)   # path -> text, {url} replaced
    newest: str = ""                 # the upstream version a report must find
    status: str = "newer package available"
    source: str = "foo"

    def write_web(self, root: Path, url: str) -> None:
        for path, data in self.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        for path, text in self.pages.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text.replace("{url}", url))

    def write_source(self, directory: Path, url: str) -> Path:
        tree = directory / f"{self.source}-{self.version.split('-')[0]}"
        (tree / "debian" / "source").mkdir(parents=True, exist_ok=True)
        (tree / "debian" / "source" / "format").write_text("3.0 (quilt)\n")
        (tree / "debian" / "changelog").write_text(textwrap.dedent(f"""\
            {self.source} ({self.version}) unstable; urgency=medium

              * Test.

             -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000
            """))
        (tree / "debian" / "watch").write_text(self.watch.replace("{url}", url))
        return tree


def _files(*names: str) -> dict[str, bytes]:
    def compression(name: str) -> str:
        return "xz" if name.endswith("xz") else "bz2" if name.endswith("bz2") else "gz"
    return {name: tarball(name.rsplit("/", 1)[-1], compression(name)) for name in names}


SCENARIOS = [
    Scenario(
        "directory-listing",
        "version=4\nopts=uversionmangle=s/rc/~rc/ {url}/releases/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n",
        "1.2-1",
        _files("releases/foo-1.0.tar.gz", "releases/foo-1.2.tar.gz", "releases/foo-1.2.tar.xz",
               "releases/foo-1.10.tar.gz", "releases/foo-2.0rc1.tar.gz",
               "releases/foo-1.10.tar.gz.asc", "releases/bar-9.0.tar.gz"),
        newest="2.0~rc1",
    ),
    Scenario(
        "html-release-page",
        "version=4\n{url}/project/download.html (?:.*/)?foo-v?(\\d[\\d.]*)\\.tar\\.gz debian\n",
        "3.1-2",
        _files("dl/foo-3.0.tar.gz", "dl/foo-3.1.tar.gz", "files/foo-3.2.tar.gz",
               "project/foo-v3.3.tar.gz", "dl/foo-9.9.tar.gz"),
        pages={"project/download.html": """<html><head><title>foo</title></head><body>
<p>Releases of foo:</p>
<ul>
<li><a class="dl" href="/dl/foo-3.0.tar.gz">3.0</a></li>
<li><A HREF='{url}/dl/foo-3.1.tar.gz'>3.1</A></li>
<li><a href=../files/foo-3.2.tar.gz>3.2 (unquoted)</a></li>
<li><a title="x"
   href="foo-v3.3.tar.gz">3.3, relative</a></li>
<!-- old: <a href="/dl/foo-9.9.tar.gz">9.9</a> -->
<li><a href="/dl/foo-3.4.zip">3.4 zip</a></li>
</ul></body></html>
"""},
        newest="3.3",
    ),
    Scenario(
        "plain-json",
        "version=4\n"
        "opts=\"searchmode=plain,filenamemangle=s%.*/dl/@ANY_VERSION@%foo-$1.tar.gz%\" \\\n"
        "  {url}/api/releases.json {url}/dl/@ANY_VERSION@\n",
        "0.9.1-1",
        {"dl/0.9.0": tarball("foo-0.9.0.tar.gz"), "dl/0.9.1": tarball("foo-0.9.1.tar.gz"),
         "dl/0.10.0": tarball("foo-0.10.0.tar.gz")},
        pages={"api/releases.json": """[
  {"tag_name": "v0.10.0", "tarball_url": "{url}/dl/0.10.0"},
  {"tag_name": "v0.9.1", "tarball_url": "{url}/dl/0.9.1"},
  {"tag_name": "v0.9.0", "tarball_url": "{url}/dl/0.9.0"}
]
"""},
        newest="0.10.0",
    ),
    Scenario(
        "directory-scanning",
        "version=4\n{url}/pub/(\\d[\\d.]*)/ foo-@ANY_VERSION@\\.tar\\.gz\n",
        "1.1-3",
        _files("pub/1.0/foo-1.0.tar.gz", "pub/1.1/foo-1.1.tar.gz", "pub/1.1/foo-1.1.1.tar.gz",
               "pub/2.0/foo-2.0.tar.gz", "pub/2.0/foo-2.0.1.tar.gz"),
        newest="2.0.1",
    ),
    Scenario(
        "mangles-and-dversionmangle",
        "version=4\n"
        "opts=\"dversionmangle=s/\\+ds\\d*$//,uversionmangle=s/_/./g,"
        "downloadurlmangle=s%/get/%/files/%,filenamemangle=s%.*/FOO_(.*)\\.tgz%foo-$1.tgz%\" \\\n"
        "  {url}/get/ FOO_(\\d+)_(\\d+)\\.tgz\n",
        "1:4.2+ds1-1",
        _files("files/FOO_4_1.tgz", "files/FOO_4_2.tgz", "files/FOO_4_10.tgz"),
        pages={"get/index.html": """<a href="FOO_4_1.tgz">x</a>
<a href="FOO_4_2.tgz">x</a> <a href="FOO_4_10.tgz">x</a>
"""},
        newest="4.10",
    ),
    Scenario(
        "redirected-listing",
        "version=4\n{url}/redirect/1/moved/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n",
        "5.0-1",
        _files("moved/foo-5.0.tar.bz2", "moved/foo-5.1.tar.bz2"),
        newest="5.1",
    ),
    Scenario(
        "dirversionmangle-and-base-href",
        "version=4\n"
        "opts=\"dirversionmangle=s/^release-//,uversionmangle=s/-/./g\" \\\n"
        "  {url}/tree/release-([\\d.]+)/ bar-(\\d+-\\d+)\\.tar\\.gz\n",
        "7.1-1",
        _files("tree/release-7.0/index.html", "tree/release-7.1/index.html",
               "tree/release-7.10/index.html", "cdn/bar-7-1.tar.gz", "cdn/bar-7-10.tar.gz",
               "cdn/bar-7-2.tar.gz"),
        pages={"tree/release-7.1/index.html": '<base href="{url}/cdn/">'
                                              '<a href="bar-7-1.tar.gz">7.1</a>',
               "tree/release-7.10/index.html": '<base href="{url}/cdn/"><a href="bar-7-10'
                                               '.tar.gz">7.10</a><a href="bar-7-2.tar.gz">',
               "tree/release-7.0/index.html": "nothing"},
        newest="7.10", source="bar",
    ),
    Scenario(
        "hrefdecode-and-oversionmangle",
        "version=4\n"
        "opts=\"hrefdecode=percent-encoding,dversionmangle=s/\\+really$//,"
        "oversionmangle=s/$/+really/\" \\\n"
        "  {url}/enc/ foo\\+?(\\d[\\d.]*)\\.tar\\.gz\n",
        "0.5+really-1",
        _files("enc/foo0.5.tar.gz", "enc/foo0.6.tar.gz"),
        pages={"enc/index.html": '<a href="foo0.5.tar.gz">'
                                 '<a href="foo%2B0.6.tar.gz">'},
        newest="0.6",
    ),
    Scenario(
        "components",
        "version=4\n{url}/main/ foo-@ANY_VERSION@@ARCHIVE_EXT@\n"
        "opts=component=data {url}/data/ foo-data-@ANY_VERSION@@ARCHIVE_EXT@ same\n",
        "2.0-1",
        _files("main/foo-1.0.tar.gz", "main/foo-2.0.tar.gz", "data/foo-data-1.0.tar.gz",
               "data/foo-data-2.0.tar.gz"),
        newest="2.0", status="up to date",
    ),
]
