# SPDX-License-Identifier: GPL-2.0-or-later
"""``python3 -m guestpkg.sandbox SPEC.json``: see :mod:`guestpkg.sandbox.init`."""

import sys

from guestpkg.sandbox.init import main

sys.exit(main())
