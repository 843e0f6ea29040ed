# SPDX-License-Identifier: GPL-2.0-or-later
"""Layers made on layers (guestpkg.build.layers.closest_subset, use_layer's chain,
remove_layer's children) and the download cache's names, on layer directories written
here (no root, no apt)."""

from __future__ import annotations

from pathlib import Path

from guestpkg.build import debcache, layers
from guestpkg.config import Config


def make(config: Config, packages: list[str], parent: str = "", generation: str = "g",
         fmt: int = layers.LAYER_FORMAT) -> str:
    key = layers.layer_key(generation, packages)
    path = layers.layers_dir(config) / key
    (path / "tree").mkdir(parents=True)
    layers.write_layer_metadata(path, layers.LayerMetadata(
        key=key, base="default", generation=generation, packages=tuple(packages),
        request="", created=0.0, format=fmt, parent=parent))
    return key


def test_closest_subset_is_the_largest_proper_subset(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    small = make(config, ["a:all=1"])
    big = make(config, ["a:all=1", "b:all=1"])
    make(config, ["a:all=1", "c:all=1"])                     # not a subset
    make(config, ["a:all=1", "b:all=1", "d:all=1"], generation="old")
    make(config, ["a:all=1", "b:all=1", "e:all=1"], fmt=1)   # made the old way
    want = ["a:all=1", "b:all=1", "d:all=1", "e:all=1"]
    found = layers.closest_subset(config, "g", want)
    assert found is not None and found.key == big and small != big
    assert layers.closest_subset(config, "g", ["a:all=1"]) is None   # equal is not proper
    assert layers.closest_subset(config, "g", ["z:all=1"]) is None


def test_chains_are_stacked_whole_and_never_too_deep(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    chain = [make(config, ["p0:all=1"])]
    for n in range(1, layers.MAX_CHAIN + 1):
        chain.append(make(config, [f"p{i}:all=1" for i in range(n + 1)], parent=chain[-1]))
    with layers.use_layer(config, chain[2]) as layer:
        assert layer is not None
        assert layer.trees == [layers.layers_dir(config) / k / "tree"
                               for k in (chain[2], chain[1], chain[0])]
    # the deepest may not grow further: the closest allowed subset is shallower
    everything = [f"p{i}:all=1" for i in range(layers.MAX_CHAIN + 3)]
    found = layers.closest_subset(config, "g", everything)
    assert found is not None and found.key == chain[layers.MAX_CHAIN - 2]


def test_a_broken_chain_is_not_used_and_removal_takes_the_children(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    parent = make(config, ["a:all=1"])
    child = make(config, ["a:all=1", "b:all=1"], parent=parent)
    grandchild = make(config, ["a:all=1", "b:all=1", "c:all=1"], parent=child)
    layer = layers.read_layer(config, parent)
    assert layer is not None and layers.remove_layer(config, layer)
    assert layers.list_layers(config) == []
    orphan = make(config, ["x:all=1"], parent=grandchild)    # its parent is gone
    with layers.use_layer(config, orphan) as used:
        assert used is None
    assert layers.closest_subset(config, "g", ["x:all=1", "y:all=1"]) is None


def test_deb_file_names_are_apts() -> None:
    assert debcache.deb_file_name("automake:all=1:1.16.5-1.3") == \
        "automake_1%3a1.16.5-1.3_all.deb"
    assert debcache.deb_file_name("libc6:amd64=2.36-9") == "libc6_2.36-9_amd64.deb"
    assert debcache.deb_file_name("-foo") is None


def test_subset_layers_only_of_the_same_variant(tmp_path: Path) -> None:
    """A layer made with extra sources or for another host architecture is never the
    base of a layer without them (its dpkg database and its packages' origin differ),
    nor the other way round unless asked for (the next test)."""
    config = Config.defaults(vardir=tmp_path)
    key = layers.layer_key("g", ["a:all=1"], "extras")
    path = layers.layers_dir(config) / key
    (path / "tree").mkdir(parents=True)
    layers.write_layer_metadata(path, layers.LayerMetadata(
        key=key, base="default", generation="g", packages=("a:all=1",), request="",
        created=0.0, variant="extras"))
    plain = make(config, ["b:all=1"])
    want = ["a:all=1", "b:all=1", "c:all=1"]
    found = layers.closest_subset(config, "g", want, "extras")
    assert found is not None and found.key == key
    found = layers.closest_subset(config, "g", want)
    assert found is not None and found.key == plain
    assert layers.closest_subset(config, "g", want, "other") is None


def test_cache_clean_prunes_foreign_lists_of_dead_generations(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    top = layers.layers_dir(config) / "lists"
    for name in ("20260101T000000Z-aaaaaaaa-arm64", "20260102T000000Z-bbbbbbbb-arm64",
                 "20260102T000000Z-bbbbbbbb-musl-linux-arm64"):
        (top / name / "lists").mkdir(parents=True)
    assert layers.prune_resolutions(config, {"20260102T000000Z-bbbbbbbb"}) == 1
    assert sorted(p.name for p in top.iterdir() if p.is_dir()) == [
        "20260102T000000Z-bbbbbbbb-arm64", "20260102T000000Z-bbbbbbbb-musl-linux-arm64"]
    assert layers.prune_resolutions(config, None) == 2


def test_an_extra_package_layer_grows_on_a_layer_without_it(tmp_path: Path) -> None:
    """A build with --extra-package (no repository) may make its layer on a layer of
    the same build without extras (the base variant: "" or the plain --host-arch one),
    whose packages all came from the root's own sources, unless one of them has the
    name of an extra package (apt could have taken the extra one instead)."""
    config = Config.defaults(vardir=tmp_path)
    plain = make(config, ["a:all=1", "b:all=1"])
    want = ["a:all=1", "b:all=1", "x:all=1"]
    found = layers.closest_subset(config, "g", want, "extras", base_variant="",
                                  excluded_names=frozenset({"x"}))
    assert found is not None and found.key == plain
    assert layers.closest_subset(config, "g", want, "extras", base_variant="",
                                 excluded_names=frozenset({"x", "b"})) is None
    assert layers.closest_subset(config, "g", want, "extras") is None
    # ... and its child, of the extras' variant, grows further over the same chain.
    child_key = layers.layer_key("g", want, "extras")
    path = layers.layers_dir(config) / child_key
    (path / "tree").mkdir(parents=True)
    layers.write_layer_metadata(path, layers.LayerMetadata(
        key=child_key, base="default", generation="g", packages=tuple(want), request="",
        created=0.0, parent=plain, variant="extras"))
    found = layers.closest_subset(config, "g", [*want, "y:all=1"], "extras", base_variant="",
                                  excluded_names=frozenset({"x"}))
    assert found is not None and found.key == child_key


def test_older_cross_layers_with_the_dummy_entry_are_subsets(tmp_path: Path) -> None:
    config = Config.defaults(vardir=tmp_path)
    old = make(config, ["guestpkg-build-deps:arm64:arm64=1", "libc6:arm64:arm64=2.36-9"])
    found = layers.closest_subset(config, "g", ["libc6:arm64:arm64=2.36-9", "x:all=1"])
    assert found is not None and found.key == old
    assert debcache.deb_file_name("libc6:arm64:arm64=2.36-9") == "libc6_2.36-9_arm64.deb"
