#!/usr/bin/env bash
# Real-boot integration tests: each case runs klpq on a real Debian kernel under QEMU and
# asserts the exit code and the verdicts and titles in results.json.
#   tests/vm/run.sh [CASE...]   cases: see the list below; docs/reliability.md says what each proves
#   KLPQ_TEST_BACKEND=libvirt tests/vm/run.sh panic hang ...   the same cases on another backend
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
OUT=${KLPQ_TEST_RESULTS:-$(mktemp -d /tmp/klpq-vmtest-XXXXXX)}
# KLPQ_TEST_BACKEND=libvirt: the run_case scenarios on that backend (tests/vm/backend.sh)
. tests/vm/backend.sh
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(bad-input no-such-kernel smoke local wrong-probe drop-fix oops stall panic hang reboot
	hostile-channel hostile-flood silent-agent qemu-kill interrupt resume matrix-j2 shard-merge full-fs
	accel-kvm silent-console install sweep-attack resume-content moved-cache qemu-stop
	truncated-deb hostile-kbuild libvirt libvirt-kill libvirt-qemu-kill)
failed=0

# TAP: "ok N - ..." / "not ok N - ..." (with "# SKIP reason" where a case cannot run here), every
# other line a "# " comment, and the plan "1..N" at the end; the exit code fails with any not ok.
tap_n=0
note() {
	local m="$*"
	case $m in
	"ok - "*|"not ok - "*)
		tap_n=$((tap_n + 1))
		printf '%s %d - %s\n' "${m%% - *}" "$tap_n" "${m#* - }" ;;
	*) printf '%s\n' "$m" | sed 's/^/# /' ;;
	esac
}

# run_case NAME EXPECTED_EXIT SCENARIO PYTHON_ASSERTIONS
run_case() {
	local name=$1 want=$2 scen=$3 check=$4 dir="$OUT/$1" rc run_scen
	mkdir -p "$dir"
	note "=== $name: klpq run $scen (expect exit $want)"
	backend_track "$scen"
	run_scen=$(backend_scenario "$scen") || { note "not ok - $name: cannot copy $scen"; failed=1; return; }
	"$KLPQ" run -o "$dir" "$run_scen" > "$dir/stdout.txt" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		note "not ok - $name: exit $rc, expected $want"; note "$(tail -n 40 "$dir/stdout.txt")"
		failed=1; return
	fi
	if ! python3 - "$dir" "$check" <<'PY'
import glob, json, os, sys
d, check = sys.argv[1], sys.argv[2]
d_dir = d
runs = glob.glob(d + "/*/results.json")
assert len(runs) == 1, "expected one run summary, found %r" % runs
run = json.load(open(runs[0]))
cells = [json.load(open(p)) for p in glob.glob(d + "/*/*/results.json")]
assert len(cells) == 1, "expected one cell"
cell = cells[0]
checks = cell["checks"]
def find(step=None, check=None, status=None):
    return [c for c in checks if (step is None or c["step"] == step)
            and (check is None or c["check"] == check)
            and (status is None or c["status"] == status)]
exec(check)
PY
	then
		note "not ok - $name: results.json assertions failed"; failed=1; return
	fi
	note "ok - $name"
}

# A QEMU left behind is one no klpq owns any more (each case waits for its klpq, so a QEMU
# whose parent is not a klpq is an orphan). QEMUs of another klpq running beside the tests are
# not ours to judge; zombies waiting for init to reap them are dead already.
leftover_qemu() {
	local p pp
	for p in $(pgrep -f '^qemu-system-x86_64 -name '); do
		pp=$(ps -o ppid= -p "$p" | tr -d ' ')
		[ -n "$pp" ] || continue
		[ "$(ps -o comm= -p "$pp")" = klpq ] || return 0
	done
	return 1
}

# Temporary folders (/tmp/klpq-UID/vm-PID-*, cell-PID-*) newer than MARK whose owner is dead:
# left behind. A folder of a live process is in use (another klpq on this machine), not left.
stale_tmp() {
	local f pid st
	for f in $(find "/tmp/klpq-$(id -u)" -mindepth 1 -maxdepth 1 \( -name 'vm-*' -o -name 'cell-*' -o -name 'lv-*' \) -newer "$1" 2>/dev/null); do
		pid=${f##*/}; pid=${pid#vm-}; pid=${pid#cell-}; pid=${pid#lv-}; pid=${pid%%-*}
		st=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')
		[ -n "$st" ] && [ "${st#Z}" = "$st" ] && continue
		echo "$f"
	done
}

# QEMU processes of libvirt domains klpq made (named klpq-...), and the embedded driver's roots
libvirt_qemu() { pgrep -f -- '-name guest=klpq-' || true; }
libvirt_roots() { find "/tmp/klpq-$(id -u)" -mindepth 1 -maxdepth 1 -name 'lv-*' 2>/dev/null; }

for c in "${cases[@]}"; do
	case $c in
	bad-input)
		tmp=$(mktemp -d)
		printf 'name: bad\nkernels:\n  - debian:6.1.0-56-amd64\npatchset: %s\nvm:\n  memroy_mb: 5\n' \
			"$PWD/scenarios/patchsets/demo-cumulative" > "$tmp/bad.yaml"
		"$KLPQ" validate "$tmp/bad.yaml" > "$tmp/out" 2>&1; rc=$?
		if [ $rc -eq 2 ] && grep -q "bad.yaml:6:3:" "$tmp/out" && grep -q memroy_mb "$tmp/out"; then
			note "ok - bad-input: $(cat "$tmp/out")"
		else
			note "not ok - bad-input: exit $rc: $(cat "$tmp/out")"; failed=1
		fi
		"$KLPQ" run -o "$tmp/r" "$tmp/bad.yaml" > /dev/null 2>&1; rc=$?
		[ $rc -eq 2 ] && [ ! -e "$tmp/r" ] || { note "not ok - bad-input run: exit $rc"; failed=1; }
		rm -rf "$tmp"
		;;
	no-such-kernel)
		# A kernel the archive does not have: the download fails, which is ERROR (exit 2),
		# retried once (--retries 1 is the default), the first attempt kept aside.
		mkdir -p "$OUT/nsk"
		printf '%s\n' "name: nsk" "kernels:" "  - debian:6.1.0-9999-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" > "$OUT/nsk/nsk.yaml"
		run_case no-such-kernel 2 "$OUT/nsk/nsk.yaml" '
assert cell["verdict"] == "ERROR"
k = find("prepare", "kernel", "ERROR")
assert k and "apt-get -q download linux-image-6.1.0-9999-amd64" in k[0]["title"], k
assert "\n" not in k[0]["title"]
assert any("Unable to locate package" in e for e in k[0]["evidence"]), k
assert not find(None, None, "FAIL")
assert cell["attempts"] == 2, cell["attempts"]
aside = glob.glob(os.path.dirname(runs[0]) + "/.attempts/6.1.0-9999-amd64_demo-cumulative.1/results.json")
assert aside and json.load(open(aside[0]))["verdict"] == "ERROR", aside
'
		;;
	smoke)
		run_case smoke 0 scenarios/smoke.yaml '
assert cell["verdict"] == "PASS", cell["verdict"]
bad = [c for c in checks if c["status"] not in ("PASS",)]
assert not bad, bad
for s in ("step1", "step2", "step3"):
    assert find(s, "transition", "PASS"), s
    assert find(s, "transcript", "PASS"), s
