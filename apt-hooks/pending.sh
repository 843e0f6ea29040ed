# SPDX-License-Identifier: GPL-2.0-or-later
#
# Sourced by guestpkg's shell entry points (installed as /usr/lib/guestpkg/pending.sh):
# the APT Post-Invoke hook and cron.daily.  They must cost nothing when there is
# nothing to do, so they look for a pending marker (<vardir>/pending/<host>,
# guestpkg.host.state) with shell builtins before Python starts.
#
# guestpkg_vardir resolves vardir exactly as guestpkg.config does (guestpkg.conf(5)):
# GUESTPKG_VARDIR, else the last "vardir = ..." of guestpkg.conf and then of
# guestpkg.conf.d/*.conf in name order (later wins), else /var/lib/guestpkg.  Keys are
# case-insensitive, values lose surrounding blanks and double quotes; GUESTPKG_CONFDIR
# moves /etc/guestpkg.  tests/unit/host/test_host_apt_hook.py checks that it agrees
# with guestpkg.config.load for every form a configuration file may take.
#
# Only variables prefixed guestpkg_ are set: the caller's environment is left alone.

guestpkg_vardir() {
	guestpkg_vardir=${GUESTPKG_VARDIR:-}
	[ -z "$guestpkg_vardir" ] || return 0
	guestpkg_vardir=/var/lib/guestpkg
	for guestpkg_conf in "${GUESTPKG_CONFDIR:-/etc/guestpkg}/guestpkg.conf" \
			"${GUESTPKG_CONFDIR:-/etc/guestpkg}"/guestpkg.conf.d/*.conf; do
		[ -f "$guestpkg_conf" ] || continue
		while IFS= read -r guestpkg_line || [ -n "$guestpkg_line" ]; do
			case $guestpkg_line in *=*) ;; *) continue ;; esac
			guestpkg_key=${guestpkg_line%%=*}
			guestpkg_key=${guestpkg_key#"${guestpkg_key%%[![:space:]]*}"}
			guestpkg_key=${guestpkg_key%"${guestpkg_key##*[![:space:]]}"}
			case $guestpkg_key in [Vv][Aa][Rr][Dd][Ii][Rr]) ;; *) continue ;; esac
			guestpkg_value=${guestpkg_line#*=}
			guestpkg_value=${guestpkg_value#"${guestpkg_value%%[![:space:]]*}"}
			guestpkg_value=${guestpkg_value%"${guestpkg_value##*[![:space:]]}"}
			while :; do
				case $guestpkg_value in
				\"*) guestpkg_value=${guestpkg_value#\"} ;;
				*\") guestpkg_value=${guestpkg_value%\"} ;;
				*) break ;;
				esac
			done
			guestpkg_vardir=$guestpkg_value
		done < "$guestpkg_conf"
	done
}

# guestpkg_pending: true when some host has a pending marker.
guestpkg_pending() {
	guestpkg_vardir
	for guestpkg_marker in "$guestpkg_vardir"/pending/*; do
		[ ! -e "$guestpkg_marker" ] || return 0
	done
	return 1
}
