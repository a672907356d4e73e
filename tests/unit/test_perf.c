/* test_perf.c: workload sample parsing, phases, statistics of a phase, and the scenario's
 * workloads / perf keys. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perf.h"
#include "scenario.h"

#define PS KLPQ_SRCDIR "/scenarios/patchsets"

START_TEST(test_samples_split_lines)
{
	struct perf_samples ps;
	const struct perf_series *f, *r;
	const char *text = "# klpq-workload 1 gaming tick_hz=60\n"
			   "1000 frame_us=2100 late_us=30 miss=0 rtt_us=120 rtt_us=130\n"
			   "2000 frame_us=2200.5 miss=1\n"
			   "garbage line\n"
			   "3000 frame_us=\n"
			   "4000 frame_us=1900\n";

	perf_samples_init(&ps, "gaming");
	/* fed in pieces that split lines and numbers */
	for (size_t i = 0, len = strlen(text); i < len; i += 7)
		perf_samples_feed(&ps, text + i, len - i < 7 ? len - i : 7);
	ck_assert(ps.header_seen);
	ck_assert_uint_eq(ps.bad_lines, 2);
	ck_assert_uint_eq(ps.offset, strlen(text));
	f = perf_series_find(&ps, "frame_us");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(f->n, 3);
	ck_assert_uint_eq(f->t[1], 2000);
	ck_assert(f->v[1] == 2200.5);
	r = perf_series_find(&ps, "rtt_us");
	ck_assert_uint_eq(r->n, 2);
	ck_assert(r->v[1] == 130);
	ck_assert_ptr_null(perf_series_find(&ps, "nothing"));
	/* an unfinished line waits for its end */
	perf_samples_feed(&ps, "5000 frame_us=1", 15);
	ck_assert_uint_eq(f->n, 3);
	perf_samples_feed(&ps, "8\n", 2);
	f = perf_series_find(&ps, "frame_us");
	ck_assert_uint_eq(f->n, 4);
	ck_assert(f->v[3] == 18);
	perf_samples_release(&ps);
}
END_TEST

START_TEST(test_samples_bounded)
{
	struct perf_samples ps;
	char line[64];

	perf_samples_init(&ps, "mining");
	for (unsigned i = 0; i < PERF_MAX_SAMPLES + 10; i++) {
		int n = snprintf(line, sizeof(line), "%u hps=%u\n", i, i);
		perf_samples_feed(&ps, line, (size_t)n);
	}
	ck_assert_uint_le(perf_series_find(&ps, "hps")->n, PERF_MAX_SAMPLES);
	ck_assert_uint_ge(perf_series_find(&ps, "hps")->n, PERF_MAX_SAMPLES / 2);
	/* a line with no end is dropped once it is longer than any sample line */
	for (int i = 0; i < 100; i++)
		perf_samples_feed(&ps, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 50);
	ck_assert_uint_lt(ps.partial.len, 4096 + 50);
	perf_samples_release(&ps);
}
END_TEST

START_TEST(test_values_in_and_stats)
{
	struct perf_samples ps;
	double *v;
	size_t n;

	perf_samples_init(&ps, "gaming");
	for (unsigned i = 1; i <= 100; i++) {
		char line[64];
		int k = snprintf(line, sizeof(line), "%u frame_us=%u\n", i * 10, i);
		perf_samples_feed(&ps, line, (size_t)k);
	}
	v = perf_values_in(perf_series_find(&ps, "frame_us"), 100, 510, &n);
	ck_assert_uint_eq(n, 41); /* t = 100 .. 500 */
	ck_assert(stats_of(STATS_MAX, v, n) == 50);
	ck_assert(stats_of(STATS_MEAN, v, n) == 30);
	ck_assert(stats_of(STATS_P50, v, n) == 30);
	ck_assert(stats_of(STATS_P99, v, n) > 49.5 && stats_of(STATS_P99, v, n) < 50);
	free(v);
	ck_assert_ptr_null(perf_values_in(perf_series_find(&ps, "frame_us"), 5000, 6000, &n));
	ck_assert_uint_eq(n, 0);
	perf_samples_release(&ps);
}
END_TEST

