#!/usr/bin/env bash
# make check-fresh: rehearses a fresh machine for real. Purges pkg-config and the library
# development packages that ci/install-deps.sh installs (and whatever apt would remove with
# them), clones this repository into a new folder, runs the README's `make demo` there once
# (under -j2, with an empty kernel cache), checks that it passed and printed its table and the
# accelerator with its reason, and installs every purged package again, whatever happened.
#   KLPQ_FRESH_REV=<commit>   clone that commit instead of HEAD (to see an old Makefile fail)
#   KLPQ_FRESH_MAKE="make demo"   the command to run in the clone (default: make -j2 demo)
# Needs root (or sudo) and Debian's archive. The compiler and QEMU stay installed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
rev=${KLPQ_FRESH_REV:-HEAD}
mk=${KLPQ_FRESH_MAKE:-make -j2 demo}
purge=(pkg-config pkgconf pkgconf-bin libyaml-dev libjson-c-dev libarchive-dev libssl-dev check libelf-dev
	libvirt-dev libvirt-daemon-driver-qemu libguestfs-dev)
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

say() { echo "check-fresh: $*"; }

installed=()
for p in "${purge[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" &&
		installed+=("$p")
done
# Everything apt would remove with them (packages that depend on them), to put back after.
removed=()
if [ ${#installed[@]} -gt 0 ]; then
	mapfile -t removed < <($SUDO apt-get -s -q purge "${installed[@]}" | awk '/^Purg /{print $2}')
fi
auto=()
for p in "${removed[@]}"; do
	apt-mark showauto "$p" 2>/dev/null | grep -qx "$p" && auto+=("$p")
done

tmp=$(mktemp -d /tmp/klpq-fresh.XXXXXX)
restore() {
	local rc=$?
	if [ ${#removed[@]} -gt 0 ]; then
		say "installing again: ${removed[*]}"
		$SUDO apt-get install -y -q --no-install-recommends "${removed[@]}" >"$tmp/reinstall.log" 2>&1 ||
			{ cat "$tmp/reinstall.log"; say "could not install the purged packages again"; rc=1; }
		[ ${#auto[@]} -eq 0 ] || $SUDO apt-mark auto "${auto[@]}" >/dev/null
	fi
	rm -rf "$tmp"
	exit $rc
}
trap restore EXIT
trap 'exit 130' INT TERM

if [ ${#removed[@]} -gt 0 ]; then
	say "purging: ${removed[*]}"
	$SUDO apt-get purge -y -q "${removed[@]}" >"$tmp/purge.log" 2>&1 ||
		{ cat "$tmp/purge.log"; exit 1; }
fi
if command -v pkg-config >/dev/null; then
	say "pkg-config is still installed after the purge"
	exit 1
fi

t0=$(date +%s.%N)
git clone -q "$repo" "$tmp/klpq"
git -C "$tmp/klpq" checkout -q "$rev"
say "cloned $(git -C "$tmp/klpq" rev-parse --short HEAD) into $tmp/klpq; running: $mk"
set +e
(cd "$tmp/klpq" && KLPQ_CACHE="$tmp/cache" $mk) >"$tmp/demo.log" 2>&1
rc=$?
set -e
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
tail -n 25 "$tmp/demo.log"
fail=
[ $rc -eq 0 ] || fail="$mk exited with $rc"
grep -q "^KERNEL .*RESULT" "$tmp/demo.log" || fail=${fail:-"no result table in the output"}
grep -Eq "^cell .*: PASS in .*\(accel (tcg|kvm)" "$tmp/demo.log" ||
	fail=${fail:-"no passing cell with its accelerator in the output"}
grep -Eq "accel (tcg|kvm)[^)]*: " "$tmp/demo.log" ||
	fail=${fail:-"the accelerator's reason is not in the output"}
if [ -n "$fail" ]; then
	say "FAIL: $fail (log: kept as build/check-fresh.log)"
	mkdir -p "$repo/build" && cp "$tmp/demo.log" "$repo/build/check-fresh.log"
	exit 1
fi
say "PASS: git clone to the demo's table in $secs s on a machine without ${removed[*]:-nothing}"
