# SPDX-License-Identifier: GPL-2.0-or-later
"""The sbuild-shaped parts of a build's ``.build`` log (formatted by
:mod:`guestpkg.build.summary`), written at their steps of :mod:`guestpkg.build.deb`:
the header once the source is known, the dependency and build sections, and the
Build environment and Summary sections at the end, also after a failure."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from debian.deb822 import Deb822

from guestpkg import __version__, fsutil
from guestpkg.build import summary
from guestpkg.build.context import BuildContext
from guestpkg.debian.control import BuildRelations

#: The buildroot's dpkg status file is read for a few versions; a bound all the same.
MAX_STATUS_BYTES = 64 << 20


def append(ctx: BuildContext, text: str) -> None:
    with open(ctx.log.path, "a", encoding="utf-8") as f:
        f.write(text)


def installed_versions(root: Path, names: Iterable[str]) -> dict[str, str]:
    """The versions of *names* installed in *root* (its var/lib/dpkg/status)."""
    wanted = set(names)
    try:
        data = fsutil.read_untrusted(root, "var/lib/dpkg/status", MAX_STATUS_BYTES)
    except OSError:
        return {}
    found = {}
    for stanza in Deb822.iter_paragraphs(data.decode("utf-8", "replace").splitlines()):
        name = stanza.get("Package", "")
        if name in wanted and stanza.get("Status", "").endswith(" installed"):
            found[name] = stanza.get("Version", "")
    return found


def header_fields(ctx: BuildContext) -> dict[str, str]:
    """sbuild's header fields, in its order."""
    info, arch = ctx.info, ctx.base.arch
    fields = {"Package": info.source, "Version": info.version,
              "Source Version": source_version(ctx),
              "Distribution": info.changelog.distribution,
              "Machine Architecture": arch, "Host Architecture": ctx.host_arch,
              "Build Architecture": arch}
    if ctx.profiles:
        fields["Build Profiles"] = " ".join(ctx.profiles)
    fields["Build Type"] = summary.BUILD_TYPES[ctx.options.mode]
    return fields


def source_version(ctx: BuildContext) -> str:
    """The version of the source package: a binNMU's without its ``+bN``."""
    version = ctx.info.version
    if ctx.options.version_change.binnmu is not None:
        return version.rsplit("+b", 1)[0]
    return version


def start_final_log(ctx: BuildContext, final_log: Path) -> None:
    """The log at its final name: sbuild's header, then what was logged so far (the
    notes of the steps that staged the source), which leaves the provisional log."""
    uname = os.uname()
    versions = installed_versions(ctx.base.path, ("dpkg", "apt"))
    extra = {"Buildroot": f"{ctx.base.name} ({ctx.base.suite}, {ctx.base.arch}), "
                          f"generation {ctx.base.generation}",
             "Kernel": f"{uname.sysname} {uname.release} {uname.version} {uname.machine}",
             "Toolchain versions": " ".join(
                 [f"guestpkg_{__version__}",
                  *(f"{name}_{version}" for name, version in sorted(versions.items()))])}
    text = summary.header(f"guestpkg {__version__} on {socket.gethostname()}",
                          header_fields(ctx), ctx.started, extra)
    fd = os.open(final_log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.write(ctx.log.path.read_text(encoding="utf-8", errors="replace"))
    ctx.log.path.unlink()
    ctx.log.path = final_log


def write_build_dependencies(ctx: BuildContext, relations: BuildRelations) -> None:
    """What the build-dependency step resolved, in its section."""
    actions = ctx.layer.packages if ctx.layer else []
    layer = (f", layer {ctx.layer.key}" + (", cached" if ctx.layer_cached else "")
             if ctx.layer else "")
    append(ctx, summary.build_dependencies(relations.depends, relations.conflicts,
                                           actions, layer))


def write_summary(ctx: BuildContext, status: str) -> None:
    """sbuild's ``Build environment`` and ``Summary`` sections and its last lines."""
    info, arch = ctx.info, ctx.base.arch
    space_kib = fsutil.disk_usage_bytes(ctx.build_dir) // 1024
    fields = {
        "Build Architecture": arch, "Host Architecture": ctx.host_arch,
        "Machine Architecture": arch,
        "Build Type": summary.BUILD_TYPES[ctx.options.mode],
        "Build-Space": str(space_kib), "Space": str(space_kib),
        "Build-Time": str(round(ctx.seconds.get("build", 0))),
        "Install-Time": str(round(ctx.seconds.get("install", 0))),
        "Package-Time": str(round(time.monotonic() - ctx.seconds.get("start", 0))),
        "Distribution": info.changelog.distribution, "Job": ctx.source.name,
        "Package": info.source, "Version": info.version,
        "Source-Version": source_version(ctx),
        "Status": status,
    }
    if status != "successful":
        fields["Fail-Stage"] = ctx.failed_stage or (
            "build" if "build" in ctx.seconds else "install-deps")
    fields.update(ctx.post_build)
    append(ctx, summary.build_environment(ctx.layer.packages if ctx.layer else []) +
           summary.summary(fields) +
           summary.tail(ctx.seconds.get("build", 0), space_kib, time.time()))