START_TEST(test_metric_table)
{
	size_t n;
	const struct perf_metric *m = perf_metrics(&n);
	int headlines[4] = { 0 };
	const char *wl[4] = { "gaming", "streaming", "mining", "callbench" };

	ck_assert_uint_ge(n, 10);
	for (size_t i = 0; i < n; i++) {
		ck_assert(perf_workload_known(m[i].workload));
		ck_assert_ptr_eq(perf_metric_find(m[i].name), &m[i]);
		for (int k = 0; k < 4; k++)
			if (m[i].headline && !strcmp(m[i].workload, wl[k]))
				headlines[k]++;
	}
	for (int k = 0; k < 4; k++)
		ck_assert_int_eq(headlines[k], 1);
	ck_assert(perf_metric_find("mining.hps")->higher_is_better);
	ck_assert(!perf_metric_find("gaming.frame_p99")->higher_is_better);
	ck_assert_ptr_null(perf_metric_find("gaming.fps"));
}
END_TEST

static int load_text(const char *text, struct scenario *sc, struct kerr *e)
{
	char path[] = "/tmp/klpq-test-perf-XXXXXX.yaml";
	int fd = mkstemps(path, 5), r;
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	r = scenario_load(path, sc, e);
	unlink(path);
	return r;
}

#define HEAD "kernels: [debian:6.1.0-56-amd64]\npatchset: " PS "/demo-cumulative\n"

