# SPDX-License-Identifier: GPL-2.0-or-later
"""dcfpkg: guestpkg's package format, its safe reader, and the trust store.

- :mod:`.format`: the magic line, the metadata stanza, manifest lines;
- :mod:`.writer`: a tree to a deterministic dcfpkg (:func:`write_dcfpkg`);
- :mod:`.reader`: streaming, refusing reader (:func:`extract`, :func:`verify`);
- :mod:`.keys`, :mod:`.sigdb`, :mod:`.trust`: out-of-band Ed25519 signatures, key
  levels and the acceptance policy.

The specification is docs/dcfpkg.md (and dcfpkg(5)).  Everything here is pure: no
subprocess, no network.
"""

from guestpkg.dcfpkg.format import Entry, Metadata
from guestpkg.dcfpkg.reader import ReaderPolicy, extract, read_manifest, verify
from guestpkg.dcfpkg.writer import write_dcfpkg

__all__ = ["Entry", "Metadata", "ReaderPolicy", "extract", "read_manifest", "verify",
           "write_dcfpkg"]