assert len(find("step3", None, "PASS")) >= 8
assert find("step2", "replaced", "PASS") and find("step3", "replaced", "PASS")
assert len(find("step3")) and all(find("step3", "probe:" + p, "PASS") for p in ("cmdline-fix1", "version-fix2", "shadow-counter"))
assert find("rollback", "unpatch-transition", "PASS")
assert len(find("rollback", None, "PASS")) >= 6
assert find("reapply", "transition", "PASS")
assert find("end", "poweroff", "PASS")
assert cell["accel"] in ("tcg", "kvm")
# accel auto: the choice comes with its reason, in the cell, the run and the terminal
r = cell["accel_reason"]
assert r.startswith("KVM works") if cell["accel"] == "kvm" else r.startswith("KVM unusable: "), r
assert run["cells"][0]["accel_reason"] == r
out = open(d + "/stdout.txt").read()
assert ("accel %s: %s" % (cell["accel"], r)) in out, out[-2000:]
if os.path.exists("/dev/kvm") and cell["accel"] == "tcg":
    print("smoke: accel tcg:", r)
assert run["exit_code"] == 0
'
		;;
	accel-kvm)
		# accel: kvm where KVM cannot run the kernel: an ERROR within seconds that names KVM
		# and why, not retried (the same decision would come again), no FAIL. Skipped where
		# KVM works (the smoke case, run first, decided so).
		d="$OUT/accel-kvm"; mkdir -p "$d"
		sed 's/accel: auto/accel: kvm/' scenarios/smoke.yaml > "$d/kvm.yaml"
		sed -i "s|^patchset: .*|patchset: $PWD/scenarios/patchsets/demo-cumulative|" "$d/kvm.yaml"
		grep -q "accel: kvm" "$d/kvm.yaml" || { note "not ok - accel-kvm: no accel key to change"; failed=1; continue; }
		t0=$(date +%s)
		if grep -rqs '"accel":"kvm"' "${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}/accel/"; then
			note "ok - accel-kvm # SKIP KVM works on this host (the smoke case ran under it)"; continue
		fi
		run_case accel-kvm-run 2 "$d/kvm.yaml" '
assert cell["verdict"] == "ERROR", cell["verdict"]
a = find("boot", "accel", "ERROR")
assert a and a[0]["title"].startswith("the scenario asks for accel kvm, but KVM unusable: "), checks
assert not find(None, None, "FAIL")
assert not find("boot", "qemu") and not find("boot", "agent"), "QEMU was started anyway"
assert cell["attempts"] == 1, cell["attempts"]
assert cell.get("no_retry"), cell
assert "not retried" in open(d + "/stdout.txt").read()
'
		secs=$(( $(date +%s) - t0 ))
		if [ $secs -le 60 ]; then note "ok - accel-kvm: ERROR in $secs s"; else note "not ok - accel-kvm: took $secs s"; failed=1; fi
		;;
	silent-console)
		# A guest that never prints a byte: given up on after timeouts.console_s, not boot_s.
		# Made for real on a host whose /dev/kvm cannot run the kernel: QEMU with KVM and
		# -cpu host,-arch-capabilities starts a guest that stays silent (field notes).
		d="$OUT/silent-console"; mkdir -p "$d"
		if ! grep -rqs "MSR 0x10a" "${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}/accel/"; then
			note "ok - silent-console # SKIP needs a host whose KVM aborts on MSR 0x10a"; continue
		fi
		printf '%s\n' '#!/bin/sh' 'n=$#; for x in "$@"; do case $x in' \
			'q35,accel=tcg) x=q35,accel=kvm ;; max) x=host,-arch-capabilities ;; esac' \
			'set -- "$@" "$x"; done; shift $n' 'exec qemu-system-x86_64 "$@"' > "$d/qemu"
		chmod +x "$d/qemu"
		sed -e "s|^patchset: .*|patchset: $PWD/scenarios/patchsets/demo-cumulative|" \
			-e 's/accel: auto/accel: tcg/' -e 's/^  boot_s: 180$/  boot_s: 180\n  console_s: 5/' \
			scenarios/smoke.yaml > "$d/s.yaml"
		grep -q "console_s: 5" "$d/s.yaml" || { note "not ok - silent-console: no timeouts line"; failed=1; continue; }
		t0=$(date +%s)
		KLPQ_QEMU="$d/qemu" "$KLPQ" run --retries 0 -o "$d/r" "$d/s.yaml" > "$d/stdout.txt" 2>&1; rc=$?
		secs=$(( $(date +%s) - t0 ))
		if [ $rc -eq 2 ] && [ $secs -lt 60 ] && python3 - "$d" <<'PY'
import glob, json, sys
c = json.load(open(glob.glob(sys.argv[1] + "/r/*/*/results.json")[0]))
e = [k for k in c["checks"] if k["check"] == "console"]
assert e and e[0]["status"] == "ERROR", c["checks"]
# klpq asked for tcg; the wrapper made it KVM behind its back
assert e[0]["title"] == "the guest printed nothing on its console in 5 s (accel tcg, -cpu max)", e
assert not [k for k in c["checks"] if k["status"] == "FAIL"]
PY
		then note "ok - silent-console: ERROR after $secs s"; else note "not ok - silent-console: exit $rc after $secs s"; tail -5 "$d/stdout.txt"; failed=1; fi
		;;
	hostile-kbuild)
		# A Kbuild runs host commands. klpq as root builds as nobody (with read access only):
		# the Kbuild sees uid 65534 and cannot write into /root; the step is a build FAIL.
		if [ "$(id -u)" -ne 0 ]; then note "ok - hostile-kbuild # SKIP needs root"; continue; fi
		rm -f /root/klpq-hostile-kbuild
		run_case hostile-kbuild 1 tests/vm/scenarios/hostile-kbuild.yaml '
b = find("step1", "build", "FAIL")
assert b and "does not build against" in b[0]["title"], checks
ev = "\n".join(b[0]["evidence"])
assert "klpq-build-uid=65534" in ev and "klpq-write-root=refused" in ev, ev
assert not os.path.exists("/root/klpq-hostile-kbuild")
assert not find("boot")
'
		# a cache others can write: refused before anything runs
		wc=$(mktemp -d /tmp/klpq-wcache-XXXXXX); chmod 777 "$wc"
		"$KLPQ" run --cache "$wc" -o "$wc/r" tests/vm/scenarios/hostile-kbuild.yaml > "$wc.txt" 2>&1; rc=$?
		if [ $rc -eq 2 ] && grep -q "must belong to user 0 and be writable by it alone (owner 0, mode 0777)" "$wc.txt" && [ ! -e "$wc/r" ]; then
			note "ok - hostile-kbuild: a world-writable cache refused"
		else note "not ok - hostile-kbuild: a world-writable cache: exit $rc"; failed=1; fi
		rm -rf "$wc" "$wc.txt"
		;;
	truncated-deb)
		# A cached .deb cut short (a copy killed midway, a full disk): checked against the
		# archive's size and SHA-256 before use, deleted and fetched again; the cell passes.
		# Before: reused unchecked, the unpack failed, and every later run failed the same way.
		cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
		d="$OUT/truncated-deb"; rm -rf "$d"; mkdir -p "$d/c3/kernels/debian/6.1.0-56-amd64"
		cp -r "$cache/kernels/debian/6.1.0-56-amd64/debs" "$d/c3/kernels/debian/6.1.0-56-amd64/"
		[ -d "$cache/modules" ] && cp -al "$cache/modules" "$d/c3/modules"
		[ -d "$cache/accel" ] && cp -a "$cache/accel" "$d/c3/accel"
		img=$(ls "$d"/c3/kernels/debian/6.1.0-56-amd64/debs/linux-image-6.1.0-56-amd64_*.deb)
		truncate -s 1048576 "$img"
		printf '%s\n' "name: trunc" "kernels:" "  - debian:6.1.0-56-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" "leak: { cycles: 0 }" > "$d/s.yaml"
		KLPQ_CACHE="$d/c3" KLPQ_PLAIN=1 "$KLPQ" run --retries 0 -o "$d/r" "$d/s.yaml" > "$d/stdout.txt" 2>&1; rc=$?
		if [ $rc -eq 0 ] && grep -q "does not match Debian's archive (1048576 bytes, the archive says [0-9]*): fetching it again" "$d/stdout.txt" &&
		   [ "$(stat -c %s "$img")" -gt 1048576 ]; then
			note "ok - truncated-deb: detected, fetched again, PASS"
		else
			note "not ok - truncated-deb: exit $rc"; grep -E "prepare|match" "$d/stdout.txt" | tail -5; failed=1
		fi
		rm -rf "$d/c3"
		;;
	qemu-stop)
		# QEMU frozen (SIGSTOP) after a patch: the agent's heartbeat stops and QMP is silent
		# too, so it is QEMU's trouble, not the kernel's: ERROR within seconds, retried, and
		# the retry passes. Before: FAIL "guest stopped answering" after the request budget.
		d="$OUT/qemu-stop"; mkdir -p "$d"
		printf '%s\n' "name: qemustop" "kernels:" "  - debian:6.1.0-56-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" "leak: { cycles: 0 }" > "$d/s.yaml"
		KLPQ_PLAIN=1 "$KLPQ" run -o "$d/r" "$d/s.yaml" > "$d/stdout.txt" 2>&1 &
		pid=$!
		for _ in $(seq 1 600); do grep -q "step1 .*load .*PASS" "$d/stdout.txt" && break; sleep 0.1; done
		t0=$(date +%s)
		pkill -STOP -f "qemu-system-x86_64 -name 6.1.0-56-amd64_demo-cumulative -machine"
		for _ in $(seq 1 600); do grep -q "retrying (attempt 2" "$d/stdout.txt" && break; sleep 0.1; done
		secs=$(( $(date +%s) - t0 ))
		wait $pid; rc=$?
		if [ $rc -eq 0 ] && [ $secs -le 30 ] && python3 - "$d" <<'PY'
