# SPDX-License-Identifier: GPL-2.0-or-later
"""A ``.build`` log shaped like sbuild's, so that tools that read sbuild logs
(buildd's, python3-buildlog-consultant's ``SbuildLog``, reproducible-builds',
``grep '^Status:'``) read guestpkg's.  sbuild's Sbuild/Build.pm ``open_build_log``,
``log_section``/``log_subsection``/``log_subsubsection`` and ``close_build_log``:

- the first line names the builder, its version and the machine, then the banner
  ``+====+ | hello 2.10-3 (amd64)   <date> |`` and the ``Package:``, ``Version:``,
  ``Distribution:``, architectures and ``Build Type:`` lines (here also the versions
  of the kernel, of guestpkg and of the buildroot's dpkg and apt);
- sections boxed in dashes: ``Install package build dependencies`` (the merged
  relations and the resolved packages with their versions), ``Build``, ``Post Build``
  (lintian, autopkgtest), ``Build environment`` (the installed build dependencies)
  and ``Summary`` (``Key: value`` lines: Build-Space and Space in KiB, the times in
  whole seconds, ``Status:`` and, after a failure, ``Fail-Stage:``), then sbuild's
  ``Finished at`` and ``Build needed HH:MM:SS, Nk disk space`` lines.

Everything here is formatting; :mod:`guestpkg.build.deb` writes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from guestpkg.debian.control import BuildMode

WIDTH = 80

#: sbuild's Build Type for each dpkg-buildpackage mode (sbuild(1): --arch-any is
#: "any", --arch-all "all").
BUILD_TYPES = {BuildMode.BINARY: "binary", BuildMode.SOURCE: "source",
               BuildMode.FULL: "full", BuildMode.ARCH_ONLY: "any",
               BuildMode.INDEP_ONLY: "all"}


def banner(left: str, right: str) -> str:
    """sbuild's ``log_section``: a box of ``=``, *left* left-aligned and *right*
    right-aligned in its 76 columns (no padding when they do not fit)."""
    head = left + " " * max(0, 76 - len(left) - len(right)) + right
    inner = max(len(head), 76)
    rule = "+" + "=" * (inner + 2) + "+"
    return f"\n{rule}\n| {head:<{inner}} |\n{rule}\n\n"


def header(builder: str, fields: Mapping[str, str], started: float,
           extra: Mapping[str, str]) -> str:
    """The log's first lines: *builder* (``guestpkg 0.1.0 on HOST``), the banner of
    the source, version and architecture, sbuild's header fields (in its order:
    *fields* holds Package, Version, Source Version, Distribution, the three
    architectures, Build Profiles if any, Build Type), and *extra* fields."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(started))
    left = f"{fields['Package']} {fields['Version']} ({fields['Host Architecture']}) "
    lines = "".join(f"{key}: {value}\n" for key, value in [*fields.items(), *extra.items()])
    return f"{builder}\n{banner(left, date)}{lines}\n"


def build_dependencies(depends: Sequence[str], conflicts: Sequence[str],
                       actions: Sequence[str], layer: str) -> str:
    """The ``Install package build dependencies`` section's text: sbuild's
    ``Merged Build-Depends:`` lines and the resolved set with versions."""
    lines = [f"Merged Build-Depends: {', '.join(depends)}"]
    if conflicts:
        lines.append(f"Merged Build-Conflicts: {', '.join(conflicts)}")
    lines.append(f"Resolved build dependencies ({len(actions)}{layer}):")
    lines += [f"  {line}" for line in _package_lines(actions)]
    return "".join(f"{line}\n" for line in lines)


def tail(seconds: float, space_kib: int, finished: float) -> str:
    """sbuild's last lines: a rule, ``Finished at``, ``Build needed``."""
    whole = int(seconds)
    return ("-" * WIDTH + "\n"
            f"Finished at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(finished))}\n"
            f"Build needed {whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}, "
            f"{space_kib}k disk space\n")


def section(title: str) -> str:
    """sbuild's section box::

        +------------------------------------------------------------------------------+
        | Summary                                                                      |
        +------------------------------------------------------------------------------+
    """
    rule = "+" + "-" * (WIDTH - 2) + "+"
    return f"\n{rule}\n| {title[:WIDTH - 4]:<{WIDTH - 4}} |\n{rule}\n\n"


def subsubsection(title: str) -> str:
    """sbuild's ``log_subsubsection``: the title underlined with dashes."""
    return f"\n{title}\n{'-' * len(title)}\n\n"


def _package_lines(actions: Sequence[str]) -> list[str]:
    """``name_version_arch`` for each of apt's actions (``name:arch=version``)."""
    lines = []
    for action in sorted(actions):
        if action.startswith("-") or "=" not in action:
            lines.append(f"removed: {action.lstrip('-')}")
            continue
        package, version = action.split("=", 1)
        name, _, arch = package.partition(":")
        lines.append(f"{name}_{version}_{arch}")
    return lines


def build_environment(actions: Sequence[str]) -> str:
    """The installed build dependencies, ``name_version_arch`` a line as in sbuild's
    ``Build environment`` section (its dpkg-query listing)."""
    return section("Build environment") + "".join(f"{line}\n"
                                                  for line in _package_lines(actions))


def summary(fields: Mapping[str, str]) -> str:
    """The ``Summary`` section: sbuild's keys, sorted as sbuild sorts them."""
    return section("Summary") + "".join(f"{key}: {value}\n"
                                         for key, value in sorted(fields.items()))
