# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build on a tiny package whose debian/rules uses dpkg-dev only (no build
dependencies, so no layer, a build of a second or two): failures, the
prepare_source hook of the host lifecycle, --faketime, --preserve-build, and the
``build`` and ``cache`` commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.build.layers import UnsatisfiableBuildDepends
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from guestpkg.debian.control import BuildMode
from guestpkg.debian.debfile import tar_entry, write_deb
from guestpkg.errors import BuildFailed, UnsafeArchive

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration]

RULES = """\
#!/usr/bin/make -f
clean:
\trm -rf debian/tmp debian/files
build build-arch build-indep:
\t{build}
binary binary-arch binary-indep: build
\trm -rf debian/tmp
\tmkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/tiny
\tdate +%s > debian/tmp/usr/share/tiny/clock
\tid -u > debian/tmp/usr/share/tiny/uid
\tdpkg-gencontrol -ptiny -Pdebian/tmp
\tdpkg-deb --root-owner-group --build debian/tmp ..
"""

CONTROL = """\
Source: tiny
Maintainer: guestpkg developers <guestpkg@localhost>
Build-Depends: {build_depends}
Rules-Requires-Root: no

Package: tiny
Architecture: all
Description: tiny test package
 Built by guestpkg's tests with dpkg-dev alone.
"""

CHANGELOG = """\
tiny (1.0) unstable; urgency=medium

  * Test.

 -- guestpkg developers <guestpkg@localhost>  Tue, 02 Jan 2024 03:04:05 +0000
"""
EPOCH = 1704164645


def make_tiny(parent: Path, build: str = "@echo building", build_depends: str = "") -> Path:
    tree = parent / "tiny"
    (tree / "debian" / "source").mkdir(parents=True)
    (tree / "debian" / "rules").write_text(RULES.format(build=build))
    (tree / "debian" / "rules").chmod(0o755)
    (tree / "debian" / "control").write_text(CONTROL.format(build_depends=build_depends))
    (tree / "debian" / "changelog").write_text(CHANGELOG)
    (tree / "debian" / "source" / "format").write_text("3.0 (native)\n")
    return tree


def extract(deb: Path, member: str, tmp: Path) -> str:
    target = tmp / "x"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return (target / member).read_text().strip()


def guestpkg(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUESTPKG_VARDIR": str(config.vardir),
           "GUESTPKG_LOGDIR": str(config.logdir), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "guestpkg", *args], env=env,
                          capture_output=True, text=True, check=False)


