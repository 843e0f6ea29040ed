# SPDX-License-Identifier: GPL-2.0-or-later
"""What the host system's dpkg and apt say: installed versions, broken packages,
unmet dependencies, and dpkg's frontend lock.

Facts this relies on (docs/reference.md, checked on bookworm):

- Inside apt's ``DPkg::Post-Invoke`` apt still holds ``/var/lib/dpkg/lock-frontend``,
  so ``apt-get check`` fails there; python-apt's ``DepCache.broken_count`` reads the
  status file without any lock, and ``dpkg --audit`` reports half-installed packages.
- ``dpkg -i`` does not resolve dependencies: a guest whose Depends are unmet would stay
  unpacked (``iU``) and leave the system broken, so :func:`unmet_dependencies` is asked
  before ``dpkg -i`` is.
- apt and dpkg lock with fcntl record locks (``F_SETLK`` on the whole file), not flock:
  :func:`wait_for_frontend_lock` takes the same kind of lock to know apt has exited.
"""

from __future__ import annotations

import enum
import fcntl
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from guestpkg.errors import SystemStateError
from guestpkg.run import apt_env, run

DPKG_ADMINDIR = Path("/var/lib/dpkg")


def admindir() -> Path:
    # dpkg(1) honours DPKG_ADMINDIR; so do we, which tests of the lock use.
    return Path(os.environ.get("DPKG_ADMINDIR", DPKG_ADMINDIR))


class DpkgState(enum.Enum):
    """dpkg's current state of a package: the second letter of dpkg-query(1)'s
    ``db:Status-Abbrev`` (want, current, error)."""

    NOT_INSTALLED = "n"
    CONFIG_FILES = "c"
    HALF_INSTALLED = "H"
    UNPACKED = "U"
    HALF_CONFIGURED = "F"
    TRIGGERS_AWAITED = "W"
    TRIGGERS_PENDING = "t"
    INSTALLED = "i"


def package_state(package: str) -> tuple[DpkgState | None, str | None]:
    """dpkg's current state of *package* and its version: ``(INSTALLED, "1.0-1")``
    when installed, ``(UNPACKED, ...)``, ``(HALF_CONFIGURED, ...)`` and so on when dpkg
    left it half-way, ``(None, None)`` when dpkg does not know it or keeps only its
    conffiles (dpkg-query(1), ``db:Status-Abbrev``)."""
    result = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", "--", package],
                 capture=True, check=False)
    text = result.stdout.decode("utf-8", "replace")
    if result.returncode != 0 or len(text) < 3:
        return None, None
    try:
        current = DpkgState(text[1])
    except ValueError:
        return None, None
    version = text[3:].strip()
    if current in (DpkgState.NOT_INSTALLED, DpkgState.CONFIG_FILES) or not version:
        return None, None
    return current, version


def installed_version(package: str) -> str | None:
    """The version of *package* if dpkg has it completely installed, else None."""
    current, version = package_state(package)
    return version if current is DpkgState.INSTALLED else None


def _apt_pkg() -> Any:
    import apt_pkg

    apt_pkg.init()
    return apt_pkg


def version_compare(a: str, b: str) -> int:
    result: int = _apt_pkg().version_compare(a, b)
    return result


def broken_packages() -> list[str]:
    """Installed packages whose dependencies are broken, by python-apt, without a lock."""
    apt_pkg = _apt_pkg()
    cache = apt_pkg.Cache(progress=None)
    depcache = apt_pkg.DepCache(cache)
    if depcache.broken_count == 0:
        return []
    return sorted(p.name for p in cache.packages
                  if p.current_ver is not None and depcache.is_now_broken(p))


def audit() -> str:
    """``dpkg --audit``'s report: empty when no package is half-installed."""
    result = run(["dpkg", "--audit"], capture=True, check=False)
    return result.stdout.decode("utf-8", "replace").strip()


