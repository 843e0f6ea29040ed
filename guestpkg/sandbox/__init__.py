# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox every build command runs in.

A :class:`SandboxSpec` describes the command and its sandbox as data;
:func:`run_sandboxed` runs it: new mount, pid, uts, ipc, cgroup and network namespaces
(``lo`` only), an overlay of the layers mounted inside the sandbox's own mount
namespace, a fresh /proc with sensitive files masked, a minimal /dev, a read-only /sys
with kernel internals hidden, pivot_root, the build user, empty capability sets,
no_new_privs, a new session, death with the parent, rlimits, a wall-clock limit and a
seccomp filter.  Relaxations (network, apt's capabilities, setuid chmod, chroot and
mount in namespaces of the sandbox's own user namespace) are explicit spec fields and
are logged.  docs/threat-model.md says what this protects against and
what it does not.

Modules: :mod:`.spec` (the data), :mod:`.runner` (the caller's side), :mod:`.init`
(what runs inside), :mod:`.mounts`, :mod:`.caps`, :mod:`.seccomp_filter`,
:mod:`.network`, :mod:`.idmap` (the uid-mapping seam), :mod:`.syscalls` (ctypes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guestpkg.sandbox.mounts import enter_private_mount_namespace, mount_tmpfs
    from guestpkg.sandbox.runner import run_sandboxed
    from guestpkg.sandbox.spec import APT_CAPABILITIES, Bind, SandboxSpec

__all__ = ["APT_CAPABILITIES", "Bind", "SandboxSpec", "enter_private_mount_namespace",
           "mount_tmpfs", "run_sandboxed"]

#: Where each public name lives.  They are imported on first use (PEP 562), because
#: ``python3 -m guestpkg.sandbox`` imports this package before :mod:`.init` runs, and
#: the inside of a sandbox needs none of the caller's side (runner: subprocess,
#: logging, tempfile), which would otherwise be loaded on every sandbox start.
_HOMES = {"APT_CAPABILITIES": "spec", "Bind": "spec", "SandboxSpec": "spec",
          "enter_private_mount_namespace": "mounts", "mount_tmpfs": "mounts",
          "run_sandboxed": "runner"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
