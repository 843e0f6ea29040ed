# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build without root: apt output parsing, cache keys, artifact naming and
collection, the build's argv and environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.build import artifacts, layers
from guestpkg.build.deb import (
    build_env,
    dpkg_buildpackage_argv,
    extra_build_packages,
    faketime_prefix,
    lookup_user,
)
from guestpkg.build.source import SourceInfo, read_source, settle
from guestpkg.config import Config
from guestpkg.debian.changelog import parse_changelog
from guestpkg.debian.control import BuildMode, parse_control
from guestpkg.errors import InputError, ParseError

SIMULATION = """\
NOTE: This is only a simulation!
Reading package lists...
The following NEW packages will be installed:
  help2man libtext-unidecode-perl
Inst help2man (1.49.3 Debian:12.15/oldstable [amd64])
Inst libtext-unidecode-perl (1.30-3 Debian:12.15/oldstable [all])
Inst libc6 [2.36-9] (2.36-9+deb12u1 Debian-Security:12/stable-security [amd64]) []
Remv nano [7.2-1]
Conf help2man (1.49.3 Debian:12.15/oldstable [amd64])
"""

UNMET = """\
Some packages could not be installed. This may mean that you have
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 satisfy:command-line : Depends: nonexistent-pkg-xyz but it is not installable
                        Depends: debhelper (>= 99) but 13.11.4 is to be installed
 texinfo : Depends: libfoo (>= 2) but it is not going to be installed
E: Unable to correct problems, you have held broken packages.
"""


def test_parse_simulation() -> None:
    assert layers.parse_simulation(SIMULATION) == [
        "-nano",
        "help2man:amd64=1.49.3",
        "libc6:amd64=2.36-9+deb12u1",
        "libtext-unidecode-perl:all=1.30-3",
    ]
    assert layers.parse_simulation("Reading package lists...\n") == []
    # A cross build's dummy is of the host architecture, and apt names it so: it is
    # the request, not a package of the layer (it was recorded as one, and then no
    # cross layer could ever be the subset of another).
    cross = ("Inst guestpkg-tool (1.0 localhost [amd64])\n"
             "Inst guestpkg-build-deps:arm64 (1 local-deb [arm64])\n"
             "Conf guestpkg-build-deps:arm64 (1 local-deb [arm64])\n")
    assert layers.parse_simulation(cross) == ["guestpkg-tool:amd64=1.0"]


def test_dummy_entries_of_older_resolutions_are_not_packages() -> None:
    """Resolutions and layers cached before hold the cross dummy as
    ``guestpkg-build-deps:arm64:arm64=1``: kept in their keys (so their layers stay
    valid), left out wherever packages are compared or downloaded."""
    old = ["guestpkg-build-deps:arm64:arm64=1", "libc6:arm64=2.36-9"]
    assert layers.packages_of(old) == {"libc6:arm64=2.36-9"}


def test_parse_unmet_names_package_and_reason() -> None:
    unmet = layers.parse_unmet(UNMET)
    assert unmet == [
        layers.Unmet("nonexistent-pkg-xyz", "it is not installable", "build-dependencies"),
        layers.Unmet("debhelper (>= 99)", "13.11.4 is to be installed", "build-dependencies"),
        layers.Unmet("libfoo (>= 2)", "it is not going to be installed", "texinfo"),
    ]
    error = layers.UnsatisfiableBuildDepends(unmet, layers.apt_errors(UNMET), Path("/x.build"))
    assert "nonexistent-pkg-xyz: it is not installable" in error.message
    assert "(needed by texinfo)" in error.message
    assert error.hint and "/x.build" in error.hint
    assert layers.apt_errors(UNMET) == [
        "Unable to correct problems, you have held broken packages."]


def test_keys_depend_on_generation_and_exact_set() -> None:
    a = layers.layer_key("gen1", ["b:all=1", "a:amd64=2"])
    assert a == layers.layer_key("gen1", ["a:amd64=2", "b:all=1"])  # order-free
    assert a != layers.layer_key("gen2", ["a:amd64=2", "b:all=1"])
    assert a != layers.layer_key("gen1", ["a:amd64=3", "b:all=1"])
    assert len(a) == 32
    r = layers.resolution_key("gen1", "Depends: a\nConflicts: \n")
    assert r != layers.resolution_key("gen2", "Depends: a\nConflicts: \n")
    assert r != layers.resolution_key("gen1", "Depends: b\nConflicts: \n")


