#!/usr/bin/env bash
# make check-selftests: the kernel's own livepatch selftests, run through klpq.
#
#   tests/selftests/run.sh [6.1|6.12]...      (default: both suites)
#
# For each suite it downloads Debian's linux-source-<series> package (apt-get download, kept in
# ~/.cache/klpq/selftests; the kernel's files are never committed here), extracts the livepatch
# test modules and selftest scripts, and builds one klpq patch set per selftest behaviour from
# tests/selftests/behaviours/<id>/patchset.yaml (written here, one step per command of the
# selftest): the step sources come from the package, and each step's expected kernel lines
# (log:) are cut out of the selftest's own check_result transcript at the "% command" lines.
# Then it runs all of them as one klpq matrix on the suite's kernel and prints the table:
# behaviour, klpq verdict, the selftest's expectation (ok: every step as the script does it),
# agree. Exit 0 only when every behaviour of the asked suites agrees.
#
# Environment: KLPQ (default build/klpq), KLPQ_SELFTESTS_OUT (default build/selftests),
# KLPQ_SELFTESTS_ONLY (a regular expression of behaviour ids to run), KLPQ_JOBS (default 2),
# KLPQ_SELFTESTS_CPUS (vCPUs of a behaviour whose row names none; default 1, see
# docs/conformance.md, "Two crashes on 2 vCPUs").
set -uo pipefail
cd "$(dirname "$0")/../.."
KLPQ=${KLPQ:-build/klpq}
OUT=${KLPQ_SELFTESTS_OUT:-build/selftests}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/klpq/selftests
ONLY=${KLPQ_SELFTESTS_ONLY:-}
JOBS=${KLPQ_JOBS:-2}
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(6.1 6.12)

declare -A KERNEL=([6.1]=debian:6.1.0-56-amd64 [6.12]=debian:6.12.117+deb12-amd64)
# where each suite keeps its test modules, inside the source tree
declare -A MODDIR=([6.1]=lib/livepatch [6.12]=tools/testing/selftests/livepatch/test_modules)

fetch_source() { # series -> extracted tree in $CACHE/linux-source-<series>
	local v=$1 dir=$CACHE/linux-source-$v deb
	[ -f "$dir/.complete" ] && return 0
	mkdir -p "$CACHE" && rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp"
	deb=$(ls "$CACHE"/linux-source-"${v}"_*.deb 2>/dev/null | head -1)
	if [ -z "$deb" ]; then
		(cd "$CACHE" && apt-get download "linux-source-$v" >/dev/null 2>&1) ||
			(apt-get update -qq >/dev/null 2>&1 && cd "$CACHE" &&
			 apt-get download "linux-source-$v" >/dev/null) ||
			{ echo "selftests: cannot download linux-source-$v" >&2; return 1; }
		deb=$(ls "$CACHE"/linux-source-"${v}"_*.deb | head -1)
	fi
	echo "selftests: extracting the livepatch tests of $(basename "$deb")"
	dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/linux-source-$v.tar.xz" | xz -dc |
		tar -x -C "$dir.tmp" --strip-components=1 --wildcards --no-wildcards-match-slash \
			"linux-source-$v/lib/livepatch/*" \
			"linux-source-$v/tools/testing/selftests/livepatch/*" \
			"linux-source-$v/tools/testing/selftests/livepatch/test_modules/*" 2>/dev/null
	[ -d "$dir.tmp/tools/testing/selftests/livepatch" ] ||
		{ echo "selftests: no livepatch selftests in $deb" >&2; return 1; }
	touch "$dir.tmp/.complete" && mv "$dir.tmp" "$dir"
}

rc=0
for v in "${suites[@]}"; do
	[ -n "${KERNEL[$v]:-}" ] || { echo "selftests: unknown suite $v (6.1 or 6.12)" >&2; exit 2; }
	fetch_source "$v" || exit 2
	src=$CACHE/linux-source-$v
	work=$OUT/$v
	rm -rf "$work" && mkdir -p "$work/patchsets"
	# the patch sets: committed steps + the package's module sources + the transcripts
	if ! python3 - "$v" "$src" "${MODDIR[$v]}" "$work" "${KERNEL[$v]}" "$ONLY" <<'PY'
import os, re, shutil, sys
v, src, moddir, work, kernel, only = sys.argv[1:7]
sel = os.path.join(src, "tools/testing/selftests/livepatch")
here = "tests/selftests"

