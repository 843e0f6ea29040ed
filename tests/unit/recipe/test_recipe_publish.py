# SPDX-License-Identifier: GPL-2.0-or-later
"""``recipe build --sign``: adding results to a repository's signature archive keeps
every signature already there, whoever made it (guestpkg.recipe.publish)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.dcfpkg import Metadata, write_dcfpkg
from guestpkg.dcfpkg.keys import (
    ANY,
    LevelLog,
    PublicKey,
    SecretKey,
    generate,
    key_id,
    store_key,
)
from guestpkg.dcfpkg.reader import ReaderPolicy, read_metadata
from guestpkg.dcfpkg.sigdb import Archive, sign
from guestpkg.dcfpkg.trust import DEFAULT_POLICY, Policy, TrustSettings, TrustStore
from guestpkg.errors import TrustError
from guestpkg.recipe.publish import sign_results
from tests.support.dcfpkg_craft import sha

DAY = 86400
NOW = 1_800_000_000


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore(tmp_path / "trust", TrustSettings(Policy.parse(DEFAULT_POLICY),
                                                        promotion_s=30 * DAY))


def add_key(store: TrustStore, level: str) -> SecretKey:
    secret = generate()
    store_key(store.trustdir, PublicKey(secret.key_id, secret.public_key), level)
    LevelLog(store.trustdir).append(NOW - 100 * DAY, ("add", secret.key_id, level, ANY, ANY,
                                                       "-"))
    return secret


def package(tmp: Path, name: str) -> Path:
    tree = tmp / f"tree-{name}"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin" / name).write_text(f"{name}\n")
    out = tmp / f"{name}_1.0-1_amd64.dcfpkg"
    write_dcfpkg(tree, Metadata(package=name, version="1.0", release="1",
                                architecture="amd64", build_date=1700000000), out)
    return out


def publish(store: TrustStore, tmp: Path, version: int,
            *signed: tuple[SecretKey, Path]) -> Path:
    """An archive as a distributor publishes it, imported with guestpkg trust import."""
    sigs = []
    for key, path in signed:
        with open(path, "rb") as f:
            meta = read_metadata(f, str(path))
        data = path.read_bytes()
        sigs.append(sign(key, meta, len(data), sha(data), "recipes", version,
                         NOW + 365 * DAY))
    archive = tmp / f"recipes-{version}.sigs"
    archive.write_bytes(Archive("recipes", version, tuple(sigs)).to_bytes())
    store.import_archive(archive, NOW)
    return archive


def signers(store: TrustStore, path: Path) -> set[str]:
    return {key for key, _ in store.verify_package(path, "recipes", NOW).signers}


def test_signing_keeps_the_signatures_other_keys_made(store: TrustStore,
                                                      tmp_path: Path) -> None:
    distributor, local = add_key(store, "trusted"), add_key(store, "trusted")
    zlib, sed = package(tmp_path, "zlib"), package(tmp_path, "sed")
    published = publish(store, tmp_path, 1, (distributor, zlib), (distributor, sed))

    sign_results(store, local, [zlib], "recipes", NOW + 60, 365 * DAY, ReaderPolicy())

    stored = store.stored_archive("recipes")
    assert stored is not None
    assert {(s.package, key_id(s.public_key)) for s in stored.signatures} == {
        ("zlib", distributor.key_id), ("sed", distributor.key_id), ("zlib", local.key_id)}
    assert signers(store, zlib) == {distributor.key_id, local.key_id}
    assert signers(store, sed) == {distributor.key_id}
    # the archive without the local signatures can't come back (not newer)
    with pytest.raises(TrustError, match="not newer"):
        store.import_archive(published, NOW + 120)
    # a second run keeps both, and refreshes only this key's signature of zlib
    sign_results(store, local, [zlib, sed], "recipes", NOW + 180, 365 * DAY, ReaderPolicy())
    again = store.stored_archive("recipes")
    assert again is not None
    assert sorted((s.package, key_id(s.public_key), s.expires) for s in again.signatures) \
        == sorted([("zlib", distributor.key_id, NOW + 365 * DAY),
                   ("sed", distributor.key_id, NOW + 365 * DAY),
                   ("zlib", local.key_id, NOW + 180 + 365 * DAY),
                   ("sed", local.key_id, NOW + 180 + 365 * DAY)])
    assert signers(store, sed) == {distributor.key_id, local.key_id}


def test_a_first_signing_run_makes_version_one(store: TrustStore, tmp_path: Path) -> None:
    local = add_key(store, "trusted")
    zlib = package(tmp_path, "zlib")
    archive = sign_results(store, local, [zlib], "recipes", NOW, 365 * DAY, ReaderPolicy())
    assert archive.archive_version == 1
    assert signers(store, zlib) == {local.key_id}


def test_an_archive_of_the_same_version_that_drops_a_signature_is_refused(
        store: TrustStore, tmp_path: Path) -> None:
    distributor, local = add_key(store, "trusted"), add_key(store, "trusted")
    zlib = package(tmp_path, "zlib")
    publish(store, tmp_path, 1, (distributor, zlib))
    with open(zlib, "rb") as f:
        meta = read_metadata(f, str(zlib))
    data = zlib.read_bytes()
    only_local = tmp_path / "only-local.sigs"
    only_local.write_bytes(Archive("recipes", 1, (sign(
        local, meta, len(data), sha(data), "recipes", 1, NOW + DAY),)).to_bytes())
    with pytest.raises(TrustError, match="not newer"):
        store.import_archive(only_local, NOW, extends=True)
    assert signers(store, zlib) == {distributor.key_id}
