#!/usr/bin/env bash
# tests/vm/disk.sh: disk guests (issue 16, in progress). Builds, once, a Debian bookworm root
# with systemd (debootstrap --variant=minbase from Debian's archive) as an ext4 qcow2 image
# (mke2fs -d, qemu-img convert), cached under CACHE/disk/; then runs the smoke scenario's kernel
# and patch set with `guest: {image: disk, path: IMAGE, root: /dev/vda}`: the first stage
# (klpq's initramfs) mounts the cell's overlay, writes klpq-agent.service into it and starts
# the disk's systemd, whose service is the agent. Must PASS with the same checks as the
# initramfs guest, and leave the base image unchanged (its SHA-256 before and after).
#   tests/vm/disk.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
cache=${KLPQ_CACHE:-$HOME/.cache/klpq}/disk
img=$cache/bookworm-minbase-systemd.qcow2
mkdir -p "$cache"
work=$(mktemp -d /tmp/klpq-disk-test-XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ ! -s "$img" ]; then
	t0=$(date +%s)
	mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
	mirror=${mirror:-http://deb.debian.org/debian}
	root=$work/root
	if ! debootstrap --variant=minbase --include=systemd-sysv,udev,kmod,procps \
		bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1; then
		tail -20 "$work/debootstrap.log"
		echo "disk.sh: debootstrap failed" >&2
		exit 1
	fi
	# a quick, quiet boot: no getty, a fixed machine id, the journal kept on disk
	echo klpq-disk > "$root/etc/hostname"
	echo "0123456789abcdef0123456789abcdef" > "$root/etc/machine-id"
	mkdir -p "$root/var/log/journal"
	ln -sf /dev/null "$root/etc/systemd/system/getty@.service"
	ln -sf /dev/null "$root/etc/systemd/system/serial-getty@.service"
	rm -rf "$root/var/cache/apt/archives"/*.deb
	truncate -s 2G "$work/disk.raw"
	mke2fs -q -t ext4 -L klpq-root -d "$root" "$work/disk.raw" ||
		{ echo "disk.sh: mke2fs failed" >&2; exit 1; }
	qemu-img convert -O qcow2 "$work/disk.raw" "$img.tmp" && mv "$img.tmp" "$img"
	echo "disk.sh: built $img in $(( $(date +%s) - t0 )) s, $(du -m "$img" | cut -f1) MB"
fi
before=$(sha256sum "$img" | cut -d' ' -f1)
cat > "$work/disk.yaml" <<YAML
name: smoke-disk
kernels: [debian:6.1.0-56-amd64]
vm: {memory_mb: 1024, cpus: 2}
guest: {image: disk, path: $img, root: /dev/vda}
patchset: $PWD/scenarios/patchsets/demo-cumulative
YAML
KLPQ_PLAIN=1 "$KLPQ" run -o "$work/r" "$work/disk.yaml" > "$work/out.txt" 2>&1
rc=$?
after=$(sha256sum "$img" | cut -d' ' -f1)
tail -4 "$work/out.txt"
python3 - "$work/r" <<'PY' || true
import glob, json, sys
c = json.load(open(glob.glob(sys.argv[1] + "/*/*/results.json")[0]))
m = c.get("metrics", {})
print(f"disk.sh: cell {c['duration_ms']/1000:.1f} s, boot to agent {m.get('boot_ms', 0)/1000:.1f} s")
PY
if [ $rc -eq 0 ] && [ "$before" = "$after" ] && grep -q "Started klpq-agent.service\|klpq guest agent" "$work"/r/*/*/console.log; then
	echo "ok - the smoke cell on a disk guest (systemd): PASS; base image unchanged"
else
	echo "not ok - the smoke cell on a disk guest (rc $rc, base $([ "$before" = "$after" ] && echo unchanged || echo CHANGED))"
	tail -30 "$work"/r/*/*/console.log 2>/dev/null
	exit 1
fi
