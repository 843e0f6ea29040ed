# SPDX-License-Identifier: GPL-2.0-or-later
"""The end of a ``.build`` log shaped like sbuild's, so that tools that read sbuild
logs (buildd's, reproducible-builds', ``grep '^Status:'``) read guestpkg's: a boxed
section title, the installed build dependencies with their versions, and the
``Summary`` section of ``Key: value`` lines (sbuild's Sbuild/Build.pm
``log_section``/``log_subsection`` and the summary fields it writes: Build-Space and
Space in KiB, the times in whole seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

WIDTH = 80


def section(title: str) -> str:
    """sbuild's section box::

        +------------------------------------------------------------------------------+
        | Summary                                                                      |
        +------------------------------------------------------------------------------+
    """
    rule = "+" + "-" * (WIDTH - 2) + "+"
    return f"\n{rule}\n| {title[:WIDTH - 4]:<{WIDTH - 4}} |\n{rule}\n\n"


def build_environment(actions: Sequence[str]) -> str:
    """The installed build dependencies, ``name_version_arch`` a line as in sbuild's
    ``Build environment`` section (its dpkg-query listing)."""
    lines = []
    for action in sorted(actions):
        if action.startswith("-") or "=" not in action:
            lines.append(f"removed: {action.lstrip('-')}")
            continue
        package, version = action.split("=", 1)
        name, _, arch = package.partition(":")
        lines.append(f"{name}_{version}_{arch}")
    return section("Build environment") + "".join(f"{line}\n" for line in lines)


def summary(fields: Mapping[str, str]) -> str:
    """The ``Summary`` section: sbuild's keys, sorted as sbuild sorts them."""
    return section("Summary") + "".join(f"{key}: {value}\n"
                                         for key, value in sorted(fields.items()))
