# SPDX-License-Identifier: GPL-2.0-or-later
"""A sandboxed command described as data: :class:`SandboxSpec`.

The spec is everything the sandbox needs and nothing else: the argv, the tree to run
in (overlay layers, or one directory), the exact environment, the user, and the named
relaxations (network, kept capabilities, setuid chmod, chroot and mount).  Because it
is plain data it is serialised to JSON for the process that sets the sandbox up
(``python3 -m guestpkg.sandbox SPEC.json``), and the same file replays a failed command
by hand.

Defaults are the safe choice: no network, no capabilities, no setuid bits, nothing of
the host bound in.  Relaxations are fields whose non-default values the runner logs
loudly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guestpkg.errors import UsageError

#: Capability names the kernel knows (include/uapi/linux/capability.h), lowest first.
CAPABILITY_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

#: What apt and dpkg need, as root, to install build dependencies into a fork: change
#: owners and modes of unpacked files (chown, fowner, fsetid), read and write files of
#: any owner (dac_*), drop to the ``_apt`` user for downloads (setuid, setgid) and stop
#: their helpers (kill).  Not: sys_admin, mknod, net_admin, sys_chroot, setfcap.
#: Maintainer scripts that call setcap(8) fall back to setuid bits (``allow_setuid``).
APT_CAPABILITIES: frozenset[str] = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
})

#: Capabilities kept only with the ``allow_chroot_mount`` relaxation: in the initial
#: user namespace (``id_mapping = root``) they would be real root's.
NAMESPACE_ADMIN_CAPABILITIES: frozenset[str] = frozenset({"CAP_SYS_ADMIN", "CAP_SYS_CHROOT"})

#: What piuparts needs as uid 0 of its sandbox (``allow_chroot_mount``): apt's, plus
#: chroot(2) and mount(2) (CAP_SYS_CHROOT, CAP_SYS_ADMIN), each over namespaces the
#: sandbox's own user namespace owns.  Not: mknod (the kernel refuses it in a user
#: namespace anyway), net_admin, sys_module, sys_ptrace, setfcap.
CHROOT_MOUNT_CAPABILITIES: frozenset[str] = APT_CAPABILITIES | NAMESPACE_ADMIN_CAPABILITIES

#: Resource limits a spec may set (setrlimit(2) names without ``RLIMIT_``).
RLIMIT_NAMES = ("AS", "CORE", "CPU", "DATA", "FSIZE", "MEMLOCK", "NOFILE", "NPROC", "STACK")

#: Default limits: no core dumps of build tools lying around in the output.
DEFAULT_RLIMITS: Mapping[str, int] = {"CORE": 0}

SPEC_VERSION = 1

_NETNS = re.compile(r"^/proc/[1-9][0-9]{0,9}/ns/net$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Bind:
    """A host path made visible at *target* inside the sandbox (read-only by default).

    Bind mounts are always ``nosuid`` and ``nodev`` and never recursive, so nothing
    mounted below *source* on the host becomes visible."""

    source: Path
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class SandboxSpec:
    """One command and the sandbox it runs in; see the module docstring."""

    argv: tuple[str, ...]
    lowerdirs: tuple[Path, ...] = ()    # overlay lower layers, TOPMOST FIRST (base root last)
    upperdir: Path | None = None        # overlay upper; None = throwaway tmpfs upper
    workdir: Path | None = None         # overlay workdir (same file system as upperdir)
    root: Path | None = None            # instead of an overlay: run directly in this tree
    env: Mapping[str, str] = field(default_factory=dict)  # exact environment inside
    cwd: str = "/"
    uid: int = 0                        # non-zero: the unprivileged build user
    gid: int = 0
    capabilities: frozenset[str] = frozenset()  # kept capabilities; only for uid 0
    network: bool = False               # relaxation: the host's network
    join_netns: str | None = None       # relaxation: this network namespace instead of a
                                        # new one (/proc/PID/ns/net, user-mode networking)
    allow_setuid: bool = False          # relaxation: chmod may set S_ISUID/S_ISGID
    allow_chroot_mount: bool = False    # relaxation: chroot(2) and mount(2) inside the
                                        # sandbox's own user, mount and pid namespaces
                                        # (piuparts); id_mapping userns and uid 0 only
    binds: tuple[Bind, ...] = ()
    hostname: str = "guestpkg"
    timeout_s: float | None = None      # wall-clock limit; then SIGTERM, later SIGKILL
    interactive: bool = False           # give the command our terminal (guestpkg shell)
    rlimits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RLIMITS))
    umask: int = 0o022
    id_mapping: str = "userns"          # userns, user (a normal user's) or root:
                                        # see guestpkg.sandbox.idmap
    host_ids: tuple[int, int] | None = None  # userns: host uid, gid of id 0 (a held slice)
    upper_size_bytes: int | None = None  # size of the throwaway tmpfs upper
    shm_size_bytes: int | None = None   # size of /dev/shm (None: the kernel's, RAM/2)
    memory_max_bytes: int | None = None  # cgroup memory limit (guestpkg.sandbox.cgroups)
    pids_max: int | None = None         # cgroup limit of processes and threads
    cpu_weight: int | None = None       # cgroup CPU weight, 1-10000 (100: as others)
    disk_max_bytes: int | None = None   # most the command may add to disk: its upper and
                                        # writable binds (guestpkg.sandbox.diskwatch)
    disk_reserve_bytes: int | None = None  # free space their file systems keep

    @property
    def disk_paths(self) -> list[Path]:
        """Where the command writes on the host: the overlay's upper directory and the
        sources of writable binds (what :mod:`guestpkg.sandbox.diskwatch` watches)."""
        paths = [] if self.upperdir is None else [self.upperdir]
        return paths + [b.source for b in self.binds if not b.readonly]

    def __post_init__(self) -> None:
        validate(self)

    @property
    def relaxations(self) -> list[str]:
        """Human-readable list of every way this spec is weaker than the default."""
        found = []
        if self.network:
            found.append("network: the host's network namespace")
        if self.join_netns:
            found.append(f"network: joins {self.join_netns} (user-mode networking)")
        if self.capabilities:
            found.append("capabilities kept: " + ", ".join(sorted(self.capabilities)))
        if self.allow_setuid:
            found.append("setuid/setgid chmod allowed")
        if self.allow_chroot_mount:
            found.append("chroot and mount inside the sandbox's own namespaces (a mount "
                         "and pid namespace of its user namespace; /proc unmasked)")
        if self.id_mapping == "root":
            found.append("real host ids, no user namespace (id_mapping = root)")
        if self.uid == 0:
            found.append("runs as root (uid 0) inside")
        if any(not b.readonly for b in self.binds):
            found.append("writable binds: " + ", ".join(
                f"{b.source}->{b.target}" for b in self.binds if not b.readonly))
        if self.interactive:
            found.append("interactive: shares the caller's terminal (TIOCSTI still filtered)")
        return found


def _fail(message: str) -> None:
    raise UsageError(f"invalid sandbox spec: {message}")


def _overlay_safe(path: Path) -> bool:
    # overlayfs splits its options at "," and lowerdir at ":"; "\\" escapes.  Refuse
    # rather than escape: guestpkg chooses these paths itself.
    return not any(c in str(path) for c in ",:\\\n")


def validate(spec: SandboxSpec) -> None:
    """Refuse specs that make no sense or would weaken the sandbox by accident."""
    if not spec.argv or not all(isinstance(a, str) for a in spec.argv):
        _fail("argv must be a non-empty tuple of strings")
    if (spec.root is None) == (not spec.lowerdirs):
        _fail("give exactly one of root= or lowerdirs=")
    if (spec.upperdir is None) != (spec.workdir is None):
        _fail("upperdir and workdir go together")
    if spec.root is not None and spec.upperdir is not None:
        _fail("upperdir needs lowerdirs, not root")
    for path in (*spec.lowerdirs, spec.upperdir, spec.workdir, spec.root):
        if path is not None and (not path.is_absolute() or not _overlay_safe(path)):
            _fail(f"{path}: paths must be absolute, without ',', ':' or '\\'")
    if spec.join_netns is not None and (spec.network or not _NETNS.match(spec.join_netns)):
        _fail("join_netns is a /proc/PID/ns/net path, and not with network")
    if spec.uid < 0 or spec.gid < 0:
        _fail("uid and gid must not be negative")
    unknown = set(spec.capabilities) - set(CAPABILITY_NAMES)
    if unknown:
        _fail(f"unknown capabilities: {', '.join(sorted(unknown))}")
    if spec.capabilities and spec.uid != 0:
        _fail("capabilities can only be kept for uid 0")
    if spec.capabilities & NAMESPACE_ADMIN_CAPABILITIES and not spec.allow_chroot_mount:
        _fail("CAP_SYS_ADMIN and CAP_SYS_CHROOT are kept only with allow_chroot_mount")
    if spec.allow_chroot_mount and (spec.id_mapping != "userns" or spec.uid != 0):
        # Only there are the command's capabilities over a user namespace of an
        # unprivileged slice of ids, which owns the mount and pid namespaces it makes:
        # in the initial one (root) they would be real root's, and a normal user's
        # namespace (user) also owns the sandbox's own mounts, which it could undo.
        _fail("allow_chroot_mount needs id_mapping userns (a user namespace on a slice "
              "of guestpkg's subordinate ids) and uid 0")
    if spec.allow_chroot_mount and any(not b.readonly for b in spec.binds):
        # Binds are idmapped: uid 0 inside writes through them as real root's files on
        # the host's disk, setuid ones too with allow_setuid.  Its writes belong in the
        # fork's upper, whose files carry the slice's ids.
        _fail("allow_chroot_mount takes no writable bind (uid 0 inside would make "
              "files of real root on the host's disk)")
    if not _HOSTNAME.match(spec.hostname):
        _fail(f"bad hostname {spec.hostname!r}")
    if not spec.cwd.startswith("/"):
        _fail("cwd must be absolute")
    for bind in spec.binds:
        if not bind.target.startswith("/") or ".." in bind.target.split("/"):
            _fail(f"bind target {bind.target!r} must be absolute, without '..'")
        top = bind.target.strip("/").split("/")[0]
        if top in ("", "proc", "dev", "sys"):
            # The sandbox mounts its own /proc, /dev and /sys over these.
            _fail(f"bind target {bind.target!r}: not / and not under /proc, /dev or /sys")
        if not bind.source.is_absolute():
            _fail(f"bind source {bind.source} must be absolute")
    bad_limits = set(spec.rlimits) - set(RLIMIT_NAMES)
    if bad_limits:
        _fail(f"unknown rlimits: {', '.join(sorted(bad_limits))}")
    if spec.id_mapping not in ("userns", "user", "root"):
        _fail(f"unknown id mapping {spec.id_mapping!r} (userns, user or root)")
    if spec.host_ids is not None and (
            spec.id_mapping != "userns" or len(spec.host_ids) != 2
            or not all(isinstance(i, int) and i > 0 for i in spec.host_ids)):
        _fail("host_ids are two positive ids, for id_mapping userns only")
    for name in ("upper_size_bytes", "shm_size_bytes", "memory_max_bytes", "pids_max",
                 "disk_max_bytes", "disk_reserve_bytes"):
        value = getattr(spec, name)
        if value is not None and (not isinstance(value, int) or value <= 0):
            _fail(f"{name} must be a positive integer or None")
    if spec.cpu_weight is not None and not 1 <= spec.cpu_weight <= 10000:
        _fail("cpu_weight must be 1-10000")
    if spec.timeout_s is not None and spec.timeout_s <= 0:
        _fail("timeout_s must be positive or None")


def to_json(spec: SandboxSpec) -> str:
    """The spec as JSON text (stable key order, so two specs compare as text)."""
    data: dict[str, Any] = {
        "version": SPEC_VERSION,
        "argv": list(spec.argv),
        "lowerdirs": [str(p) for p in spec.lowerdirs],
        "upperdir": None if spec.upperdir is None else str(spec.upperdir),
        "workdir": None if spec.workdir is None else str(spec.workdir),
        "root": None if spec.root is None else str(spec.root),
        "env": dict(spec.env),
        "cwd": spec.cwd,
        "uid": spec.uid,
        "gid": spec.gid,
        "capabilities": sorted(spec.capabilities),
        "network": spec.network,
        "join_netns": spec.join_netns,
        "allow_setuid": spec.allow_setuid,
        "allow_chroot_mount": spec.allow_chroot_mount,
        "binds": [{"source": str(b.source), "target": b.target, "readonly": b.readonly}
                  for b in spec.binds],
        "hostname": spec.hostname,
        "timeout_s": spec.timeout_s,
        "interactive": spec.interactive,
        "rlimits": dict(spec.rlimits),
        "umask": spec.umask,
        "id_mapping": spec.id_mapping,
        "host_ids": None if spec.host_ids is None else list(spec.host_ids),
        "upper_size_bytes": spec.upper_size_bytes,
        "shm_size_bytes": spec.shm_size_bytes,
        "memory_max_bytes": spec.memory_max_bytes,
        "pids_max": spec.pids_max,
        "cpu_weight": spec.cpu_weight,
        "disk_max_bytes": spec.disk_max_bytes,
        "disk_reserve_bytes": spec.disk_reserve_bytes,
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _optional_ids(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    uid, gid = value
    return int(uid), int(gid)


def from_json(text: str) -> SandboxSpec:
    """Parse what :func:`to_json` wrote; unknown keys and versions are errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"invalid sandbox spec: not JSON: {e}") from e
    if not isinstance(data, dict) or data.pop("version", None) != SPEC_VERSION:
        raise UsageError(f"invalid sandbox spec: expected a version {SPEC_VERSION} object")
    try:
        spec = SandboxSpec(
            argv=tuple(data.pop("argv")),
            lowerdirs=tuple(Path(p) for p in data.pop("lowerdirs", [])),
            upperdir=_optional_path(data.pop("upperdir", None)),
            workdir=_optional_path(data.pop("workdir", None)),
            root=_optional_path(data.pop("root", None)),
            env={str(k): str(v) for k, v in data.pop("env", {}).items()},
            cwd=data.pop("cwd", "/"),
            uid=int(data.pop("uid", 0)),
            gid=int(data.pop("gid", 0)),
            capabilities=frozenset(data.pop("capabilities", [])),
            network=bool(data.pop("network", False)),
            join_netns=data.pop("join_netns", None),
            allow_setuid=bool(data.pop("allow_setuid", False)),
            allow_chroot_mount=bool(data.pop("allow_chroot_mount", False)),
            binds=tuple(Bind(Path(b["source"]), b["target"], bool(b.get("readonly", True)))
                        for b in data.pop("binds", [])),
            hostname=data.pop("hostname", "guestpkg"),
            timeout_s=data.pop("timeout_s", None),
            interactive=bool(data.pop("interactive", False)),
            rlimits={str(k): int(v) for k, v in data.pop("rlimits", DEFAULT_RLIMITS).items()},
            umask=int(data.pop("umask", 0o022)),
            id_mapping=data.pop("id_mapping", "userns"),
            host_ids=_optional_ids(data.pop("host_ids", None)),
            upper_size_bytes=data.pop("upper_size_bytes", None),
            shm_size_bytes=data.pop("shm_size_bytes", None),
            memory_max_bytes=data.pop("memory_max_bytes", None),
            pids_max=data.pop("pids_max", None),
            cpu_weight=data.pop("cpu_weight", None),
            disk_max_bytes=data.pop("disk_max_bytes", None),
            disk_reserve_bytes=data.pop("disk_reserve_bytes", None),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"invalid sandbox spec: {e!r}") from e
    if data:
        raise UsageError(f"invalid sandbox spec: unknown keys {', '.join(sorted(data))}")
    return spec
