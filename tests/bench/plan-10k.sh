#!/usr/bin/env bash
# Expands and validates a 10,000-cell matrix (scenario parsing with range expansion,
# duplicate check, patch-set loading, exclude rules, cell ids) and reports the median wall
# time of `klpq plan` over REPEAT runs. Target (issue 5): well under a second.
#   tests/bench/plan-10k.sh [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
REPEAT=${1:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 1667 ABIs x 3 flavors x 2 patch sets = 10,002 cells, minus 2 excluded = 10,000
cat > "$tmp/big.yaml" <<YAML
name: big
kernels:
  - debian: 6.1.0-1..1667
    flavors: [amd64, cloud-amd64, rt-amd64]
patchsets:
  - $PWD/scenarios/patchsets/demo-cumulative
  - $PWD/scenarios/patchsets/faulty-oops
exclude:
  - {abi: 6.1.0-1667, flavor: rt-amd64}
YAML
cells=$("$KLPQ" plan --json "$tmp/big.yaml" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["cells"]))')
[ "$cells" -eq 10000 ] || { echo "expected 10000 cells, got $cells"; exit 1; }
times=()
for _ in $(seq "$REPEAT"); do
	s=$(date +%s%N)
	"$KLPQ" plan "$tmp/big.yaml" > /dev/null
	e=$(date +%s%N)
	times+=($(( (e - s) / 1000000 )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "plan-10k: 10000 cells; klpq plan wall time over $REPEAT runs (ms): $sorted; median ${median} ms"
[ "$median" -lt 1000 ] || { echo "plan-10k: median ${median} ms is not under a second"; exit 1; }
