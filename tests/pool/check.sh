#!/usr/bin/env bash
# tests/pool/check.sh [full|short]: the pool test (make check-pool; docs/pool.md).
#
# Makes two libvirt hosts on this machine (tests/pool/hosts.sh: a libvirtd and an sshd each, in
# a network and mount namespace of their own) and reaches them with qemu+ssh, as a pool.
#   full:  the 4-cell matrix (tests/pool/matrix4.yaml) on backend qemu, on backend libvirt
#          (embedded) and across the pool: the same verdicts cell by cell. Then the faults: one
#          host's daemon killed mid-cell, one host unreachable from the start, klpq SIGKILLed
#          mid-run, every host down.
#   short: the matrix across the pool only, held to the verdicts the other two backends give
#          (PASS, FAIL, PASS, FAIL), then the daemon killed mid-cell, the host's return and
#          every host down.
# Tears everything down at the end (namespaces, daemons, domains, volumes), whatever happens.
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
mode=${1:-full}
HOSTS_SH=tests/pool/hosts.sh
work=$(mktemp -d /tmp/klpq-pool-test-XXXXXX)
state=$work/hosts
pass=0 fail=0
failed=()
trap 'bash $HOSTS_SH down "$state" >/dev/null 2>&1; rm -rf "$work"' EXIT

ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); failed+=("$1"); echo "  FAIL $1"; }

