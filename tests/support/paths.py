# SPDX-License-Identifier: GPL-2.0-or-later
"""Where tests keep what they make and cache; one place, so a cold run can be pointed
at empty directories with two variables.

- ``GUESTPKG_TEST_AREA`` (default ``/var/tmp/guestpkg-tests``): test vardirs, buildroots,
  system roots, guestpkg's own .debs.
- ``GUESTPKG_TEST_CACHE`` (default ``/var/cache/guestpkg-tests``): downloaded Debian
  sources and the private deb-src apt lists.
"""

from __future__ import annotations

import os
from pathlib import Path

TEST_AREA = Path(os.environ.get("GUESTPKG_TEST_AREA", "/var/tmp/guestpkg-tests"))
TEST_CACHE = Path(os.environ.get("GUESTPKG_TEST_CACHE", "/var/cache/guestpkg-tests"))
