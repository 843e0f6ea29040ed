# SPDX-License-Identifier: GPL-2.0-or-later
"""The cold path of guestpkg build: a build-dependency layer made from the shared
download cache (guestpkg.build.debcache), with dpkg's force-unsafe-io and without
manual pages, checked on real builds of lzip (debhelper, texinfo) from its bookworm
.dsc.

lzip's layer is removed first (its key is this guestpkg's), so the first build makes
it; it is removed again, so the second build makes it again: that second cold layer
must download nothing, and the .debs of the two builds must be the same.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path

import pytest

from guestpkg.build import debcache, layers
from guestpkg.build.deb import BuildOptions, BuildResult, build_package
from guestpkg.buildroot import BaseRoot
from guestpkg.commands import cache as cache_command
from guestpkg.config import Config
from tests.support import debsrc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET = BuildOptions(tee=False)


def debs(result: BuildResult) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in result.artifacts if p.name.endswith(".deb")}


def remove_layer_of(config: Config, key: str | None) -> None:
    """Remove layer *key*, waiting (up to 10 minutes) while another test's build
    holds it (test_build.py and test_build_versions.py build hello too)."""
    assert key is not None
    deadline = time.monotonic() + 600
    while (layer := layers.read_layer(config, key)) is not None:
        if layers.remove_layer(config, layer):
            return
        assert time.monotonic() < deadline, f"layer {key} stays in use"
        time.sleep(2)


def lzip_layer_keys(config: Config, base: BaseRoot) -> list[str]:
    return [layer.key for layer in layers.list_layers(config)
            if layer.generation == base.generation and layer.current_format
            and any(p.startswith("texinfo:") for p in layer.packages)
            and not any(p.startswith("help2man:") for p in layer.packages)]


@pytest.fixture(scope="module")
def lzip_twice(test_config: Config, base_root: BaseRoot,
               tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[BuildResult, BuildResult, list[str], Path]:
    """lzip built with a cold layer twice; the first layer's file names are kept."""
    dsc = debsrc.dsc_path("lzip")
    out = tmp_path_factory.mktemp("lzip")
    for key in lzip_layer_keys(test_config, base_root):
        remove_layer_of(test_config, key)
    first = build_package(test_config, dsc, out / "first", QUIET)
    layer = layers.read_layer(test_config, first.layer_key or "")
    assert layer is not None
    # Whiteouts (0/0 character devices: a base root's file that the layer deletes,
    # apt's pkgcache.bin of the base root where it has one) are no files of the layer.
    files = sorted(str(p.relative_to(layer.tree)) for p in layer.tree.rglob("*")
                   if not (stat.S_ISCHR(p.lstat().st_mode) and p.lstat().st_rdev == 0))
    remove_layer_of(test_config, first.layer_key)
    second = build_package(test_config, dsc, out / "second", QUIET)
    return first, second, files, out


def test_first_cold_layer_is_made_and_fills_the_download_cache(
        test_config: Config,
        lzip_twice: tuple[BuildResult, BuildResult, list[str], Path]) -> None:
    first, _, _, _ = lzip_twice
    assert not first.layer_cached
    log = first.log_path.read_text()
    assert "into new layer" in log
    layer = layers.read_layer(test_config, first.layer_key or "")
    assert layer is not None
    cached = {deb.path.name for deb in debcache.list_debs(test_config)}
    wanted = {name for name in map(debcache.deb_file_name, layer.packages) if name}
    assert wanted and wanted <= cached


def test_second_cold_layer_downloads_nothing(
        lzip_twice: tuple[BuildResult, BuildResult, list[str], Path]) -> None:
    first, second, _, _ = lzip_twice
    assert second.layer_key == first.layer_key and not second.layer_cached
    log = second.log_path.read_text()
    assert "into new layer" in log
    assert "0 of the .debs to fetch" in log
    assert "download only mode" not in log      # and no apt run with network for nothing
    # apt fetched nothing but the dummy package that carries the request
    assert [line for line in log.splitlines() if line.startswith("Get:")
            and "/build/guestpkg-build-deps_1_amd64.deb " not in line] == []
    assert "W: " not in log
    assert "Unpacking texinfo" in log   # but it did install
    assert debs(first) and debs(first) == debs(second)


def test_layer_has_no_manual_pages_nor_downloaded_debs(
        lzip_twice: tuple[BuildResult, BuildResult, list[str], Path]) -> None:
    _, _, files, _ = lzip_twice
    assert any(f.startswith("usr/share/doc/texinfo/") for f in files)   # docs stay
    assert any(f.startswith("usr/bin/makeinfo") or f == "usr/bin/texi2any" for f in files)
    assert not [f for f in files if f.startswith(("usr/share/man/", "usr/share/info/"))
                and not f.endswith("/")]
    assert not [f for f in files if f.startswith("var/cache/apt/archives/")
                and f.endswith(".deb")]
    assert "var/cache/apt/pkgcache.bin" not in files
    assert "var/cache/apt/srcpkgcache.bin" not in files
    assert "var/lib/man-db/auto-update" not in files
    assert "var/cache/guestpkg-debs" not in files and "build" not in files