def transcripts(script):
    """{test name: [expected lines]} of one selftest script, its $MOD_* names expanded as
    they stand at each check_result (a script may set them again between tests)."""
    out, var, name, block = {}, {}, None, None
    def expand(s):
        return re.sub(r'\$\{?(MOD_[A-Z0-9_]+)\}?', lambda m: var.get(m.group(1), m.group(0)), s)
    for line in open(os.path.join(sel, script), encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if block is not None:
            if line.endswith('"'):
                block.append(line[:-1])
                out[name] = [expand(x) for x in block]
                block = None
            else:
                block.append(line)
            continue
        m = re.match(r'^\s*(MOD_[A-Z0-9_]+)=([A-Za-z0-9_]+)\s*$', line)
        if m:
            var[m.group(1)] = m.group(2)
        m = re.match(r'^start_test "(.*)"', line)
        if m:
            name = m.group(1)
        m = re.match(r'^check_result "(.*)$', line)
        if m:
            rest = m.group(1)
            if rest.endswith('"'):
                out[name] = [expand(rest[:-1])]
            else:
                block = [rest]
    return out, var

# lines the selftest script writes into the kernel log itself, not the kernel's
SCRIPT_LINE = re.compile(r'^(% |modprobe: |insmod: |rmmod: |livepatch: kernel\.ftrace_enabled = |'
                         r'livepatch: sysctl: )|: this has been live patched$|'
                         r'Remaining not livepatched processes')

def segments(lines):
    """The kernel's lines after each "% command" line, one list per command."""
    segs = []
    for l in lines:
        if l.startswith("% "):
            segs.append([])
        elif not SCRIPT_LINE.search(l) and segs:
            segs[-1].append(l)
        elif not SCRIPT_LINE.search(l):
            segs.append(None)  # a kernel line before any command: cannot be placed
    return segs

def yq(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

cache = {}
names = {}  # vCPUs -> behaviours
for row in open(os.path.join(here, "behaviours.tsv")):
    if row.startswith("#") or not row.strip():
        continue
    bid, script, suites, title, cpus = (row.rstrip("\n").split("\t") + [""])[:5]
    cpus = cpus or os.environ.get("KLPQ_SELFTESTS_CPUS") or "1"
    if v not in suites.split() or (only and not re.search(only, bid)):
        continue
    if not os.path.exists(os.path.join(sel, script)):
        print(f"{bid}: the {v} suite has no {script}"); sys.exit(1)
    if script not in cache:
        cache[script] = transcripts(script)[0]
    tr = cache[script]
    if title not in tr:
        print(f"{bid}: {script} has no test \"{title}\""); sys.exit(1)
    segs = segments(tr[title])
    text = open(os.path.join(here, "behaviours", bid, "patchset.yaml")).read()
    head, sep, body = text.partition("\nsteps:\n")  # the steps' names, not the programs'
    if not sep:
        print(f"{bid}: patchset.yaml has no top-level steps: list"); sys.exit(1)
    steps = re.findall(r'^  - name: (\S+)$', body, re.M)
    mapped = [s for s in steps if not s.startswith("x-")]
    if None in segs or len(segs) != len(mapped):
        print(f"{bid}: {len(mapped)} command step(s) but the transcript of \"{title}\" has "
              f"{len([s for s in segs if s is not None])} command(s)"); sys.exit(1)
    d = os.path.join(work, "patchsets", bid)
    os.makedirs(d)
    for mod in sorted(set(re.findall(r'source: src/(\S+)', text))):
        c = os.path.join(src, moddir, mod + ".c")
        if not os.path.exists(c):
            print(f"{bid}: the {v} suite has no {moddir}/{mod}.c"); sys.exit(1)
        os.makedirs(os.path.join(d, "src", mod))
        todo = [c]
        while todo:  # test_klp_state3.c includes test_klp_state2.c: copy what it includes
            f = todo.pop()
            shutil.copy(f, os.path.join(d, "src", mod))
            for inc in re.findall(r'^#include "([^"/]+)"', open(f).read(), re.M):
                p = os.path.join(src, moddir, inc)
                if os.path.exists(p) and not os.path.exists(os.path.join(d, "src", mod, inc)):
                    todo.append(p)
        open(os.path.join(d, "src", mod, "Kbuild"), "w").write(f"obj-m := {mod}.o\n")
    for prog in sorted(set(re.findall(r'source: prog/(\S+)', text))):
        c = os.path.join(sel, prog)
        if not os.path.exists(c):
            print(f"{bid}: the {v} suite has no {prog}"); sys.exit(1)
        os.makedirs(os.path.join(d, "prog"), exist_ok=True)
        shutil.copy(c, os.path.join(d, "prog"))
    it = iter(segs)
    def splice(m):
        if m.group(1).startswith("x-"):
            return m.group(0)
        seg = next(it)
        return m.group(0) + "\n    log:" + (" []" if not seg else "".join(
            "\n      - " + yq(l) for l in seg))
    open(os.path.join(d, "patchset.yaml"), "w").write(
        head + sep + re.sub(r'^  - name: (\S+)$', splice, body, flags=re.M))
    names.setdefault(cpus, []).append(bid)
if not names:
    print("no behaviour selected"); sys.exit(1)
for cpus, group in sorted(names.items()):
  with open(os.path.join(work, f"selftests-{cpus}cpu.yaml"), "w") as f:
    f.write(f"# generated by tests/selftests/run.sh: the {v} livepatch selftests on {cpus} vCPU(s)\n"
            f"name: selftests-{v}-{cpus}cpu\nkernels:\n  - {kernel}\n"
            f"vm: {{memory_mb: 1024, cpus: {cpus}, accel: auto}}\npatchsets:\n" +
            "".join(f"  - patchsets/{n}\n" for n in group) +
            "timeouts: {boot_s: 180, transition_s: 30, probe_s: 10, agent_s: 30}\n"
            "taint: {allow: [K, E, O]}\nrollback: false\nleak: {cycles: 0}\n"
            "# the selftests' setup_config: pr_debug of kernel/livepatch on\n"
            "livepatch_debug: true\n")
print(f"selftests {v}: {sum(map(len, names.values()))} behaviour(s) written to {work}")
PY
	then
		echo "selftests $v: could not express the suite (above)"; rc=1; continue
	fi
	for scen in "$work"/selftests-*cpu.yaml; do
		KLPQ_PLAIN=1 "$KLPQ" run -j "$JOBS" --retries 1 -o "$work/results" "$scen" \
			>> "$work/klpq.log" 2>&1
		echo "selftests $v: klpq exited $? on $(basename "$scen") (log: $work/klpq.log)"
	done
	python3 - "$v" "$work" <<'PY' || rc=1
import glob, json, os, sys
v, work = sys.argv[1:3]
rows, bad, told = [], 0, []
want = {}
for row in open("tests/selftests/behaviours.tsv"):
    if not row.startswith("#") and row.strip():
        bid, script, suites, title = row.rstrip("\n").split("\t")[:4]
        want[bid] = (script, title)
cells = {}
for p in glob.glob(os.path.join(work, "results", "*", "*", "results.json")):
    c = json.load(open(p))
    cells[c["patchset"][3:] if c["patchset"].startswith("st-") else c["patchset"]] = c
for bid in sorted(os.listdir(os.path.join(work, "patchsets"))):
    script, title = want[bid]
    c = cells.get(bid)
    verdict = c["verdict"] if c else "missing"
    agree = verdict == "PASS"
    bad += not agree
    why = ""
    if c and not agree:
        firsts = [k for k in c["checks"] if k["status"] != "PASS" and k["status"] != "SKIP"]
        why = " -- " + "; ".join(f'{k["step"]}/{k["check"]}: {k["title"]}' for k in firsts[:2])
        for k in firsts[:1]:
            told.append(f"# st-{bid} {k['step']}/{k['check']} evidence:")
            told += ["#   " + l for l in k.get("evidence", [])[:24]]
    rows.append(f"| {script} | {title} | st-{bid} | {verdict} | ok | {'yes' if agree else 'NO'} |")
    print(f"{'ok' if agree else 'not ok'} - {v} {script}: {title}: klpq {verdict}{why}")
with open(os.path.join(work, "table.md"), "w") as f:
    f.write("| selftest | behaviour | klpq patch set | klpq verdict | selftest expects | agree |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
print(f"selftests {v}: {len(rows) - bad} of {len(rows)} agree (table: {work}/table.md)")
# what went wrong, last: a CI log's tail is often all there is of it
print("\n".join(told)) if told else None
sys.exit(1 if bad else 0)
PY
done
exit $rc
