#!/usr/bin/env bash
# tests/vm/disk.sh: disk-image guests on a real Debian kernel (make check-disk; docs/scenario.md,
# "guest"). In one run, each a klpq run with its own assertions:
#   initramfs   the smoke patch set on the initramfs guest: PASS (its boot, for the comparison)
#   built       the same with guest: {image: disk, distro: debian-bookworm}: PASS, the same
#               checks; the image's build (when this run made it), size and boot-to-agent
#   oops        faulty-oops on the initramfs and on the built disk: FAIL with the same title;
#               the disk cell's folder holds the guest's journal with the oops, and its
#               results.json the kept overlay; next to it (-j2) a cell whose probe wipes its
#               own root file system and crashes: FAIL, its post-mortem reports the disk
#               unreadable and the run still writes its results
#   user        an image this test makes with libguestfs (ext4 on the whole disk, no partition):
#               klpq inspects it, finds root /dev/vda, PASS
#   refused     an image without the cell's kernel modules, one without systemd: ERROR naming
#               what is missing, before any boot
#   parallel    -j2, two patch sets on one built image: both PASS, the image's SHA-256 unchanged
#               (good-netpath's probe uses ip and nc, which the image lacks: busybox's serve)
#   kdump       faulty-panic on the initramfs and on a built image with kdump: true and
#               packages: [gawk]: the capture kernel is loaded before the patch, FAIL with the
#               same title, the VM ended by the capture boot (not killed), and the cell folder
#               holds the kdump dmesg with the panic line and the journal; faulty-oops there:
#               FAIL with its title, its dmesg saved by the capture kernel; on the same image a
#               correct patch set whose probe reads the patched path with the package's gawk:
#               PASS (no false alarm with kdump armed; a package's binary used by a probe)
#   libvirt     the built image on the libvirt backend (embedded driver): PASS
#   tests/vm/disk.sh [CASE...]       (default: all; "short": the issue's four, without refused
#                                     and libvirt: what .ci/run runs)
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
MKIMAGE=${KLPQ_MKIMAGE:-build/klpq-mkimage}
cache=${KLPQ_CACHE:-$HOME/.cache/klpq}
KERNEL=debian:6.1.0-56-amd64
REL=6.1.0-56-amd64
work=$(mktemp -d /tmp/klpq-disk-test-XXXXXX)
# KLPQ_TEST_KEEP=1 keeps the results for a look
[ -n "${KLPQ_TEST_KEEP:-}" ] && echo "disk.sh: results kept in $work" || trap 'rm -rf "$work"' EXIT
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(initramfs built oops user refused parallel kdump libvirt)
[ "${cases[*]}" != short ] || cases=(initramfs built oops user parallel kdump)
npass=0
nfail=0
ok() { echo "ok - $*"; npass=$((npass + 1)); }
notok() { echo "not ok - $*"; nfail=$((nfail + 1)); }

# scen NAME GUEST PATCHSETS...: a scenario file for the smoke kernel ($VMX: more vm: keys)
scen() {
	local name=$1 guest=$2
	shift 2
	{
		echo "name: $name"
		echo "kernels: [$KERNEL]"
		echo "vm: {memory_mb: 1024, cpus: 2${VMX:+, $VMX}}"
		[ -z "$guest" ] || echo "guest: $guest"
		echo "patchsets:"
		for p in "$@"; do
			case $p in
			/*) echo "  - $p" ;;
			*) echo "  - $PWD/scenarios/patchsets/$p" ;;
			esac
		done
		[ -z "${SCENX:-}" ] || echo "$SCENX"
		echo "timeouts: {boot_s: 180, transition_s: 60, probe_s: 10}"
	} > "$work/$name.yaml"
	echo "$work/$name.yaml"
}

# run NAME ARGS...: klpq run into $work/NAME; its exit code in $rc
run() {
	local name=$1
	shift
	KLPQ_PLAIN=1 "$KLPQ" run -o "$work/$name" "$@" > "$work/$name.out" 2>&1
	rc=$?
}

# py NAME CODE: python with the cells' results.json as a list c (sorted by id)
py() {
	python3 - "$work/$1" "$2" <<'PY'
import glob, json, sys
c = sorted((json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*/*/results.json")),
           key=lambda x: x["cell"])
exec(sys.argv[2])
PY
}

