# SPDX-License-Identifier: GPL-2.0-or-later
"""Real Debian source packages for tests, from the host's Debian mirror.

The host's apt sources may list no ``deb-src`` and may name unreachable third-party
repositories, so this module keeps a private apt configuration under
``CACHE/apt`` that has only the host's Debian mirror, with ``deb-src``, and never
touches the host's own apt state.  Downloads are cached across test runs under
``/var/cache/guestpkg-tests`` (override with ``GUESTPKG_TEST_CACHE``).
"""

from __future__ import annotations

import fcntl
import re
import subprocess
from pathlib import Path

from tests.support.paths import TEST_CACHE

CACHE = TEST_CACHE  # the sources and apt lists below
FALLBACK_MIRROR = "http://deb.debian.org/debian"


def host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return "bookworm"


def host_mirror() -> str:
    """The first Debian mirror URI in the host's sources that carries our suite."""
    codename = host_codename()
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if (uris and suites and codename in suites.group(1).split()
                    and "security" not in uris.group(1)):
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == codename and "security" not in m.group(1):
                return m.group(1).rstrip("/")
    return FALLBACK_MIRROR


def _apt_options(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Dir::State::status=/var/lib/dpkg/status",
        "-o", "Acquire::Languages=none",
        "-o", "APT::Sandbox::User=root",
        "-o", "Debug::NoLocking=1",
    ]


def apt_options() -> list[str]:
    """apt-get options for the private deb-src configuration; updated once per day."""
    root = CACHE / "apt"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    mirror, codename = host_mirror(), host_codename()
    want = f"deb-src {mirror} {codename} main\n"
    stamp = root / "updated"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        import time
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < 86400
        if not sources.exists() or sources.read_text() != want or not fresh:
            sources.write_text(want)
            subprocess.run(["apt-get", *_apt_options(root), "-q", "update"], check=True,
                           stdout=subprocess.DEVNULL)
            stamp.touch()
    return _apt_options(root)


def source_files(package: str) -> Path:
    """Download (once) the source package *package* into a cached directory and return
    that directory: it holds the .dsc, the orig tarball(s) and the debian tarball."""
    dest = CACHE / "sources" / package
    done = dest / ".complete"
    if done.exists():
        return dest
    options = apt_options()
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            subprocess.run(["apt-get", *options, "-q", "source", "--download-only", package],
                           cwd=dest, check=True, stdout=subprocess.DEVNULL)
            done.touch()
    return dest


def dsc_path(package: str) -> Path:
    return next(source_files(package).glob("*.dsc"))


def unpacked_source(package: str, workdir: Path) -> Path:
    """A fresh unpacked copy of *package*'s source tree under *workdir*."""
    dsc = dsc_path(package)
    target = workdir / package
    subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(target)], check=True,
                   stdout=subprocess.DEVNULL, cwd=workdir)
    return target


def native_source(tree: Path, control: str, rules: str) -> Path:
    """A made-up ``3.0 (native)`` source package at *tree* (named ``SOURCE-VERSION``)
    with *control* and *rules*, and a changelog of that version."""
    source, version = tree.name.rsplit("-", 1)
    (tree / "debian" / "source").mkdir(parents=True)
    (tree / "debian" / "source" / "format").write_text("3.0 (native)\n")
    (tree / "debian" / "control").write_text(control)
    (tree / "debian" / "changelog").write_text(
        f"{source} ({version}) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- guestpkg tests <root@localhost>  Tue, 01 Dec 2026 00:00:00 +0000\n")
    rules_file = tree / "debian" / "rules"
    rules_file.write_text(rules)
    rules_file.chmod(0o755)
    return tree