echo "klpq: check-pool ($mode): two libvirt hosts in namespaces, qemu+ssh"
t0=$(date +%s)
mapfile -t uris < <(bash $HOSTS_SH up "$state" 2)
if [ ${#uris[@]} -ne 2 ]; then
	echo "klpq: check-pool: the two hosts did not come up" >&2
	exit 1
fi
echo "  hosts up in $(( $(date +%s) - t0 )) s: ${uris[*]}"

# hosts FILE URI...: a hosts file, capacity 1 each, named h1, h2, ...
hosts_file() { # FILE HEALTH_S URI...
	local f=$1 i=1
	echo "health_s: $2" > "$f"
	shift 2
	echo "hosts:" >> "$f"
	for u in "$@"; do
		printf '  - uri: "%s"\n    name: h%d\n    capacity: 1\n' "$u" $i >> "$f"
		i=$((i + 1))
	done
}
hosts_file "$work/pool.yaml" 600 "${uris[@]}"

# verdicts RUNDIR: "cell verdict" lines, sorted
verdicts() {
	python3 -c "
import glob, json, sys
r = json.load(open(glob.glob(sys.argv[1] + '/*/results.json')[0]))
for c in sorted(r['cells'], key=lambda c: c['cell']):
    print(c['cell'], c['verdict'])" "$1"
}
# no_domains: 0 when neither host has a domain left
no_domains() {
	local n
	for i in 1 2; do
		n=$(bash $HOSTS_SH domains "$state" $i 2>/dev/null | grep -c . || true)
		[ "$n" -eq 0 ] || { echo "    host h$i still has: $(bash $HOSTS_SH domains "$state" $i | tr '\n' ' ')"; return 1; }
	done
	return 0
}
# wait_for FILE PATTERN SECONDS
wait_for() {
	for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# ---- the matrix on each backend ---------------------------------------------------------------
if [ "$mode" = full ]; then
	KLPQ_PLAIN=1 "$KLPQ" run -j2 -o "$work/qemu" tests/pool/matrix4.yaml > "$work/qemu.txt" 2>&1
	echo "  backend qemu: exit $?"
	verdicts "$work/qemu" > "$work/v-qemu.txt"
	sed 's/^vm:$/vm:\n  backend: libvirt/' tests/pool/matrix4.yaml > tests/pool/.matrix4-libvirt.yaml
	KLPQ_PLAIN=1 "$KLPQ" run -j2 -o "$work/libvirt" tests/pool/.matrix4-libvirt.yaml > "$work/libvirt.txt" 2>&1
	echo "  backend libvirt (embedded): exit $?"
	rm -f tests/pool/.matrix4-libvirt.yaml
	verdicts "$work/libvirt" | sed 's/^/ /;s/^ //' > "$work/v-libvirt.txt"
else
	printf '%s\n' "6.1.0-56-amd64_demo-cumulative PASS" "6.1.0-56-amd64_faulty-oops FAIL" \
		"6.1.0-56-rt-amd64_demo-cumulative PASS" "6.1.0-56-rt-amd64_faulty-oops FAIL" > "$work/v-qemu.txt"
	cp "$work/v-qemu.txt" "$work/v-libvirt.txt"
fi
t=$(date +%s)
KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/pool.yaml" -o "$work/pool" tests/pool/matrix4.yaml > "$work/pool.txt" 2>&1
rc=$?
echo "  the pool: exit $rc in $(( $(date +%s) - t )) s"
verdicts "$work/pool" > "$work/v-pool.txt"
if [ $rc -eq 1 ] && cmp -s "$work/v-qemu.txt" "$work/v-pool.txt" && cmp -s "$work/v-qemu.txt" "$work/v-libvirt.txt" &&
   [ "$(grep -c PASS "$work/v-pool.txt")" -eq 2 ] && [ "$(grep -c FAIL "$work/v-pool.txt")" -eq 2 ] &&
   python3 - "$work/pool" <<'PY'
import glob, json, sys
run = json.load(open(glob.glob(sys.argv[1] + "/*/results.json")[0]))
hosts = {c["host"] for c in run["cells"]}
assert hosts == {"h1", "h2"}, hosts          # spread over both
for c in run["cells"]:
    cell = json.load(open(glob.glob(sys.argv[1] + "/*/" + c["cell"] + "/results.json")[0]))
    assert cell["host"] == c["host"] and "host_fault" not in cell, cell.get("host_fault")
    assert cell["accel"] == "tcg" and "no label kvm" in cell["accel_reason"], cell["accel_reason"]
    assert cell["attempts"] == 1, cell["attempts"]
    d = glob.glob(sys.argv[1] + "/*/" + c["cell"])[0]
    assert "Linux version" in open(d + "/console.log", errors="replace").read()
    assert "uploaded" in open(d + "/agent.log").read() or "cached" in open(d + "/agent.log").read()
PY
then ok "matrix: the same verdicts on qemu, libvirt (embedded) and the pool, cell by cell; spread over both hosts"
else
	bad "matrix: verdicts differ or the pool's results are wrong (rc $rc)"
	paste "$work/v-qemu.txt" "$work/v-libvirt.txt" "$work/v-pool.txt"
	tail -20 "$work/pool.txt"
fi
if no_domains; then ok "matrix: no domain left on either host"; else bad "matrix: domains left"; fi

# a one-cell scenario (demo-cumulative on 6.1 amd64)
printf '%s\n' "name: pool-one" "kernels: [debian:6.1.0-56-amd64]" \
	"patchset: $PWD/scenarios/patchsets/demo-cumulative" "vm:" "  memory_mb: 512" "  cpus: 1" \
	> "$work/one.yaml"

if [ "$mode" = full ]; then
	# ---- a local daemon: vm.uri over its unix socket (qemu:///system's path: no upload) ----------
	printf '%s\n' "name: pool-local" "kernels: [debian:6.1.0-56-amd64]" \
		"patchset: $PWD/scenarios/patchsets/demo-cumulative" "vm:" "  backend: libvirt" \
		"  uri: \"$(bash $HOSTS_SH local-uri "$state" 2)\"" "  memory_mb: 512" "  cpus: 1" \
		> "$work/local.yaml"
	KLPQ_PLAIN=1 "$KLPQ" run -o "$work/local" "$work/local.yaml" > "$work/local.txt" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && ! grep -q "uploaded\|cached" "$work"/local/*/*/agent.log && no_domains; then
		ok "a local daemon (vm.uri qemu+unix:///system): PASS, files used in place, no domain left"
	else bad "a local daemon (rc $rc)"; tail -5 "$work/local.txt"; fi
fi

# ---- a host's daemon killed mid-cell -----------------------------------------------------------
# h1 gets the cell (both free, the first); its daemon dies once the patches load; the cell is
# ERROR there (host_fault lost), h1 leaves the pool, the cell runs again on h2 and passes.
KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/pool.yaml" -j1 -o "$work/kill" "$work/one.yaml" > "$work/kill.txt" 2>&1 &
pid=$!
if wait_for "$work/kill.txt" "step1 .*load .*PASS" 120; then
	bash $HOSTS_SH kill-daemon "$state" 1
fi
wait $pid
rc=$?
if [ $rc -eq 0 ] && grep -q "host h1 is out of the pool: lost the connection mid-cell" "$work/kill.txt" &&
   python3 - "$work/kill" <<'PY'
import glob, json, sys
c = json.load(open(glob.glob(sys.argv[1] + "/*/6.1.0-56-amd64_demo-cumulative/results.json")[0]))
assert c["verdict"] == "PASS" and c["host"] == "h2" and c["attempts"] == 2, (c["verdict"], c["host"], c["attempts"])
a = json.load(open(glob.glob(sys.argv[1] + "/*/.attempts/6.1.0-56-amd64_demo-cumulative.1/results.json")[0]))
assert a["verdict"] == "ERROR" and a["host"] == "h1" and a["host_fault"] == "lost", (a["verdict"], a.get("host_fault"))
assert not [k for k in a["checks"] if k["status"] == "FAIL"], "a FAIL on the lost host"
PY
then ok "daemon killed mid-cell: ERROR on h1 (connection lost), h1 out, retried on h2: PASS"
else bad "daemon killed mid-cell (rc $rc)"; tail -15 "$work/kill.txt"; fi
# ---- the host back: its health check ----------------------------------------------------------
# h1 is still down: the first cell's connection is refused there, h1 leaves the pool and the cell
# runs on h2. Its daemon then comes back; the health check (every 3 s here) finds it, and the
# second cell runs on h1. The domain the killed daemon left running is swept by that connect
# (its owner, the killed run's cell, is gone).
hosts_file "$work/health.yaml" 3 "${uris[@]}"
KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/health.yaml" -j1 -o "$work/health" tests/vm/scenarios/matrix2.yaml > "$work/health.txt" 2>&1 &
pid=$!
wait_for "$work/health.txt" "host h1 is out of the pool" 60 && bash $HOSTS_SH up "$state" 2 >/dev/null
wait $pid
rc=$?
if [ $rc -eq 0 ] && grep -q "host h1 is out of the pool: refused the connection" "$work/health.txt" &&
   grep -q "host h1 is back in the pool" "$work/health.txt" && python3 - "$work/health" <<'PY' && no_domains
import glob, json, sys
run = json.load(open(glob.glob(sys.argv[1] + "/*/results.json")[0]))
v = {c["cell"]: (c["verdict"], c["host"]) for c in run["cells"]}
# the first cell refused on h1 (queued again behind the second, which h2 runs), then run on h1
# once it was back
assert v == {"6.1.0-56-amd64_demo-cumulative": ("PASS", "h1"),
             "6.1.0-56-rt-amd64_demo-cumulative": ("PASS", "h2")}, v
a = json.load(open(glob.glob(sys.argv[1] + "/*/.attempts/6.1.0-56-amd64_demo-cumulative.1/results.json")[0]))
assert a["verdict"] == "ERROR" and a["host"] == "h1" and a["host_fault"] == "connect", a.get("host_fault")
PY
then ok "host back: refused, out, health check passed, back in the pool: PASS on both; no domain left"
else bad "host back (rc $rc)"; tail -12 "$work/health.txt"; fi

if [ "$mode" = full ]; then
	# ---- one host unreachable from the start ---------------------------------------------------
	# h1's address has no sshd behind it: its connection is refused, it leaves the pool, and
	# both cells run on h2
	hosts_file "$work/unreach.yaml" 600 "$(echo "${uris[0]}" | sed 's|@[^/]*/|@10.77.1.2:2/|')" "${uris[1]}"
	KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/unreach.yaml" -o "$work/unreach" tests/vm/scenarios/matrix2.yaml > "$work/unreach.txt" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q "host h1 is out of the pool: refused the connection" "$work/unreach.txt" &&
	   python3 - "$work/unreach" <<'PY'
import glob, json, sys
run = json.load(open(glob.glob(sys.argv[1] + "/*/results.json")[0]))
assert {c["verdict"] for c in run["cells"]} == {"PASS"}, run["cells"]
assert {c["host"] for c in run["cells"]} == {"h2"}, [c["host"] for c in run["cells"]]
PY
	then ok "one host unreachable from the start: out of the pool, both cells PASS on the other"
	else bad "one host unreachable (rc $rc)"; tail -10 "$work/unreach.txt"; fi

	# ---- klpq SIGKILLed mid-run ----------------------------------------------------------------
	KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/pool.yaml" -o "$work/sigkill" tests/vm/scenarios/matrix2.yaml > "$work/sigkill.txt" 2>&1 &
	pid=$!
	wait_for "$work/sigkill.txt" "step1 .*load .*PASS" 120
	sleep 1
	n1=$(bash $HOSTS_SH domains "$state" 1 | grep -c . || true)
	n2=$(bash $HOSTS_SH domains "$state" 2 | grep -c . || true)
	pkill -KILL -x klpq
	wait $pid 2>/dev/null
	gone=0
	for _ in $(seq 1 30); do no_domains >/dev/null && { gone=1; break; }; sleep 1; done
	if [ $gone -eq 0 ]; then
		# the next connect sweeps what the hosts did not destroy themselves
		KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/pool.yaml" -o "$work/sweep" "$work/one.yaml" > /dev/null 2>&1
		no_domains && gone=2
	fi
	if [ $((n1 + n2)) -ge 1 ] && [ $gone -eq 1 ]; then
		ok "klpq SIGKILLed mid-run ($n1 + $n2 domains running): the hosts destroyed them (autodestroy on the closed connection)"
	elif [ $((n1 + n2)) -ge 1 ] && [ $gone -eq 2 ]; then
		ok "klpq SIGKILLed mid-run ($n1 + $n2 domains running): swept by the next connect"
	else
		bad "klpq SIGKILLed mid-run: domains before $n1 + $n2, left after: $(no_domains)"
	fi
fi

if [ "$mode" = full ]; then
	# ---- a host that cannot take uploads: two failed starts ------------------------------------
	# h1's storage pool gone and its folder a file: the upload fails ("start"), the host stays
	# for one more try (the cell's only host), fails again, and is out: exit 2
	virsh -q -c "$(bash $HOSTS_SH local-uri "$state" 1)" pool-destroy klpq >/dev/null 2>&1
	rm -rf "$state/h1/var-lib-libvirt/klpq"
	echo "not a folder" > "$state/h1/var-lib-libvirt/klpq"
	hosts_file "$work/h1.yaml" 600 "${uris[0]}"
	KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/h1.yaml" -o "$work/start" "$work/one.yaml" > "$work/start.txt" 2>&1
	rc=$?
	rm -f "$state/h1/var-lib-libvirt/klpq"
	if [ $rc -eq 2 ] && grep -q "host h1 is out of the pool: failed to start domains twice" "$work/start.txt" &&
	   python3 - "$work/start" <<'PY'
import glob, json, sys
c = json.load(open(glob.glob(sys.argv[1] + "/*/6.1.0-56-amd64_demo-cumulative/results.json")[0]))
assert c["verdict"] == "ERROR" and not [k for k in c["checks"] if k["status"] == "FAIL"], c["verdict"]
for a in glob.glob(sys.argv[1] + "/*/.attempts/*/results.json"):
    a = json.load(open(a))
    assert a["host"] == "h1" and a["host_fault"] == "start", (a.get("host"), a.get("host_fault"))
assert len(glob.glob(sys.argv[1] + "/*/.attempts/*/results.json")) == 2
PY
	then ok "a host that cannot take uploads: tried twice (its only host), then out; ERROR, exit 2"
	else bad "a host that cannot take uploads (rc $rc)"; tail -8 "$work/start.txt"; fi
fi

# ---- every host down ---------------------------------------------------------------------------
bash $HOSTS_SH kill-daemon "$state" 1
bash $HOSTS_SH kill-daemon "$state" 2
t=$(date +%s)
KLPQ_PLAIN=1 "$KLPQ" run --hosts "$work/pool.yaml" -o "$work/down" tests/vm/scenarios/matrix2.yaml > "$work/down.txt" 2>&1
rc=$?
secs=$(( $(date +%s) - t ))
if [ $rc -eq 2 ] && grep -q "every host of the pool is down: h1: refused the connection" "$work/down.txt" &&
   grep -q "h2: refused the connection" "$work/down.txt" && python3 - "$work/down" <<'PY'
import glob, json, sys
run = json.load(open(glob.glob(sys.argv[1] + "/*/results.json")[0]))
assert run["exit_code"] == 2 and "every host of the pool is down" in run["error"], run.get("error")
assert len(run["cells"]) == 2 and {c["verdict"] for c in run["cells"]} == {"ERROR"}, run["cells"]
for c in run["cells"]:
    cell = json.load(open(glob.glob(sys.argv[1] + "/*/" + c["cell"] + "/results.json")[0]))
    assert not [k for k in cell["checks"] if k["status"] == "FAIL"]
PY
then ok "every host down: ERROR, exit 2, each host's reason ($secs s)"
else bad "every host down (rc $rc)"; tail -10 "$work/down.txt"; fi

# ---- every check reported is in the table of checks (klpq checks --verify, docs/checks.md) --------
cells=$(find "$work" -name results.json -exec python3 -c '
import json, sys
for p in sys.argv[1:]:
    try:
        c = json.load(open(p))
    except Exception:
        continue
    if isinstance(c, dict) and "cell" in c and "checks" in c:
        print(p)' {} + 2>/dev/null)
# shellcheck disable=SC2086
if [ -n "$cells" ] && out=$("$KLPQ" checks --verify $cells 2>&1 >/dev/null); then
	ok "check ids: every check of $(echo "$cells" | wc -l) cell(s) in the table, at its step, with a verdict its row allows"
else bad "check ids: $out"; fi

# ---- nothing left ------------------------------------------------------------------------------
bash $HOSTS_SH down "$state"
left=$( { pgrep -a -x libvirtd; pgrep -a -f "sshd.*klpq-pool"; pgrep -a -f "qemu-system.*klpq-"; ip netns list | grep klpq-h; grep klpq-pool /proc/mounts; } 2>/dev/null)
if [ -z "$left" ]; then ok "torn down: no daemon, QEMU, namespace or mount left"
else bad "torn down: left: $left"; fi

echo "klpq: check-pool ($mode): $pass passed, $fail failed in $(( $(date +%s) - t0 )) s"
[ $fail -eq 0 ] || { printf '  failed: %s\n' "${failed[@]}"; exit 1; }