import glob, json, sys
a = json.load(open(glob.glob(sys.argv[1] + "/r/*/.attempts/*/results.json")[0]))
e = [k for k in a["checks"] if k["status"] == "ERROR"]
assert e and e[0]["title"].startswith("QEMU itself stopped answering (QMP silent for 3 s too)"), e
assert "heartbeat lost" in e[0]["title"], e
assert not [k for k in a["checks"] if k["status"] == "FAIL"], a["checks"]
c = json.load(open(glob.glob(sys.argv[1] + "/r/*/*/results.json")[0]))
assert c["verdict"] == "PASS" and c["attempts"] == 2, (c["verdict"], c["attempts"])
PY
		then note "ok - qemu-stop: ERROR after $secs s, retried, PASS"
		else note "not ok - qemu-stop: exit $rc after $secs s"; tail -5 "$d/stdout.txt"; failed=1; fi
		;;
	moved-cache)
		# The kernel cache moved elsewhere (hard links of the real one: a CI cache restored
		# in another place): modules build against the moved headers and the cell passes;
		# then a header deleted in the moved cache is an ERROR naming the cache, not a FAIL of
		# the patch, and never a build against the other cache's headers.
		cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
		d="$OUT/moved-cache"; rm -rf "$d"; mkdir -p "$d/c2"
		cp -al "$cache/kernels" "$d/c2/kernels"
		[ -d "$cache/accel" ] && cp -a "$cache/accel" "$d/c2/accel"
		printf '%s\n' "name: moved" "kernels:" "  - debian:6.1.0-56-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" "leak: { cycles: 0 }" > "$d/s.yaml"
		mk="$d/c2/kernels/debian/6.1.0-56-amd64/root/usr/src/linux-headers-6.1.0-56-amd64/Makefile"
		ok=1
		KLPQ_CACHE="$d/c2" "$KLPQ" run -o "$d/r1" "$d/s.yaml" > "$d/1.txt" 2>&1 ||
			{ ok=0; note "not ok - moved-cache: the moved cache did not pass"; tail -5 "$d/1.txt"; }
		grep -q "step1 .*build .*PASS .*klpq_demo_s1$" "$d/1.txt" || { ok=0; note "not ok - moved-cache: step1 was not built"; }
		grep -q '^include $(dir $(lastword $(MAKEFILE_LIST)))../linux-headers-6.1.0-56-common/Makefile' "$mk" ||
			{ ok=0; note "not ok - moved-cache: the headers include is not relative: $(head -1 "$mk")"; }
		rm -f "$d/c2/kernels/debian/6.1.0-56-amd64/root/usr/src/linux-headers-6.1.0-56-common/include/linux/livepatch.h"
		rm -rf "$d/c2/modules"
		KLPQ_CACHE="$d/c2" "$KLPQ" run --retries 0 -o "$d/r2" "$d/s.yaml" > "$d/2.txt" 2>&1; rc=$?
		[ $rc -eq 2 ] && grep -q "prepare .*kernel .*ERROR .*the cached headers of 6.1.0-56-amd64 changed since they were unpacked" "$d/2.txt" &&
			! grep -q " FAIL " "$d/2.txt" || { ok=0; note "not ok - moved-cache: a broken headers tree gave exit $rc"; tail -5 "$d/2.txt"; }
		rm -rf "$d/c2"
		[ $ok -eq 1 ] && note "ok - moved-cache: built against the moved headers; a deleted header is ERROR" || failed=1
		;;
	resume-content)
		# --resume keeps a finished cell only for the same content: an ERROR cell runs again
		# (infrastructure cannot be resumed away); a patch set changed under the same name
		# runs again; an unchanged one is kept.
		d="$OUT/resume-content"; rm -rf "$d"; mkdir -p "$d"
		cp -r scenarios/patchsets/demo-cumulative "$d/ps"
		printf '%s\n' "name: rc" "kernels:" "  - debian:6.1.0-56-amd64" "patchset: $d/ps" \
			"leak: { cycles: 0 }" > "$d/s.yaml"
		printf '%s\n' "name: rcerr" "kernels:" "  - debian:6.1.0-9999-amd64" "patchset: $d/ps" > "$d/e.yaml"
		ok=1
		"$KLPQ" run -o "$d/r" "$d/s.yaml" > "$d/1.txt" 2>&1 || { ok=0; note "not ok - resume-content: first run failed"; }
		run=$(ls -d "$d"/r/*/)
		"$KLPQ" run --resume "$run" > "$d/2.txt" 2>&1 && grep -q "already finished: PASS (kept)" "$d/2.txt" &&
			! grep -q "cell start" "$d/2.txt" || { ok=0; note "not ok - resume-content: unchanged cell not kept"; }
		echo "/* changed */" >> "$d/ps/step1/klpq_demo_s1.c"
		"$KLPQ" run --resume "$run" > "$d/3.txt" 2>&1 && grep -q "not kept: the patch set's content changed" "$d/3.txt" &&
			grep -q "cell start" "$d/3.txt" || { ok=0; note "not ok - resume-content: changed patch set kept"; tail -3 "$d/3.txt"; }
		"$KLPQ" run --retries 0 -o "$d/e" "$d/e.yaml" > "$d/4.txt" 2>&1
		"$KLPQ" run --retries 0 --resume "$(ls -d "$d"/e/*/)" > "$d/5.txt" 2>&1
		grep -q "not kept: it ended in ERROR" "$d/5.txt" && grep -q "cell start" "$d/5.txt" ||
			{ ok=0; note "not ok - resume-content: ERROR cell kept"; tail -3 "$d/5.txt"; }
		[ $ok -eq 1 ] && note "ok - resume-content: unchanged kept, changed and ERROR cells run again" || failed=1
		;;
	sweep-attack)
		# The sweep of dead klpqs' temporary folders, attacked by an unprivileged user (nobody):
		# a folder of the old /tmp/klpq-vm-PID-* pattern with a symlink to a root-owned folder,
		# a pre-made private parent in a shared TMPDIR (a folder of nobody, then a symlink);
		# and in root's own private parent: a dead klpq's folder holding a symlink to the
		# victim (swept, the victim intact) and a live one's, locked (left alone).
		d="$OUT/sweep-attack"; mkdir -p "$d"
		if [ "$(id -u)" -ne 0 ]; then note "ok - sweep-attack # SKIP needs root"; continue; fi
		victim=$(mktemp -d /tmp/klpq-victim-XXXXXX); echo precious > "$victim/precious"
		printf '%s\n' "name: sweep" "kernels:" "  - debian:6.1.0-9999-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" > "$d/s.yaml"
		old="/tmp/klpq-vm-99999-attack"; rm -rf "$old"
		setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "mkdir $old && ln -s $victim $old/sub"
		parent="/tmp/klpq-$(id -u)"; mkdir -p "$parent"; chmod 700 "$parent"
		dead="$parent/cell-99998-attack"; live="$parent/vm-99997-live"
		mkdir -p "$dead" "$live"; ln -s "$victim" "$dead/sub"; ln -s "$victim/precious" "$dead/file"
		touch -d '2 hours ago' "$dead"
		touch "$live/.lock"; flock "$live/.lock" sleep 120 & lockpid=$!
		sleep 0.3
		"$KLPQ" run --retries 0 -o "$d/r" "$d/s.yaml" > "$d/run.txt" 2>&1
		ok=1
		[ -f "$victim/precious" ] || { note "not ok - sweep-attack: the victim's file was deleted"; ok=0; }
		[ -L "$old/sub" ] || { note "not ok - sweep-attack: another user's folder was touched"; ok=0; }
		[ ! -e "$dead" ] || { note "not ok - sweep-attack: a dead klpq's folder was not swept"; ok=0; }
		[ -d "$live" ] || { note "not ok - sweep-attack: a live (locked) folder was swept"; ok=0; }
		kill $lockpid 2>/dev/null; wait $lockpid 2>/dev/null; rm -rf "$live"
		# a shared TMPDIR where nobody made klpq-0 first: refused, naming it; then a symlink
		base=$(mktemp -d /tmp/klpq-shared-XXXXXX); chmod 1777 "$base"
		setpriv --reuid=65534 --regid=65534 --clear-groups mkdir "$base/klpq-0"
		TMPDIR=$base "$KLPQ" run -o "$d/r2" "$d/s.yaml" > "$d/run2.txt" 2>&1; rc2=$?
		setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "rmdir $base/klpq-0 && ln -s $victim $base/klpq-0"
		TMPDIR=$base "$KLPQ" run -o "$d/r3" "$d/s.yaml" > "$d/run3.txt" 2>&1; rc3=$?
		grep -q "klpq-0 must be a folder of user 0 with mode 0700 (it is a folder, owner 65534" "$d/run2.txt" ||
			{ note "not ok - sweep-attack: a foreign private parent not refused: $(tail -2 "$d/run2.txt")"; ok=0; }
		grep -q "klpq-0 must be a folder of user 0 with mode 0700 (it is a symlink" "$d/run3.txt" ||
			{ note "not ok - sweep-attack: a symlinked private parent not refused: $(tail -2 "$d/run3.txt")"; ok=0; }
		[ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ -f "$victim/precious" ] || { note "not ok - sweep-attack: exit $rc2/$rc3"; ok=0; }
		rm -rf "$old" "$victim" "$base"
		[ $ok -eq 1 ] && note "ok - sweep-attack: nothing outside klpq's own dead folders removed" || failed=1
		;;
	install)
		# make install into a DESTDIR, then the installed klpq runs the installed smoke
		# scenario and a scenario with a workload, from another folder.
		d="$OUT/install"; rm -rf "$d"; mkdir -p "$d/cwd"
		if ! make --no-print-directory install PREFIX=/usr DESTDIR="$d/root" > "$d/install.txt" 2>&1; then
			note "not ok - install: make install failed"; tail -5 "$d/install.txt"; failed=1; continue
		fi
		root="$d/root/usr"
		for f in bin/klpq lib/klpq/klpq-agent lib/klpq/klpq-workload share/man/man1/klpq.1 \
			share/klpq/scenarios/smoke.yaml share/klpq/scenarios/patchsets/demo-cumulative/patchset.yaml; do
			[ -e "$root/$f" ] || { note "not ok - install: $f not installed"; failed=1; }
		done
		printf '%s\n' "name: installed-load" "kernels:" "  - debian:6.1.0-56-amd64" \
			"patchset: $root/share/klpq/scenarios/patchsets/demo-cumulative" \
			"workloads:" "  - name: callbench" "    op: getppid" \
			"perf: { warmup_s: 1, phase_s: 2, pairs: 1, threshold_pct: 1000 }" "leak: { cycles: 0 }" > "$d/load.yaml"
		ok=1
		for s in "$root/share/klpq/scenarios/smoke.yaml" "$d/load.yaml"; do
			(cd "$d/cwd" && KLPQ_PLAIN=1 "$root/bin/klpq" run -o "$d/cwd/results" "$s") > "$d/run.txt" 2>&1 ||
				{ ok=0; note "not ok - install: the installed klpq on $s: exit $?"; tail -8 "$d/run.txt"; }
		done
		[ $ok -eq 1 ] && [ $(ls "$d/cwd/results" | wc -l) -eq 2 ] && note "ok - install: the installed klpq ran smoke and a workload scenario" || failed=1
		;;
	local)
		# A local: kernel given as paths: the Debian kernel the smoke case put in the cache.
		cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
		root=$cache/kernels/debian/6.1.0-56-amd64/root
		if [ ! -e "$root/boot/vmlinuz-6.1.0-56-amd64" ]; then
			"$KLPQ" run -o "$OUT/local-warmup" scenarios/smoke.yaml > /dev/null 2>&1
		fi
		# Its patch set: step1 as a prebuilt .ko (the one the smoke case built for this
		# kernel), step2 from source.
		ko=
		for f in $(find "$cache/modules" -name klpq_demo_s1.ko 2>/dev/null); do
			[ "$(modinfo -F vermagic "$f" | cut -d' ' -f1)" = 6.1.0-56-amd64 ] && ko=$f && break
		done
		ps="$OUT/local-scenario/prebuilt"
		mkdir -p "$ps"
		cp -r scenarios/patchsets/demo-cumulative/step2 "$ps/step2"
		[ -n "$ko" ] && cp "$ko" "$ps/klpq_demo_s1.ko"
		printf '%s\n' "name: prebuilt" "steps:" "  - name: step1" "    module: klpq_demo_s1.ko" \
			"    probes:" "      - name: cmdline-fix1" "        run: grep -q klpq.fix1 /proc/cmdline" \
			"  - name: step2" "    source: step2" "    probes:" "      - name: version-fix2" \
			"        run: grep -q klpq.fix2 /proc/version" > "$ps/patchset.yaml"
		printf '%s\n' "name: local" "kernels:" "  - local:" \
			"      vmlinuz: $root/boot/vmlinuz-6.1.0-56-amd64" \
			"      modules: $root/lib/modules/6.1.0-56-amd64" \
			"      build: $root/usr/src/linux-headers-6.1.0-56-amd64" \
			"patchset: prebuilt" > "$OUT/local-scenario/local.yaml"
		run_case local 0 "$OUT/local-scenario/local.yaml" '
