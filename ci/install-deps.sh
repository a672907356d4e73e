#!/usr/bin/env bash
# Installs, from Debian's packages, whatever klpq needs to build and run that is missing.
# Idempotent and quick when everything is there; needs root (or sudo) only when it installs.
#   ci/install-deps.sh [--dev]
set -euo pipefail

pkgs=(
	build-essential gcc-12 pkg-config   # compiler (Debian 12 kernels are built with gcc-12), make
	libyaml-dev libjson-c-dev libarchive-dev libssl-dev check   # libraries
	qemu-system-x86                     # the VM backend
	libvirt-dev libvirt-daemon-driver-qemu   # the libvirt backend (its embedded QEMU driver)
	libguestfs-dev supermin qemu-utils debootstrap   # disk-image guests (docs/scenario.md)
	busybox-static                      # the guest's userland (static)
	kmod                                # depmod -b for unpacked kernels
	bc flex bison libelf-dev            # building livepatch modules against kernel headers
	xz-utils zstd                       # compressed kernel modules
	python3                             # tests/vm reads results.json with it
	cpio                                # tests/bench/overhead.sh builds a bare initramfs
)
# --dev: also what make fuzz, make asan and make valgrind need
if [ "${1:-}" = --dev ]; then
	pkgs+=(clang libclang-rt-14-dev valgrind)
fi
# --pool: also what make check-pool's two test hosts run (tests/pool/hosts.sh): a libvirt daemon
# with its storage driver, virsh and virt-ssh-helper, an sshd. The test starts its own daemons
# inside its namespaces.
pool=0
if [ "${1:-}" = --pool ]; then
	pkgs+=(libvirt-daemon libvirt-clients openssh-server iproute2)
	pool=1
fi
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# libvirt's embedded QEMU driver looks up the user libvirt-qemu before it reads its qemu.conf
# (which says root); libvirt-daemon-system would make it, but pulls in systemd and daemons.
need_user=0
getent passwd libvirt-qemu >/dev/null || need_user=1
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# libguestfs's appliance builder (supermin) copies the host's /lib/modules layout even when it
# is given another kernel's modules; a container can have no /lib/modules at all.
[ -d /lib/modules ] || $SUDO mkdir -p /lib/modules
[ ${#missing[@]} -eq 0 ] && [ $need_user -eq 0 ] && exit 0
if [ $need_user -eq 1 ]; then
	echo "klpq: making the system user libvirt-qemu (libvirt's embedded driver needs it)"
	$SUDO useradd -r -M -U -s /usr/sbin/nologin -d /nonexistent libvirt-qemu
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "klpq: installing from Debian's archive: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package lists may be missing or stale on a fresh machine.
$SUDO apt-get update -q
made_policy=0
# No service starts from these installs (libguestfs pulls lvm2 and mdadm, --pool a libvirt
# daemon and an sshd): a policy-rc.d that refuses, unless one is there already.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 0755 /usr/sbin/policy-rc.d
	made_policy=1
fi
rc=0
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
[ $made_policy -eq 0 ] || $SUDO rm -f /usr/sbin/policy-rc.d
exit $rc
