#!/usr/bin/env bash
# The pool's throughput with two hosts against one: the same 4 cells (demo-cumulative on two
# cached 6.1 kernels, two VM sizes; 1 vCPU each) across a pool of one host and a pool of two
# (tests/pool/hosts.sh: a libvirtd and an sshd each, in namespaces on this machine, over
# qemu+ssh), capacity 1 per host, alternated ROUNDS times (one, two, one, ...). Reports each
# run's wall time, cells per hour, and the ratio of the medians. The two "hosts" share this
# machine's cores: with 1-vCPU TCG guests on 2 cores the ideal is 2x. Figures: docs/scaling.md.
#   tests/bench/pool-throughput.sh [ROUNDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
ROUNDS=${1:-2}
tmp=$(mktemp -d /tmp/klpq-bench-pool-XXXXXX)
state=$tmp/hosts
trap 'bash tests/pool/hosts.sh down "$state" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
mapfile -t uris < <(bash tests/pool/hosts.sh up "$state" 2)
[ ${#uris[@]} -eq 2 ] || { echo "pool-throughput: the hosts did not come up" >&2; exit 1; }
printf 'hosts:\n  - {uri: "%s", name: h1, capacity: 1}\n' "${uris[0]}" > "$tmp/one.yaml"
printf 'hosts:\n  - {uri: "%s", name: h1, capacity: 1}\n  - {uri: "%s", name: h2, capacity: 1}\n' \
	"${uris[0]}" "${uris[1]}" > "$tmp/two.yaml"
cat > "$tmp/s.yaml" <<YAML
name: bench-pool
kernels:
  - debian: 6.1.0-56
    flavors: [amd64, rt-amd64]
vms:
  - {name: a, memory_mb: 512, cpus: 1}
  - {name: b, memory_mb: 640, cpus: 1}
patchset: $PWD/scenarios/patchsets/demo-cumulative
YAML
# a first run on each host puts the kernels and initramfs in its storage pool (not timed)
"$KLPQ" run -q --hosts "$tmp/two.yaml" -o "$tmp/warm" "$tmp/s.yaml" >/dev/null 2>&1
declare -A times
for r in $(seq 1 "$ROUNDS"); do
	for p in one two; do
		t0=$(date +%s.%N)
		"$KLPQ" run -q --hosts "$tmp/$p.yaml" -o "$tmp/r-$p-$r" "$tmp/s.yaml" >/dev/null 2>&1
		rc=$?
		t=$(echo "$(date +%s.%N) - $t0" | bc)
		n=$(python3 -c "import glob,json; r=json.load(open(glob.glob('$tmp/r-$p-$r/*/results.json')[0])); print(sum(c['verdict']=='PASS' for c in r['cells']))")
		printf 'round %d, %s host(s): exit %d, %d of 4 PASS, %.1f s, %.0f cells/hour\n' "$r" "$p" $rc "$n" "$t" "$(echo "4 * 3600 / $t" | bc -l)"
		times[$p]+="$t "
	done
done
python3 - "${times[one]}" "${times[two]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
two = [float(x) for x in sys.argv[2].split()]
m1, m2 = statistics.median(one), statistics.median(two)
print(f"median wall time: one host {m1:.1f} s ({4*3600/m1:.0f} cells/hour), two hosts {m2:.1f} s "
      f"({4*3600/m2:.0f} cells/hour); throughput ratio two/one {m1/m2:.2f}")
PY
