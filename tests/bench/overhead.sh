#!/usr/bin/env bash
# The harness's own overhead, side by side in one run (ROUNDS alternations):
#   bare:  QEMU boots the same kernel, same machine options, with an init that powers off at
#          once (busybox sh: poweroff -f): the floor of any cell;
#   smoke: `klpq run scenarios/smoke.yaml` (3 cumulative steps, rollback, reapply, all checks).
# Reports the median wall times and their ratio, and klpq's own CPU time and peak RSS (QEMU
# excluded, from the run's results.json "harness") while the VM ran.
#   tests/bench/overhead.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
ROUNDS=${1:-3}
cache=${KLPQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klpq}
"$KLPQ" run -q -o /tmp/klpq-overhead-warm scenarios/smoke.yaml > /dev/null 2>&1 || true  # warm caches
rm -rf /tmp/klpq-overhead-warm
root=$cache/kernels/debian/6.1.0-56-amd64/root
kernel=$root/boot/vmlinuz-6.1.0-56-amd64
[ -f "$kernel" ] || { echo "kernel not in the cache: $kernel"; exit 1; }
tmp=$(mktemp -d /tmp/klpq-overhead-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/bin" "$tmp/root/proc"
cp /bin/busybox "$tmp/root/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox poweroff -f\n' > "$tmp/root/init"
chmod 755 "$tmp/root/init"
(cd "$tmp/root" && find . | cpio -o -H newc --quiet > "$tmp/bare.cpio")
accel=tcg; [ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm
cpu=max; [ $accel = kvm ] && cpu=host
declare -a tb ts cpu_ms rss
for r in $(seq "$ROUNDS"); do
	s=$(date +%s%N)
	qemu-system-x86_64 -machine q35,accel=$accel -cpu $cpu -m 1024 -smp 2 -nodefaults \
		-no-user-config -display none -no-reboot -kernel "$kernel" -initrd "$tmp/bare.cpio" \
		-append "console=ttyS0,115200 panic=-1" -serial "file:$tmp/bare-console.log" </dev/null
	e=$(date +%s%N); tb+=($(( (e - s) / 1000000 )))
	s=$(date +%s%N)
	"$KLPQ" run -q -o "$tmp/r$r" scenarios/smoke.yaml > "$tmp/smoke$r.txt" 2>&1
	e=$(date +%s%N); ts+=($(( (e - s) / 1000000 )))
	h=$(python3 -c 'import glob,json,sys; r=json.load(open(glob.glob(sys.argv[1]+"/*/results.json")[0])); h=r["harness"]; print(h["cpu_user_ms"]+h["cpu_sys_ms"], h["peak_rss_kb"], r["exit_code"])' "$tmp/r$r")
	set -- $h; cpu_ms+=($1); rss+=($2)
	[ "$3" -eq 0 ] || { echo "smoke run $r did not pass (exit $3)"; exit 1; }
	echo "round $r: bare boot ${tb[-1]} ms, smoke cell ${ts[-1]} ms, klpq cpu $1 ms, peak rss $2 kB"
done
python3 - "${tb[*]}" "${ts[*]}" "${cpu_ms[*]}" "${rss[*]}" "$accel" <<'PY'
import statistics, sys
tb, ts, cpu, rss = ([int(x) for x in a.split()] for a in sys.argv[1:5])
mb, ms = statistics.median(tb), statistics.median(ts)
print("accel %s: bare boot median %.2f s, smoke cell median %.2f s (ratio %.2fx; the smoke "
      "cell boots once and runs 3 steps, rollback, reapply); klpq's own CPU median %.2f s "
      "(%.0f%% of the cell's wall time), peak RSS median %.1f MB"
      % (sys.argv[5], mb / 1000, ms / 1000, ms / mb, statistics.median(cpu) / 1000,
         100 * statistics.median(cpu) / ms, statistics.median(rss) / 1024))
PY
