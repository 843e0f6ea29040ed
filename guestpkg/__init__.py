# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg: build Debian packages in a safe sandbox, and build and install the guest
packages that host packages carry.  See DESIGN in docs/ and guestpkg(1)."""

__version__ = "0.1.0"
