#!/usr/bin/env bash
# No false alarms: the correct patch sets (demo-cumulative via the smoke scenario, and
# good-netpath, alone and under the gaming and streaming workloads: perf-good-netpath, with the
# perf checks, the workloads' calls and the memory read through the phases) must end with no
# FAIL and no ERROR in N runs out of N (default 5). Prints each run's verdict
# and duration; exit 0 when all passed.
#   tests/bench/no-false-alarm.sh [N]
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
N=${1:-5}
out=$(mktemp -d /tmp/klpq-nfa-XXXXXX)
bad=0
for i in $(seq "$N"); do
	for s in scenarios/smoke.yaml tests/vm/scenarios/good-netpath.yaml \
		 tests/vm/scenarios/perf-good-netpath.yaml; do
		d="$out/$(basename "$s" .yaml)-$i"
		KLPQ_PLAIN=1 "$KLPQ" run -q -o "$d" "$s" > "$d.txt" 2>&1; rc=$?
		v=$(python3 -c 'import glob,json,sys; c=json.load(open(glob.glob(sys.argv[1]+"/*/*/results.json")[0])); print(c["verdict"], "%.1fs" % (c["duration_ms"]/1000), [k["step"]+"/"+k["check"] for k in c["checks"] if k["status"] != "PASS"])' "$d")
		echo "run $i $(basename "$s" .yaml): exit $rc, $v"
		[ $rc -eq 0 ] || bad=1
	done
done
[ $bad -eq 0 ] && echo "no false alarm: 3 correct scenarios PASS in $N of $N runs" || echo "FALSE ALARM (results in $out)"
exit $bad