assert cell["verdict"] == "PASS", [c for c in checks if c["status"] != "PASS"]
assert cell["kernel"] == "local:6.1.0-56-amd64", cell["kernel"]
assert find("step1", "build", "PASS")[0]["title"] == "klpq_demo_s1 (cache)"
assert find("step2", "probe:cmdline-fix1", "PASS") and find("step2", "replaced", "PASS")
'
		;;
	wrong-probe)
		run_case wrong-probe 1 tests/vm/scenarios/faulty-wrong-probe.yaml '
assert cell["verdict"] == "FAIL"
f = find("step1", "probe:cmdline-fix9", "FAIL")
assert f and "failed after step1" in f[0]["title"], f
assert any("grep -q klpq.fix9" in e for e in f[0]["evidence"])
assert find("step1", "transition", "PASS")
'
		;;
	drop-fix)
		run_case drop-fix 1 tests/vm/scenarios/faulty-drop-fix.yaml '
assert cell["verdict"] == "FAIL"
assert find("step1", "probe:cmdline-fix1", "PASS")
f = find("step2", "probe:cmdline-fix1", "FAIL")
assert f and "earlier step" in f[0]["title"], f
assert find("step2", "probe:version-fix2", "PASS")
'
		;;
	oops)
		run_case oops 1 tests/vm/scenarios/faulty-oops.yaml '
