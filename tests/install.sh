#!/bin/sh
# meson install --destdir lays out every file a package needs, and
# systemd-analyze verify accepts the installed units.
# Usage: install.sh BUILD_DIR HAVE_MAN(0|1) HASPD
set -eu
build=$1 have_man=$2 haspd=$3
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null

installed() {
	found=$(find "$dest" -path "*$1" | head -n 1)
	if [ -z "$found" ]; then
		echo "not installed: $1"
		exit 1
	fi
	echo "installed: ${found#"$dest"}"
}

for f in /sbin/haspd /bin/hasp /libhasp.so.0.1.0 /libhasp.so.0 /libhasp.so /include/hasp.h \
	/pkgconfig/hasp.pc /systemd/system/haspd.service /systemd/system/haspd.socket \
	/systemd/user/haspd.service /systemd/user/haspd.socket /tmpfiles.d/hasp.conf \
	/etc/hasp/haspd.conf; do
	installed "$f"
done
if [ "$have_man" = 1 ]; then
	for f in /man8/haspd.8 /man1/hasp.1 /man3/libhasp.3; do
		installed "$f"
		# groff's warnings (-ww) on stderr mean a page does not render cleanly
		if command -v groff >/dev/null && [ -n "$(groff -man -ww -z "$found" 2>&1)" ]; then
			echo "man page does not render cleanly: $f"
			exit 1
		fi
	done
fi

lib=$(find "$dest" -name libhasp.so.0.1.0)
if [ "$have_man" = 1 ]; then
	# "man NAME" for every function libhasp exports: its page, or a page
	# that sources (.so) another installed one; each renders cleanly.
	man3=$(dirname "$(find "$dest" -path '*/man3/libhasp.3' | head -n 1)")
	pages=0
	for fn in $(readelf -W --dyn-syms "$lib" |
		awk '$5 == "GLOBAL" && $7 != "UND" { sub(/@.*/, "", $8); print $8 }' | grep '^hasp_' | sort -u); do
		page="$man3/$fn.3"
		if [ ! -f "$page" ]; then
			echo "no man page installed for $fn (man3/$fn.3)"
			exit 1
		fi
		target=$(sed -n '1s|^\.so man3/\(.*\)$|\1|p' "$page")
		if [ -n "$target" ] && [ ! -f "$man3/$target" ]; then
			echo "man page of $fn sources man3/$target, which is not installed"
			exit 1
		fi
		if command -v groff >/dev/null &&
			[ -n "$(cd "$man3/.." && groff -man -ww -z "man3/$fn.3" 2>&1)" ]; then
			echo "man page does not render cleanly: man3/$fn.3"
			exit 1
		fi
		pages=$((pages + 1))
	done
	if [ "$pages" -eq 0 ]; then
		echo "no hasp_ function found in $lib"
		exit 1
	fi
	echo "installed: a man page for each of the $pages functions libhasp exports"
else
	echo "skipped: man pages (scdoc was not found at configure time)"
fi
readelf -d "$lib" | grep -q 'SONAME.*libhasp.so.0' || { echo "no soname libhasp.so.0"; exit 1; }
# Only hasp_* functions, and the HASP_n version nodes themselves.
if readelf -W --dyn-syms "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' |
	grep -v -E '^(hasp_[a-z_]+@@HASP_[0-9]+|HASP_[0-9]+)$' | grep -q .; then
	echo "libhasp exports symbols other than hasp_*"
	exit 1
fi

if ! command -v systemd-analyze >/dev/null; then
	echo "skipped: systemd-analyze verify (systemd-analyze is not installed)"
	exit 0
fi
# The units name the installed haspd, which a --destdir install does not put
# in place: verify copies that name the one just built.
units=$(mktemp -d)
trap 'rm -rf "$dest" "$units"' EXIT
for kind in system user; do
	mkdir "$units/$kind"
	dir=$(dirname "$(find "$dest" -path "*/systemd/$kind/haspd.service")")
	sed "s|^ExecStart=[^ ]*|ExecStart=$haspd|" "$dir/haspd.service" > "$units/$kind/haspd.service"
	cp "$dir/haspd.socket" "$units/$kind/"
	systemd-analyze verify --man=no "$units/$kind/haspd.service" "$units/$kind/haspd.socket"
	echo "verified: $kind units"
done
