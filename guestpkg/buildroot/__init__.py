# SPDX-License-Identifier: GPL-2.0-or-later
"""Base buildroots and the throwaway forks builds run in.

- :mod:`guestpkg.buildroot.sources`: which apt sources a new root gets (pure).
- :mod:`guestpkg.buildroot.roots`: base roots made by mmdebstrap, in generations.
- :mod:`guestpkg.buildroot.forks`: overlay forks of a base root, reaped when orphaned.

Typical use::

    base = open_base_root(config)
    with fork(config, base, layers=(deps_layer,)) as f:
        run_sandboxed(f.spec(["dpkg-buildpackage", "-b"], uid=base.build_uid, ...))
"""

from guestpkg.buildroot.forks import Fork, fork, forks_dir, reap_forks
from guestpkg.buildroot.roots import (
    BaseRoot,
    create_base_root,
    list_base_roots,
    open_base_root,
    reap_buildroots,
    remove_base_root,
    update_base_root,
)

__all__ = [
    "BaseRoot",
    "Fork",
    "create_base_root",
    "fork",
    "forks_dir",
    "list_base_roots",
    "open_base_root",
    "reap_buildroots",
    "reap_forks",
    "remove_base_root",
    "update_base_root",
]