assert cell["verdict"] == "FAIL"
crash = find(None, "crash", "FAIL")
assert crash, checks
assert any(c["title"].startswith("BUG: NULL pointer dereference in ") for c in crash), crash
assert any("RIP" in e for c in crash for e in c["evidence"])
'
		;;
	stall)
		run_case stall 1 tests/vm/scenarios/faulty-stall.yaml '
assert cell["verdict"] == "FAIL"
f = find("step1", "transition", "FAIL")
assert f and f[0]["title"].startswith("transition stall: \x27klpq_stall_s1\x27 did not settle within 8 s (blocked by klpq_stall:"), f
ev = f[0]["evidence"]
assert any(e.startswith("task klpq_stall pid ") for e in ev), ev
assert any("msleep+" in e for e in ev), ev
r = find("step1", "recovery", "PASS")
assert r and r[0]["title"].startswith("recovered by reversing the transition: klpq_stall_s1 unpatched"), find("step1", "recovery")
assert find("end", "poweroff", "PASS")
'
		;;
	interrupt)
		# SIGINT mid-cell: exit 2, results written with the cell marked unfinished, QEMU gone.
		# SIGKILL mid-cell: QEMU dies with klpq (PR_SET_PDEATHSIG).
		for sig in INT TERM KILL; do
			d="$OUT/interrupt-$sig"; mkdir -p "$d"; touch "$d/mark"
			"$KLPQ" run -o "$d" scenarios/smoke.yaml > "$d/stdout.txt" 2>&1 &
			pid=$!
			for _ in $(seq 1 600); do grep -q "step1 .*load .*PASS" "$d/stdout.txt" && break; sleep 0.1; done
			qpid=$(pgrep -f "qemu-system-x86_64 -name 6.1.0-56-amd64_demo-cumulative" | head -n1)
			kill -$sig $pid; wait $pid; rc=$?
			sleep 1
			if [ -z "$qpid" ]; then note "not ok - interrupt-$sig: no QEMU seen"; failed=1; continue; fi
			# dead, or a zombie left for init to reap once klpq (its parent) is gone
			st=$(ps -o stat= -p "$qpid" 2>/dev/null | tr -d ' ')
			if [ -n "$st" ] && [ "${st#Z}" = "$st" ]; then note "not ok - interrupt-$sig: QEMU $qpid survived"; failed=1; kill -9 "$qpid"; continue; fi
			if [ $sig != KILL ]; then
				if [ $rc -eq 2 ] && python3 - "$d" <<'PY'
import glob, json, sys
run = json.load(open(glob.glob(sys.argv[1] + "/*/results.json")[0]))
cell = json.load(open(glob.glob(sys.argv[1] + "/*/*/results.json")[0]))
assert run["interrupted"] and run["exit_code"] == 2 and run["cells"][0]["verdict"] == "ERROR"
assert not cell["finished"]
assert any(c["title"].startswith("interrupted") for c in cell["checks"])
assert any(c["step"] == "step1" and c["status"] == "PASS" for c in cell["checks"])
PY
				then note "ok - interrupt-$sig: exit 2, results kept, QEMU stopped"
				else note "not ok - interrupt-$sig: exit $rc or results wrong"; failed=1; fi
				left=$(stale_tmp "$d/mark")
				if [ -n "$left" ]; then
					note "not ok - interrupt-$sig: temporary folders left: $left"; failed=1
				fi
			else
				note "ok - interrupt-KILL: QEMU died with klpq"
			fi
		done
		;;
	panic)
		run_case panic 1 tests/vm/scenarios/faulty-panic.yaml '
assert cell["verdict"] == "FAIL"
assert find("step1", "crash", "FAIL")[0]["title"] == "Kernel panic: klpq test: panic in the patched cmdline_proc_show"
d = find("step1", "probe:cmdline-fix1", "FAIL")
assert d and d[0]["title"].startswith("guest died: kernel panic"), d
'
		;;
	hang)
		# every CPU frozen: the agent falls silent; its heartbeat is missed for 10 s, QMP still
		# answers (QEMU runs, the guest is hung): FAIL, before the request's 20 s budget
		run_case hang 1 tests/vm/scenarios/faulty-hang.yaml '
d = find("step1", "probe:cmdline-fix1", "FAIL")
assert d and d[0]["title"].startswith("guest stopped answering: agent request \x27exec\x27: heartbeat lost: nothing from the agent for 10."), d
assert cell["duration_ms"] < 120000, cell["duration_ms"]
# what could be had before the kill: QMP status and the registers of every CPU
hd = glob.glob(d_dir + "/*/*/hang-dump.txt")
assert hd and "query-status" in open(hd[0]).read() and "RIP=" in open(hd[0]).read(), hd
assert any("hang-dump.txt" in e for e in d[0]["evidence"]), d
'
		;;
	reboot)
		run_case reboot 1 tests/vm/scenarios/faulty-reboot.yaml '
d = find("step1", "probe:cmdline-fix1", "FAIL")
assert d and d[0]["title"].startswith("guest died: reset without a panic"), d
assert not find(None, "crash")
'
		;;
	hostile-channel)
		KLPQ_AGENT=$(cd "$(dirname "$KLPQ")" && pwd)/klpq-agent-faults \
		run_case hostile-channel 1 tests/vm/scenarios/hostile-channel.yaml '
assert find("step1", "probe:garbage-then-fix1", "PASS"), checks
a = find("end", "agent-channel", "FAIL")
assert a and "1 oversized and 201 malformed" in a[0]["title"], a
assert find("end", "poweroff", "PASS")
assert run["harness"]["peak_rss_kb"] < int(os.environ.get("KLPQ_TEST_MAX_RSS_KB", 65536)), run["harness"]
'
		;;
	hostile-flood)
		run_case hostile-flood 0 tests/vm/scenarios/hostile-flood.yaml '
assert cell["verdict"] == "PASS", [c for c in checks if c["status"] != "PASS"]
import os
assert os.path.getsize(glob.glob(d + "/*/*/console.log")[0]) > 4 << 20
assert run["harness"]["peak_rss_kb"] < int(os.environ.get("KLPQ_TEST_MAX_RSS_KB", 65536)), run["harness"]
'
		;;
	silent-agent)
		# An init that never speaks the protocol (busybox's own init): ERROR within boot_s.
		mkdir -p "$OUT/silent"
		sed "s/  boot_s: 180/  boot_s: 15/; s#patchset: patchsets/#patchset: $PWD/scenarios/patchsets/#" \
			scenarios/smoke.yaml > "$OUT/silent/silent.yaml"
		KLPQ_AGENT=/bin/busybox run_case silent-agent 2 "$OUT/silent/silent.yaml" '