show() { tail -15 "$work/$1.out"; }

image_of() { py "$1" 'print(next(k["title"].split()[1] for k in c[0]["checks"] if k["check"] == "disk-image"))'; }

has() { [ "${cases[*]}" != "${cases[*]/$1/}" ]; }

if has initramfs || has built; then
	run initramfs "$(scen initramfs "" demo-cumulative)"
	if [ $rc -eq 0 ]; then
		ok "initramfs: the smoke patch set PASSes"
		boot_i=$(py initramfs 'print(c[0]["metrics"]["boot_ms"])')
	else
		notok "initramfs: rc $rc"; show initramfs
	fi
fi
if has built || has oops || has parallel; then
	run built "$(scen built "{image: disk, distro: debian-bookworm}" demo-cumulative)"
	if [ $rc -eq 0 ]; then
		img=$(image_of built)
		hash0=$(sha256sum "$img" | cut -d' ' -f1)
		ok "built: the smoke patch set PASSes on the built debian-bookworm image"
		py built '
m = c[0]["metrics"]
print("disk.sh: image %s: %.0f MB on disk, %s" % (
    [k["title"].split()[1] for k in c[0]["checks"] if k["check"] == "disk-image"][0],
    m["image_bytes"] / 1e6,
    "cached" if m["image_cached"] else "built in %.1f s (debootstrap and packing %.1f s, libguestfs %.1f s)" % (
        (m["image_rootfs_ms"] + m["image_build_ms"]) / 1000, m["image_rootfs_ms"] / 1000,
        m["image_build_ms"] / 1000)))
print("disk.sh: boot to agent: disk %.1f s (systemd finished at %.1f s), cell %.1f s" % (
    m["boot_ms"] / 1000, m["system_ready_ms"] / 1000, c[0]["duration_ms"] / 1000))'
		[ -z "${boot_i:-}" ] || echo "disk.sh: boot to agent: initramfs $(python3 -c "print('%.1f' % ($boot_i / 1000))") s (same run)"
		# the same checks as the initramfs guest
		if [ -n "${boot_i:-}" ]; then
			a=$(py initramfs 'print(" ".join(sorted(k["step"] + "/" + k["check"] + "/" + k["status"] for k in c[0]["checks"] if k["check"] not in ("disk-image", "system"))))')
			b=$(py built 'print(" ".join(sorted(k["step"] + "/" + k["check"] + "/" + k["status"] for k in c[0]["checks"] if k["check"] not in ("disk-image", "system"))))')
			[ "$a" = "$b" ] && ok "built: the same checks and results as the initramfs guest" ||
				{ notok "built: checks differ from the initramfs guest"; diff <(tr ' ' '\n' <<<"$a") <(tr ' ' '\n' <<<"$b"); }
		fi
		grep -q "klpq guest agent\|klpq-agent" "$work"/built/*/*/console.log &&
			grep -q "systemd" "$work"/built/*/*/console.log &&
			ok "built: the disk's systemd ran the agent (console.log)" ||
			notok "built: no sign of systemd starting the agent in console.log"
		py built 'import sys; sys.exit("postmortem" in c[0])' &&
			! ls "$work"/built/*/*/disk-overlay.qcow2 >/dev/null 2>&1 &&
			ok "built: a passing cell keeps no overlay and has no post-mortem" ||
			notok "built: a passing cell left an overlay or a post-mortem"
	else
		notok "built: rc $rc"; show built
	fi
fi

