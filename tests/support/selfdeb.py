# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg's own .debs, built from a clean copy of the repository.

The files git tracks (as they are in the working tree) are copied into a fresh
directory and built with ``dpkg-buildpackage -b -uc -us``.  The result is cached under
``/var/tmp/guestpkg-tests/debs/<hash of those files>/``, so a test session rebuilds only
when the tree changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.sysroot import TEST_ROOT

#: Debian's tools and Python only: a python3 from pyenv or /usr/local must not leak in.
BUILD_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


class SelfDebError(RuntimeError):
    """guestpkg's own package could not be built."""


def tracked_files(repo: Path) -> list[str]:
    # Like tools/build-deb: what git tracks plus untracked files that are not ignored.
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=repo, check=True,
                             capture_output=True).stdout.decode()
    return sorted({p for p in listing.split("\0") if p and (repo / p).is_file()})


def tree_hash(repo: Path, files: list[str]) -> str:
    digest = hashlib.sha256()
    for name in files:
        path = repo / name
        digest.update(f"{name}\0{path.stat().st_mode & 0o111}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def build_self_debs(repo: Path, log: Path | None = None) -> list[Path]:
    """Build (or take from the cache) the .debs of the repository at *repo*."""
    files = tracked_files(repo)
    if "debian/control" not in files:
        raise SelfDebError(f"{repo} has no debian/ packaging (debian/control is not "
                           "tracked by git) yet: guestpkg's .deb cannot be built")
    out = TEST_ROOT / "debs" / tree_hash(repo, files)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.is_dir():
            _build(repo, files, out, log)
    return sorted(out.glob("*.deb"))


def _build(repo: Path, files: list[str], out: Path, log: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="guestpkg-build-", dir=out.parent) as tmp:
        source = Path(tmp) / "guestpkg"
        for name in files:
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, target, follow_symlinks=False)
        log_path = log or out.with_name(out.name + ".log")
        with open(log_path, "w") as logfile:
            result = subprocess.run(["dpkg-buildpackage", "-b", "-uc", "-us"], cwd=source,
                                    stdout=logfile, stderr=subprocess.STDOUT, env=BUILD_ENV)
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise SelfDebError(f"dpkg-buildpackage of guestpkg failed; log {log_path}:\n"
                               f"{tail}")
        staging = out.with_name(".tmp-" + out.name)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for deb in Path(tmp).glob("*.deb"):
            shutil.move(deb, staging / deb.name)
        staging.rename(out)


def main_deb(debs: list[Path]) -> Path:
    """The ``guestpkg_*.deb`` among *debs*."""
    for deb in debs:
        if deb.name.startswith("guestpkg_"):
            return deb
    raise SelfDebError(f"no guestpkg_*.deb among {[d.name for d in debs]}")