START_TEST(test_scenario_perf_keys)
{
	struct scenario sc;
	struct kerr e = KERR_INIT;

	ck_assert_msg(load_text(HEAD "workloads:\n  - gaming\n  - name: callbench\n    op: read\n"
				"    path: /proc/cmdline\n    batch: 500\n"
				"perf:\n  phase_s: 2.5\n  pairs: 4\n  threshold_pct: 7\n"
				"  thresholds: {gaming.frame_p99: 12.5}\n", &sc, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(sc.nr_workloads, 2);
	ck_assert_str_eq(sc.workloads[0].name, "gaming");
	ck_assert_uint_eq(sc.workloads[0].nr_args, 0);
	ck_assert_uint_eq(sc.workloads[1].nr_args, 6);
	ck_assert_str_eq(sc.workloads[1].args[0], "--op");
	ck_assert_str_eq(sc.workloads[1].args[1], "read");
	ck_assert_str_eq(sc.workloads[1].args[4], "--batch");
	ck_assert_str_eq(sc.workloads[1].args[5], "500");
	ck_assert_uint_eq(sc.perf.phase_ms, 2500);
	ck_assert_uint_eq(sc.perf.pairs, 4);
	ck_assert_uint_eq(sc.perf.warmup_ms, 2000);
	ck_assert(sc.perf.threshold_pct == 7);
	ck_assert_uint_eq(sc.perf.nr_thresholds, 1);
	ck_assert_str_eq(sc.perf.thresholds[0].metric, "gaming.frame_p99");
	ck_assert(sc.perf.thresholds[0].pct == 12.5);
	ck_assert_uint_eq(sc.leak.cycles, 3);
	ck_assert_uint_eq(sc.leak.threshold_kb, 1024);
	ck_assert_ptr_null(sc.leak.exercise);
	ck_assert_int_eq(sc.stall_recovery, RECOVER_SIGNAL);
	scenario_release(&sc);
	ck_assert_msg(load_text(HEAD "leak: {cycles: 0, threshold_kb: 512, exercise: 'true'}\n"
				"stall_recovery: reverse\n", &sc, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(sc.leak.cycles, 0);
	ck_assert_uint_eq(sc.leak.threshold_kb, 512);
	ck_assert_str_eq(sc.leak.exercise, "true");
	ck_assert_int_eq(sc.stall_recovery, RECOVER_REVERSE);
	scenario_release(&sc);
	ck_assert_msg(load_text(HEAD "workloads:\n  - name: streaming\n    mode: saturate\n"
				"    write_bytes: 1448\n", &sc, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(sc.workloads[0].nr_args, 4);
	ck_assert_str_eq(sc.workloads[0].args[0], "--mode");
	ck_assert_str_eq(sc.workloads[0].args[1], "saturate");
	ck_assert_str_eq(sc.workloads[0].args[2], "--write-bytes");
	ck_assert_str_eq(sc.workloads[0].args[3], "1448");
	scenario_release(&sc);
}
END_TEST

static void bad(const char *text, const char *where, const char *needle)
{
	struct scenario sc;
	struct kerr e = KERR_INIT;

	ck_assert_int_eq(load_text(text, &sc, &e), -1);
	ck_assert_msg(strstr(e.msg, where) && strstr(e.msg, needle), "want %s ... %s in: %s",
		      where, needle, e.msg);
}

START_TEST(test_scenario_perf_bad)
{
	bad(HEAD "workloads: [tetris]\n", ":3:13:", "unknown workload 'tetris'");
	bad(HEAD "workloads:\n  - name: gaming\n    tick_hz: -5\n", ":5:14:", "tick_hz");
	bad(HEAD "workloads:\n  - name: gaming\n    fps: 60\n", ":5:5:", "unknown key 'fps'");
	bad(HEAD "workloads:\n  - name: callbench\n    op: fork\n", ":5:9:", "not allowed");
	bad(HEAD "workloads:\n  - name: streaming\n    mode: flood\n", ":5:11:", "not allowed");
	bad(HEAD "workloads:\n  - name: streaming\n    write_bytes: 0\n", ":5:18:", "write_bytes");
	bad(HEAD "workloads: [gaming, gaming]\n", ":3:21:", "twice");
	bad(HEAD "workloads: [gaming]\nperf:\n  phase_s: -1\n", ":5:12:", "more than 0");
	bad(HEAD "workloads: [gaming]\nperf:\n  pairs: 0\n", ":5:10:", "perf.pairs");
	bad(HEAD "workloads: [gaming]\nperf:\n  thresholds: {gaming.fps: 5}\n", ":5:16:",
	    "unknown metric 'gaming.fps'");
	bad(HEAD "workloads: [gaming]\nperf:\n  threshold_pct: -5\n", ":5:18:", "from 0.01");
	bad(HEAD "workloads: [gaming]\nperf:\n  phase: 5\n", ":5:3:", "unknown key 'phase'");
	bad(HEAD "perf:\n  pairs: 2\n", ":4:3:", "needs 'workloads'");
	bad(HEAD "leak:\n  cycles: 51\n", ":4:11:", "leak.cycles");
	bad(HEAD "leak:\n  threshold_kb: 0\n", ":4:17:", "leak.threshold_kb");
	bad(HEAD "leak:\n  exercise: ''\n", ":4:13:", "must not be empty");
	bad(HEAD "leak:\n  cycle: 3\n", ":4:3:", "unknown key 'cycle'");
	bad(HEAD "stall_recovery: retry\n", ":3:17:", "none, signal or reverse");
}
END_TEST

Suite *perf_suite(void)
{
	Suite *s = suite_create("perf");
	TCase *tc = tcase_create("samples");

	tcase_add_test(tc, test_samples_split_lines);
	tcase_add_test(tc, test_samples_bounded);
	tcase_add_test(tc, test_values_in_and_stats);
	tcase_add_test(tc, test_metric_table);
	tcase_add_test(tc, test_scenario_perf_keys);
	tcase_add_test(tc, test_scenario_perf_bad);
	suite_add_tcase(s, tc);
	return s;
}
