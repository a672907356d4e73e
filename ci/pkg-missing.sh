#!/bin/sh
# Prints "module:debian-package" for each pkg-config module named on the command line that
# pkg-config cannot find (all of them, and pkg-config itself, when pkg-config is missing).
# Used by the Makefile to stop a build that would otherwise link with empty flags.
pkg_of() {
	case "$1" in
	yaml-0.1) echo libyaml-dev ;;
	json-c) echo libjson-c-dev ;;
	libarchive) echo libarchive-dev ;;
	libcrypto) echo libssl-dev ;;
	libvirt|libvirt-qemu) echo libvirt-dev ;;
	check) echo check ;;
	*) echo "?" ;;
	esac
}
if ! command -v pkg-config >/dev/null 2>&1; then
	echo pkg-config:pkg-config
	exit 0
fi
for m in "$@"; do
	pkg-config --exists "$m" 2>/dev/null || echo "$m:$(pkg_of "$m")"
done
