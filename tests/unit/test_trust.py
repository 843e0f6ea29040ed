# SPDX-License-Identifier: GPL-2.0-or-later
"""The trust store: one test per attack class (TUF's names), the policy, the level log.

Time is passed explicitly (``now``), so promotion after 30 days is tested without
waiting and without touching the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from guestpkg.dcfpkg import Metadata, write_dcfpkg
from guestpkg.dcfpkg.keys import (
    ANY,
    Level,
    LevelLog,
    SecretKey,
    generate,
    load_keys,
    store_key,
)
from guestpkg.dcfpkg.keys import PublicKey as Key
from guestpkg.dcfpkg.reader import read_metadata
from guestpkg.dcfpkg.sigdb import Archive, Signature, parse_archive, sign
from guestpkg.dcfpkg.trust import DEFAULT_POLICY, Policy, TrustSettings, TrustStore
from guestpkg.errors import ConfigError, InputError, TrustError
from tests.support.dcfpkg_craft import sha

DAY = 86400
NOW = 1_800_000_000
EXPIRES = NOW + 365 * DAY


@dataclass
class World:
    """A trust store, some packages and the keys of their signers."""

    tmp: Path
    store: TrustStore
    packages: dict[tuple[str, str], Path] = field(default_factory=dict)

    def key(self, level: str, packages: tuple[str, ...] = (ANY,)) -> SecretKey:
        secret = generate()
        store_key(self.store.trustdir, Key(secret.key_id, secret.public_key,
                                           packages=packages), level)
        LevelLog(self.store.trustdir).append(NOW - 100 * DAY,
                                             ("add", secret.key_id, level, ANY, ANY, "-"))
        return secret

    def package(self, name: str, version: str, content: str = "") -> Path:
        if (name, version) not in self.packages:
            tree = self.tmp / f"tree-{name}-{version}"
            (tree / "usr/bin").mkdir(parents=True)
            (tree / "usr/bin" / name).write_text(content or f"{name} {version}\n")
            out = self.tmp / f"{name}_{version}.dcfpkg"
            write_dcfpkg(tree, Metadata(package=name, version=version, release="1",
                                        architecture="all", build_date=1700000000), out)
            self.packages[(name, version)] = out
        return self.packages[(name, version)]

    def signature(self, key: SecretKey, path: Path, archive_version: int,
                  expires: int = EXPIRES, repository: str = "main") -> Signature:
        with open(path, "rb") as f:
            meta = read_metadata(f, str(path))
        data = path.read_bytes()
        return sign(key, meta, len(data), sha(data), repository, archive_version, expires)

    def archive(self, version: int, *signed: tuple[SecretKey, Path],
                repository: str = "main", extra: tuple[Signature, ...] = ()) -> Path:
        sigs = tuple(self.signature(k, p, version, repository=repository) for k, p in signed)
        path = self.tmp / f"{repository}-{version}.sigs"
        path.write_bytes(Archive(repository, version, sigs + extra).to_bytes())
        return path

    def import_(self, archive: Path, now: int = NOW) -> None:
        self.store.import_archive(archive, now)

    def accepts(self, package: Path, now: int = NOW) -> list[str]:
        return [level for _, level in self.store.verify_package(package, "main", now).signers]


@pytest.fixture
def world(tmp_path: Path) -> World:
    settings = TrustSettings(Policy.parse(DEFAULT_POLICY), promotion_s=30 * DAY)
    return World(tmp_path, TrustStore(tmp_path / "trust", settings))


def test_accepts_one_senior_signature(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    assert world.accepts(hello) == ["senior"]


# -- arbitrary package -----------------------------------------------------------------

def test_arbitrary_package_signed_by_an_unknown_key(world: World) -> None:
    senior, attacker = world.key("senior"), generate()
    hello, evil = world.package("hello", "1.0"), world.package("evil", "1.0")
    with pytest.raises(TrustError, match="no signature by a key in the store"):
        world.import_(world.archive(1, (attacker, evil)))
    world.import_(world.archive(2, (senior, hello), (attacker, evil)))
    with pytest.raises(TrustError, match="don't meet the policy"):
        world.accepts(evil)


def test_arbitrary_package_swapped_under_a_good_signature(world: World) -> None:
    senior = world.key("senior")
    hello = world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    evil = world.package("evil-hello", "1.0", content="rm -rf /\n")
    hello.write_bytes(evil.read_bytes().replace(b"Package: evil-hello", b"Package: hello"))
    with pytest.raises(TrustError):
        world.accepts(hello)


def test_unsigned_package(world: World) -> None:
    senior = world.key("senior")
    world.import_(world.archive(1, (senior, world.package("hello", "1.0"))))
    with pytest.raises(TrustError, match="not signed"):
        world.accepts(world.package("other", "1.0"))


# -- rollback --------------------------------------------------------------------------

def test_rollback_of_the_archive_version(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    old = world.archive(1, (senior, hello))
    world.import_(world.archive(2, (senior, hello)))
    with pytest.raises(TrustError, match="not newer than 2"):
        world.import_(old)
    with pytest.raises(TrustError, match="not newer"):
        world.import_(world.archive(2, (senior, hello)))  # a replay of the same version


def test_rollback_of_a_package_version(world: World) -> None:
    senior = world.key("senior")
    v1, v2 = world.package("hello", "1.0"), world.package("hello", "2.0")
    world.import_(world.archive(1, (senior, v1)))
    world.import_(world.archive(2, (senior, v2)))
    with pytest.raises(TrustError, match=r"older than the 2\.0-1 already accepted"):
        world.import_(world.archive(3, (senior, v1)))
    # An archive that still lists the old version beside the new one is fine, but the
    # old version itself is refused.
    world.import_(world.archive(4, (senior, v1), (senior, v2)))
    assert world.accepts(v2) == ["senior"]
    with pytest.raises(TrustError, match="rollback"):
        world.accepts(v1)


def test_rollback_of_the_stored_archive_on_disk(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    old = world.archive(1, (senior, hello))
    world.import_(old)
    world.import_(world.archive(2, (senior, hello)))
    world.store.archive_path("main").write_bytes(old.read_bytes())
    with pytest.raises(TrustError, match="rolled back"):
        world.accepts(hello)


# -- freeze ----------------------------------------------------------------------------

def test_freeze_expired_signature_refused_on_import(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    stale = world.signature(senior, hello, 1, expires=NOW - 1)
    path = world.tmp / "stale.sigs"
    path.write_bytes(Archive("main", 1, (stale,)).to_bytes())
    with pytest.raises(TrustError, match="expired"):
        world.import_(path)


def test_freeze_a_frozen_archive_stops_working_when_it_expires(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    assert world.accepts(hello, now=EXPIRES - 1) == ["senior"]
    with pytest.raises(TrustError, match="don't meet the policy"):
        world.accepts(hello, now=EXPIRES)


# -- mix-and-match ---------------------------------------------------------------------

def test_mix_and_match_entries_from_another_archive_version(world: World) -> None:
    senior, junior = world.key("senior"), world.key("junior")
    hello, other = world.package("hello", "1.0"), world.package("other", "1.0")
    from_v1 = world.signature(junior, other, 1)
    with pytest.raises(TrustError, match="another archive version"):
        world.import_(world.archive(2, (senior, hello), extra=(from_v1,)))
    assert not world.store.archive_path("main").exists()


def test_mix_and_match_entries_from_another_repository(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    from_contrib = world.signature(senior, hello, 1, repository="contrib")
    path = world.tmp / "mixed.sigs"
    path.write_bytes(Archive("main", 1, (from_contrib,)).to_bytes())
    with pytest.raises(TrustError, match="bad signature"):
        world.import_(path)


# -- endless data ----------------------------------------------------------------------

def test_endless_archive_is_refused_at_the_cap(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    path = world.archive(1, (senior, hello))
    with open(path, "ab") as f:
        f.write(b"\n" + b"X-Padding: " + b"x" * (2 << 20) + b"\n")
    with pytest.raises(InputError, match="over the cap"):
        world.import_(path)


def test_too_many_signatures(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    sig = world.signature(senior, hello, 1)
    archive = Archive("main", 1, (sig,) * 3).to_bytes()
    with pytest.raises(InputError, match="more than 2"):
        parse_archive(archive, "a", max_entries=2)


def test_endless_package_file(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    with open(hello, "ab") as f:
        f.write(bytes(1 << 20))
    with pytest.raises(TrustError, match="longer than any signed size"):
        world.accepts(hello)


# -- wrong key level / another package --------------------------------------------------

def test_untrusted_keys_never_count(world: World) -> None:
    senior = world.key("senior")
    bad1, bad2 = world.key("untrusted"), world.key("untrusted")
    hello, other = world.package("hello", "1.0"), world.package("other", "1.0")
    world.import_(world.archive(1, (senior, other), (bad1, hello), (bad2, hello)))
    with pytest.raises(TrustError, match=r"\(none\)"):
        world.accepts(hello)


def test_key_for_another_package(world: World) -> None:
    senior_for_other = world.key("senior", packages=("other",))
    hello, other = world.package("hello", "1.0"), world.package("other", "1.0")
    world.import_(world.archive(1, (senior_for_other, other), (senior_for_other, hello)))
    assert world.accepts(other) == ["senior"]
    with pytest.raises(TrustError, match="don't meet the policy"):
        world.accepts(hello)


def test_demotion_to_untrusted_survives_restoring_the_key_file(world: World) -> None:
    trusted, hello = world.key("trusted"), world.package("hello", "1.0")
    world.import_(world.archive(1, (trusted, hello)))
    key = load_keys(world.store.trustdir)[trusted.public_key]
    store_key(world.store.trustdir, key, "untrusted")
    LevelLog(world.store.trustdir).append(NOW, ("demote", key.key_id, "untrusted", ANY, ANY,
                                                "manual"))
    store_key(world.store.trustdir, key, "trusted")   # an old backup put back
    with pytest.raises(TrustError, match="don't meet the policy"):
        world.accepts(hello)


def test_demotion_survives_deleting_the_level_log_and_its_head(world: World) -> None:
    """Delete both files of the log and put the old key file back: the key has no
    logged "add", so it counts for nothing."""
    trusted, hello = world.key("trusted"), world.package("hello", "1.0")
    world.import_(world.archive(1, (trusted, hello)))
    key = load_keys(world.store.trustdir)[trusted.public_key]
    store_key(world.store.trustdir, key, "untrusted")
    LevelLog(world.store.trustdir).append(NOW, ("demote", key.key_id, "untrusted", ANY, ANY,
                                                "manual"))
    log = LevelLog(world.store.trustdir)
    log.path.unlink()
    log.head.unlink()
    store_key(world.store.trustdir, key, "trusted")   # an old backup put back
    with pytest.raises(TrustError, match=f"{key.key_id}.*no \"add\" in levels.log"):
        world.accepts(hello)


def test_verify_of_an_expired_signature_says_expired(world: World) -> None:
    senior, hello = world.key("senior"), world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    with pytest.raises(TrustError, match=f"{senior.key_id}.*expired"):
        world.accepts(hello, now=EXPIRES + 1)


# -- junior keys -----------------------------------------------------------------------

def test_junior_key_before_and_after_promotion(world: World) -> None:
    junior = world.key("junior")
    senior = world.key("senior")
    hello, other = world.package("hello", "1.0"), world.package("other", "1.0")
    world.import_(world.archive(1, (junior, hello), (senior, other)))
    with pytest.raises(TrustError, match="junior"):
        world.accepts(hello)
    with pytest.raises(TrustError):
        world.accepts(hello, now=NOW + 29 * DAY)
    assert world.accepts(hello, now=NOW + 30 * DAY) == ["senior"]
    # The promotion is per package: the same key is still junior for "other".
    world.import_(world.archive(2, (junior, other)), now=NOW + 31 * DAY)
    world.import_(world.archive(3, (junior, hello), (junior, other)), now=NOW + 32 * DAY)
    events = LevelLog(world.store.trustdir).read()
    assert [(e.action, e.package) for e in events if e.key_id == junior.key_id][1:] == [
        ("seen", "hello"), ("seen", "other"), ("promote", "hello")]
    with pytest.raises(TrustError, match="junior"):
        world.accepts(other, now=NOW + 32 * DAY)


def test_compromised_junior_key_alone(world: World) -> None:
    junior1, junior2, senior = world.key("junior"), world.key("junior"), world.key("senior")
    good, evil = world.package("hello", "1.0"), world.package("hello", "9.9", content="evil")
    world.import_(world.archive(1, (senior, good), (junior1, evil)))
    with pytest.raises(TrustError, match="don't meet the policy"):
        world.accepts(evil)
    # The lone junior signature did not move the version counter: 1.0 is still fine.
    assert world.store.counters("main")[1] == {"hello": "1.0-1"}
    assert world.accepts(good) == ["senior"]
    # Two junior keys together meet the default policy.
    world.import_(world.archive(2, (junior1, evil), (junior2, evil)))
    assert world.accepts(evil) == ["junior", "junior"]


# -- the policy and the log -------------------------------------------------------------

@pytest.mark.parametrize(("policy", "levels", "ok"), [
    (DEFAULT_POLICY, ["trusted"], True), (DEFAULT_POLICY, ["senior"], True),
    (DEFAULT_POLICY, ["junior"], False), (DEFAULT_POLICY, ["junior", "junior"], True),
    (DEFAULT_POLICY, ["untrusted", "untrusted", "untrusted"], False),
    ("senior:1 + junior:1", ["senior"], False), ("senior:1 + junior:1", ["senior", "junior"], True),
    ("senior:1 + junior:1", ["trusted", "senior"], True),
    ("trusted:2", ["trusted", "senior"], False),
])
def test_policy(policy: str, levels: list[str], ok: bool) -> None:
    assert Policy.parse(policy).satisfied([Level(level) for level in levels]) is ok


@pytest.mark.parametrize("text", ["junior", "untrusted:1", "senior:0", "trusted:1 |", "boss:1"])
def test_bad_policy(text: str) -> None:
    with pytest.raises(ConfigError):
        Policy.parse(text)


def test_level_log_edit_and_truncation_are_detected(world: World) -> None:
    world.key("junior")
    world.key("senior")
    log = LevelLog(world.store.trustdir)
    original = log.path.read_text()
    log.path.write_text(original.replace(" junior ", " trusted ", 1))
    with pytest.raises(TrustError, match="hash chain"):
        log.read()
    log.path.write_text(original.splitlines(keepends=True)[0])
    with pytest.raises(TrustError, match="cut or edited"):
        log.read()


def test_header_checked_is_the_header_hashed(world: World,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A file read twice by verify (header, then digest) can be swapped in between: a
    header of the attacker's (other Depends) over the signed payload would be the one
    accepted.  The header parsed must be part of the bytes whose digest is checked."""
    import guestpkg.dcfpkg.trust as trust

    senior, hello = world.key("senior"), world.package("hello", "1.0")
    world.import_(world.archive(1, (senior, hello)))
    good = hello.read_bytes()
    evil = good.replace(b"\nEntries:", b"\nDepends: evil\nEntries:", 1)
    assert evil != good
    swapped = world.tmp / "swapped.dcfpkg"
    swapped.write_bytes(evil)
    real = trust.read_metadata

    def then_swap_back(f: object, where: str) -> object:
        meta = real(f, where)  # type: ignore[arg-type]
        restored = world.tmp / "restored.dcfpkg"
        restored.write_bytes(good)
        restored.rename(swapped)           # the attacker, between the two reads
        return meta

    monkeypatch.setattr(trust, "read_metadata", then_swap_back)
    with pytest.raises(TrustError):
        world.store.verify_package(swapped, "main", NOW)