if has oops; then
	run oops-initramfs "$(scen oops-initramfs "" faulty-oops)"
	t_i=$(py oops-initramfs 'print(next((k["title"] for k in c[0]["checks"] if k["check"] == "crash"), ""))')
	# with a cell that wipes its own disk before crashing, next to it (-j2)
	SCENX="sources_outside_patchset: true" run oops-disk -j 2 "$(SCENX="sources_outside_patchset: true" \
		scen oops-disk "{image: disk, distro: debian-bookworm}" faulty-oops \
		"$PWD/tests/vm/patchsets/disk-corrupt")"
	t_d=$(py oops-disk 'print(next((k["title"] for x in c if "oops" in x["cell"] for k in x["checks"] if k["check"] == "crash"), ""))')
	if [ $rc -eq 1 ] && [ -n "$t_d" ] && [ "$t_i" = "$t_d" ]; then
		ok "oops: FAIL on the disk guest with the initramfs guest's title ($t_d)"
	else
		notok "oops: rc $rc, disk title '$t_d', initramfs title '$t_i'"; show oops-disk
	fi
	d=$(ls -d "$work"/oops-disk/*/*oops*/ | head -1)
	if grep -q "BUG: kernel NULL pointer dereference\|BUG: NULL pointer" "$d/postmortem/journal.txt" 2>/dev/null; then
		ok "oops: the cell folder holds the guest's journal, with the oops ($(wc -l < "$d/postmortem/journal.txt") lines)"
	else
		notok "oops: no journal with the oops in $d/postmortem"; ls -la "$d/postmortem" 2>&1
		py oops-disk 'print(json.dumps(c[0].get("postmortem"), indent=1))'
	fi
	py oops-disk '
pm = next(x for x in c if "oops" in x["cell"]).get("postmortem") or {}
import os
print("disk.sh: post-mortem in %.1f s: %s entries, %d /var/log file(s), overlay %.1f MB" % (
    pm.get("ms", 0) / 1000, pm.get("journal_entries"), len(pm.get("logs", [])),
    pm.get("overlay_bytes", 0) / 1e6))