def test_resolution_cache_roundtrip(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    assert layers.cached_resolution(config, "g", "req") is None
    layers.store_resolution(config, "g", "req", ["a:all=1"])
    assert layers.cached_resolution(config, "g", "req") == ["a:all=1"]
    assert layers.cached_resolution(config, "h", "req") is None
    assert layers.prune_resolutions(config, {"g"}) == 0
    assert layers.prune_resolutions(config, {"other"}) == 1
    assert layers.cached_resolution(config, "g", "req") is None


def test_layer_store_create_use_remove(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    key = "0" * 32
    with layers.use_layer(config, key) as missing:
        assert missing is None
    with layers.creating_layer(config, key) as tmp:
        assert tmp is not None and tmp.name.startswith(".tmp-")
        (tmp / "tree" / "usr").mkdir(parents=True)
        layers.write_layer_metadata(tmp, layers.LayerMetadata(
            key=key, base="default", generation="g", packages=("a:all=1",), request="a",
            created=0.0))
    with layers.creating_layer(config, key) as again:
        assert again is None  # made already: nothing to do
    [layer] = layers.list_layers(config)
    assert layer.key == key and layer.packages == ["a:all=1"] and layer.tree.is_dir()
    with layers.use_layer(config, key) as used:
        assert used is not None
        assert not layers.remove_layer(config, layer)  # in use: kept
    assert layers.remove_layer(config, layer)
    assert layers.list_layers(config) == []


def test_failed_layer_creation_leaves_nothing(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    with pytest.raises(RuntimeError), layers.creating_layer(config, "1" * 32) as tmp:
        assert tmp is not None
        (tmp / "tree").mkdir()  # no layer.json: refused
    assert [p.name for p in layers.layers_dir(config).iterdir()] == ["1" * 32 + ".lock"]


def test_artifact_names() -> None:
    assert artifacts.build_log_name("hello", "1:2.10-3", "amd64") == "hello_2.10-3_amd64.build"
    assert artifacts.changes_name("hello", "2.10-3", "source") == "hello_2.10-3_source.changes"


CHANGES = """\
Format: 1.8
Source: demo
Version: 1.0-1
Files:
 0123 10 misc optional demo_1.0-1_amd64.deb
 4567 20 misc optional demo_1.0-1_amd64.buildinfo
"""


def test_changes_files_and_collect(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "demo_1.0-1_amd64.changes").write_text(CHANGES)
    (build / "demo_1.0-1_amd64.deb").write_bytes(b"deb")
    (build / "demo_1.0-1_amd64.buildinfo").write_text("info")
    changes = artifacts.find_changes(build, "demo", "1.0-1")
    names = artifacts.changes_files(changes)
    assert names == ["demo_1.0-1_amd64.deb", "demo_1.0-1_amd64.buildinfo"]
    out = tmp_path / "out"
    done = artifacts.collect([*(build / n for n in names), changes], out)
    assert [p.name for p in done] == [*names, changes.name]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in done)
    assert (out / "demo_1.0-1_amd64.deb").read_bytes() == b"deb"


def test_collect_all_or_nothing(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "a.deb").write_bytes(b"a")
    os.symlink("/etc/passwd", build / "b.deb")  # planted by a hostile build
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"b\.deb is a symbolic link"):
        artifacts.collect([build / "a.deb", build / "b.deb"], out)
    assert list(out.iterdir()) == []
    (build / "c").mkdir()
    with pytest.raises(InputError):
        artifacts.collect([build / "a.deb", build / "c"], out)
    assert list(out.iterdir()) == []


def test_changes_with_hostile_names(tmp_path: Path) -> None:
    bad = tmp_path / "x.changes"
    bad.write_text(CHANGES.replace("demo_1.0-1_amd64.deb", "../../etc/passwd"))
    with pytest.raises(ParseError):
        artifacts.changes_files(bad)


CHANGELOG = """\
demo (2:1.0-1) unstable; urgency=medium

  * x

 -- A B <a@example.org>  Thu, 01 Jan 2015 00:00:00 +0000
"""


def _info(rrr: str = "no") -> SourceInfo:
    control = parse_control(f"Source: demo\nBuild-Depends: debhelper-compat (= 13)\n"
                            f"Rules-Requires-Root: {rrr}\n\nPackage: demo\nArchitecture: any\n")
    return SourceInfo(parse_changelog(CHANGELOG), control)


def test_dpkg_buildpackage_argv_follows_rules_requires_root() -> None:
    assert dpkg_buildpackage_argv(_info("no"), BuildMode.BINARY, faketime=False) == [
        "dpkg-buildpackage", "-us", "-uc", "-b"]
    assert dpkg_buildpackage_argv(_info("binary-targets"), BuildMode.ARCH_ONLY,
                                  faketime=False, profiles=["nocheck"]) == [
        "dpkg-buildpackage", "-us", "-uc", "-B", "-rfakeroot", "-Pnocheck"]
    assert dpkg_buildpackage_argv(_info("no"), BuildMode.FULL, faketime=True) == [
        "faketime", "-f", "2015-01-01 00:00:00", "dpkg-buildpackage", "-us", "-uc"]
    assert faketime_prefix(1420070400) == ["faketime", "-f", "2015-01-01 00:00:00"]


def test_extra_packages_and_env() -> None:
    config = Config.defaults(jobs=3)
    assert extra_build_packages(_info("no"), config) == []
    assert extra_build_packages(_info("binary-targets"), config.replace(faketime=True)) == [
        "fakeroot", "faketime"]
    env = build_env(config, {"DEB_BUILD_OPTIONS": "nocheck"}, user="build", epoch=5,
                    profiles=["nocheck"])
    assert env["SOURCE_DATE_EPOCH"] == "5" and env["TZ"] == "UTC"
    assert env["LC_ALL"] == env["LANG"] == "C.UTF-8"
    assert env["DEB_BUILD_OPTIONS"] == "nocheck"  # the caller's wins
    assert env["DEB_BUILD_PROFILES"] == "nocheck"
    assert build_env(config, {}, user="build")["DEB_BUILD_OPTIONS"] == "parallel=3"


def test_lookup_user_topmost_passwd_wins(tmp_path: Path) -> None:
    low, high, empty = tmp_path / "low", tmp_path / "high", tmp_path / "empty"
    for tree, uid in ((low, 1234), (high, 2000)):
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n"
                                             f"build:x:{uid}:{uid}::/home/build:/bin/sh\n")
    empty.mkdir()
    assert lookup_user([empty, low], "build") == (1234, 1234)
    assert lookup_user([high, low], "build") == (2000, 2000)
    assert lookup_user([low], "nobody-here") is None