def test_cache_list_and_clean_keep_what_current_layers_need(
        test_config: Config, capsys: pytest.CaptureFixture[str],
        lzip_twice: tuple[BuildResult, BuildResult, list[str], Path]) -> None:
    _, second, _, _ = lzip_twice
    stray = debcache.debs_dir(test_config) / "guestpkg-test-stray_1_all.deb"
    stray.write_bytes(b"not a deb")
    assert cache_command.run(test_config, argparse.Namespace(action="list", all=False)) == 0
    out = capsys.readouterr().out
    assert f"download cache {debcache.debs_dir(test_config)}: " in out
    assert second.layer_key is not None and second.layer_key in out
    cache_command.run(test_config, argparse.Namespace(action="clean", all=False))
    assert not os.path.lexists(stray)
    layer = layers.read_layer(test_config, second.layer_key)
    assert layer is not None        # current: kept, and so are its .debs
    cached = {deb.path.name for deb in debcache.list_debs(test_config)}
    assert {n for n in map(debcache.deb_file_name, layer.packages) if n} <= cached


# --- a layer made on a cached layer whose set is a subset ----------------------------

def hello_layer_keys(config: Config, base: BaseRoot) -> list[str]:
    return [layer.key for layer in layers.list_layers(config)
            if layer.generation == base.generation and layer.current_format
            and any(p.startswith("help2man:") for p in layer.packages)]


@pytest.fixture(scope="module")
def hello_over_lzip(test_config: Config, base_root: BaseRoot,
                    lzip_twice: tuple[BuildResult, BuildResult, list[str], Path]
                    ) -> tuple[BuildResult, BuildResult, layers.Layer, str, set[str], str]:
    """hello (debhelper, texinfo, help2man) built with its layer made on lzip's
    (debhelper, texinfo), then, both layers removed, with its layer made from the base
    root (the same key); returns both builds, the first layer, lzip's key, and the
    first layer's files and dpkg status, read before it was removed."""
    _, lzip, _, out = lzip_twice
    assert lzip.layer_key is not None
    for key in hello_layer_keys(test_config, base_root):
        remove_layer_of(test_config, key)
    dsc = debsrc.dsc_path("hello")
    over = build_package(test_config, dsc, out / "hello-over", QUIET)
    layer = layers.read_layer(test_config, over.layer_key or "")
    assert layer is not None
    files = {str(p.relative_to(layer.tree)) for p in layer.tree.rglob("*")}
    status = (layer.tree / "var/lib/dpkg/status").read_text()
    remove_layer_of(test_config, lzip.layer_key)     # and hello's, made on it
    assert layers.read_layer(test_config, over.layer_key or "") is None
    fresh = build_package(test_config, dsc, out / "hello-fresh", QUIET)
    return over, fresh, layer, lzip.layer_key, files, status


def test_layer_is_made_on_the_closest_subset_layer(
        hello_over_lzip: tuple[BuildResult, BuildResult, layers.Layer, str, set[str], str]
) -> None:
    over, _, layer, lzip_key, files, status = hello_over_lzip
    assert layer.metadata.parent == lzip_key
    log = over.log_path.read_text()
    assert f"into new layer {layer.key} on layer {lzip_key}" in log
    assert "Unpacking help2man" in log and "Unpacking texinfo" not in log
    # the tree is the difference: help2man's files, not texinfo's
    assert "usr/bin/help2man" in files and "usr/bin/texi2any" not in files
    # and dpkg's database in it knows both
    assert "\nPackage: help2man\n" in status and "\nPackage: texinfo\n" in status


def test_layer_on_a_subset_gives_the_same_debs_as_one_from_the_base_root(
        test_config: Config,
        hello_over_lzip: tuple[BuildResult, BuildResult, layers.Layer, str, set[str], str]
) -> None:
    over, fresh, layer, _, _, _ = hello_over_lzip
    assert fresh.layer_key == over.layer_key    # the same packages
    fresh_layer = layers.read_layer(test_config, fresh.layer_key or "")
    assert fresh_layer is not None and fresh_layer.metadata.parent == ""
    assert sorted(fresh_layer.packages) == sorted(layer.packages)
    assert "on layer" not in fresh.log_path.read_text()
    assert debs(over) and debs(over) == debs(fresh)
