# SPDX-License-Identifier: GPL-2.0-or-later
"""Recipes: a small from-scratch package set whose builds produce dcfpkg packages.

- :mod:`.files`, :mod:`.meta`: the grammar of each recipe file (pure);
- :mod:`.tree`: reading a ``NAME/VERSION/RELEASE/`` tree safely, collecting problems;
- :mod:`.graph`: resolving dependencies, cycles, build levels, text and dot output;
- :mod:`.key`: the cache key of a build.

docs/recipes.md describes the format and the build; everything here is pure but the
careful reading of the tree in :mod:`.tree`.
"""
