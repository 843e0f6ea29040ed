# SPDX-License-Identifier: GPL-2.0-or-later
"""Signing recipe results into the trust store, and installing them into a root.

``guestpkg recipe build --sign KEY`` adds every result of the run to the signature
archive of the recipes' repository (the ``recipe-repository`` setting) in the trust
store (docs/dcfpkg.md section 7): a new archive version holding a fresh signature of
each result and this key's earlier signatures, re-signed for the new version (a
signature names its archive version, against replay), or, see below, the current
version with the new signatures added; imported through the store's
own checks (freshness, rollback counters, levels).  Signatures by other keys can't be
re-signed for a new version, so while the archive holds any, the results are signed
for its current version and added to it instead: nothing another key signed is lost.

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
from guestpkg.dcfpkg.sigdb import Archive, Signature, message, sign
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
    """*repository*'s archive with *results* signed by *key* added.

    A signature names its archive version, and only its key can make it again for
    another.  So while the stored archive holds unexpired signatures by other keys,
    the results are signed for the stored version and added to it (the store accepts
    that from a local run only if every signature already there is kept); otherwise a
    new version is made, holding this key's unexpired signatures re-signed for it."""
    stored = store.stored_archive(repository)
    counter, _ = store.counters(repository)
    live = [s for s in stored.signatures if s.expires > now] if stored else []
    others = [s for s in live if s.public_key != key.public_key]
    extends = stored is not None and bool(others) and stored.archive_version >= counter
    entries: dict[tuple[bytes, str, str, str, str], Signature] = {}
    if extends:
        assert stored is not None
        version = stored.archive_version
        for old in live:
            entries[_entry(old)] = old
    else:
        version = max(counter, stored.archive_version if stored else 0) + 1
        if others:  # the stored archive is older than the counters: it can't be extended
            log.warning("signature archive of %s: %d signatures by other keys are not in "
                        "version %d (the stored archive is older than its counters)",
                        repository, len(others), version)
        for old in live:
            if old.public_key == key.public_key:
                unsigned = replace(old, signature=b"")
                entries[_entry(old)] = replace(
                    old, signature=key.sign(message(unsigned, repository, version)))
    for path in results:
        meta = verify(path, policy)  # sign only what a reader accepts
        size, digest = _digest(path)
        new = sign(key, meta, size, digest, repository, version, now + lifetime_s)
        entries[_entry(new)] = new
    archive = Archive(repository, version, tuple(entries.values()))
    with tempfile.TemporaryDirectory(prefix="guestpkg-sign-") as scratch:
        path = Path(scratch) / f"{repository}.sigs"
        path.write_bytes(archive.to_bytes())
        return store.import_archive(path, now, extends=extends)


def _entry(sig: Signature) -> tuple[bytes, str, str, str, str]:
    """One signature per key and file: a new one replaces this key's earlier one."""
    return (sig.public_key, sig.package, sig.version, sig.architecture, sig.sha256)


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