a = find("boot", "agent", "ERROR")
assert a and a[0]["title"] == "guest stopped answering before any patch: waiting for the agent: no answer within 15.0 s", a
assert any("last console lines" in e for e in a[0]["evidence"])
assert not find(None, None, "FAIL")
assert cell["duration_ms"] < 60000, cell["duration_ms"]
'
		;;
	qemu-kill)
		# QEMU killed from outside mid-cell: that attempt is ERROR with the reason (not a FAIL),
		# the cell is run again (--retries 1, the default) and passes; the run goes on to the
		# next cell (the same kernel again, as local:). With --retries 0 the ERROR stands.
		cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
		root=$cache/kernels/debian/6.1.0-56-amd64/root
		d="$OUT/qemu-kill"; mkdir -p "$d"
		printf '%s\n' "name: qemukill" "kernels:" "  - debian:6.1.0-56-amd64" "  - local:" \
			"      vmlinuz: $root/boot/vmlinuz-6.1.0-56-amd64" \
			"      modules: $root/lib/modules/6.1.0-56-amd64" \
			"      build: $root/usr/src/linux-headers-6.1.0-56-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" "leak:" "  cycles: 0" > "$d/s.yaml"
		for retries in 1 0; do
			KLPQ_PLAIN=1 "$KLPQ" run --retries $retries -o "$d/r$retries" "$d/s.yaml" > "$d/stdout$retries.txt" 2>&1 &
			pid=$!
			for _ in $(seq 1 600); do grep -q "step1 .*load .*PASS" "$d/stdout$retries.txt" && break; sleep 0.1; done
			pkill -KILL -f "qemu-system-x86_64 -name 6.1.0-56-amd64_demo-cumulative -machine"
			wait $pid; rc[$retries]=$?
		done
		if [ ${rc[1]} -eq 0 ] && [ ${rc[0]} -eq 2 ] && python3 - "$d" <<'PY'
import glob, json, sys
def check_error(c):
    e = [k for k in c["checks"] if k["status"] == "ERROR"]
    assert e and "QEMU ended from outside the guest" in e[0]["title"] and "signal 9" in e[0]["title"], e
    assert not [k for k in c["checks"] if k["status"] == "FAIL"]
# retried: the cell passed on its second attempt, the first kept aside
run = json.load(open(glob.glob(sys.argv[1] + "/r1/*/results.json")[0]))
v = {c["cell"]: c["verdict"] for c in run["cells"]}
assert v == {"6.1.0-56-amd64_demo-cumulative": "PASS", "6.1.0-56-amd64_demo-cumulative-2": "PASS"}, v
c = json.load(open(glob.glob(sys.argv[1] + "/r1/*/6.1.0-56-amd64_demo-cumulative/results.json")[0]))
assert c["attempts"] == 2, c["attempts"]
check_error(json.load(open(glob.glob(sys.argv[1] + "/r1/*/.attempts/6.1.0-56-amd64_demo-cumulative.1/results.json")[0])))
# not retried: ERROR, and the next cell still runs
run = json.load(open(glob.glob(sys.argv[1] + "/r0/*/results.json")[0]))
v = {c["cell"]: c["verdict"] for c in run["cells"]}
assert v == {"6.1.0-56-amd64_demo-cumulative": "ERROR", "6.1.0-56-amd64_demo-cumulative-2": "PASS"}, v
check_error(json.load(open(glob.glob(sys.argv[1] + "/r0/*/6.1.0-56-amd64_demo-cumulative/results.json")[0])))
PY
		then note "ok - qemu-kill: ERROR with the reason; retried and PASS (--retries 1), ERROR kept (--retries 0); next cell PASS"
		else note "not ok - qemu-kill: exits ${rc[1]} ${rc[0]}"; tail -5 "$d/stdout1.txt"; failed=1; fi
		;;
	resume)
		# klpq SIGKILLed mid-matrix (-j1, the second of three cells running): the cell's own
		# process stops its VM (PR_SET_PDEATHSIG) and leaves nothing behind; --resume keeps
		# the finished cell, reruns the cut one from its start and runs the third: nothing
		# lost, nothing run twice.
		cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
		root=$cache/kernels/debian/6.1.0-56-amd64/root
		d="$OUT/resume"; mkdir -p "$d"; touch "$d/mark"
		local_k=("  - local:" "      vmlinuz: $root/boot/vmlinuz-6.1.0-56-amd64" \
			"      modules: $root/lib/modules/6.1.0-56-amd64" \
			"      build: $root/usr/src/linux-headers-6.1.0-56-amd64")
		printf '%s\n' "name: resume" "kernels:" "  - debian:6.1.0-56-amd64" "${local_k[@]}" \
			"  - debian:6.1.0-56-rt-amd64" \
			"patchset: $PWD/scenarios/patchsets/demo-cumulative" > "$d/s.yaml"
		KLPQ_PLAIN=1 "$KLPQ" run -j1 -o "$d/r" "$d/s.yaml" > "$d/stdout1.txt" 2>&1 &
		pid=$!
		for _ in $(seq 1 900); do
			grep -q "demo-cumulative-2\] step1 .*load .*PASS" "$d/stdout1.txt" && break; sleep 0.1
		done
		kill -KILL $pid; wait $pid 2>/dev/null
		sleep 2 # the cut cell's process stops its VM and writes its results
		# the summary of a run killed outright says it did not finish
		python3 -c "import json,glob,sys; r=json.load(open(glob.glob('$d/r/*/results.json')[0])); sys.exit(0 if r['finished'] is False and r['interrupted'] is True and r['exit_code'] == 2 else 1)" ||
			{ note "not ok - resume: the killed run's summary does not say it is unfinished"; failed=1; }
		first=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$d/r/*/6.1.0-56-amd64_demo-cumulative/results.json')[0]))['started_ms'])")
		cut=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$d/r/*/6.1.0-56-amd64_demo-cumulative-2/results.json')[0]))['started_ms'])")
		rundir=$(ls -d "$d"/r/*/)
		"$KLPQ" run -j2 --resume "$rundir" > "$d/stdout2.txt" 2>&1; rc=$?
		left=$(stale_tmp "$d/mark")
		if [ -n "$left" ]; then
			note "not ok - resume: temporary folders left: $left"; failed=1
		fi
		if [ $rc -eq 0 ] && grep -q "demo-cumulative\] already finished: PASS (kept)" "$d/stdout2.txt" && \
		   ! grep -q "\[6.1.0-56-amd64_demo-cumulative\] cell start" "$d/stdout2.txt" && \
		   ! grep -q "rt-amd64_demo-cumulative\] cell start" "$d/stdout1.txt" && \
		   python3 - "$rundir" "$first" "$cut" <<'PY'
import glob, json, sys
run = json.load(open(sys.argv[1] + "/results.json"))
assert [c["verdict"] for c in run["cells"]] == ["PASS"] * 3, run["cells"]
assert [c["cell"] for c in run["cells"]] == ["6.1.0-56-amd64_demo-cumulative",
    "6.1.0-56-amd64_demo-cumulative-2", "6.1.0-56-rt-amd64_demo-cumulative"], run["cells"]
assert run["exit_code"] == 0 and not run["interrupted"]
c1 = json.load(open(sys.argv[1] + "/6.1.0-56-amd64_demo-cumulative/results.json"))
assert str(c1["started_ms"]) == sys.argv[2]   # kept, not rerun
for c in ("6.1.0-56-amd64_demo-cumulative-2", "6.1.0-56-rt-amd64_demo-cumulative"):
    r = json.load(open(sys.argv[1] + "/" + c + "/results.json"))
    assert r["finished"] and r["verdict"] == "PASS" and r["attempts"] == 1
    assert len([k for k in r["checks"] if k["step"] == "step1" and k["check"] == "load"]) == 1
r = json.load(open(sys.argv[1] + "/6.1.0-56-amd64_demo-cumulative-2/results.json"))
assert str(r["started_ms"]) != sys.argv[3], "the cut cell was not run again"
PY
		then note "ok - resume: killed mid-matrix; finished cell kept, cut cell rerun, third run once, nothing left behind, run PASS"
		else note "not ok - resume: exit $rc"; tail -5 "$d/stdout2.txt"; failed=1; fi
		;;
	shard-merge)
		# The nightly flow in small: two shards of a matrix run apart (--shard 1/2, 2/2, --tap),
		# then klpq merge joins them: both cells, PASS, valid JUnit/KCIDB/TAP; merging a run
		# with a different result for the same cell is refused, naming both.
		d="$OUT/shard-merge"; mkdir -p "$d"
		KLPQ_PLAIN=1 "$KLPQ" run --tap --shard 1/2 -o "$d/a" tests/vm/scenarios/matrix2.yaml > "$d/a.txt" 2>&1; ra=$?
		KLPQ_PLAIN=1 "$KLPQ" run --shard 2/2 -o "$d/b" tests/vm/scenarios/matrix2.yaml > "$d/b.txt" 2>&1; rb=$?
		"$KLPQ" merge -o "$d/m" "$d"/a/*/ "$d"/b/*/ > "$d/merge.txt" 2>&1; rm=$?
		"$KLPQ" merge -o "$d/m2" "$d"/a/*/ "$d"/a/*/ > /dev/null 2>&1; rsame=$?
		KLPQ_PLAIN=1 "$KLPQ" run --shard 1/2 -o "$d/c" tests/vm/scenarios/matrix2.yaml > /dev/null 2>&1
		"$KLPQ" merge -o "$d/m3" "$d"/a/*/ "$d"/c/*/ > "$d/clash.txt" 2>&1; rclash=$?
		if [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ $rm -eq 0 ] && [ $rsame -eq 0 ] && [ $rclash -eq 2 ] &&
		   grep -q "has two different results" "$d/clash.txt" && [ ! -e "$d/m3/results.json" ] &&
		   python3 - "$d" <<'PY'
import glob, json, sys, xml.dom.minidom
d = sys.argv[1]
a = json.load(open(glob.glob(d + "/a/*/results.json")[0]))
b = json.load(open(glob.glob(d + "/b/*/results.json")[0]))
assert a["shard"] == "1/2" and b["shard"] == "2/2" and len(a["cells"]) == 1 and len(b["cells"]) == 1
assert a["cells"][0]["cell"] != b["cells"][0]["cell"]
m = json.load(open(d + "/m/results.json"))
assert sorted(c["cell"] for c in m["cells"]) == sorted([a["cells"][0]["cell"], b["cells"][0]["cell"]])
assert all(c["verdict"] == "PASS" for c in m["cells"]) and m["exit_code"] == 0 and len(m["merged_from"]) == 2
for c in m["cells"]:
    assert json.load(open(d + "/m/" + c["results"]))["verdict"] == "PASS"
x = xml.dom.minidom.parse(d + "/m/junit.xml")
assert len(x.getElementsByTagName("testsuite")) == 2
k = json.load(open(d + "/m/kcidb.json"))
assert len(k["builds"]) == 2 and all(t["status"] in ("PASS", "SKIP") for t in k["tests"])
tap = open(d + "/m/results.tap").read().splitlines()
assert tap[0] == "TAP version 13" and tap[1] == "1..%d" % len(k["tests"])
assert glob.glob(d + "/a/*/results.tap") and not glob.glob(d + "/b/*/results.tap")
PY
		then note "ok - shard-merge: two shards, merged: 2 cells PASS, JUnit/KCIDB/TAP valid, a clash refused"
		else note "not ok - shard-merge: exits $ra $rb $rm $rsame $rclash"; cat "$d/merge.txt" "$d/clash.txt" | tail -5; failed=1; fi
		;;
	matrix-j2)
		# Two cells at once (-j2): both PASS, their VMs ran at the same time, and the kernel
		# cache and module builds were shared (one cell waited on the other's flock).
		run_dir="$OUT/matrix-j2"; mkdir -p "$run_dir"
		KLPQ_PLAIN=1 "$KLPQ" run -j2 -o "$run_dir" tests/vm/scenarios/matrix2.yaml > "$run_dir/stdout.txt" 2>&1; rc=$?
		if [ $rc -eq 0 ] && python3 - "$run_dir" <<'PY'
