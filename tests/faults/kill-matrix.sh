#!/usr/bin/env bash
# make check-faults: the kill matrix. klpq runs a two-cell matrix (a Debian kernel and the same
# kernel as local:) and is sent SIGINT, SIGTERM or SIGKILL at four points: while the first VM
# boots, in the middle of a step (step 2 just loaded, its transition in flight), during the
# rollback, and after the first cell finished. After each: no QEMU and no temporary folder of
# a dead klpq left, every results.json parses, the run's summary says it did not finish; then
# `klpq run --resume` finishes the run with both cells PASS and nothing left behind.
#   tests/faults/kill-matrix.sh [SIG:POINT...]   e.g. KILL:rollback; default: all 12
#   tests/faults/kill-matrix.sh short            5 of them: every signal and every point at
#                                                least once, SIGKILL at three (.ci/run)
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
OUT=$(mktemp -d /tmp/klpq-killmx-XXXXXX)
cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
root=$cache/kernels/debian/6.1.0-56-amd64/root
combos=("$@")
[ "${combos[*]}" != short ] || combos=(INT:mid-step TERM:rollback KILL:boot KILL:mid-step KILL:after-cell)
[ "${combos[*]}" != full ] || combos=()
if [ ${#combos[@]} -eq 0 ]; then
	for s in INT TERM KILL; do for p in boot mid-step rollback after-cell; do combos+=("$s:$p"); done; done
fi
if [ ! -e "$root/boot/vmlinuz-6.1.0-56-amd64" ]; then
	"$KLPQ" run -o "$OUT/warmup" scenarios/smoke.yaml > /dev/null 2>&1
fi
printf '%s\n' "name: killmx" "kernels:" "  - debian:6.1.0-56-amd64" "  - local:" \
	"      vmlinuz: $root/boot/vmlinuz-6.1.0-56-amd64" \
	"      modules: $root/lib/modules/6.1.0-56-amd64" \
	"      build: $root/usr/src/linux-headers-6.1.0-56-amd64" \
	"patchset: $PWD/scenarios/patchsets/demo-cumulative" "leak: { cycles: 0 }" > "$OUT/s.yaml"

declare -A pattern=(
	[boot]='\] booting 6.1.0-56-amd64 under'
	[mid-step]='demo-cumulative\] step2 .*load .*PASS'
	[rollback]='demo-cumulative\] rollback .*disable .*PASS'
	[after-cell]='\[1/2\] '
)
tried=0 survived=0 failed=0

leftovers() { # QEMUs of this matrix, and temporary folders newer than $1 whose owner is dead
	pgrep -f 'qemu-system-x86_64 -name 6.1.0-56-amd64_demo-cumulative' || true
	local f pid st
	for f in $(find "/tmp/klpq-$(id -u)" -mindepth 1 -maxdepth 1 -newer "$1" 2>/dev/null); do
		pid=${f##*/}; pid=${pid#vm-}; pid=${pid#cell-}; pid=${pid%%-*}
		st=$(ps -o stat= -p "$pid" 2>/dev/null | tr -d ' ')
		[ -n "$st" ] && [ "${st#Z}" = "$st" ] && continue
		echo "$f"
	done
}

for c in "${combos[@]}"; do
	sig=${c%%:*} point=${c#*:} d="$OUT/$sig-$point"
	mkdir -p "$d"; touch "$d/mark"
	tried=$((tried + 1))
	KLPQ_PLAIN=1 "$KLPQ" run -j1 -o "$d/r" "$OUT/s.yaml" > "$d/run.txt" 2>&1 &
	pid=$!
	hit=0
	for _ in $(seq 1 1800); do
		grep -q "${pattern[$point]}" "$d/run.txt" && { hit=1; break; }
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if [ $hit -ne 1 ]; then
		echo "not ok - $c: never reached the point ($(tail -1 "$d/run.txt"))"; failed=$((failed + 1))
		kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null; continue
	fi
	kill -"$sig" $pid; wait $pid; rc=$?
	sleep 3 # a SIGKILLed klpq's cell processes stop their VMs on PDEATHSIG and write results
	why=
	left=$(leftovers "$d/mark")
	[ -z "$left" ] || why="left behind: $left"
	[ $sig = KILL ] || [ $rc -eq 2 ] || why=${why:-"exit $rc, expected 2"}
	bad=$(find "$d/r" -name results.json -exec python3 -c 'import json,sys; json.load(open(sys.argv[1]))' {} \; 2>&1)
	[ -z "$bad" ] || why=${why:-"a results.json does not parse: $bad"}
	run=$(ls -d "$d"/r/*/ 2>/dev/null | head -1)
	python3 -c "import json,sys; r=json.load(open('$run/results.json')); sys.exit(0 if r['interrupted'] else 1)" 2>/dev/null ||
		why=${why:-"the run's summary does not say it was cut short"}
	if [ -z "$why" ]; then
		"$KLPQ" run -j1 --resume "$run" > "$d/resume.txt" 2>&1; rc=$?
		left=$(leftovers "$d/mark")
		python3 - "$run" <<'PY' || why="resume: the run did not end with both cells PASS"
import json, sys
r = json.load(open(sys.argv[1] + "/results.json"))
assert r["finished"] and not r["interrupted"] and r["exit_code"] == 0, r
assert [c["verdict"] for c in r["cells"]] == ["PASS", "PASS"], r["cells"]
PY
		[ $rc -eq 0 ] || why=${why:-"resume exited $rc"}
		[ -z "$left" ] || why=${why:-"resume left behind: $left"}
	fi
	if [ -z "$why" ]; then
		echo "ok - $c: results kept, nothing left behind, resumed to PASS"; survived=$((survived + 1))
	else
		echo "not ok - $c: $why"; failed=$((failed + 1))
	fi
done
echo "kill matrix: $survived of $tried survived (results in $OUT)"
[ $failed -eq 0 ]
