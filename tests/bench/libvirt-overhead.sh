#!/usr/bin/env bash
# The libvirt backend's cost per cell: the same cell (the smoke scenario's kernel and patch set)
# on backend qemu and on backend libvirt (embedded driver), alternated ROUNDS times (qemu,
# libvirt, qemu, ...) so that both see the same machine load; reports each cell's time (its
# results.json duration_ms and boot_ms) and the medians' ratio libvirt/qemu. Goal (issue 15):
# under 1.15x. Then two libvirt cells at once (-j2): each cell's embedded driver has a root of
# its own, both must pass. Figures: docs/pool.md.
#   tests/bench/libvirt-overhead.sh [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
ROUNDS=${1:-3}
tmp=$(mktemp -d /tmp/klpq-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for b in qemu libvirt; do
	cat > "$tmp/$b.yaml" <<YAML
name: bench-$b
kernels: [debian:6.1.0-56-amd64]
vm: {backend: $b, memory_mb: 1024, cpus: 2}
patchset: $PWD/scenarios/patchsets/demo-cumulative
rollback: true
YAML
done
cat > "$tmp/j2.yaml" <<YAML
name: bench-libvirt-j2
kernels: [debian:6.1.0-56-amd64]
vms:
  - {name: a, backend: libvirt, memory_mb: 512, cpus: 1}
  - {name: b, backend: libvirt, memory_mb: 512, cpus: 1}
patchset: $PWD/scenarios/patchsets/demo-cumulative
YAML
cell_ms() { # duration_ms and boot_ms of the one cell under $1
	python3 - "$1" <<'PY'
import glob, json, sys
c = json.load(open(glob.glob(sys.argv[1] + "/*/*/results.json")[0]))
assert c["verdict"] == "PASS", [k for k in c["checks"] if k["status"] != "PASS"][:3]
print(c["duration_ms"], c["metrics"]["boot_ms"])
PY
}
# warm the caches (kernel, modules, libvirt's capabilities probe)
for b in qemu libvirt; do "$KLPQ" run -q -o "$tmp/warm-$b" "$tmp/$b.yaml" > /dev/null 2>&1; done
declare -A all boots
for r in $(seq "$ROUNDS"); do
	for b in qemu libvirt; do
		"$KLPQ" run -q -o "$tmp/r$r-$b" "$tmp/$b.yaml" > "$tmp/out" 2>&1 ||
			{ echo "round $r $b: klpq exited $?"; tail -5 "$tmp/out"; exit 1; }
		read -r ms boot < <(cell_ms "$tmp/r$r-$b") || { echo "round $r $b: not PASS"; exit 1; }
		echo "round $r $b: cell $(awk -v m="$ms" 'BEGIN{printf "%.1f", m/1000}') s (boot $(awk -v m="$boot" 'BEGIN{printf "%.1f", m/1000}') s)"
		all[$b]+="$ms "
		boots[$b]+="$boot "
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END{print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mq=$(echo "${all[qemu]}" | median); ml=$(echo "${all[libvirt]}" | median)
bq=$(echo "${boots[qemu]}" | median); bl=$(echo "${boots[libvirt]}" | median)
ratio=$(awk -v a="$ml" -v b="$mq" 'BEGIN{printf "%.3f", a/b}')
echo "median cell: qemu $(awk -v m="$mq" 'BEGIN{printf "%.1f", m/1000}') s, libvirt $(awk -v m="$ml" 'BEGIN{printf "%.1f", m/1000}') s: ratio $ratio (goal < 1.15)"
echo "median boot: qemu $(awk -v m="$bq" 'BEGIN{printf "%.1f", m/1000}') s, libvirt $(awk -v m="$bl" 'BEGIN{printf "%.1f", m/1000}') s"
s=$(date +%s%N)
"$KLPQ" run -q -j2 -o "$tmp/j2" "$tmp/j2.yaml" > "$tmp/out" 2>&1
rc=$?
e=$(date +%s%N)
[ $rc -eq 0 ] || { echo "two libvirt cells at once (-j2): exit $rc"; tail -5 "$tmp/out"; exit 1; }
echo "two libvirt cells at once (-j2, a root each): both PASS in $(( (e - s) / 1000000 )) ms"
awk -v r="$ratio" 'BEGIN{exit !(r < 1.15)}' || { echo "libvirt overhead $ratio is over 1.15"; exit 1; }
