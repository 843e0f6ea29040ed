# SPDX-License-Identifier: GPL-2.0-or-later
"""Buildhosts: recipe builds spread over several machines (docs/buildhosts.md).

:mod:`.hosts` reads ``/etc/guestpkg/buildhosts`` (pure, no Celery).  The Celery app,
the worker side (``guestpkg buildhost serve``) and the coordinator
(``guestpkg recipe build --buildhosts``) import Celery only when they are used.
"""