def test_read_source_and_settle(tmp_path: Path) -> None:
    staged = tmp_path / "source"
    (staged / "debian").mkdir(parents=True)
    (staged / "debian" / "changelog").write_text(CHANGELOG)
    (staged / "debian" / "control").write_text("Source: demo\n\nPackage: demo\n"
                                               "Architecture: all\n")
    info = read_source(staged)
    assert info.directory_name == "demo-1.0" and info.version == "2:1.0-1"
    assert settle(staged, info) == tmp_path / "demo-1.0"
    (tmp_path / "demo-1.0" / "debian" / "control").write_text("Source: other\n")
    with pytest.raises(InputError):
        read_source(tmp_path / "demo-1.0")


def test_cache_command_list_and_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from guestpkg.commands import cache

    config = Config.defaults(vardir=tmp_path)
    for key, generation in (("a" * 32, "gone-1"), ("b" * 32, "gone-2")):
        with layers.creating_layer(config, key) as tmp:
            assert tmp is not None
            (tmp / "tree").mkdir()
            layers.write_layer_metadata(tmp, layers.LayerMetadata(
                key=key, base="default", generation=generation, packages=("x:all=1",),
                request="x", created=0.0))
    layers.store_resolution(config, "gone-1", "req", ["x:all=1"])
    assert cache.run(config, argparse.Namespace(action="list", all=False)) == 0
    listing = capsys.readouterr().out
    assert "a" * 32 in listing and "stale" in listing
    # No buildroot lists either generation: both layers are stale, and one is in use.
    with layers.use_layer(config, "b" * 32):
        assert cache.run(config, argparse.Namespace(action="clean", all=False)) == 0
    out = capsys.readouterr().out
    assert "removed 1 layer(s), 1 in use, 1 cached resolution(s)" in out
    assert [layer.key for layer in layers.list_layers(config)] == ["b" * 32]
    assert cache.run(config, argparse.Namespace(action="clean", all=True)) == 0
    assert layers.list_layers(config) == []


def test_symlinked_debian_metadata_is_refused(tmp_path: Path) -> None:
    from guestpkg.build.source import refuse_symlinked_metadata

    (tmp_path / "debian").mkdir()
    (tmp_path / "debian" / "control").write_text("Source: x\n")
    refuse_symlinked_metadata(tmp_path)
    os.symlink("/etc/passwd", tmp_path / "debian" / "changelog")
    with pytest.raises(InputError):
        refuse_symlinked_metadata(tmp_path)


@pytest.mark.parametrize("preserve", ["never", "on-error"])
def test_a_failed_build_leaves_no_lock(tmp_path: Path, preserve: str) -> None:
    from guestpkg import config
    from guestpkg.build.deb import build_directory

    cfg = config.load({"vardir": tmp_path / "var"}, {}, tmp_path / "etc")
    with pytest.raises(RuntimeError), build_directory(cfg, preserve) as directory:
        (directory / "build" / "x").write_text("x")
        raise RuntimeError("the build failed")
    top = tmp_path / "var" / "builds"
    assert not list(top.glob("*.lock")), list(top.iterdir())
    kept = [p for p in top.iterdir() if p.is_dir()]
    assert len(kept) == (preserve == "on-error")
    with build_directory(cfg, preserve):
        pass
    assert not list(top.glob("*.lock")), list(top.iterdir())
