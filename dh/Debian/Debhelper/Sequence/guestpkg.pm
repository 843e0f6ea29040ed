#! /usr/bin/perl
# SPDX-License-Identifier: GPL-2.0-or-later
# debhelper sequence addon for host packages of guestpkg: "dh $@ --with guestpkg", or
# Build-Depends: dh-sequence-guestpkg.  See dh_guestpkg(1) and guestpkg-host(7).

use warnings;
use strict;
use Debian::Debhelper::Dh_Lib;

# After dh_installdebconf (whose job dh_guestpkg does for the generated template) and
# well before dh_installdeb and dh_gencontrol, which take our maintainer-script
# snippets and substvars.
insert_after("dh_installdebconf", "dh_guestpkg");

1;
