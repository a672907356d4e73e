#!/usr/bin/env bash
# Runs the stability corpus (tests/vm/corpus.tsv) on a real kernel and checks that every case
# gets its exit code, cell verdict, and a check with the expected step, name, status and title.
#   tests/vm/faulty.sh            every case (make check-faulty)
#   tests/vm/faulty.sh --check    the rows marked in_check (make check)
#   tests/vm/faulty.sh CASE...    the named cases
# KLPQ_TEST_BACKEND=libvirt runs each case's scenario on that VM backend instead (a copy of
# the scenario beside it with vm.backend set, tests/vm/backend.sh; make check-faulty-libvirt).
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
OUT=${KLPQ_TEST_RESULTS:-$(mktemp -d /tmp/klpq-corpus-XXXXXX)}
only_check=0
want=()
for a in "$@"; do
	if [ "$a" = --check ]; then only_check=1; else want+=("$a"); fi
done
failed=0 ran=0
declare -A done_rc
. tests/vm/backend.sh   # KLPQ_TEST_BACKEND
while IFS=$'\t' read -r name scen code verdict sel regex in_check; do
	case $name in ''|'#'*) continue ;; esac
	if [ ${#want[@]} -gt 0 ]; then
		printf '%s\n' "${want[@]}" | grep -qx "$name" || continue
	elif [ $only_check = 1 ] && [ "$in_check" != yes ]; then
		continue
	fi
	d="$OUT/$(basename "$scen" .yaml)"
	if [ -z "${done_rc[$scen]:-}" ]; then   # two rows may judge one run
		mkdir -p "$d"
		backend_track "$scen"
		run_scen=$(backend_scenario "$scen") || { echo "cannot copy $scen"; exit 2; }
		KLPQ_PLAIN=1 "$KLPQ" run -o "$d" "$run_scen" > "$d/stdout.txt" 2>&1
		done_rc[$scen]=$?
	fi
	rc=${done_rc[$scen]}
	ran=$((ran + 1))
	if python3 - "$d" "$rc" "$code" "$verdict" "$sel" "$regex" "$KLPQ" <<'PY'
import glob, json, re, subprocess, sys
d, rc, code, verdict, sel, regex, klpq = sys.argv[1:8]
cells = [json.load(open(p)) for p in glob.glob(d + "/*/*/results.json")]
assert len(cells) == 1, "expected one cell, found %d" % len(cells)
c = cells[0]
assert rc == code, "exit %s, expected %s" % (rc, code)
assert c["verdict"] == verdict, "verdict %s, expected %s" % (c["verdict"], verdict)
# every check the cell reported is in the table of checks at its step, with a verdict its row
# allows (klpq checks --verify, docs/checks.md)
bad = subprocess.run([klpq, "checks", "--verify"] + glob.glob(d + "/*/*/results.json"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
assert bad.returncode == 0, bad.stderr.strip()
if sel != "-":
    step, check, status = sel.rsplit("/", 2) if sel.count("/") >= 2 else (None, None, None)
    hits = [k for k in c["checks"] if k["step"] == step and k["check"] == check and k["status"] == status]
    assert hits, "no %s check; have: %s" % (sel, [(k["step"], k["check"], k["status"]) for k in c["checks"] if k["status"] != "PASS"][:8])
    assert any(re.search(regex, k["title"]) for k in hits), "title %r does not match %r" % (hits[0]["title"], regex)
    print("# " + hits[0]["title"])
PY
	then printf 'ok %d - %s\n' "$ran" "$name"
	else printf 'not ok %d - %s (%s)\n' "$ran" "$name" "$d"; failed=1; fi
done < tests/vm/corpus.tsv
echo "# corpus: $ran case(s), results in $OUT"
printf '1..%d\n' "$ran"
[ $ran -gt 0 ] || { echo "no case matched"; exit 2; }
exit $failed
