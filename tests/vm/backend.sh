# Sourced by tests/vm/run.sh and tests/vm/faulty.sh: KLPQ_TEST_BACKEND=NAME runs their
# scenarios on that VM backend. backend_scenario SCEN prints the scenario to run: SCEN itself,
# or a copy beside it (so its relative paths hold) with vm.backend set, removed at exit.
KLPQ_BACKEND_COPIES=()
trap 'rm -f "${KLPQ_BACKEND_COPIES[@]}"' EXIT
backend_copy() { # SCEN: the copy's path (no file written)
	echo "$(dirname "$1")/.backend-$KLPQ_TEST_BACKEND-$(basename "$1")"
}
backend_scenario() {
	local scen=$1 copy
	if [ -z "${KLPQ_TEST_BACKEND:-}" ]; then echo "$scen"; return 0; fi
	copy=$(backend_copy "$scen")
	python3 - "$scen" "$copy" "$KLPQ_TEST_BACKEND" <<'PY' || return 1
import re, sys
src, dst, backend = sys.argv[1:4]
out, state = [], "before"
for line in open(src).read().split("\n"):
    if state == "before" and re.match(r"^vm:\s*$", line):
        out += [line, "  backend: " + backend]
        state = "in"
        continue
    if state == "in" and re.match(r"^\s+backend:", line):
        continue
    if state == "in" and not line.startswith(" "):
        state = "after"
    out.append(line)
if state == "before":
    out += ["vm:", "  backend: " + backend]
open(dst, "w").write("\n".join(out))
PY
	echo "$copy"
}
# In the calling shell (not a subshell), so that the copy is removed at exit.
backend_track() { [ -n "${KLPQ_TEST_BACKEND:-}" ] && KLPQ_BACKEND_COPIES+=("$(backend_copy "$1")"); return 0; }
