#!/usr/bin/env bash
# Matrix throughput: the same cells with -j1 and -j2, alternated ROUNDS times (j1, j2, j1,
# j2 ...) so that both see the same machine load; reports each run's wall time, cells per
# hour and the median ratio j2/j1. Target (issue 5): -j2 at least 1.8x the cells per hour of
# -j1 on a 2-core machine. Cells: three cached kernels x two VM entries (1 vCPU each: under
# TCG a 2-vCPU guest already spreads over both host cores, see docs/design.md).
#   tests/bench/matrix-throughput.sh [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
ROUNDS=${1:-2}
CPUS=${BENCH_VM_CPUS:-1}
tmp=$(mktemp -d /tmp/klpq-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/m.yaml" <<YAML
name: bench-matrix
kernels:
  - debian:6.1.0-56-amd64
  - debian:6.1.0-56-rt-amd64
  - debian:6.12.111+deb12-cloud-amd64
vms:
  - {name: a, memory_mb: 512, cpus: $CPUS}
  - {name: b, memory_mb: 512, cpus: $CPUS}
patchset: $PWD/scenarios/patchsets/demo-cumulative
YAML
cells=$("$KLPQ" plan --json "$tmp/m.yaml" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cells"]))')
# warm the caches (kernels, modules) so that neither side pays for downloads or builds
"$KLPQ" run -q -j2 -o "$tmp/warm" "$tmp/m.yaml" > /dev/null 2>&1
declare -a t1 t2
for r in $(seq "$ROUNDS"); do
	for j in 1 2; do
		s=$(date +%s%N)
		"$KLPQ" run -q -j$j -o "$tmp/r$r-j$j" "$tmp/m.yaml" > "$tmp/out" 2>&1
		rc=$?
		e=$(date +%s%N)
		ms=$(( (e - s) / 1000000 ))
		[ $rc -eq 0 ] || { echo "run -j$j exited $rc"; tail -5 "$tmp/out"; exit 1; }
		echo "round $r -j$j: $cells cells in $(awk -v m=$ms 'BEGIN{printf "%.1f", m/1000}') s" \
		     "= $(awk -v m=$ms -v c=$cells 'BEGIN{printf "%.0f", c*3600000/m}') cells/hour"
		if [ $j -eq 1 ]; then t1+=($ms); else t2+=($ms); fi
	done
done
python3 - "${t1[*]}" "${t2[*]}" "$cells" <<'PY'
import statistics, sys
t1 = [int(x) for x in sys.argv[1].split()]
t2 = [int(x) for x in sys.argv[2].split()]
cells = int(sys.argv[3])
ratios = [a / b for a, b in zip(t1, t2)]
m1, m2 = statistics.median(t1), statistics.median(t2)
print("median -j1 %.1f s (%.0f cells/h), -j2 %.1f s (%.0f cells/h); ratio per round %s; "
      "median ratio %.2fx (target >= 1.8x)" % (m1 / 1000, cells * 3.6e6 / m1, m2 / 1000,
      cells * 3.6e6 / m2, " ".join("%.2f" % r for r in ratios), statistics.median(ratios)))
PY