sys.exit(0 if pm.get("overlay") and os.path.exists(pm["overlay"]) and "error" not in pm else 1)' &&
		ok "oops: results.json's postmortem names the kept overlay, no error" ||
		notok "oops: the post-mortem has no kept overlay, or an error"
	wr=$(py oops-disk '
x = next(x for x in c if "corrupt" in x["cell"])
pm = x.get("postmortem") or {}
print(x["verdict"], "|", pm.get("error", "no error"))')
	if [[ "$wr" == "FAIL | "*"a corrupt disk?"* ]] && [ -f "$(ls "$work"/oops-disk/*/results.json | head -1)" ]; then
		ok "oops: a guest that wiped its disk: FAIL, the post-mortem reports the disk unreadable, the run goes on (${wr#FAIL | })"
	else
		notok "oops: the wiped disk's cell: '$wr'"; show oops-disk
	fi
fi

if has user || has refused; then
	tar=$(ls -t "$cache"/disk/rootfs-*.tar 2>/dev/null | head -1)
	kroot=$cache/kernels/debian/$REL/root
	if [ -z "$tar" ]; then
		# the built case makes it; a run of this case alone makes it here
		run built "$(scen built "{image: disk, distro: debian-bookworm}" demo-cumulative)"
		tar=$(ls -t "$cache"/disk/rootfs-*.tar 2>/dev/null | head -1)
	fi
fi
if has user; then
	t0=$(date +%s)
	if "$MKIMAGE" "$work/user.qcow2" "$tar" "$kroot" "$REL" full > "$work/mk.out" 2>&1; then
		echo "disk.sh: the user image made with libguestfs in $(( $(date +%s) - t0 )) s"
		run user "$(scen user "{image: disk, path: $work/user.qcow2}" demo-cumulative)"
		root=$(py user 'print(next((k["title"] for k in c[0]["checks"] if k["check"] == "disk-image"), ""))')
		if [ $rc -eq 0 ] && [[ "$root" == *"root /dev/vda,"* ]]; then
			ok "user: the user's image (inspected: $root) PASSes"
		else
			notok "user: rc $rc ($root)"; show user
		fi
	else
		notok "user: mkimage failed"; tail -5 "$work/mk.out"
	fi
fi
if has refused; then
	for kind in no-modules bare; do
		if ! "$MKIMAGE" "$work/$kind.qcow2" "$tar" "$kroot" "$REL" $kind > "$work/mk-$kind.out" 2>&1; then
			notok "refused: mkimage $kind failed"; tail -5 "$work/mk-$kind.out"; continue
		fi
		run "ref-$kind" "$(scen "ref-$kind" "{image: disk, path: $work/$kind.qcow2}" demo-cumulative)"
		want="does not have the cell's kernel $REL"
		[ $kind = bare ] && want="has no systemd"
		t=$(py "ref-$kind" 'print(next((k["status"] + " " + k["title"] for k in c[0]["checks"] if k["check"] == "disk-image"), ""))')
		booted=$(ls "$work"/ref-$kind/*/*/console.log 2>/dev/null | head -1)
		if [ $rc -eq 2 ] && [[ "$t" == "ERROR "*"$want"* ]] && [ -z "$booted" ]; then
			ok "refused: an image $kind is an ERROR before boot ($want)"
		else
			notok "refused: $kind: rc $rc, '$t', booted '${booted:-no}'"; show "ref-$kind"
		fi
	done
fi

if has parallel && [ -n "${img:-}" ]; then
	run parallel -j 2 "$(scen parallel "{image: disk, distro: debian-bookworm}" demo-cumulative good-netpath)"
	hash1=$(sha256sum "$img" | cut -d' ' -f1)
	n=$(py parallel 'print(sum(1 for x in c if all(k["status"] in ("PASS", "SKIP") for k in x["checks"])))')
	if [ $rc -eq 0 ] && [ "$n" = 2 ] && [ "$hash0" = "$hash1" ]; then
		ok "parallel: -j2 on one base image: both cells PASS, the image unchanged (sha256 ${hash1:0:16})"
	else
		notok "parallel: rc $rc, $n of 2 PASS, image $([ "$hash0" = "$hash1" ] && echo unchanged || echo CHANGED)"
		show parallel
	fi
fi

if has kdump; then
	run panic-initramfs "$(scen panic-initramfs "" faulty-panic)"
	t_i=$(py panic-initramfs 'print(next((k["title"] for k in c[0]["checks"] if k["check"] == "crash"), ""))')
	SCENX="sources_outside_patchset: true" run kdump "$(SCENX="sources_outside_patchset: true" scen kdump \
		"{image: disk, distro: debian-bookworm, kdump: true, packages: [gawk]}" faulty-panic \
		faulty-oops "$PWD/tests/vm/patchsets/disk-packages")"
	t_d=$(py kdump 'print(next((k["title"] for x in c if "panic" in x["cell"] for k in x["checks"] if k["check"] == "crash"), ""))')
	armed=$(py kdump 'print(" ".join(k["status"] for x in c for k in x["checks"] if k["check"] == "kdump"))')
	# an oops with kdump armed: panic_on_oops makes x86 kexec from the oops, with no panic line
	t_o=$(py kdump 'print(next((k["title"] for x in c if "oops" in x["cell"] for k in x["checks"] if k["check"] == "crash"), ""))')
	ev=$(py kdump 'print(next((e for x in c if "oops" in x["cell"] for k in x["checks"] if k["status"] == "FAIL" for e in k.get("evidence", []) if e.startswith("kdump:")), ""))')
	do=$(ls "$work"/kdump/*/*oops*/postmortem/crash/*/dmesg.* 2>/dev/null | head -1)
	if [[ "$t_o" == "BUG: NULL pointer dereference in klpq_oops_cmdline_proc_show"* ]] &&
	   [[ "$ev" == "kdump: the capture kernel booted"* ]] && [ -n "$do" ] &&
	   grep -q "BUG: kernel NULL pointer dereference" "$do"; then
		ok "kdump: an oops goes to the capture kernel too: FAIL '$t_o', its dmesg saved"
	else
		notok "kdump: the oops cell: title '$t_o', evidence '$ev', dmesg '${do:-none}'"; show kdump
	fi
	pk=$(py kdump '
x = next(x for x in c if "packages" in x["cell"])
p = {k["step"]: k["status"] for k in x["checks"] if k["check"] == "probe:via-package"}
print(x["verdict"], " ".join("%s/%s" % (s, p.get(s, "none")) for s in ("baseline", "step1", "rollback")))')
	if [ "$pk" = "PASS baseline/PASS step1/PASS rollback/PASS" ]; then
		ok "kdump: on the same image, a probe using the package's gawk sees the fix only while patched; that cell PASSes"
	else
		notok "kdump: the disk-packages cell: '$pk'"; show kdump
	fi
	if [ $rc -eq 1 ] && [ "$armed" = "PASS PASS PASS" ] && [[ "$t_d" == "Kernel panic: "* ]] && [ "$t_i" = "$t_d" ]; then
		ok "kdump: capture kernel loaded, then FAIL with the initramfs guest's title ($t_d)"
	else
		notok "kdump: rc $rc, armed '$armed', disk title '$t_d', initramfs title '$t_i'"; show kdump
	fi
	d=$(ls -d "$work"/kdump/*/*panic*/ | head -1)
	grep -q "kdump: the capture boot ended the VM after" "$work/kdump.out" &&
		! grep -q "unexpected reboot" "$work/kdump.out" &&
		ok "kdump: the capture boot ended the VM itself; its banner is no 'unexpected reboot'" ||
		notok "kdump: the VM was not ended by the capture boot, or it was taken for a reboot"
	dm=$(ls "$d"/postmortem/crash/*/dmesg.* 2>/dev/null | head -1)
	if [ -n "$dm" ] && grep -q "Kernel panic - not syncing: klpq test" "$dm" &&
	   [ -s "$d/postmortem/journal.txt" ]; then
		ok "kdump: the cell folder holds the kdump dmesg with the panic (${dm#$d}) and the journal"
	else
		notok "kdump: no kdump dmesg with the panic in $d/postmortem"; ls -laR "$d/postmortem" 2>&1 | head -20
	fi
	py kdump '
x = next(x for x in c if "panic" in x["cell"])
m = x["metrics"]
pm = x.get("postmortem") or {}
print("disk.sh: kdump: capture boot %.1f s, post-mortem %.1f s, overlay %.1f MB, %s" % (
    m.get("kdump_ms", 0) / 1000, pm.get("ms", 0) / 1000, pm.get("overlay_bytes", 0) / 1e6,
    "image cached" if m.get("image_cached") else "image built in %.1f s" % (
        (m.get("image_rootfs_ms", 0) + m.get("image_build_ms", 0)) / 1000)))
sys.exit(0 if any(f["file"].startswith("crash/") for f in pm.get("crash", [])) else 1)' &&
		ok "kdump: results.json's postmortem lists the dmesg" ||
		notok "kdump: results.json's postmortem has no crash file"
fi

if has libvirt; then
	VMX="backend: libvirt" run libvirt "$(VMX="backend: libvirt" scen libvirt "{image: disk, distro: debian-bookworm}" demo-cumulative)"
	if [ $rc -eq 0 ] && grep -q "systemd" "$work"/libvirt/*/*/console.log; then
		ok "libvirt: the built image PASSes on the libvirt backend"
	else
		notok "libvirt: rc $rc"; show libvirt
	fi
fi

echo "disk.sh: $npass passed, $nfail failed"
[ $nfail -eq 0 ]
