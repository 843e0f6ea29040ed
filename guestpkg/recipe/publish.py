# SPDX-License-Identifier: GPL-2.0-or-later
"""Signing recipe results into the trust store, and installing them into a root.

``guestpkg recipe build --sign KEY`` adds every result of the run to the signature
archive of the recipes' repository (the ``recipe-repository`` setting) in the trust
store (docs/dcfpkg.md section 7): a new archive version holding a fresh signature of
each result and this key's earlier signatures, re-signed for the new version (a
signature names its archive version, against replay), imported through the store's
own checks (freshness, rollback counters, levels).  Signatures by other keys can't be
carried into a new version and are dropped, with a warning: a repository that several
keys sign is published with ``guestpkg trust``.

``guestpkg recipe install`` puts a result and its rundeps, transitively, into a root
directory, each package accepted by the trust policy and read by the safe reader
first; only then is anything written (each package unpacked beside the root and
merged in), so a refused package leaves the root as it was.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from guestpkg import fsutil
from guestpkg.dcfpkg.keys import SecretKey
from guestpkg.dcfpkg.reader import ReaderPolicy, extract, verify
from guestpkg.dcfpkg.sigdb import Archive, message, sign
from guestpkg.dcfpkg.trust import TrustStore, Verdict
from guestpkg.errors import TrustError
from guestpkg.recipe.layers import merge_into

log = logging.getLogger(__name__)


def _digest(path: Path) -> tuple[int, str]:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return f.tell(), digest


def sign_results(store: TrustStore, key: SecretKey, results: Sequence[Path], repository: str,
                 now: int, lifetime_s: int, policy: ReaderPolicy) -> Archive:
    """A new version of *repository*'s archive with *results* signed by *key*."""
    stored = store.stored_archive(repository)
    counter, _ = store.counters(repository)
    version = max(counter, stored.archive_version if stored else 0) + 1
    entries = {}
    dropped = 0
    for old in stored.signatures if stored else ():
        if old.public_key != key.public_key:
            dropped += 1
        elif old.expires > now:
            unsigned = replace(old, signature=b"")
            entries[(old.package, old.version, old.architecture, old.sha256)] = replace(
                old, signature=key.sign(message(unsigned, repository, version)))
    if dropped:
        log.warning("signature archive of %s: %d signatures by other keys are not in "
                    "version %d (sign a shared repository with guestpkg trust)", repository,
                    dropped, version)
    for path in results:
        meta = verify(path, policy)  # sign only what a reader accepts
        size, digest = _digest(path)
        entries[(meta.package, meta.full_version, meta.architecture, digest)] = sign(
            key, meta, size, digest, repository, version, now + lifetime_s)
    archive = Archive(repository, version, tuple(entries.values()))
    with tempfile.TemporaryDirectory(prefix="guestpkg-sign-") as scratch:
        path = Path(scratch) / f"{repository}.sigs"
        path.write_bytes(archive.to_bytes())
        return store.import_archive(path, now)


def install(store: TrustStore, packages: Sequence[Path], root: Path, repository: str,
            now: int, policy: ReaderPolicy) -> list[Verdict]:
    """Check every package (trust policy, then the reader), then unpack them into
    *root*, in order (a later package's files replace an earlier one's)."""
    verdicts = [store.verify_package(path, repository, now) for path in packages]
    for path in packages:
        verify(path, policy)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=fsutil.TMP_PREFIX + "install.", dir=root.parent))
    try:
        unpacked = []
        for number, (path, verdict) in enumerate(zip(packages, verdicts, strict=True)):
            meta = extract(path, scratch / str(number), policy)
            if verdict.metadata is None or meta != verdict.metadata:
                # the file changed since its signatures were checked
                raise TrustError(f"{path}: not the package whose signatures were accepted")
            unpacked.append(scratch / str(number))
        for tree in unpacked:
            merge_into(tree, root)
    finally:
        fsutil.remove_tree(scratch)
    return verdicts