import glob, json, sys
cells = [json.load(open(p)) for p in glob.glob(sys.argv[1] + "/*/*/results.json")]
assert len(cells) == 2 and all(c["verdict"] == "PASS" and c["finished"] for c in cells), cells
a, b = sorted(cells, key=lambda c: c["started_ms"])
assert b["started_ms"] < a["started_ms"] + a["duration_ms"], "the cells did not overlap"
PY
		then note "ok - matrix-j2: two cells at once, both PASS"
		else note "not ok - matrix-j2: exit $rc"; tail -20 "$run_dir/stdout.txt"; failed=1; fi
		;;
	full-fs)
		# Results on a full or a read-only filesystem: a clear error, exit 2, no corrupt file;
		# not retried (another VM could not write either), the cell's last results.json kept.
		d="$OUT/full-fs"; mkdir -p "$d/full" "$d/ro"
		if mount -t tmpfs -o size=40k tmpfs "$d/full" 2>/dev/null && \
		   { mount -t tmpfs -o ro,size=1m tmpfs "$d/ro" 2>/dev/null || { umount "$d/full"; false; }; }; then
			"$KLPQ" run -o "$d/full" scenarios/smoke.yaml > "$d/full.txt" 2>&1; rc1=$?
			"$KLPQ" run -o "$d/ro" scenarios/smoke.yaml > "$d/ro.txt" 2>&1; rc2=$?
			bad=$(find "$d/full" -name '*.json' -exec python3 -c 'import json,sys; json.load(open(sys.argv[1]))' {} \; -o -name '*.tmp.*' -print 2>&1)
			if [ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ -z "$bad" ] && \
			   grep -q "logs of this cell are incomplete: No space left on device" "$d/full.txt" && \
			   grep -q "results.json.*No space left on device" "$d/full.txt" && \
			   grep -q "results are incomplete" "$d/full.txt" && grep -q "Read-only file system" "$d/ro.txt" && \
			   grep -q "not retried: " "$d/full.txt" && ! grep -q "retrying (attempt 2" "$d/full.txt" && \
			   [ -z "$(find "$d/full" -path '*/.attempts/*' -print -quit)" ] && \
			   [ -n "$(find "$d/full" -mindepth 2 -name results.json -path '*demo-cumulative*' -print -quit)" ]; then
				note "ok - full-fs: exit 2 with a clear error on a full and a read-only results folder"
			else
				note "not ok - full-fs: exit $rc1/$rc2, leftovers: $bad"; tail -3 "$d/full.txt" "$d/ro.txt"; failed=1
			fi
			umount "$d/full" "$d/ro"
		else
			note "ok - full-fs # SKIP cannot mount tmpfs here"
		fi
		;;
	hostile-flood-big)
		# make check-flood: 256 MiB through the serial console (about 25 minutes under TCG)
		run_case hostile-flood-big 0 tests/vm/scenarios/hostile-flood-big.yaml '
