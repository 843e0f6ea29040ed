# SPDX-License-Identifier: GPL-2.0-or-later
"""After a successful build: ``--run-lintian``, ``--run-piuparts`` and
``--run-autopkgtest`` (sbuild's options of the same names), each in a throwaway fork
of its own.  piuparts, which makes a chroot of its own with chroot(2) and mount(2),
is :mod:`guestpkg.build.piuparts`.

sbuild (Sbuild/Build.pm ``run_lintian``, ``run_autopkgtest``) runs lintian in the
build's chroot and autopkgtest on the host, as root through sudo, with the
``null`` virt server.  Here each runs in a fresh fork of the base root over a cached
layer of the tool (made like a build-dependency layer, :mod:`guestpkg.build.depends`:
apt with network from the root's sources, the .debs in the download cache), with
the build directory bound read-only at ``/build`` and no network:

- lintian as ``nobody``, without capabilities, on the ``.changes`` (and the ``.dsc``
  when the build made no source package, as sbuild adds it); its exit status 2 is a
  policy violation ("fail"), 1 a runtime error ("error"), lintian(1); else "pass", or "info" /
  "warn" if it printed such tags (sbuild's "Lintian Reason");
- autopkgtest as root with apt's capabilities (it installs the built .debs, whose
  maintainer scripts run in the fork: a logged relaxation, in a user namespace, no
  network), the source's .dsc (or the built tree when there is none) with
  ``--no-built-binaries``, the .debs, ``-- null``: the fork is the testbed.  The
  test dependencies other than the built packages (``debian/tests/control``'s
  Depends, strictly parsed) come into the tool layer, and
  the fork's apt sources are emptied first, so that autopkgtest's ``apt-get update``
  reads only its own local repository of the built .debs.  Exit status 0 or 2 is
  "pass", 8 "no tests", anything else "fail".

Each result goes into the ``.build`` log under sbuild's "Post Build" section, in the
Summary (``Lintian: pass``, ``Autopkgtest: fail``) and on the console.  A failed
check fails the build only if the ``post_build_fail`` setting names it (sbuild's
``$lintian_require_success`` and friends; off by default).  What the tools print is
the build's output, hostile text: it reaches the console only through the escaping
tee of :func:`guestpkg.run.run`, and is read back here only to look for tag lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from debian.deb822 import Deb822

from guestpkg import fsutil
from guestpkg.build import artifacts, buildlog, summary
from guestpkg.build.context import BuildContext
from guestpkg.build.depends import install_build_deps
from guestpkg.build.extras import ExtraSources
from guestpkg.build.piuparts import run_piuparts
from guestpkg.build.source import BUILD_MOUNT
from guestpkg.buildroot import Fork, fork
from guestpkg.debian.control import BuildMode, BuildRelations, reduce_relations
from guestpkg.errors import BuildFailed, GuestpkgError, Interrupted, ParseError
from guestpkg.run import DEFAULT_PATH, apt_env
from guestpkg.sandbox import APT_CAPABILITIES, Bind, SandboxSpec, run_sandboxed

#: uid and gid lintian runs as: ``nobody``, in every Debian root (base-passwd).
NOBODY = 65534

#: The most of a tool's output read back for its tags, and of debian/tests/control.
MAX_OUTPUT_BYTES = 16 << 20
MAX_TESTS_CONTROL_BYTES = 1 << 20


class Check(enum.StrEnum):
    """A post-build check, in the order sbuild runs them (the values are
    guestpkg.config.POST_BUILD_CHECKS)."""

    LINTIAN = "lintian"
    PIUPARTS = "piuparts"
    AUTOPKGTEST = "autopkgtest"

    @property
    def summary_key(self) -> str:
        """The Summary's key (sbuild's ``add_stat``)."""
        return self.value.capitalize()


#: The results that count as a failure (sbuild's reasons).
FAILED = frozenset({"fail", "error"})


def run_post_build(ctx: BuildContext) -> None:
    """The checks of ``ctx.options.checks``; each result in ``ctx.post_build``.  Raises
    BuildFailed if a check the ``post_build_fail`` setting names failed."""
    checks = [check for check in Check if check in ctx.options.checks]
    if not checks:
        return
    ctx.log.step("post build: " + ", ".join(checks))
    buildlog.append(ctx, summary.section("Post Build"))
    for check in checks:
        buildlog.append(ctx, summary.subsubsection(check.value))
        try:
            result = RUNNERS[check](ctx)
        except Interrupted:
            raise
        except GuestpkgError as e:
            # the check could not run (its tool not installable, an input our own
            # code refused): no result, and the build's own results stand
            ctx.log.warn(f"{check.value}: {e.message}")
            result = "error"
        ctx.post_build[check.summary_key] = result
        buildlog.append(ctx, "\n")
        ctx.log.warn(f"{check.summary_key}: {result}")
    required = set(ctx.config.post_build_fail.split(","))
    failed = [check.value for check in checks
              if check.value in required and ctx.post_build[check.summary_key] in FAILED]
    if failed:
        ctx.failed_stage = "post-build"
        raise BuildFailed(f"{' and '.join(failed)} failed after the build of "
                          f"{ctx.info.source} {ctx.info.version} (setting post_build_fail)",
                          ctx.log.path)


def _tool_relations(ctx: BuildContext, packages: Sequence[str]) -> BuildRelations:
    """*packages* (relations: strictly parsed, safe in the dummy's control file)."""
    return BuildRelations(tuple(reduce_relations(", ".join(packages), ctx.base.arch)), ())


def _run_in_tool_fork(ctx: BuildContext, packages: Sequence[str],
                      make_spec: Callable[[Fork], SandboxSpec]) -> tuple[int, str]:
    """Run the spec *make_spec* gives in a fresh fork over the layer of *packages*;
    its exit status and what it wrote to the log (bounded)."""
    # The tool's layer comes from the buildroot's own sources, for the build
    # architecture: neither the build's extra sources nor its host architecture.
    tool_ctx = dataclasses.replace(ctx, extras=None, options=dataclasses.replace(
        ctx.options, extras=ExtraSources(), host_arch=""))
    with contextlib.ExitStack() as stack:
        layer, _cached = stack.enter_context(
            install_build_deps(tool_ctx, _tool_relations(ctx, packages)))
        f = stack.enter_context(fork(ctx.config, ctx.base, layer.trees if layer else []))
        start = ctx.log.path.stat().st_size
        spec = make_spec(f)
        ctx.log.note("running " + shlex.join(spec.argv))
        status = run_sandboxed(spec, log_path=ctx.log.path, tee=ctx.log.tee, check=False)
        ctx.log.note(f"{packages[0]} exited with status {status}")
    with open(ctx.log.path, "rb") as log_file:
        log_file.seek(max(start, ctx.log.path.stat().st_size - MAX_OUTPUT_BYTES))
        output = log_file.read(MAX_OUTPUT_BYTES).decode("utf-8", "replace")
    return status, output


def tool_env(user: str, home: str = "/nonexistent") -> dict[str, str]:
    return {"PATH": DEFAULT_PATH, "HOME": home, "USER": user, "LOGNAME": user,
            "TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def built_files(ctx: BuildContext) -> tuple[Path, list[str]]:
    """The build's .changes and the file names it lists (checked names)."""
    changes = artifacts.find_changes(ctx.build_dir, ctx.info.source, ctx.info.version)
    return changes, artifacts.changes_files(changes)


def source_dsc(ctx: BuildContext, files: Sequence[str]) -> str | None:
    """The .dsc of the source built: the one the .changes lists, else the one the
    build was given (sbuild passes it too when it built no source package); None
    for a tree built without one."""
    listed = [name for name in files if name.endswith(".dsc")]
    if listed:
        return listed[0]
    if ctx.options.mode in (BuildMode.SOURCE, BuildMode.FULL):
        return None
    given = sorted(p.name for p in ctx.build_dir.glob("*.dsc") if p.is_file())
    return given[0] if given else None


def run_lintian(ctx: BuildContext) -> str:
    changes, files = built_files(ctx)
    argv = ["lintian", f"{BUILD_MOUNT}/{changes.name}"]
    dsc = source_dsc(ctx, files)
    if dsc is not None and dsc not in files:
        argv.append(f"{BUILD_MOUNT}/{dsc}")
    status, output = _run_in_tool_fork(ctx, ["lintian"], lambda f: ctx.spec(
        argv, fork=f, env=tool_env("nobody"), uid=NOBODY, gid=NOBODY, cwd="/",
        binds=(Bind(ctx.build_dir, BUILD_MOUNT),)))
    return lintian_result(status, output)


def lintian_result(status: int, output: str) -> str:
    """sbuild's "Lintian Reason" from lintian's exit status and output.  lintian(1)
    of bookworm (2.116): 2 is a tag at its --fail-on level (error by default), 1 a
    run-time error (sbuild 0.85 still reads them the other way round)."""
    if status == 2:
        return "fail"
    if status != 0:
        return "error"
    if re.search(r"^W: ", output, re.M):
        return "warn"
    if re.search(r"^I: ", output, re.M):
        return "info"
    return "pass"


def test_dependencies(text: str, arch: str) -> list[str]:
    """The Depends of every test of a ``debian/tests/control`` (DEP-8) that the
    archive provides: ``@`` (the built packages), ``@builddeps@`` and
    ``@recommends@`` are autopkgtest's to expand (the built .debs are given to it;
    the build dependencies are not added: a test that needs them fails, and says
    so).  Each relation is parsed strictly (guestpkg.debian.relations)."""
    found: list[str] = []
    for stanza in Deb822.iter_paragraphs(text.splitlines()):
        value = stanza.get("Depends", "")
        kept = [item.strip() for item in value.replace("\n", " ").split(",")
                if item.strip() and not item.strip().startswith("@")]
        for rel in reduce_relations(", ".join(kept), arch, field="Depends"):
            if rel not in found:
                found.append(rel)
    return found


#: Run by root in the autopkgtest fork: no apt source but autopkgtest's own (the
#: fork has no network; autopkgtest's cleanup runs apt-get update), then autopkgtest.
AUTOPKGTEST_SCRIPT = ('rm -f /etc/apt/sources.list.d/*; : > /etc/apt/sources.list; '
                      'exec autopkgtest "$@"')


def run_autopkgtest(ctx: BuildContext) -> str:
    assert ctx.staged is not None
    _changes, files = built_files(ctx)
    debs = [name for name in files if name.endswith(".deb")]
    try:
        control = fsutil.read_untrusted(ctx.staged, "debian/tests/control",
                                        MAX_TESTS_CONTROL_BYTES)
        extra = test_dependencies(control.decode("utf-8", "replace"), ctx.base.arch)
    except FileNotFoundError:
        extra = []
    except ParseError as e:
        ctx.log.warn(f"autopkgtest: debian/tests/control: {e.message}")
        return "fail"
    # The tests' source as sbuild gives it: the .dsc (unpacked clean in the testbed);
    # a tree built without one is given as it is after the build.
    dsc = source_dsc(ctx, files)
    tests_source = f"{BUILD_MOUNT}/" + (dsc if dsc is not None else ctx.info.directory_name)
    argv = ["sh", "-c", AUTOPKGTEST_SCRIPT, "sh", "--no-built-binaries", tests_source,
            *(f"{BUILD_MOUNT}/{name}" for name in debs), "--", "null"]
    status, _ = _run_in_tool_fork(ctx, ["autopkgtest", "apt-utils", *extra],
                                  lambda f: ctx.spec(
        argv, fork=f, env=apt_env(throwaway_root=True), uid=0, gid=0, cwd="/",
        capabilities=APT_CAPABILITIES, allow_setuid=True,
        binds=(Bind(ctx.build_dir, BUILD_MOUNT),)))
    return {0: "pass", 2: "pass", 8: "no tests"}.get(status, "fail")


RUNNERS: dict[Check, Callable[[BuildContext], str]] = {
    Check.LINTIAN: run_lintian, Check.PIUPARTS: run_piuparts,
    Check.AUTOPKGTEST: run_autopkgtest,
}
