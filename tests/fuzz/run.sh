#!/usr/bin/env bash
# tests/fuzz/run.sh: builds the libFuzzer targets and runs each one in turn.
#
#   tests/fuzz/run.sh [scenario|proto|console ...]     (default: all three, one at a time)
#
# Environment:
#   FUZZ_SECONDS   time per target (default 60)
#   CC             a clang with libFuzzer (default: clang, else clang-14)
#   FUZZ_ARGS      extra libFuzzer arguments for every target
#
# Each target is built with ASan + UBSan (UB is fatal) into build/fuzz/, run on a scratch copy
# of its seed corpus (build/fuzz/work/TARGET/corpus; tests/fuzz/corpus is never written), and
# its log kept in build/fuzz/logs/TARGET.log. Crash, leak, UB and timeout inputs are written to
# build/fuzz/crashes/. Prints one summary line per target; exits 1 if any target failed.
set -u -o pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
OUT=$ROOT/build/fuzz
SECONDS_PER=${FUZZ_SECONDS:-60}

if [ -z "${CC:-}" ] || ! "$CC" --version 2>/dev/null | grep -q clang; then
	CC=$(command -v clang || command -v clang-14 || true)
fi
if [ -z "$CC" ]; then
	echo "run.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 2
fi

DEPS=$(pkg-config --cflags --libs yaml-0.1 json-c) || {
	echo "run.sh: pkg-config cannot find yaml-0.1 / json-c" >&2
	exit 2
}

CFLAGS_FUZZ="-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
	-fno-sanitize-recover=all -Wall -Wextra -Iharness"

# target -> harness sources it links
sources() {
	case $1 in
	scenario) echo "harness/scenario.c harness/scenario-kernels.c harness/patchset.c harness/yfile.c harness/kname.c harness/perf.c harness/util.c" ;;
	proto) echo "harness/proto.c" ;;
	console) echo "harness/console.c" ;;
	*) return 1 ;;
	esac
}

# target -> libFuzzer -max_len
max_len() {
	case $1 in
	scenario) echo 4096 ;;     # scenario files are small; 4 KiB covers every format feature
	proto) echo 140000 ;;      # more than two KLPQ_PROTO_MAX_LINE lines: oversized-line paths
	console) echo 32768 ;;     # many CSCAN_MAX_LINE lines, more than CSCAN_MAX_REPORTS incidents
	esac
}

if [ $# -gt 0 ]; then
	TARGETS=("$@")
else
	TARGETS=(scenario proto console)
fi
for t in "${TARGETS[@]}"; do
	sources "$t" >/dev/null || { echo "run.sh: unknown target '$t'" >&2; exit 2; }
done

mkdir -p "$OUT/crashes" "$OUT/logs" "$OUT/work"

build() {
	local t=$1
	# shellcheck disable=SC2046,SC2086
	echo "+ $CC $(echo $CFLAGS_FUZZ) -o build/fuzz/fuzz_$t tests/fuzz/fuzz_$t.c $(sources "$t") $DEPS"
	# shellcheck disable=SC2046,SC2086
	$CC $CFLAGS_FUZZ -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" $(sources "$t") $DEPS
}

# Pulls "stat::NAME: VALUE" out of a libFuzzer log.
stat_of() {
	sed -n "s/^stat::$2:[[:space:]]*//p" "$1" | tail -n 1
}

failed=0
summary=()
for t in "${TARGETS[@]}"; do
	if ! build "$t"; then
		summary+=("$t: BUILD FAILED")
		failed=1
		continue
	fi

	work=$OUT/work/$t
	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/tmp"
	cp -r "tests/fuzz/corpus/$t/." "$work/corpus/"
	log=$OUT/logs/$t.log

	echo "+ build/fuzz/fuzz_$t -max_total_time=$SECONDS_PER -max_len=$(max_len "$t") ... (log: build/fuzz/logs/$t.log)"
	# ASAN_OPTIONS: leaks are errors (libFuzzer's -detect_leaks=1 is the default as well).
	TMPDIR=$work/tmp \
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		"$OUT/fuzz_$t" \
		-max_total_time="$SECONDS_PER" \
		-max_len="$(max_len "$t")" \
		-timeout=25 \
		-rss_limit_mb=2048 \
		-print_final_stats=1 \
		-artifact_prefix="$OUT/crashes/$t-" \
		${FUZZ_ARGS:-} \
		"$work/corpus" >"$log" 2>&1
	rc=$?

	execs=$(stat_of "$log" number_of_executed_units)
	rate=$(stat_of "$log" average_exec_per_sec)
	corpus_n=$(find "$work/corpus" -type f | wc -l)
	status=ok
	if [ $rc -ne 0 ] || grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|deadly signal|SUMMARY: ' "$log"; then
		status="CRASHED (rc=$rc)"
		reason=$(grep -Em1 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|check failed' "$log" || true)
		[ -n "$reason" ] && status="$status: $reason"
		art=$(grep -o "Test unit written to [^ ]*" "$log" | tail -n 1 | sed 's/Test unit written to //')
		[ -n "$art" ] && status="$status; input: ${art#"$ROOT"/}"
		failed=1
	fi
	line=$(printf '%-9s executions=%s exec/s=%s corpus=%s %s' "$t" "${execs:-?}" "${rate:-?}" \
		"$corpus_n" "$status")
	echo "$line"
	summary+=("$line")
done

echo "== fuzz summary (${SECONDS_PER}s per target) =="
printf '%s\n' "${summary[@]}"
exit $failed
