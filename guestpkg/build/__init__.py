# SPDX-License-Identifier: GPL-2.0-or-later
"""Building Debian packages in forks of a base buildroot.

- :mod:`guestpkg.build.deb`: ``build_package(config, source, output_dir, options)``,
  the engine of ``guestpkg build`` and of host packages' guest builds.
- :mod:`guestpkg.build.source`: staging a .dsc or a source tree at a fixed path.
- :mod:`guestpkg.build.layers`: the build-dependency layer cache (``guestpkg cache``).
- :mod:`guestpkg.build.artifacts`: the .changes as manifest, all-or-nothing copies.
"""