assert cell["verdict"] == "PASS", [c for c in checks if c["status"] != "PASS"]
import os
assert os.path.getsize(glob.glob(d + "/*/*/console.log")[0]) > 256 << 20
assert run["harness"]["peak_rss_kb"] < int(os.environ.get("KLPQ_TEST_MAX_RSS_KB", 65536)), run["harness"]
print("flood: klpq", run["harness"], "cell", cell["duration_ms"], "ms")
'
		;;
	libvirt)
		# the smoke scenario on the libvirt backend (embedded driver, no daemon): the same
		# checks and verdicts as on the qemu backend (when the smoke case ran first), and
		# nothing left behind
		run_case libvirt 0 scenarios/smoke-libvirt.yaml '
assert cell["verdict"] == "PASS", [c for c in checks if c["status"] != "PASS"]
assert "libvirt" in cell["qemu"], cell["qemu"]
assert cell["accel"] in ("tcg", "kvm") and cell["accel_reason"]
for f in ("console.log", "agent.log", "qemu.log"):
    assert os.path.getsize(os.path.join(os.path.dirname(glob.glob(d + "/*/*/results.json")[0]), f)) > 0, f
q = glob.glob(os.path.dirname(d) + "/smoke/*/*/results.json")
if q:
    want = [(c["step"], c["check"], c["status"]) for c in json.load(open(q[0]))["checks"]]
    got = [(c["step"], c["check"], c["status"]) for c in checks]
    assert got == want, "libvirt %s\nqemu %s" % (got, want)
    print("# libvirt: the same %d checks and verdicts as the qemu backend" % len(got))
'
		if [ -n "$(libvirt_qemu)" ] || [ -n "$(libvirt_roots)" ]; then
			note "not ok - libvirt: left behind: $(libvirt_qemu) $(libvirt_roots)"; failed=1
		else note "ok - libvirt: no domain, QEMU or root left"; fi
		;;
	libvirt-qemu-kill)
		# the domain's QEMU killed from outside mid-cell: ERROR (the infrastructure), never a
		# FAIL, and nothing left behind
		d="$OUT/libvirt-qemu-kill"; mkdir -p "$d"
		"$KLPQ" run --retries 0 -o "$d" scenarios/smoke-libvirt.yaml > "$d/stdout.txt" 2>&1 &
		pid=$!
		for _ in $(seq 1 900); do grep -q "step1 .*load .*PASS" "$d/stdout.txt" && break; sleep 0.1; done
		qpid=$(libvirt_qemu | head -n1)
		[ -n "$qpid" ] && kill -KILL "$qpid"
		wait $pid; rc=$?
		if [ -n "$qpid" ] && [ $rc -eq 2 ] && python3 - "$d" <<'PY'
import glob, json, sys
cell = json.load(open(glob.glob(sys.argv[1] + "/*/*/results.json")[0]))
assert cell["verdict"] == "ERROR", cell["verdict"]
assert not [c for c in cell["checks"] if c["status"] == "FAIL"], "a FAIL for the infrastructure's fault"
assert any(c["title"].startswith("QEMU ended from outside the guest") for c in cell["checks"])
PY
		then
			if [ -n "$(libvirt_qemu)" ] || [ -n "$(libvirt_roots)" ]; then
				note "not ok - libvirt-qemu-kill: left behind: $(libvirt_qemu) $(libvirt_roots)"; failed=1
			else note "ok - libvirt-qemu-kill: ERROR 'QEMU ended from outside the guest', no FAIL, nothing left"; fi
		else note "not ok - libvirt-qemu-kill: exit $rc, QEMU ${qpid:-not seen}, or the verdict is wrong"; failed=1; fi
		;;
	libvirt-kill)
		# klpq stopped mid-cell on the libvirt backend: SIGINT (its own clean-up); SIGKILL of
		# klpq and of the cell's process (a SIGKILLed klpq alone ends its cells with SIGTERM,
		# and they clean up themselves): the root's watchdog kills the domain's QEMU, which
		# libvirt daemonized; SIGKILL of all three, the watchdog too: the next run's sweep
		for how in INT KILL KILL-ALL; do
			d="$OUT/libvirt-kill-$how"; mkdir -p "$d"
			"$KLPQ" run -o "$d" scenarios/smoke-libvirt.yaml > "$d/stdout.txt" 2>&1 &
			pid=$!
			for _ in $(seq 1 900); do grep -q "step1 .*load .*PASS" "$d/stdout.txt" && break; sleep 0.1; done
			qpid=$(libvirt_qemu | head -n1)
			wpid=$(pgrep -f klpq-libvirt-watchdog | head -n1)
			cpid=$([ -n "$wpid" ] && ps -o ppid= -p "$wpid" | tr -d ' ')
			if [ -z "$qpid" ] || [ -z "$cpid" ]; then note "not ok - libvirt-kill-$how: no domain or watchdog seen"; failed=1; kill -9 $pid; wait $pid; continue; fi
			case $how in
			INT) kill -INT $pid ;;
			KILL) kill -KILL "$cpid" $pid ;;
			KILL-ALL) kill -KILL "$wpid" "$cpid" $pid ;;
			esac
			wait $pid; rc=$?
			if [ $how = KILL-ALL ]; then
				sleep 2
				if ! kill -0 "$qpid" 2>/dev/null; then note "not ok - libvirt-kill-$how: QEMU gone without a sweep (the test did not test)"; failed=1; continue; fi
				# any later libvirt cell sweeps the dead root first
				"$KLPQ" run -o "$d/next" scenarios/smoke-libvirt.yaml > "$d/next.txt" 2>&1 & npid=$!
				for _ in $(seq 1 100); do kill -0 "$qpid" 2>/dev/null || break; sleep 0.1; done
				kill -INT $npid; wait $npid
			fi
			for _ in $(seq 1 100); do [ -z "$(libvirt_qemu)" ] && [ -z "$(libvirt_roots)" ] && break; sleep 0.1; done
			if [ -n "$(libvirt_qemu)" ] || [ -n "$(libvirt_roots)" ]; then
				note "not ok - libvirt-kill-$how: left behind: QEMU $(libvirt_qemu | tr '\n' ' ') roots $(libvirt_roots | tr '\n' ' ')"
				failed=1; pkill -KILL -f -- '-name guest=klpq-'; continue
			fi
			if [ $how = INT ] && { [ $rc -ne 2 ] || ! grep -q '"interrupted":true' "$d"/*/results.json; }; then
				note "not ok - libvirt-kill-INT: exit $rc, or the run is not marked interrupted"; failed=1; continue
			fi
			note "ok - libvirt-kill-$how: no domain, QEMU or root left"
		done
		;;
	*) note "not ok - $c: unknown case"; failed=1 ;;
	esac
	if leftover_qemu; then note "not ok - $c left a QEMU process running"; failed=1; fi
done
# every check these real boots reported is in the table of checks at the step it ran at, and
# each FAIL or ERROR is one its row allows (klpq checks --verify, docs/checks.md)
cells=$(find "$OUT" -name results.json -path '*/*/*/results.json' -exec python3 -c '
import json, sys
for p in sys.argv[1:]:
    try:
        c = json.load(open(p))
    except Exception:
        continue
    if isinstance(c, dict) and "cell" in c and "checks" in c:
        print(p)' {} + 2>/dev/null)
if [ -n "$cells" ]; then
	# shellcheck disable=SC2086
	if bad=$("$KLPQ" checks --verify $cells 2>&1 >/dev/null); then
		note "ok - check ids: every check of $(echo "$cells" | wc -l) cell(s) in the table, at its step, with a verdict its row allows"
	else note "not ok - check ids: $bad"; failed=1; fi
fi
note "results of these tests: $OUT"
printf '1..%d\n' "$tap_n"
[ $tap_n -gt 0 ] || failed=1
exit $failed