def test_failing_build_exits_nonzero_and_output_gets_nothing(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src", build="@echo about to fail; exit 1")
    out = tmp_path / "out"
    result = guestpkg(test_config, "build", "--quiet-build", str(tree), str(out))
    assert result.returncode == 1, result.stderr
    assert "dpkg-buildpackage of tiny 1.0 failed" in result.stderr
    assert "about to fail" in result.stderr          # the log's last lines
    log_line = next(line for line in result.stderr.splitlines() if "the full log is" in line)
    log_path = Path(log_line.split("the full log is ")[1].strip())
    assert log_path.is_file() and "about to fail" in log_path.read_text()
    # the log ends with sbuild's summary of a failed build
    summary = log_path.read_text().split("| Summary ")[1]
    assert "\nStatus: failed\n" in summary and "\nFail-Stage: build\n" in summary
    assert not out.exists() or list(out.iterdir()) == []
    # nothing of the build is left behind
    assert not [p for p in (test_config.vardir / "builds").iterdir()
                if p.is_dir() and not (p / ".preserved").exists()
                and not (test_config.vardir / "builds" / f"{p.name}.lock").exists()]


def test_unsatisfiable_build_depends_name_the_package(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src",
                     build_depends="guestpkg-no-such-package, debhelper (>= 999)")
    out = tmp_path / "out"
    with pytest.raises(UnsatisfiableBuildDepends) as error:
        build_package(test_config, tree, out, BuildOptions(tee=False))
    message = error.value.message
    assert "guestpkg-no-such-package: it is not installable" in message
    assert "debhelper (>= 999)" in message
    assert not out.exists()


@pytest.mark.parametrize("field", ["Build-Depends", "Build-Conflicts-Arch"])
def test_hostile_build_relation_is_refused_before_apt(
        test_config: Config, base_root: BaseRoot, tmp_path: Path, field: str) -> None:
    """An entry spelled as an apt option never reaches apt: the build stops at
    debian/control:line, before any sandbox runs, and leaves nothing in OUTPUT_DIR."""
    hostile = "-oDPkg::Pre-Invoke::=touch /build/pwned,\n --option=APT::Get::Simulate=0"
    tree = make_tiny(tmp_path / "src", build_depends=(
        hostile if field == "Build-Depends" else f"hello\n{field}: {hostile}"))
    out = tmp_path / "out"
    result = guestpkg(test_config, "build", "--quiet-build", str(tree), str(out))
    assert result.returncode == 3, result.stderr
    first = result.stderr.splitlines()[0]
    line = 3 if field == "Build-Depends" else 4
    # the user's file, not the staged copy
    assert f"{tree}/debian/control:{line}: {field}:" in first, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_build_cannot_rewrite_the_log_and_a_huge_line_is_bounded(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    """As the build user: truncate(STDOUT, 0) leaves guestpkg's earlier lines, and a
    200 MB line without a newline takes a bounded part of the log."""
    tree = make_tiny(tmp_path / "src", build=(
        "perl -e 'truncate(STDOUT, 0) or print qq(truncate refused\\n)'; "
        "perl -e 'print q(z) x 200000000'"))
    result = build_package(test_config, tree, tmp_path / "out", BuildOptions(tee=False))
    text = result.log_path.read_text()
    # the log still starts with sbuild's header and guestpkg's first step
    assert text.splitlines()[0].startswith("guestpkg ") and "| tiny 1.0 (" in text[:400]
    assert any(line.startswith("guestpkg: == guestpkg") for line in text.splitlines()[:30])
    assert "truncate refused" in text
    # make's next line follows the z's on the same line: more than 200 MB - 64 KiB cut
    cut = re.search(r"\[guestpkg: (\d+) more bytes of this line cut\]", text)
    assert cut is not None and int(cut.group(1)) >= 200_000_000 - 65536
    assert result.log_path.stat().st_size < 1 << 20


def test_a_deb_planted_as_a_symlink_is_not_collected(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    """debian/rules replaces its .deb with a symlink to a host path: dpkg-genchanges
    lists it (it read the sandbox's file), guestpkg refuses to copy it, in one line,
    and OUTPUT_DIR gets nothing."""
    tree = make_tiny(tmp_path / "src")
    rules = tree / "debian" / "rules"
    rules.write_text(rules.read_text() + "\tln -sf /etc/hostname ../tiny_1.0_all.deb\n")
    out = tmp_path / "out"
    result = guestpkg(test_config, "build", "--quiet-build", str(tree), str(out))
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "tiny_1.0_all.deb is a symbolic link" in errors[0], \
        result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def make_setuid_tiny(parent: Path) -> Path:
    """tiny whose debian/rules swaps its .deb for a hand-made one: a setuid root
    /usr/bin/tiny and a device node, which the build user could never chmod or
    mknod, but can describe in a data archive."""
    tree = make_tiny(parent)
    write_deb(tree / "debian" / "evil.deb",
              "Package: tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@x.org>\n"
              "Description: evil\n",
              [tar_entry("./usr/", "dir", mode=0o755), tar_entry("./usr/bin/", "dir", mode=0o755),
               tar_entry("./usr/bin/tiny", mode=0o4755, content=b"#!/bin/sh\n"),
               tar_entry("./usr/bin/kmem", "char", mode=0o666)])
    rules = tree / "debian" / "rules"
    rules.write_text(rules.read_text() + "\tcp debian/evil.deb ../tiny_1.0_all.deb\n")
    return tree


def test_a_setuid_deb_is_a_warning_and_refuse_setuid_an_error(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_setuid_tiny(tmp_path / "src")
    out = tmp_path / "out"
    warned = guestpkg(test_config, "build", "--quiet-build", str(tree), str(out))
    assert warned.returncode == 0, warned.stderr
    assert "WARNING: tiny_1.0_all.deb: /usr/bin/tiny: setuid (mode 4755, uid 0)" \
        in warned.stderr
    assert "/usr/bin/kmem: a char device node" in warned.stderr
    assert (out / "tiny_1.0_all.deb").is_file()

    refused_out = tmp_path / "refused"
    refused = guestpkg(test_config, "build", "--quiet-build", "--refuse-setuid", str(tree),
                       str(refused_out))
    assert refused.returncode == 3, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert errors == ["guestpkg: error: tiny_1.0_all.deb: /usr/bin/tiny: setuid (mode 4755, "
                      "uid 0) (and 2 more): the .deb would install it as root"], refused.stderr
    assert not refused_out.exists() or list(refused_out.iterdir()) == []


def test_host_builds_refuse_what_the_manifest_does_not_declare(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    """The host lifecycle's options: refused whatever the config says; a declared
    setuid path passes, a device node never does."""
    tree = make_setuid_tiny(tmp_path / "src")
    options = BuildOptions(tee=False, refuse_findings=True,
                           declared=frozenset({"/usr/bin/tiny", "/usr/bin/kmem"}))
    with pytest.raises(UnsafeArchive) as error:
        build_package(test_config, tree, tmp_path / "out", options)
    assert error.value.message.startswith("tiny_1.0_all.deb: /usr/bin/kmem: a char device")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_prepare_source_hook_and_user(test_config: Config, base_root: BaseRoot,
                                      tmp_path: Path) -> None:
    """The host lifecycle's use: version ~local and the host in Depends."""
    tree = make_tiny(tmp_path / "src")

    def prepare(staged: Path) -> None:
        changelog = staged / "debian" / "changelog"
        changelog.write_text(changelog.read_text().replace("(1.0)", "(1.0~local)", 1))
        control = staged / "debian" / "control"
        control.write_text(control.read_text().replace(
            "Architecture: all\n", "Architecture: all\nDepends: tiny-installer\n"))

    result = build_package(test_config, tree, tmp_path / "out",
                           BuildOptions(tee=False, prepare_source=prepare))
    deb = tmp_path / "out" / "tiny_1.0~local_all.deb"
    assert deb in result.artifacts and result.version == "1.0~local"
    assert result.log_path.name == "tiny_1.0~local_amd64.build"
    assert deb_field(deb, "Depends") == "tiny-installer"
    assert extract(deb, "usr/share/tiny/uid", tmp_path) == str(base_root.build_uid)
    assert "(1.0)" in (tree / "debian" / "changelog").read_text()  # caller's tree untouched


def deb_field(path: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(path), field], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_faketime_freezes_the_clock_at_the_changelog_date(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    build_package(test_config.replace(faketime=True), tree, tmp_path / "out",
                  BuildOptions(tee=False))
    clock = extract(tmp_path / "out" / "tiny_1.0_all.deb", "usr/share/tiny/clock", tmp_path)
    assert int(clock) == EPOCH


def test_preserve_on_error_keeps_the_build_directory(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src", build="touch made-by-build; exit 1")
    with pytest.raises(BuildFailed):
        build_package(test_config, tree, tmp_path / "out",
                      BuildOptions(tee=False, preserve="on-error"))
    kept = [p for p in (test_config.vardir / "builds").iterdir()
            if (p / ".preserved").exists() and (p / "build/tiny-1.0/made-by-build").exists()]
    assert kept
    for path in kept:
        subprocess.run(["rm", "-rf", str(path), f"{path}.lock"], check=True)


def test_cli_build_and_cache_list(test_config: Config, base_root: BaseRoot,
                                  tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    result = guestpkg(test_config, "build", "--quiet-build", str(tree))
    assert result.returncode == 0, result.stderr
    # deckdebuild's default OUTPUT_DIR: the directory above the source tree
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == [
        "tiny", "tiny_1.0_all.deb", "tiny_1.0_amd64.build", "tiny_1.0_amd64.buildinfo",
        "tiny_1.0_amd64.changes"]
    listing = guestpkg(test_config, "cache", "list")
    assert listing.returncode == 0, listing.stderr
    assert "KEY" in listing.stdout or "no build-dependency layers" in listing.stdout


@pytest.mark.parametrize("mode", [BuildMode.SOURCE, BuildMode.FULL])
def test_source_and_full_builds(test_config: Config, base_root: BaseRoot, tmp_path: Path,
                                mode: BuildMode) -> None:
    tree = make_tiny(tmp_path / "src")
    result = build_package(test_config, tree, tmp_path / "out",
                           BuildOptions(tee=False, mode=mode))
    names = {p.name for p in result.artifacts}
    assert {"tiny_1.0.dsc", "tiny_1.0.tar.xz"} <= names
    assert ("tiny_1.0_all.deb" in names) == (mode is BuildMode.FULL)
    assert result.changes is not None and result.changes.name == (
        "tiny_1.0_source.changes" if mode is BuildMode.SOURCE else "tiny_1.0_amd64.changes")


def _mounts_mentioning(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(path) in line]


@pytest.mark.parametrize("signame", ["SIGINT", "SIGKILL"])
def test_interrupted_build_leaves_nothing(test_config: Config, base_root: BaseRoot,
                                          tmp_path: Path, signame: str) -> None:
    """Ctrl-C or SIGKILL in the middle of dpkg-buildpackage: nothing stays mounted,
    OUTPUT_DIR gets nothing, and what SIGKILL left is reaped by the next build."""
    marker = f"started-{tmp_path.name}"
    tree = make_tiny(tmp_path / "src", build=f"touch /build/{marker}; sleep 120")
    out = tmp_path / "out"
    env = {**os.environ, "GUESTPKG_VARDIR": str(test_config.vardir),
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "guestpkg", "build", "--quiet-build",
                             str(tree), str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    builds = test_config.vardir / "builds"
    deadline = time.monotonic() + 120
    while not list(builds.glob(f"*/build/{marker}")):
        assert proc.poll() is None, "the build ended before it started"
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.2)
    [work] = [p.parent.parent for p in builds.glob(f"*/build/{marker}")]
    os.kill(proc.pid, getattr(signal, signame))
    proc.wait(timeout=60)
    assert proc.returncode != 0
    time.sleep(0.5)  # the sandbox's processes die with their parent (PR_SET_PDEATHSIG)
    assert _mounts_mentioning(test_config.vardir) == []
    assert not out.exists() or list(out.iterdir()) == []
    assert not subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout
    if signame == "SIGINT":
        assert not work.exists()  # cleaned up on the way out
    else:
        # The next build reaps the directory the killed one left (its lock is free).
        build_package(test_config, make_tiny(tmp_path / "again"), tmp_path / "out2",
                      BuildOptions(tee=False))
        assert not work.exists()


def test_missing_build_user_is_created(test_config: Config, base_root: BaseRoot,
                                       tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    result = build_package(test_config.replace(user="builder2"), tree, tmp_path / "out",
                           BuildOptions(tee=False))
    log = result.log_path.read_text()
    assert "creating build user builder2 in the fork" in log
    uid = extract(tmp_path / "out" / "tiny_1.0_all.deb", "usr/share/tiny/uid", tmp_path)
    assert int(uid) >= 1000 and int(uid) != base_root.build_uid  # 1234 is "build"'s
    assert f"build user builder2: uid {uid}" in log


def test_external_resolver_network_and_timeout(test_config: Config, base_root: BaseRoot,
                                               tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    resolver = "sh -c 'echo external resolver given $0; test -f $0'"
    result = build_package(test_config.replace(satisfydepends_cmd=resolver, network=True),
                           tree, tmp_path / "out", BuildOptions(tee=False))
    log = result.log_path.read_text()
    assert "external resolver given /build/tiny-1.0/debian/control" in log
    assert "NETWORK ACCESS" in log
    slow = make_tiny(tmp_path / "slow", build="sleep 60")
    with pytest.raises(BuildFailed) as error:
        build_package(test_config.replace(timeout=3.0), slow, tmp_path / "out-slow",
                      BuildOptions(tee=False))
    assert "timed out" in error.value.message


def test_concurrent_builds_share_one_new_layer(test_config: Config, base_root: BaseRoot,
                                               tmp_path: Path) -> None:
    """Two builds needing the same not-yet-cached layer at once: one makes it, the
    other waits on its lock and stacks it."""
    from guestpkg.build import layers
    from guestpkg.debian.control import build_relations, parse_control

    # Make this request cold: drop its cached resolution and its layer.
    control = parse_control(CONTROL.format(build_depends="hello"))
    request = build_relations(control, BuildMode.BINARY, base_root.arch).canonical()
    actions = layers.cached_resolution(test_config, base_root.generation, request)
    if actions:
        layer = layers.read_layer(test_config, layers.layer_key(base_root.generation, actions))
        if layer is not None:
            assert layers.remove_layer(test_config, layer), "another build holds it"
    key = layers.resolution_key(base_root.generation, request)
    (layers.layers_dir(test_config) / "resolved" / f"{key}.json").unlink(missing_ok=True)
    env = {**os.environ, "GUESTPKG_VARDIR": str(test_config.vardir),
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO)}
    procs = []
    for name in ("one", "two"):
        tree = make_tiny(tmp_path / name, build_depends="hello")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "guestpkg", "build", str(tree), str(tmp_path / f"out-{name}")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    made = [out for out in outputs if "into new layer" in out]
    assert len(made) == 1, outputs
    [other] = [out for out in outputs if out is not made[0]]
    assert ("made by a concurrent build" in other
            or "using cached build-dependency layer" in other)


def test_preserve_always_keeps_the_fork_writes(test_config: Config, base_root: BaseRoot,
                                               tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src", build="mkdir -p /tmp/kept-by-fork && touch "
                     f"/tmp/kept-by-fork/{tmp_path.name}")
    result = build_package(test_config, tree, tmp_path / "out",
                           BuildOptions(tee=False, preserve="always"))
    assert (tmp_path / "out" / "tiny_1.0_all.deb") in result.artifacts
    kept = [p for p in (test_config.vardir / "builds").iterdir()
            if (p / "fork-upper" / "tmp" / "kept-by-fork" / tmp_path.name).exists()]
    assert len(kept) == 1 and (kept[0] / ".preserved").exists()
    assert (kept[0] / "build" / "tiny-1.0" / "debian" / "rules").exists()
    subprocess.run(["rm", "-rf", str(kept[0]), f"{kept[0]}.lock"], check=True)


def test_escape_sequences_in_build_output_never_reach_the_terminal_raw(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    """The build's output teed to the console, and its last lines in the error, are
    escaped (guestpkg.text); the .build log keeps the bytes as written."""
    tree = make_tiny(tmp_path / "src",
                     build=r"@printf '\033]0;owned\007 building \033[2J\n'; exit 1")
    result = guestpkg(test_config, "build", str(tree), str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    # once teed while building, once among the last lines of output
    assert result.stderr.count("\\x1b]0;owned\\x07 building \\x1b[2J") == 2
    log_line = next(line for line in result.stderr.splitlines() if "the full log is" in line)
    log_path = Path(log_line.split("the full log is ")[1].strip())
    assert "\x1b]0;owned\x07 building" in log_path.read_text()
