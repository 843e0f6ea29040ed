# SPDX-License-Identifier: GPL-2.0-or-later
"""What guestpkg remembers about each host package: ``<vardir>/hosts/<host>.json``.

dpkg can't hold this: it forgets a removed package without conffiles entirely
(docs/reference.md), so "the user removed the guest" must live here, and so must the
failures and their retry times.  One JSON file per host, replaced atomically (write a
temporary file, fsync, rename: docs/style.md, rule 5), so an interrupted run leaves either the
old or the new state, never half of one.

Alongside, ``<vardir>/pending/<host>`` exists while the host has work to do.  It is
only a hint for the APT hook, whose no-work path must stay under 20 ms and so can't
start Python to read the JSON (apt-hooks/apt-post-invoke); the JSON decides.

Failures back off exponentially (``retry_delay`` doubled per failure, at most a day),
and a host that has been failing for longer than ``permanent_failure_after`` (three days
by default, the limit update-notifier's package-data-downloader uses) stops being
retried: ``guestpkg rebuild <host>`` or ``dpkg-reconfigure <host>`` clears it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guestpkg.errors import InputError
from guestpkg.fsutil import atomic_write
from guestpkg.text import one_line

STATE_FORMAT = 1
MAX_RETRY_DELAY_S = 86400.0


class Activity(enum.StrEnum):
    """What a host's run is doing; saved while it runs, so a crash leaves it set."""

    BUILDING = "building"
    INSTALLING = "installing"


@dataclass
class Failure:
    """The failures since the last success."""

    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    last_error: str = ""
    next_retry_at: float = 0.0
    permanent: bool = False
    #: what the last failure depended on, so that the next run can tell it is gone
    #: and retry at once instead of waiting out the backoff (guestpkg.host.recovery):
    #: the default buildroot's generation then ("none": there was none)...
    buildroot: str = ""
    #: ... and the server that could not be reached ("" when the failure was not that)
    unreachable: str = ""


@dataclass
class HostState:
    host: str
    #: the debconf answer last seen: None before the host's postinst ran
    consent: bool | None = None
    host_version: str | None = None
    #: the guest version the installed host carries (its manifest's Guest-Version)
    bundled_version: str | None = None
    #: the ~local version whose .debs are in <srcdir>/<host>/
    built_version: str | None = None
    #: the binary packages of that build (installed together)
    built_packages: list[str] = field(default_factory=list)
    #: the ~local version guestpkg installed and has not seen removed
    installed_version: str | None = None
    #: the user removed the guest: don't reinstall until rebuild or dpkg-reconfigure
    user_removed: bool = False
    #: set while that runs; still set after a crash
    in_progress: Activity | None = None
    failure: Failure = field(default_factory=Failure)

    @property
    def failing(self) -> bool:
        return self.failure.count > 0

    def record_failure(self, error: str, now: float, retry_delay_s: float,
                       permanent_after_s: float, *, buildroot: str = "",
                       unreachable: str = "") -> None:
        f = self.failure
        f.buildroot, f.unreachable = buildroot, unreachable
        f.count += 1
        if f.count == 1:
            f.first_at = now
        f.last_at = now
        # kept one line, control characters escaped: status and the hook print it
        f.last_error = one_line(error)
        f.next_retry_at = now + backoff_s(f.count, retry_delay_s)
        f.permanent = now - f.first_at >= permanent_after_s and f.count >= 2

    def clear_failure(self) -> None:
        self.failure = Failure()

    def retry_now(self) -> None:
        """The cause of the last failure is gone: due at once, and no longer
        permanent; the count stays, so a new failure backs off from where it was."""
        self.failure.next_retry_at = 0.0
        self.failure.permanent = False

    def to_json(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, **dataclasses.asdict(self)}


def backoff_s(failures: int, retry_delay_s: float) -> float:
    """Seconds to wait after the *failures*-th failure in a row: delay, 2x, 4x, ..."""
    if failures <= 0:
        return 0.0
    return min(retry_delay_s * float(2 ** min(failures - 1, 30)), MAX_RETRY_DELAY_S)


def state_path(vardir: Path, host: str) -> Path:
    return vardir / "hosts" / f"{host}.json"


def pending_path(vardir: Path, host: str) -> Path:
    return vardir / "pending" / host


def from_json(data: dict[str, Any], path: Path | str) -> HostState:
    if data.get("format") != STATE_FORMAT:
        raise InputError(f"{path}: unknown state format {data.get('format')!r}",
                         hint="guestpkg forget <host> drops it")
    fields = {f.name for f in dataclasses.fields(HostState)}
    values = {k: v for k, v in data.items() if k in fields}
    try:
        values["failure"] = Failure(**values.get("failure", {}))
        if values.get("in_progress") is not None:
            values["in_progress"] = Activity(values["in_progress"])
        return HostState(**values)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: bad state: {e}", hint="guestpkg forget <host> drops it") from e


def load(vardir: Path, host: str) -> HostState:
    """The saved state of *host*, or a fresh one."""
    path = state_path(vardir, host)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return HostState(host)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON: {e}",
                         hint=f"guestpkg forget {host} drops it") from e
    return from_json(data, path)


def save(vardir: Path, state: HostState, pending: bool) -> None:
    """Write the state atomically, and the pending hint after it (so a crash in between
    leaves at worst a stale hint, which costs one Python start of the hook)."""
    text = json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n"
    atomic_write(state_path(vardir, state.host), text)
    marker = pending_path(vardir, state.host)
    if pending:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


def remove(vardir: Path, host: str) -> None:
    state_path(vardir, host).unlink(missing_ok=True)
    pending_path(vardir, host).unlink(missing_ok=True)


def known_hosts(vardir: Path) -> list[str]:
    directory = vardir / "hosts"
    if not directory.is_dir():
        return []
    return sorted(p.name[:-5] for p in directory.iterdir()
                  if p.name.endswith(".json") and not p.name.startswith("."))


def pending_hosts(vardir: Path) -> list[str]:
    directory = vardir / "pending"
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))