def check_system() -> None:
    """Refuse to build on a system with broken or half-installed packages (docs/design.md)."""
    broken = broken_packages()
    if broken:
        raise SystemStateError(
            f"broken packages: {', '.join(broken)}; guestpkg builds nothing until they are "
            "fixed", hint="run apt-get -f install, then guestpkg rebuild <host>")
    report = audit()
    if report:
        first = report.splitlines()[:6]
        raise SystemStateError("dpkg --audit reports problems: " + " / ".join(first),
                               hint="run dpkg --configure -a, then guestpkg rebuild <host>")


def unmet_dependencies(debs: Sequence[Path], provided: Iterable[str] = ()) -> list[str]:
    """Depends and Pre-Depends of the packages in *debs* that the installed system does
    not satisfy (packages among *debs* and *provided* count as there)."""
    apt_pkg = _apt_pkg()
    from debian.debfile import DebFile

    cache = apt_pkg.Cache(progress=None)
    ours = set(provided)
    fields: list[str] = []
    for deb in debs:
        control = DebFile(str(deb)).debcontrol()
        ours.add(control["Package"])
        fields += [control.get("Pre-Depends", ""), control.get("Depends", "")]
    unmet = []
    for text in filter(None, fields):
        for group in apt_pkg.parse_depends(text, strip_multi_arch=True):
            if not any(_satisfied(cache, apt_pkg, name, version, op, ours)
                       for name, version, op in group):
                unmet.append(" | ".join(f"{n} ({o} {v})" if o else n for n, v, o in group))
    return unmet


def _satisfied(cache: Any, apt_pkg: Any, name: str, version: str, op: str,
               ours: set[str]) -> bool:
    if name in ours:
        return True
    try:
        package = cache[name]
    except KeyError:
        return False
    current = package.current_ver
    if current is not None and (not op or apt_pkg.check_dep(current.ver_str, op, version)):
        return True
    # A virtual package: satisfied by an installed provider (versioned provides too).
    for _provided, provided_version, provider in package.provides_list:
        installed = provider.parent_pkg.current_ver
        if installed is None or installed.id != provider.id:
            continue
        if not op or (provided_version and apt_pkg.check_dep(provided_version, op, version)):
            return True
    return False


def wait_for_frontend_lock(timeout_s: float | None = None, poll_s: float = 0.5) -> None:
    """Wait until dpkg's frontend lock is free: the apt run that started us has exited.

    The lock is an fcntl record lock like apt's own; it is taken and at once let go,
    because the apt-get we run next needs it.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    path = admindir() / "lock-frontend"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.lockf(fd, fcntl.LOCK_UN)
                return
            except OSError:
                if deadline is not None and time.monotonic() > deadline:
                    raise SystemStateError(f"{path} stayed locked for {timeout_s:.0f} s",
                                           hint="is an apt or dpkg run hanging?") from None
                time.sleep(poll_s)
    finally:
        os.close(fd)


#: Set for everything guestpkg installs from the hook; apt-hooks/apt-post-invoke returns
#: at once when it is set, so a nested apt-get or dpkg does not re-enter us.
HOOK_GUARD = "GUESTPKG_HOOK_ACTIVE"


def install_env() -> dict[str, str]:
    """Environment of the dpkg and apt-get runs that install a guest:
    :func:`guestpkg.run.apt_env` and the recursion guard the APT hook checks first.

    Inside apt's Post-Invoke, apt holds the frontend lock and says so with
    ``DPKG_FRONTEND_LOCKED``; dpkg -i must see it, or it waits for the lock apt holds
    and fails (dpkg(1), ENVIRONMENT; docs/reference.md)."""
    extra = {HOOK_GUARD: "1"}
    if "DPKG_FRONTEND_LOCKED" in os.environ:
        extra["DPKG_FRONTEND_LOCKED"] = os.environ["DPKG_FRONTEND_LOCKED"]
    return apt_env(extra)
